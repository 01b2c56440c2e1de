//! Every sentence the portal shows or mails, in English and Swedish side by side.
//!
//! Keeping both languages in one table means a sentence can't be added in one language only
//! (the struct wouldn't compile), and a translator reads each pair together. The Swedish is
//! written as Swedish, not translated word for word.
//!
//! Sentences are plain text with named holes such as `{org}`. [`fill`] puts values in raw; the
//! page and mail templates then escape the finished sentence as they place it (HTML-escaped, or
//! made one line in a text mail). Sentences never contain markup or line breaks, so escaping the
//! finished sentence is always right, and a sentence whose values are one line is one line.
//! Templates place a sentence without holes as it is (`{{ t.close_page }}`); one with holes is
//! filled by the struct that feeds the template.

use crate::core::policy::Language;

macro_rules! texts {
    ($($name:ident: $en:literal / $sv:literal,)*) => {
        /// The portal's sentences in one language; see the module documentation.
        pub(crate) struct Text {
            $(pub $name: &'static str,)*
        }

        const EN: Text = Text { $($name: $en,)* };
        const SV: Text = Text { $($name: $sv,)* };

        /// Every template as (name, English, Swedish), for tests that check the table as a whole.
        #[cfg(test)]
        pub(crate) const ALL: &[(&str, &str, &str)] = &[$((stringify!($name), $en, $sv),)*];
    };
}

texts! {
    // The page frame.
    nav_language: "Language" / "Språk",
    logo_alt: "{org} logo" / "Logotyp för {org}",
    footer: "Partner access to {org}" / "Partneråtkomst till {org}",
    title_error: "Error: {title}" / "Fel: {title}",
    back_to_form: "Go to the sign-up form" / "Gå till ansökningsformuläret",
    close_page: "You can close this page." / "Du kan stänga den här sidan.",
    contact_person: "If you think this is a mistake, contact your contact person at {org}."
        / "Om du tror att det är fel, kontakta din kontaktperson på {org}.",
    hour: "hour" / "timme",
    hours: "hours" / "timmar",
    minute: "minute" / "minut",
    minutes: "minutes" / "minuter",

    // The sign-up form.
    signup_heading: "Request guest access to {org}" / "Ansök om gäståtkomst till {org}",
    signup_intro: "If you work with {org} from another company, you can ask for a guest account here. First we send a link to your work email address, to confirm that it is yours."
        / "Om du samarbetar med {org} från ett annat företag kan du ansöka om ett gästkonto här. Först skickar vi en länk till din e-postadress på jobbet, för att bekräfta att den är din.",
    required: "(required)" / "(obligatoriskt)",
    optional: "(optional)" / "(valfritt)",
    error_hidden_prefix: "Error:" / "Fel:",
    error_summary_heading: "There is a problem" / "Det finns ett problem",
    label_email: "Work email address" / "E-postadress på jobbet",
    hint_email: "The address you use at your company, like name@company.com"
        / "Adressen du använder på ditt företag, till exempel namn@foretag.se",
    label_first_name: "First name" / "Förnamn",
    label_last_name: "Last name" / "Efternamn",
    label_organisation: "Company or organisation" / "Företag eller organisation",
    label_job_title: "Job title" / "Befattning",
    label_justification: "Why do you need access?" / "Varför behöver du åtkomst?",
    hint_justification: "For example the project you work on and your contact person at {org}. At most {max} characters."
        / "Till exempel vilket projekt du arbetar med och vem som är din kontaktperson på {org}. Högst {max} tecken.",
    terms_heading: "Terms of use" / "Användarvillkor",
    terms_link: "Read the terms of use" / "Läs användarvillkoren",
    new_tab: "(opens in a new tab)" / "(öppnas i en ny flik)",
    label_accept_terms: "I accept the terms of use" / "Jag godkänner användarvillkoren",
    submit_signup: "Continue" / "Fortsätt",

    // Validation messages. `{field}` is one of the `field_*` names, which start a sentence.
    field_email: "Email address" / "E-postadressen",
    field_first_name: "First name" / "Förnamnet",
    field_last_name: "Last name" / "Efternamnet",
    field_organisation: "Company or organisation" / "Företagsnamnet",
    field_justification: "Justification" / "Motiveringen",
    field_job_title: "Job title" / "Befattningen",
    field_reason: "Reason" / "Skälet",
    field_other: "This field" / "Fältet",
    required_email: "Enter your work email address" / "Ange din e-postadress på jobbet",
    required_first_name: "Enter your first name" / "Ange ditt förnamn",
    required_last_name: "Enter your last name" / "Ange ditt efternamn",
    required_organisation: "Enter the name of your company or organisation"
        / "Ange namnet på ditt företag eller din organisation",
    required_other: "{field} is required" / "{field} måste fyllas i",
    too_long: "{field} must be {max} characters or fewer" / "{field} får vara högst {max} tecken",
    invalid_email: "Enter a valid work email address, like name@company.com"
        / "Ange en giltig e-postadress på jobbet, till exempel namn@foretag.se",
    control_characters: "{field} contains hidden characters, such as line breaks. Type the text in again instead of pasting it."
        / "{field} innehåller dolda tecken, till exempel radbrytningar. Skriv in texten igen i stället för att klistra in den.",
    terms_not_accepted: "Accept the terms of use to continue"
        / "Du måste godkänna användarvillkoren för att fortsätta",

    // What happens after the form.
    check_inbox_heading: "Check your inbox" / "Kontrollera din inkorg",
    check_inbox_body: "If the address can be given access, we have sent a link to it. Check your inbox, and your spam or junk folder too."
        / "Om adressen kan få åtkomst har vi skickat en länk till den. Titta i inkorgen, och även i skräpposten.",
    check_inbox_valid: "The link is valid for {hours}. Open it to confirm your address."
        / "Länken gäller i {hours}. Öppna den för att bekräfta din adress.",
    confirm_heading: "Confirm your email address" / "Bekräfta din e-postadress",
    confirm_body: "Select Confirm to show that the email address is yours and to send your request on to {org}."
        / "Välj Bekräfta för att visa att e-postadressen är din och skicka din ansökan vidare till {org}.",
    confirm_button: "Confirm" / "Bekräfta",
    confirm_details: "You are confirming this request. If these are not your details, do not confirm: submit the form again with your own, and use the link in that email."
        / "Du bekräftar den här ansökan. Om uppgifterna inte är dina ska du inte bekräfta: skicka formuläret igen med dina egna uppgifter och använd länken i det mejlet.",
    ready_heading: "Your access is ready" / "Din åtkomst är klar",
    ready_body: "Accept the invitation to start using your access to {org}. You sign in on a Microsoft page, with your work account or with a one-time code sent to your email."
        / "Acceptera inbjudan för att börja använda din åtkomst till {org}. Du loggar in på en sida från Microsoft, med ditt jobbkonto eller med en engångskod som skickas till din e-post.",
    ready_button: "Accept the invitation" / "Acceptera inbjudan",
    ready_mailed: "We have also emailed you the link, so you can accept the invitation later."
        / "Vi har också mejlat länken till dig, så att du kan acceptera inbjudan senare.",
    setup_heading: "We are setting up your access" / "Vi håller på att ordna din åtkomst",
    setup_body: "Your request has been approved. Setting up your access is taking a little longer than usual. You will get an email with your invitation as soon as it is ready; you don't need to do anything else."
        / "Din ansökan har godkänts. Det tar lite längre tid än vanligt att ordna åtkomsten. Du får ett mejl med din inbjudan så snart den är klar – du behöver inte göra något mer.",
    awaiting_heading: "Thank you, your request has been sent for approval"
        / "Tack! Din ansökan har skickats för godkännande",
    awaiting_body: "Your email address is confirmed. Someone at {org} will now look at your request, and you will get an email when it has been decided."
        / "Din e-postadress är bekräftad. Nu granskar någon på {org} din ansökan, och du får ett mejl när den har avgjorts.",
    closed_heading: "We could not give access" / "Vi kunde inte ge åtkomst",
    closed_body: "We could not give access for this address." / "Vi kunde inte ge åtkomst för den här adressen.",

    // Links that can't be used, and other answers.
    link_invalid_heading: "This link does not work" / "Länken fungerar inte",
    link_invalid_body: "The link may be incomplete. Open it again from the email, or copy the whole address into your browser."
        / "Länken kan vara ofullständig. Öppna den igen från mejlet, eller kopiera hela adressen till webbläsaren.",
    link_expired_heading: "This link has expired" / "Länken har gått ut",
    link_expired_body: "Links are only valid for a limited time. Fill in the form again to get a new link."
        / "Länkar gäller bara en begränsad tid. Fyll i formuläret igen för att få en ny länk.",
    link_used_heading: "This link has already been used" / "Länken har redan använts",
    link_used_body: "Each link can only be used once. If you have already used it, check your email for the next step."
        / "Varje länk kan bara användas en gång. Om du redan har använt den, titta i din e-post efter nästa steg.",
    too_many_heading: "Too many attempts" / "För många försök",
    too_many_body: "For security, the number of attempts is limited. Try again in {minutes}."
        / "Av säkerhetsskäl är antalet försök begränsat. Försök igen om {minutes}.",
    unavailable_heading: "The service is temporarily unavailable" / "Tjänsten är tillfälligt otillgänglig",
    unavailable_body: "Nothing has been lost. Try again in a few minutes."
        / "Inget har gått förlorat. Försök igen om några minuter.",
    bad_request_heading: "Something was wrong with what was sent" / "Något var fel med det som skickades",
    bad_request_body: "The page could not read the information it received. Go back to the form and try again."
        / "Sidan kunde inte läsa uppgifterna den fick. Gå tillbaka till formuläret och försök igen.",
    not_found_heading: "Page not found" / "Sidan hittades inte",
    not_found_body: "Check that the address is correct. If you came from a link in an email, open it again from the email."
        / "Kontrollera att adressen är rätt. Om du kom från en länk i ett mejl, öppna den igen därifrån.",
    too_large_heading: "What you sent was too large" / "Det du skickade var för stort",
    too_large_body: "Shorten the text and try again. The justification can be at most {max} characters."
        / "Korta texten och försök igen. Motiveringen får vara högst {max} tecken.",
    unsupported_heading: "The form was sent in a format we can't read"
        / "Formuläret skickades i ett format som vi inte kan läsa",
    unsupported_body: "Go back to the form and send it again from your web browser."
        / "Gå tillbaka till formuläret och skicka det igen från din webbläsare.",

    // Approvers' pages.
    decide_heading: "Review a request for guest access" / "Granska en ansökan om gäståtkomst",
    decide_intro: "A partner has asked for guest access to {org} and has confirmed that they control the email address below."
        / "En partner har ansökt om gäståtkomst till {org} och har bekräftat att hen har tillgång till e-postadressen nedan.",
    decide_note: "Opening this page does not decide anything; only the buttons do."
        / "Inget avgörs av att sidan öppnas – bara knapparna gör det.",
    stage: "This is step {stage} of {stages}." / "Det här är steg {stage} av {stages}.",
    stage_one_by: "Approved in step 1 by {by}." / "Godkänd i steg 1 av {by}.",
    fact_name: "Name" / "Namn",
    fact_email: "Email address" / "E-postadress",
    fact_organisation: "Company or organisation" / "Företag eller organisation",
    fact_justification: "Justification" / "Motivering",
    fact_no_justification: "None given" / "Ingen angiven",
    fact_policy: "Policy" / "Regel",
    fact_submitted: "Submitted" / "Inskickad",
    fact_request_id: "Request ID" / "Ärende-id",
    fact_job_title: "Job title" / "Befattning",
    approve_heading: "Approve" / "Godkänn",
    approve_final: "The person gets an invitation by email." / "Personen får en inbjudan via e-post.",
    approve_forward: "The request goes on to the next step." / "Ansökan skickas vidare till nästa steg.",
    approve_button: "Approve" / "Godkänn",
    deny_heading: "Deny" / "Avslå",
    label_reason: "Reason" / "Skäl",
    hint_reason: "At most {max} characters. It is only shown to the requester if you tick the box below."
        / "Högst {max} tecken. Skälet visas bara för den som ansökt om du kryssar i rutan nedan.",
    label_share_reason: "Share the reason with the requester" / "Dela skälet med den som ansökt",
    deny_button: "Deny" / "Avslå",
    recorded_approved_heading: "Request approved" / "Ansökan godkänd",
    recorded_approved_body: "You approved the request from {name} ({email}). They will get an invitation by email."
        / "Du godkände ansökan från {name} ({email}). Personen får en inbjudan via e-post.",
    recorded_forwarded_heading: "Request sent on to the next step"
        / "Ansökan skickad vidare till nästa steg",
    recorded_forwarded_body: "You approved the request from {name} ({email}). It has been sent on to the next approver, who makes the final decision."
        / "Du godkände ansökan från {name} ({email}). Den har skickats vidare till nästa godkännare, som fattar det slutliga beslutet.",
    recorded_denied_heading: "Request denied" / "Ansökan avslagen",
    recorded_denied_body: "You denied the request from {name} ({email}). They will get an email saying that they could not be given access."
        / "Du avslog ansökan från {name} ({email}). Personen får ett mejl om att åtkomst inte kunde ges.",
    already_heading: "This request has already been decided" / "Ansökan är redan avgjord",
    already_approved: "This request was already approved by {by} on {at}."
        / "Ansökan godkändes redan av {by} den {at}.",
    already_denied: "This request was already denied by {by} on {at}."
        / "Ansökan avslogs redan av {by} den {at}.",
    nothing_more: "You don't need to do anything more." / "Du behöver inte göra något mer.",
    own_heading: "You can't decide on your own request" / "Du kan inte besluta om din egen ansökan",
    own_body: "Another approver has to decide on it." / "En annan godkännare måste fatta beslutet.",
    sign_in_heading: "Sign in as the approver" / "Logga in som godkännare",
    sign_in_body: "This link was sent to a particular approver, and only that person can use it. Sign in with that account to continue. If you are signed in with another account, sign out first."
        / "Länken skickades till en viss godkännare och kan bara användas av den personen. Logga in med det kontot för att fortsätta. Om du är inloggad med ett annat konto, logga ut först.",
    sign_in_as_approver: "Sign in" / "Logga in",
    sign_out_first: "Sign out of another account first" / "Logga först ut från ett annat konto",

    // Mails.
    greeting: "Hi {name}," / "Hej {name}!",
    greeting_no_name: "Hi," / "Hej!",
    mail_footer: "This message was sent by {org}'s partner access portal. If you did not ask for it, you can ignore it."
        / "Det här meddelandet skickades från partnerportalen hos {org}. Om du inte har bett om det kan du bortse från det.",
    mail_link_fallback: "If the button does not work, copy this address into your browser:"
        / "Om knappen inte fungerar, kopiera den här adressen till webbläsaren:",
    verify_subject: "Confirm your email address for {org}" / "Bekräfta din e-postadress för {org}",
    verify_body: "Someone, hopefully you, has asked for guest access to {org} with this email address. Confirm that the address is yours to continue."
        / "Någon, förhoppningsvis du, har ansökt om gäståtkomst till {org} med den här e-postadressen. Bekräfta att adressen är din för att gå vidare.",
    verify_valid: "The link is valid for {hours} and can be used once. If you did not ask for access, ignore this email and nothing will happen."
        / "Länken gäller i {hours} och kan användas en gång. Om du inte har ansökt om åtkomst kan du bortse från mejlet, så händer ingenting.",
    invite_subject: "Your access to {org} is ready" / "Din åtkomst till {org} är klar",
    invite_body: "Your request has been approved and your access to {org} is ready."
        / "Din ansökan har godkänts och din åtkomst till {org} är klar.",
    invite_how: "The link takes you to a Microsoft sign-in page. Sign in with your work account, or with a one-time code that Microsoft sends to this address, and accept the invitation from {org}."
        / "Länken leder till en inloggningssida från Microsoft. Logga in med ditt jobbkonto, eller med en engångskod som Microsoft skickar till den här adressen, och acceptera inbjudan från {org}.",
    denied_subject: "Your request for access to {org}" / "Din ansökan om åtkomst till {org}",
    denied_heading: "We could not give you access" / "Vi kunde inte ge dig åtkomst",
    denied_body: "Your request for guest access to {org} has been reviewed, and we could not give you access."
        / "Din ansökan om gäståtkomst till {org} har granskats, och vi kunde tyvärr inte ge dig åtkomst.",
    denied_reason: "The reason given:" / "Angivet skäl:",
    expired_subject: "Your request for access to {org} has expired"
        / "Din ansökan om åtkomst till {org} har gått ut",
    expired_body: "Your request for guest access to {org} was not decided in time, so it has been closed."
        / "Din ansökan om gäståtkomst till {org} avgjordes inte i tid och har därför avslutats.",
    expired_next: "If you still need access, you can send a new request or contact your contact person at {org}."
        / "Om du fortfarande behöver åtkomst kan du skicka en ny ansökan eller kontakta din kontaktperson på {org}.",
    approver_subject_request: "New request for guest access to {org}"
        / "Ny ansökan om gäståtkomst till {org}",
    approver_subject_reminder: "Reminder: a request for guest access to {org} is waiting for you"
        / "Påminnelse: en ansökan om gäståtkomst till {org} väntar på dig",
    approver_subject_escalation: "A request for guest access to {org} needs a decision"
        / "En ansökan om gäståtkomst till {org} behöver ett beslut",
    approver_body_request: "A partner has asked for guest access to {org} and has confirmed their email address. You are named as an approver for requests like this."
        / "En partner har ansökt om gäståtkomst till {org} och har bekräftat sin e-postadress. Du är utsedd att besluta om sådana ansökningar.",
    approver_body_reminder: "A request for guest access to {org} is still waiting for your decision."
        / "En ansökan om gäståtkomst till {org} väntar fortfarande på ditt beslut.",
    approver_body_escalation: "A request for guest access to {org} was not decided in time and has been passed on to you."
        / "En ansökan om gäståtkomst till {org} avgjordes inte i tid och har lämnats över till dig.",
    approver_action: "Review the request" / "Granska ansökan",
    approver_note: "The link opens a page where you approve or deny the request; opening it decides nothing. Please don't forward this email: the link is meant for you."
        / "Länken öppnar en sida där du godkänner eller avslår ansökan; att öppna den avgör ingenting. Vidarebefordra inte mejlet – länken är avsedd för dig.",
    redeem_subject: "Reminder: accept your invitation to {org}"
        / "Påminnelse: acceptera din inbjudan till {org}",
    redeem_body: "You have an invitation to {org} that you have not accepted yet. Accept it before {date}, otherwise it will be removed."
        / "Du har en inbjudan till {org} som du inte har accepterat ännu. Acceptera den före {date}, annars tas den bort.",
    redeem_ignore: "If you no longer need access, you can ignore this email."
        / "Om du inte längre behöver åtkomst kan du bortse från mejlet.",
    removal_subject: "Your guest access to {org} will be removed"
        / "Din gäståtkomst till {org} kommer att tas bort",
    removal_period_over: "The period your guest access to {org} was given for has ended."
        / "Perioden som din gäståtkomst till {org} gällde för har tagit slut.",
    removal_inactive: "Your guest account at {org} has not been used for a long time."
        / "Ditt gästkonto hos {org} har inte använts på länge.",
    removal_when: "Your access will be removed on {date}." / "Din åtkomst tas bort den {date}.",
    removal_contact: "If you still need access, contact your contact person at {org}."
        / "Om du fortfarande behöver åtkomst, kontakta din kontaktperson på {org}.",
    removal_review: "Your guest access to {org} has been reviewed, and it does not continue."
        / "Din gäståtkomst till {org} har granskats, och den fortsätter inte.",
    removal_unredeemed: "Your invitation to {org} has not been accepted."
        / "Din inbjudan till {org} har inte accepterats.",

    // Sponsors: access reviews, and notice before a guest they sponsor is disabled.
    review_heading: "Review a guest's access" / "Granska en gästs åtkomst",
    review_intro: "{name} from {organisation} has guest access to {org}, and you are one of their sponsors. Do they still need it?"
        / "{name} från {organisation} har gäståtkomst till {org}, och du är en av personens sponsorer. Behövs åtkomsten fortfarande?",
    review_intro_no_organisation: "{name} has guest access to {org}, and you are one of their sponsors. Do they still need it?"
        / "{name} har gäståtkomst till {org}, och du är en av personens sponsorer. Behövs åtkomsten fortfarande?",
    review_default_end: "If no sponsor answers by {date}, the access ends."
        / "Om ingen sponsor svarar senast {date} upphör åtkomsten.",
    review_default_keep: "If no sponsor answers by {date}, the access goes on for another {days} days."
        / "Om ingen sponsor svarar senast {date} fortsätter åtkomsten i {days} dagar till.",
    keep_heading: "Keep the access" / "Behåll åtkomsten",
    keep_outcome: "Nothing changes for the guest; you are asked again in {days} days."
        / "Inget ändras för gästen; du tillfrågas igen om {days} dagar.",
    keep_button: "Keep for another {days} days" / "Behåll i {days} dagar till",
    end_heading: "End the access" / "Avsluta åtkomsten",
    end_outcome: "The guest is told, and the account is disabled within a few hours."
        / "Gästen får besked, och kontot inaktiveras inom några timmar.",
    end_button: "End access now" / "Avsluta åtkomsten nu",
    fact_guest_since: "Guest since" / "Gäst sedan",
    fact_access_ends: "Access ends" / "Åtkomsten upphör",
    fact_answer_by: "Answer by" / "Svara senast",
    reviewed_kept_heading: "Access kept" / "Åtkomsten behålls",
    reviewed_kept_body: "You kept the access of {name} ({email}) until {date}."
        / "Du behöll åtkomsten för {name} ({email}) till {date}.",
    reviewed_ended_heading: "Access ended" / "Åtkomsten avslutas",
    reviewed_ended_body: "You ended the access of {name} ({email}). They are told, and the account is disabled within a few hours."
        / "Du avslutade åtkomsten för {name} ({email}). Personen får besked, och kontot inaktiveras inom några timmar.",
    already_reviewed_heading: "This review has already been answered" / "Granskningen är redan besvarad",
    already_kept: "{by} kept the access on {at}." / "{by} behöll åtkomsten den {at}.",
    already_ended: "{by} ended the access on {at}." / "{by} avslutade åtkomsten den {at}.",
    already_kept_default: "Nobody answered in time, so the access was kept on {at}, as the policy says."
        / "Ingen svarade i tid, så åtkomsten behölls den {at}, som regeln säger.",
    already_ended_default: "Nobody answered in time, so the access ended on {at}, as the policy says."
        / "Ingen svarade i tid, så åtkomsten upphörde den {at}, som regeln säger.",
    review_subject: "Does a guest still need access to {org}?"
        / "Behöver en gäst fortfarande åtkomst till {org}?",
    review_reminder_subject: "Reminder: a guest's access to {org} is waiting for your review"
        / "Påminnelse: en gästs åtkomst till {org} väntar på din granskning",
    review_reminder_intro: "This review is still waiting for an answer." / "Granskningen väntar fortfarande på ett svar.",
    review_action: "Review the access" / "Granska åtkomsten",
    review_mail_note: "The link opens a page where you keep the access or end it; opening it decides nothing. Please don't forward this email: the link is meant for you."
        / "Länken öppnar en sida där du behåller eller avslutar åtkomsten; att öppna den avgör ingenting. Vidarebefordra inte mejlet – länken är avsedd för dig.",
    review_default_subject: "A review of a guest's access to {org} was not answered"
        / "En granskning av en gästs åtkomst till {org} besvarades inte",
    review_defaulted_keep: "Nobody answered the review of the access of {name} ({email}) by {date}, so, as the policy says, the access goes on for another {days} days."
        / "Ingen besvarade granskningen av åtkomsten för {name} ({email}) senast {date}, så enligt regeln fortsätter åtkomsten i {days} dagar till.",
    review_defaulted_end: "Nobody answered the review of the access of {name} ({email}) by {date}, so, as the policy says, the access ends: they are told, and the account is disabled."
        / "Ingen besvarade granskningen av åtkomsten för {name} ({email}) senast {date}, så enligt regeln upphör åtkomsten: personen får besked, och kontot inaktiveras.",
    sponsor_notice_subject: "A guest you sponsor is about to lose access to {org}"
        / "En gäst du sponsrar håller på att förlora åtkomsten till {org}",
    sponsor_notice_body: "The guest access of {name} ({email}) will be removed on {date}."
        / "Gäståtkomsten för {name} ({email}) tas bort den {date}.",
    sponsor_notice_unredeemed: "They have not accepted their invitation." / "Personen har inte accepterat sin inbjudan.",
    sponsor_notice_period: "The period the access was given for has ended."
        / "Perioden som åtkomsten gavs för har tagit slut.",
    sponsor_notice_inactive: "The account has not been used for a long time." / "Kontot har inte använts på länge.",
    sponsor_notice_review: "Its review ended the access." / "Granskningen avslutade åtkomsten.",
    sponsor_notice_contact: "If the access is still needed, contact the people who run partner access at {org}."
        / "Om åtkomsten fortfarande behövs, kontakta dem som sköter partneråtkomsten på {org}.",
    // Partners who sign in with their work account.
    sign_in_button: "Continue with your work account" / "Fortsätt med ditt jobbkonto",
    sign_in_or: "Or sign in with your organisation's Microsoft work account instead of confirming a link by mail."
        / "Eller logga in med din organisations Microsoft-jobbkonto i stället för att bekräfta en länk via e-post.",
    sign_in_needed_heading: "Sign in with your work account" / "Logga in med ditt jobbkonto",
    sign_in_needed_body: "For your organisation, {org} asks you to sign in with your work account instead of confirming a link by mail. Fill in the form again and choose \"Continue with your work account\"."
        / "För din organisation ber {org} dig logga in med ditt jobbkonto i stället för att bekräfta en länk via e-post. Fyll i formuläret igen och välj \"Fortsätt med ditt jobbkonto\".",
    sign_in_mail_subject: "Sign in to continue your request to {org}" / "Logga in för att fortsätta din ansökan till {org}",
    sign_in_mail_body: "Someone, probably you, asked for access to {org} with this address. For your organisation, {org} asks you to sign in with your work account: open the form and choose \"Continue with your work account\". If it wasn't you, ignore this mail."
        / "Någon, troligen du, ansökte om åtkomst till {org} med den här adressen. För din organisation ber {org} dig logga in med ditt jobbkonto: öppna formuläret och välj \"Fortsätt med ditt jobbkonto\". Om det inte var du kan du bortse från det här meddelandet.",
    sign_in_mail_button: "Open the form" / "Öppna formuläret",
    sign_in_cancelled_heading: "Sign-in cancelled" / "Inloggningen avbröts",
    sign_in_cancelled_body: "You did not finish signing in, so nothing was sent or recorded." / "Du slutförde inte inloggningen, så inget skickades eller sparades.",
    sign_in_expired_heading: "Start again" / "Börja om",
    sign_in_expired_body: "This sign-in has already been used, took too long, or was started in another browser. Nothing was recorded; fill in the form again."
        / "Den här inloggningen har redan använts, tog för lång tid eller påbörjades i en annan webbläsare. Inget sparades; fyll i formuläret igen.",
    sign_in_failed_heading: "Your sign-in could not be verified" / "Din inloggning kunde inte verifieras",
    sign_in_failed_body: "{org} could not verify the answer from your organisation's sign-in, so nothing was recorded. Try again, or confirm your address by mail instead."
        / "{org} kunde inte verifiera svaret från din organisations inloggning, så inget sparades. Försök igen, eller bekräfta din adress via e-post i stället.",
    sign_in_no_address_heading: "Your account has no verified address" / "Ditt konto har ingen verifierad adress",
    sign_in_no_address_body: "Your organisation did not confirm an email address at one of its own domains for the account you signed in with, so it cannot vouch for you. Nothing was recorded. Confirm your address by mail instead, or ask your IT department."
        / "Din organisation bekräftade ingen e-postadress på någon av sina egna domäner för kontot du loggade in med, så den kan inte gå i god för dig. Inget sparades. Bekräfta din adress via e-post i stället, eller fråga din IT-avdelning.",
    sign_in_wrong_address_heading: "That is another address" / "Det är en annan adress",
    sign_in_wrong_address_body: "You signed in as {signed_in}, but the form asked for access for {typed}. Nothing was recorded. Fill in the form with the address of the account you sign in with."
        / "Du loggade in som {signed_in}, men formuläret gällde åtkomst för {typed}. Inget sparades. Fyll i formuläret med adressen till kontot du loggar in med.",
    sign_in_mfa_heading: "Sign in with multi-factor authentication" / "Logga in med tvåstegsverifiering",
    sign_in_mfa_body: "{org} asks people from your organisation to sign in with multi-factor authentication (a second step such as an authenticator app), and your sign-in did not show one. Nothing was recorded. Sign in again with a second step, or ask your IT department to require it."
        / "{org} kräver att personer från din organisation loggar in med tvåstegsverifiering (ett andra steg, till exempel en autentiseringsapp), och din inloggning visade inget sådant. Inget sparades. Logga in igen med ett andra steg, eller be din IT-avdelning att kräva det.",
}

/// The sentences in `lang`.
pub(crate) fn text(lang: Language) -> &'static Text {
    match lang {
        Language::En => &EN,
        Language::Sv => &SV,
    }
}

/// The holes a template may have. A hole not listed here is a typo; tests check every template.
#[cfg(test)]
pub(crate) const HOLES: &[&str] = &[
    "org",
    "title",
    "max",
    "field",
    "hours",
    "minutes",
    "name",
    "email",
    "stage",
    "stages",
    "by",
    "at",
    "date",
    "signed_in",
    "typed",
    "organisation",
    "days",
];

/// `template` with each `{hole}` replaced by its value, in one pass: a value that itself
/// contains `{org}` is not filled again. A hole with no value is left as written.
pub(crate) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let hole = after
            .find('}')
            .map(|close| (&after[..close], &after[close + 1..]));
        match hole.and_then(|(name, tail)| {
            values
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value, tail))
        }) {
            Some((value, tail)) => {
                out.push_str(value);
                rest = tail;
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `template` filled with `values` and, for `{org}`, the organisation's name.
pub(crate) fn fill_org(template: &str, org: &str, values: &[(&str, &str)]) -> String {
    let mut all = Vec::with_capacity(values.len() + 1);
    all.extend_from_slice(values);
    all.push(("org", org));
    fill(template, &all)
}

/// The holes in `template`, in order.
#[cfg(test)]
pub(crate) fn holes(template: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                found.push(&after[..close]);
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    found
}

/// A whole number as people write it: `1,000` in English, `1 000` (no-break space) in Swedish.
pub(crate) fn number(lang: Language, n: u64) -> String {
    let digits = n.to_string();
    let separator = match lang {
        Language::En => ",",
        Language::Sv => "\u{a0}",
    };
    // Numbers below 10 000 are written without a separator in Swedish.
    if lang == Language::Sv && n < 10_000 {
        return digits;
    }
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(separator);
        }
        out.push(digit);
    }
    out
}

/// `1 hour`, `24 hours`, `1 timme`, `24 timmar`.
pub(crate) fn hours(lang: Language, n: u64) -> String {
    let t = text(lang);
    let unit = if n == 1 { t.hour } else { t.hours };
    format!("{} {unit}", number(lang, n))
}

/// `1 minute`, `15 minutes`, `1 minut`, `15 minuter`.
pub(crate) fn minutes(lang: Language, n: u64) -> String {
    let t = text(lang);
    let unit = if n == 1 { t.minute } else { t.minutes };
    format!("{} {unit}", number(lang, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_same_holes_and_only_known_ones() {
        for (name, en, sv) in ALL {
            let mut en_holes = holes(en);
            let mut sv_holes = holes(sv);
            en_holes.sort_unstable();
            sv_holes.sort_unstable();
            assert_eq!(
                en_holes, sv_holes,
                "{name}: the languages use different holes"
            );
            for hole in en_holes {
                assert!(HOLES.contains(&hole), "{name}: unknown hole {{{hole}}}");
            }
        }
    }

    #[test]
    fn templates_are_plain_single_line_text_and_translated() {
        for (name, en, sv) in ALL {
            for template in [en, sv] {
                assert!(!template.is_empty(), "{name} is empty");
                assert!(
                    !template.contains(['<', '>', '&', '\n', '\r']),
                    "{name} must be plain single-line text: {template}"
                );
            }
            assert_ne!(en, sv, "{name} is not translated");
        }
    }

    #[test]
    fn fill_replaces_holes_once_and_leaves_unknown_ones() {
        assert_eq!(
            fill(
                "Hi {name}, welcome to {org}.",
                &[("name", "{org}"), ("org", "Contoso")]
            ),
            "Hi {org}, welcome to Contoso."
        );
        assert_eq!(fill("{unknown} {", &[("org", "x")]), "{unknown} {");
        assert_eq!(fill("no holes", &[]), "no holes");
        assert_eq!(fill("{org}{org}", &[("org", "å")]), "åå");
    }

    #[test]
    fn numbers_and_units_read_naturally() {
        assert_eq!(number(Language::En, 1000), "1,000");
        assert_eq!(number(Language::En, 999), "999");
        assert_eq!(number(Language::En, 1_234_567), "1,234,567");
        assert_eq!(number(Language::Sv, 1000), "1000");
        assert_eq!(number(Language::Sv, 12_345), "12\u{a0}345");
        assert_eq!(hours(Language::En, 1), "1 hour");
        assert_eq!(hours(Language::En, 24), "24 hours");
        assert_eq!(hours(Language::Sv, 1), "1 timme");
        assert_eq!(hours(Language::Sv, 48), "48 timmar");
        assert_eq!(minutes(Language::En, 1), "1 minute");
        assert_eq!(minutes(Language::Sv, 15), "15 minuter");
    }
}
