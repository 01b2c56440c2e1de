//! The portal's mails, each as a subject, a text part and an HTML part.
//!
//! Each mail is a pair of templates under `templates/mails/`, `NAME.txt` and `NAME.html`,
//! which extend `templates/mail.txt` and `templates/mail.html` (greeting, heading, footer) and
//! place the same sentences in the same order: the text part with every value on one line and
//! every link alone on its own line, the HTML part escaped, inline-styled and without images,
//! for mail clients. A struct here holds what both show: the [`Letter`] (the frame), through
//! which the templates also read `t` (the sentences in the mail's language), and the mail's
//! values as typed. Sentences with holes are filled here. The subject is filled with the
//! organisation's name only.

use std::ops::Deref;

use askama::Template;

use super::layout::{accent, text_on};
use super::text::{fill, fill_org, hours, text, Text};
use super::{
    one_line, render, web_link, ApproverMailKind, Brand, GuestSummary, Mail, RemovalReason,
    RequestSummary, ReviewAsk,
};
use crate::core::policy::Language;

/// Declares a mail: the struct of what it shows (the letter, and through it the sentences, and
/// the mail's values), one template struct per part that reads it, and how it becomes a
/// [`Mail`].
macro_rules! mails {
    ($(
        $(#[$doc:meta])*
        $name:ident($text:literal, $html:literal) { $($field:ident: $type:ty),* $(,)? }
    )*) => {$(
        $(#[$doc])*
        struct $name<'a> {
            letter: Letter<'a>,
            $($field: $type,)*
        }

        /// The templates read the letter's fields as the mail's own: `t`, the sentences.
        impl<'a> Deref for $name<'a> {
            type Target = Letter<'a>;
            fn deref(&self) -> &Letter<'a> {
                &self.letter
            }
        }

        impl $name<'_> {
            fn mail(&self) -> Mail {
                #[derive(Template)]
                #[template(path = $text)]
                struct TextPart<'m, 'a>(&'m $name<'a>);

                #[derive(Template)]
                #[template(path = $html)]
                struct HtmlPart<'m, 'a>(&'m $name<'a>);

                impl<'a> Deref for TextPart<'_, 'a> {
                    type Target = $name<'a>;
                    fn deref(&self) -> &Self::Target {
                        self.0
                    }
                }

                impl<'a> Deref for HtmlPart<'_, 'a> {
                    type Target = $name<'a>;
                    fn deref(&self) -> &Self::Target {
                        self.0
                    }
                }

                Mail {
                    subject: self.letter.subject.clone(),
                    text: render(&TextPart(self)),
                    html: render(&HtmlPart(self)),
                }
            }
        }
    )*};
}

mails! {
    Verification("mails/verification.txt", "mails/verification.html") {
        intro: String,
        link: Option<&'a str>,
        valid: String,
    }
    Invitation("mails/invitation.txt", "mails/invitation.html") {
        intro: String,
        link: Option<&'a str>,
        how: String,
    }
    SignInNeeded("mails/sign_in_needed.txt", "mails/sign_in_needed.html") {
        intro: String,
        link: Option<&'a str>,
    }
    Denied("mails/denied.txt", "mails/denied.html") {
        intro: String,
        reason: Option<&'a str>,
        contact: String,
    }
    Expired("mails/expired.txt", "mails/expired.html") { intro: String, next: String }
    ApproverRequest("mails/approver.txt", "mails/approver.html") {
        intro: String,
        steps: Vec<String>,
        facts: Vec<(&'static str, String)>,
        link: Option<&'a str>,
    }
    RedeemReminder("mails/redeem_reminder.txt", "mails/redeem_reminder.html") {
        intro: String,
        link: Option<&'a str>,
        how: String,
    }
    RemovalWarning("mails/removal_warning.txt", "mails/removal_warning.html") {
        why: String,
        when: String,
        contact: String,
    }
    ReviewRequest("mails/review.txt", "mails/review.html") {
        reminder: Option<&'static str>,
        intro: String,
        facts: Vec<(&'static str, String)>,
        without_answer: String,
        link: Option<&'a str>,
    }
    ReviewDefault("mails/review_default.txt", "mails/review_default.html") { outcome: String }
    SponsorNotice("mails/sponsor_notice.txt", "mails/sponsor_notice.html") {
        when: String,
        why: String,
        contact: String,
    }
}

/// The address-confirmation link, valid for `valid_hours`.
pub fn verification_mail(
    brand: &Brand,
    lang: Language,
    first_name: &str,
    link: &str,
    valid_hours: u32,
) -> Mail {
    let t = text(lang);
    let letter = Letter::new(brand, lang, t.verify_subject, t.confirm_heading, first_name);
    let valid = hours(lang, u64::from(valid_hours));
    Verification {
        intro: letter.say(t.verify_body, &[]),
        link: web_link(link),
        valid: letter.say(t.verify_valid, &[("hours", &valid)]),
        letter,
    }
    .mail()
}

/// The guest invitation: the Microsoft redemption link.
pub fn invitation_mail(brand: &Brand, lang: Language, first_name: &str, redeem_url: &str) -> Mail {
    let t = text(lang);
    let letter = Letter::new(brand, lang, t.invite_subject, t.ready_heading, first_name);
    Invitation {
        intro: letter.say(t.invite_body, &[]),
        link: web_link(redeem_url),
        how: letter.say(t.invite_how, &[]),
        letter,
    }
    .mail()
}

/// The request was denied; the approver's reason only when they chose to share it.
pub fn denied_mail(brand: &Brand, lang: Language, first_name: &str, reason: Option<&str>) -> Mail {
    let t = text(lang);
    let letter = Letter::new(brand, lang, t.denied_subject, t.denied_heading, first_name);
    Denied {
        intro: letter.say(t.denied_body, &[]),
        reason: reason.map(str::trim).filter(|reason| !reason.is_empty()),
        contact: letter.say(t.contact_person, &[]),
        letter,
    }
    .mail()
}

/// A mailed link is no proof for the address's policy: the partner is asked to sign in with
/// their work account on the form.
pub fn sign_in_needed_mail(
    brand: &Brand,
    lang: Language,
    first_name: &str,
    form_url: &str,
) -> Mail {
    let t = text(lang);
    let letter = Letter::new(
        brand,
        lang,
        t.sign_in_mail_subject,
        t.sign_in_needed_heading,
        first_name,
    );
    SignInNeeded {
        intro: letter.say(t.sign_in_mail_body, &[]),
        link: web_link(form_url),
        letter,
    }
    .mail()
}

/// No approver decided within the approval window.
pub fn expired_mail(brand: &Brand, lang: Language, first_name: &str) -> Mail {
    let t = text(lang);
    let letter = Letter::new(
        brand,
        lang,
        t.expired_subject,
        t.expired_subject,
        first_name,
    );
    Expired {
        intro: letter.say(t.expired_body, &[]),
        next: letter.say(t.expired_next, &[]),
        letter,
    }
    .mail()
}

/// To an approver: the request and the link to the decision page. The requester's details are
/// in the body only, never in the subject.
pub fn approver_mail(
    brand: &Brand,
    lang: Language,
    summary: &RequestSummary,
    link: &str,
    kind: ApproverMailKind,
) -> Mail {
    let t = text(lang);
    let (subject, intro) = match kind {
        ApproverMailKind::Request => (t.approver_subject_request, t.approver_body_request),
        ApproverMailKind::Reminder => (t.approver_subject_reminder, t.approver_body_reminder),
        ApproverMailKind::Escalation => (t.approver_subject_escalation, t.approver_body_escalation),
    };
    let letter = Letter::new(brand, lang, subject, t.decide_heading, "");
    ApproverRequest {
        intro: letter.say(intro, &[]),
        steps: summary.steps(t),
        facts: summary.facts(t),
        link: web_link(link),
        letter,
    }
    .mail()
}

/// The guest has not redeemed the invitation; it goes on `remove_on` (formatted date).
pub fn redeem_reminder_mail(
    brand: &Brand,
    lang: Language,
    first_name: &str,
    redeem_url: &str,
    remove_on: &str,
) -> Mail {
    let t = text(lang);
    let letter = Letter::new(brand, lang, t.redeem_subject, t.redeem_subject, first_name);
    RedeemReminder {
        intro: letter.say(t.redeem_body, &[("date", remove_on)]),
        link: web_link(redeem_url),
        how: letter.say(t.invite_how, &[]),
        letter,
    }
    .mail()
}

/// The cleanup will remove the guest on `remove_on` (formatted date), and why.
pub fn removal_warning_mail(
    brand: &Brand,
    lang: Language,
    first_name: &str,
    remove_on: &str,
    reason: RemovalReason,
) -> Mail {
    let t = text(lang);
    let why = match reason {
        RemovalReason::AccessPeriodOver => t.removal_period_over,
        RemovalReason::Inactive => t.removal_inactive,
        RemovalReason::Review => t.removal_review,
        RemovalReason::Unredeemed => t.removal_unredeemed,
    };
    let letter = Letter::new(
        brand,
        lang,
        t.removal_subject,
        t.removal_subject,
        first_name,
    );
    RemovalWarning {
        why: letter.say(why, &[]),
        when: letter.say(t.removal_when, &[("date", remove_on)]),
        contact: letter.say(t.removal_contact, &[]),
        letter,
    }
    .mail()
}

/// To a sponsor: does the guest still need access? The link opens the review page (keep, or
/// end now); `reminder` when this is the review's reminder. The guest's details are in the
/// body only, never in the subject.
pub fn review_mail(
    brand: &Brand,
    lang: Language,
    guest: &GuestSummary,
    ask: &ReviewAsk,
    link: &str,
    reminder: bool,
) -> Mail {
    let t = text(lang);
    let subject = if reminder {
        t.review_reminder_subject
    } else {
        t.review_subject
    };
    let letter = Letter::new(brand, lang, subject, t.review_heading, "");
    let mut facts = guest.facts(t);
    facts.push((t.fact_answer_by, ask.deadline.to_string()));
    ReviewRequest {
        reminder: reminder.then_some(t.review_reminder_intro),
        intro: guest.introduced(t, letter.org),
        facts,
        without_answer: ask.without_answer(t),
        link: web_link(link),
        letter,
    }
    .mail()
}

/// To the sponsors: nobody answered the review by `deadline` (formatted), and what the
/// policy's default did (`kept` for another `days` days, or ended).
pub fn review_default_mail(
    brand: &Brand,
    lang: Language,
    guest: &GuestSummary,
    kept: bool,
    deadline: &str,
    days: u32,
) -> Mail {
    let t = text(lang);
    let letter = Letter::new(brand, lang, t.review_default_subject, t.review_heading, "");
    let name = guest.full_name();
    let days = days.to_string();
    let values = [
        ("name", name.as_str()),
        ("email", guest.email),
        ("date", deadline),
        ("days", days.as_str()),
    ];
    ReviewDefault {
        outcome: letter.say(
            if kept {
                t.review_defaulted_keep
            } else {
                t.review_defaulted_end
            },
            &values,
        ),
        letter,
    }
    .mail()
}

/// To the sponsors: a guest they sponsor is disabled on `remove_on` (formatted date), and why.
pub fn sponsor_notice_mail(
    brand: &Brand,
    lang: Language,
    guest: &GuestSummary,
    remove_on: &str,
    reason: RemovalReason,
) -> Mail {
    let t = text(lang);
    let letter = Letter::new(
        brand,
        lang,
        t.sponsor_notice_subject,
        t.sponsor_notice_subject,
        "",
    );
    let name = guest.full_name();
    let why = match reason {
        RemovalReason::AccessPeriodOver => t.sponsor_notice_period,
        RemovalReason::Inactive => t.sponsor_notice_inactive,
        RemovalReason::Review => t.sponsor_notice_review,
        RemovalReason::Unredeemed => t.sponsor_notice_unredeemed,
    };
    SponsorNotice {
        when: letter.say(
            t.sponsor_notice_body,
            &[("name", &name), ("email", guest.email), ("date", remove_on)],
        ),
        why: letter.say(why, &[]),
        contact: letter.say(t.sponsor_notice_contact, &[]),
        letter,
    }
    .mail()
}

fn org<'a>(brand: &Brand<'a>) -> &'a str {
    &brand.branding.org_name
}

/// What every mail shows around its own sentences (`templates/mail.txt`, `templates/mail.html`).
struct Letter<'a> {
    t: &'static Text,
    lang: &'static str,
    /// One line, with the organisation's name and nothing of the requester's.
    subject: String,
    org: &'a str,
    heading: String,
    /// "Hi Åsa," or, without a name, "Hi,".
    greeting: String,
    /// The operator's footer (its line breaks kept), or a neutral line saying who sent the mail.
    footer: String,
    accent: &'a str,
    on_accent: &'static str,
}

impl<'a> Letter<'a> {
    /// `sentence` filled with `values` and, for `{org}`, the organisation's name.
    fn say(&self, sentence: &str, values: &[(&str, &str)]) -> String {
        fill_org(sentence, self.org, values)
    }

    /// `subject` and `heading` are sentences with `{org}` only; a blank `name` greets no one by
    /// name.
    fn new(
        brand: &Brand<'a>,
        lang: Language,
        subject: &str,
        heading: &str,
        name: &str,
    ) -> Letter<'a> {
        let t = text(lang);
        let org = org(brand);
        let accent = accent(brand);
        let name = name.trim();
        Letter {
            t,
            lang: lang.as_str(),
            subject: one_line(&fill(subject, &[("org", &one_line(org))]))
                .trim()
                .to_string(),
            org,
            heading: fill(heading, &[("org", org)]),
            greeting: if name.is_empty() {
                t.greeting_no_name.to_string()
            } else {
                fill(t.greeting, &[("name", name)])
            },
            footer: footer(t, brand),
            accent,
            on_accent: text_on(accent),
        }
    }
}

/// The operator's footer (its line breaks kept, CR/LF pairs as LF), or a neutral line saying
/// who sent the mail.
fn footer(t: &Text, brand: &Brand) -> String {
    match brand
        .branding
        .mail_footer
        .as_deref()
        .filter(|footer| !footer.trim().is_empty())
    {
        Some(footer) => footer.replace("\r\n", "\n").trim().to_string(),
        None => fill(
            t.mail_footer,
            &[("org", &one_line(&brand.branding.org_name))],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Branding;
    use crate::views::check::{
        ask, assert_balanced, assert_no_raw_hostile, assert_same_structure, branding, escape,
        guest, hostile, inner, request_from_asa, summary, tags, with_logo as brand, FORGED_LINK,
        LANGS,
    };
    use crate::views::text::HOLES;

    const VERIFY_LINK: &str = "https://portal.example/api/signup/verify?token=v.1-2_3";
    const REDEEM_LINK: &str = "https://invitations.example/redeem/?tenant=t&ticket=x";
    const FORM_LINK: &str = "https://portal.example/api/signup?lang=en";
    const DECIDE_LINK: &str = "https://portal.example/api/approve?token=d.4-5_6";
    const REVIEW_LINK: &str = "https://portal.example/api/approve/review?token=r.7-8_9";

    /// Every mail, in every variant, with `v` as every value that is not ours; and the link
    /// each one carries, if any.
    fn all_mails(
        brand: &Brand,
        lang: Language,
        v: &str,
    ) -> Vec<(String, Mail, Option<&'static str>)> {
        let mut mails = vec![
            (
                "verification".to_string(),
                verification_mail(brand, lang, v, VERIFY_LINK, 24),
                Some(VERIFY_LINK),
            ),
            (
                "invitation".to_string(),
                invitation_mail(brand, lang, v, REDEEM_LINK),
                Some(REDEEM_LINK),
            ),
            (
                "denied".to_string(),
                denied_mail(brand, lang, v, None),
                None,
            ),
            (
                "denied with reason".to_string(),
                denied_mail(brand, lang, v, Some(v)),
                None,
            ),
            ("expired".to_string(), expired_mail(brand, lang, v), None),
            (
                "sign in needed".to_string(),
                sign_in_needed_mail(brand, lang, v, FORM_LINK),
                Some(FORM_LINK),
            ),
            (
                "redeem reminder".to_string(),
                redeem_reminder_mail(brand, lang, v, REDEEM_LINK, v),
                Some(REDEEM_LINK),
            ),
        ];
        for reason in [
            RemovalReason::AccessPeriodOver,
            RemovalReason::Inactive,
            RemovalReason::Review,
            RemovalReason::Unredeemed,
        ] {
            mails.push((
                format!("removal {reason:?}"),
                removal_warning_mail(brand, lang, v, v, reason),
                None,
            ));
            mails.push((
                format!("sponsor notice {reason:?}"),
                sponsor_notice_mail(brand, lang, &guest(v), v, reason),
                None,
            ));
        }
        for reminder in [false, true] {
            for keep in [false, true] {
                mails.push((
                    format!("review reminder={reminder} keep={keep}"),
                    review_mail(brand, lang, &guest(v), &ask(v, keep), REVIEW_LINK, reminder),
                    Some(REVIEW_LINK),
                ));
            }
        }
        for kept in [false, true] {
            mails.push((
                format!("review default kept={kept}"),
                review_default_mail(brand, lang, &guest(v), kept, v, 90),
                None,
            ));
        }
        for kind in [
            ApproverMailKind::Request,
            ApproverMailKind::Reminder,
            ApproverMailKind::Escalation,
        ] {
            for (stage, stages) in [(1, 1), (2, 2)] {
                mails.push((
                    format!("approver {kind:?} {stage}/{stages}"),
                    approver_mail(brand, lang, &summary(v, stage, stages), DECIDE_LINK, kind),
                    Some(DECIDE_LINK),
                ));
            }
        }
        mails
    }

    /// The lines of a text part that are a web address on their own.
    fn link_lines(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|line| line.starts_with("https://") || line.starts_with("http://"))
            .collect()
    }

    #[test]
    fn every_mail_in_both_languages_is_complete() {
        let b = branding("Contoso");
        for lang in LANGS {
            for (name, mail, _) in all_mails(&brand(&b), lang, "Åsa") {
                assert!(mail.subject.contains("Contoso"), "{name}: {}", mail.subject);
                assert!(!mail.text.trim().is_empty(), "{name}");
                assert!(mail.text.contains("Contoso"), "{name}");
                assert!(mail.html.starts_with("<!doctype html>\n"), "{name}");
                assert_balanced(&mail.html);
                let html_tag = tags(&mail.html)
                    .into_iter()
                    .find(|t| t.name == "html")
                    .unwrap();
                assert_eq!(html_tag.attr("lang"), Some(lang.as_str()), "{name}");
                assert_eq!(
                    inner(&mail.html, "title"),
                    vec![escape(&mail.subject)],
                    "{name}"
                );
                assert_eq!(inner(&mail.html, "h1").len(), 1, "{name}");
                assert!(
                    !mail.html.contains("<img") && !mail.html.contains("<script"),
                    "{name}"
                );
                assert!(mail.text.ends_with('\n'), "{name}");
            }
        }
    }

    #[test]
    fn links_stand_alone_on_their_own_line_and_are_linked_in_html() {
        let b = branding("Contoso");
        for lang in LANGS {
            for (name, mail, link) in all_mails(&brand(&b), lang, "Åsa") {
                match link {
                    Some(link) => {
                        assert_eq!(link_lines(&mail.text), vec![link], "{name}");
                        let found: Vec<&str> = mail
                            .text
                            .split_whitespace()
                            .filter(|w| w.contains("://"))
                            .collect();
                        assert_eq!(
                            found,
                            vec![link],
                            "{name}: links found by splitting on whitespace"
                        );
                        let hrefs: Vec<String> = tags(&mail.html)
                            .into_iter()
                            .filter_map(|t| t.attr("href").map(str::to_string))
                            .collect();
                        assert!(!hrefs.is_empty(), "{name}");
                        assert!(
                            hrefs.iter().all(|h| *h == escape(link)),
                            "{name}: {hrefs:?}"
                        );
                    }
                    None => {
                        assert!(link_lines(&mail.text).is_empty(), "{name}");
                        assert!(!mail.html.contains("href="), "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn hostile_values_cannot_forge_lines_headers_or_markup() {
        let evil = Branding {
            mail_footer: None,
            ..branding(&format!("Contoso{}", hostile()))
        };
        let good = branding("Contoso");
        for lang in LANGS {
            let hostile_mails = all_mails(&brand(&evil), lang, &hostile());
            let benign_mails = all_mails(&brand(&good), lang, "Åsa O'Neil");
            for ((name, bad, link), (_, fine, _)) in hostile_mails.iter().zip(&benign_mails) {
                // Subject: one line, and nothing of the requester's.
                assert!(
                    !bad.subject.contains(['\r', '\n']),
                    "{name}: {:?}",
                    bad.subject
                );
                assert!(!bad.subject.chars().any(char::is_control), "{name}");
                // Text: no CR at all, no forged header line, no forged link line.
                assert!(!bad.text.contains('\r'), "{name}");
                for line in bad.text.lines() {
                    assert!(!line.starts_with("Bcc:"), "{name}: forged line {line:?}");
                    assert_ne!(line.trim(), FORGED_LINK, "{name}: forged link line");
                }
                assert_eq!(
                    link_lines(&bad.text),
                    link.iter().copied().collect::<Vec<_>>(),
                    "{name}"
                );
                assert_eq!(
                    bad.text.lines().count(),
                    fine.text.lines().count(),
                    "{name}: a value added lines"
                );
                // HTML: escaped, same markup.
                assert_no_raw_hostile(&bad.html);
                assert_same_structure(&fine.html, &bad.html);
            }
        }
    }

    #[test]
    fn every_sentence_in_a_mail_is_filled_in() {
        // A template that placed a sentence with holes as it is (`{{ t.invite_how }}`) would
        // mail "{org}" to the partner.
        let b = branding("Contoso");
        for lang in LANGS {
            for (name, mail, _) in all_mails(&brand(&b), lang, "Åsa") {
                for part in [&mail.subject, &mail.text, &mail.html] {
                    for hole in HOLES {
                        assert!(!part.contains(&format!("{{{hole}}}")), "{name}: {{{hole}}}");
                    }
                }
            }
        }
    }

    #[test]
    fn subjects_never_carry_requester_input() {
        let b = branding("Contoso");
        for lang in LANGS {
            let one = all_mails(&brand(&b), lang, "Åsa");
            let other = all_mails(&brand(&b), lang, "Mallory from Evil Corp");
            for ((name, a, _), (_, b, _)) in one.iter().zip(&other) {
                assert_eq!(a.subject, b.subject, "{name}");
                assert!(!a.subject.contains("Åsa"), "{name}");
            }
        }
        let crlf = branding("Contoso\r\nBcc: x@evil.example");
        let mail = expired_mail(&brand(&crlf), Language::En, "Åsa");
        assert_eq!(
            mail.subject,
            "Your request for access to Contoso  Bcc: x@evil.example has expired"
        );
    }

    #[test]
    fn approver_mails_differ_by_kind_and_show_the_request() {
        let b = branding("Contoso");
        let s = request_from_asa(Some("Project Falcon\nwith Kim"), "2025-05-02 09:14");
        let kinds = [
            ApproverMailKind::Request,
            ApproverMailKind::Reminder,
            ApproverMailKind::Escalation,
        ];
        for lang in LANGS {
            let mails: Vec<Mail> = kinds
                .iter()
                .map(|k| approver_mail(&brand(&b), lang, &s, DECIDE_LINK, *k))
                .collect();
            assert_ne!(mails[0].subject, mails[1].subject);
            assert_ne!(mails[1].subject, mails[2].subject);
            assert_ne!(mails[0].subject, mails[2].subject);
        }
        let mail = approver_mail(
            &brand(&b),
            Language::En,
            &s,
            DECIDE_LINK,
            ApproverMailKind::Request,
        );
        assert_eq!(mail.subject, "New request for guest access to Contoso");
        for line in [
            "Name: Åsa Berg",
            "Email address: asa@fabrikam.example",
            "Company or organisation: Fabrikam",
            "Justification: Project Falcon with Kim",
            "Policy: fabrikam.example",
            "Submitted: 2025-05-02 09:14",
            "Request ID: r-1",
            "Review the request:",
        ] {
            assert!(mail.text.lines().any(|l| l == line), "{line}");
        }
        assert!(
            !mail.text.contains("step"),
            "no steps on one-step approvals"
        );
        assert!(mail.html.contains("<td dir=\"auto\" style=\"padding:4px 0;white-space:pre-line;word-break:break-word\">Project Falcon\nwith Kim</td>"));
        let sv = approver_mail(
            &brand(&b),
            Language::Sv,
            &RequestSummary {
                justification: None,
                stage: 2,
                stages: 2,
                stage_one_approved_by: Some("kim@contoso.example"),
                ..s
            },
            DECIDE_LINK,
            ApproverMailKind::Reminder,
        );
        assert_eq!(
            sv.subject,
            "Påminnelse: en ansökan om gäståtkomst till Contoso väntar på dig"
        );
        assert!(sv.text.lines().any(|l| l == "Motivering: Ingen angiven"));
        assert!(sv.text.lines().any(|l| l == "Det här är steg 2 av 2."));
        assert!(sv
            .text
            .lines()
            .any(|l| l == "Godkänd i steg 1 av kim@contoso.example."));
        assert!(sv.text.lines().any(|l| l == "Granska ansökan:"));
    }

    #[test]
    fn the_reason_for_a_denial_is_shared_only_when_given() {
        let b = branding("Contoso");
        let without = denied_mail(&brand(&b), Language::En, "Åsa", None);
        assert!(!without.text.contains("The reason given:"));
        let blank = denied_mail(&brand(&b), Language::En, "Åsa", Some("  "));
        assert_eq!(blank, without);
        let with = denied_mail(
            &brand(&b),
            Language::Sv,
            "Åsa",
            Some("Inget pågående\r\nsamarbete"),
        );
        assert!(with
            .text
            .contains("Angivet skäl:\n\n  Inget pågående  samarbete\n"));
        assert!(with
            .html
            .contains(">Inget pågående\r\nsamarbete</blockquote>"));
        assert!(with.text.contains("kontakta din kontaktperson på Contoso"));
        assert_eq!(with.subject, "Din ansökan om åtkomst till Contoso");
    }

    #[test]
    fn greetings_use_the_first_name_when_there_is_one() {
        let b = branding("Contoso");
        let named = verification_mail(&brand(&b), Language::Sv, " Åsa ", VERIFY_LINK, 24);
        assert!(named.text.starts_with("Hej Åsa!\n\n"));
        let unnamed = verification_mail(&brand(&b), Language::En, "", VERIFY_LINK, 1);
        assert!(unnamed.text.starts_with("Hi,\n\n"));
        assert!(unnamed
            .text
            .contains("The link is valid for 1 hour and can be used once."));
        assert_eq!(unnamed.subject, "Confirm your email address for Contoso");
        assert_eq!(named.subject, "Bekräfta din e-postadress för Contoso");
    }

    #[test]
    fn the_footer_is_the_operators_or_a_neutral_line() {
        let b = branding("Contoso");
        let neutral = expired_mail(&brand(&b), Language::En, "Åsa");
        assert!(neutral.text.ends_with(
            "-- \nThis message was sent by Contoso's partner access portal. If you did not ask for it, you can ignore it.\n"
        ));
        assert!(neutral
            .html
            .contains("This message was sent by Contoso&#39;s partner access portal."));
        let custom = Branding {
            mail_footer: Some("Contoso AB\r\nBox 1, Stockholm <www.contoso.example>".into()),
            ..branding("Contoso")
        };
        let mail = expired_mail(&brand(&custom), Language::Sv, "Åsa");
        assert!(mail
            .text
            .ends_with("-- \nContoso AB\nBox 1, Stockholm <www.contoso.example>\n"));
        assert!(mail
            .html
            .contains("Contoso AB<br>Box 1, Stockholm &lt;www.contoso.example&gt;</p>"));
        assert!(!mail.text.contains("partnerportalen"));
    }

    #[test]
    fn cleanup_mails_name_the_date_and_the_reason() {
        let b = branding("Contoso");
        let reminder =
            redeem_reminder_mail(&brand(&b), Language::En, "Åsa", REDEEM_LINK, "1 June 2025");
        assert!(reminder
            .text
            .contains("Accept it before 1 June 2025, otherwise it will be removed."));
        assert_eq!(
            reminder.subject,
            "Reminder: accept your invitation to Contoso"
        );
        let period = removal_warning_mail(
            &brand(&b),
            Language::Sv,
            "Åsa",
            "1 juni 2025",
            RemovalReason::AccessPeriodOver,
        );
        let inactive = removal_warning_mail(
            &brand(&b),
            Language::Sv,
            "Åsa",
            "1 juni 2025",
            RemovalReason::Inactive,
        );
        assert!(period
            .text
            .contains("Perioden som din gäståtkomst till Contoso gällde för har tagit slut."));
        assert!(inactive
            .text
            .contains("Ditt gästkonto hos Contoso har inte använts på länge."));
        assert!(inactive
            .text
            .contains("Din åtkomst tas bort den 1 juni 2025."));
        assert_eq!(period.subject, inactive.subject);
    }

    #[test]
    fn links_that_are_not_web_addresses_are_not_sent() {
        let b = branding("Contoso");
        for link in [
            "javascript:alert(1)",
            "https://ok.example/a\r\nhttps://evil.example/",
        ] {
            let mail = invitation_mail(&brand(&b), Language::En, "Åsa", link);
            assert!(
                !mail.text.contains("javascript:") && !mail.text.contains("evil.example"),
                "{link:?}"
            );
            assert!(!mail.html.contains("href="), "{link:?}");
            assert!(link_lines(&mail.text).is_empty());
        }
    }

    #[test]
    fn the_button_colour_follows_the_accent() {
        let mut b = branding("Contoso");
        b.accent_color = "#ffeb3b".into();
        let mail = invitation_mail(&brand(&b), Language::En, "Åsa", REDEEM_LINK);
        assert!(mail
            .html
            .contains("background:#ffeb3b;color:#000000;border:2px solid #1b1b1b"));
        b.accent_color = "#0f6cbd".into();
        let mail = invitation_mail(&brand(&b), Language::En, "Åsa", REDEEM_LINK);
        assert!(mail
            .html
            .contains("background:#0f6cbd;color:#ffffff;border:2px solid #1b1b1b"));
    }
}
