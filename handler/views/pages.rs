//! The portal's pages: the sign-up form and what follows it, the approvers' pages, and the
//! answers to requests that can't go on.
//!
//! Each page is a template under `templates/pages/` that extends `templates/page.html` (the
//! frame), filled from a struct here that holds exactly what it shows: the [`Frame`], through
//! which the template also reads `t` (the sentences in the page's language), and the page's
//! values as typed; the template escapes them. Sentences with holes are filled here, those
//! without are placed by the template itself. Forms post URL-encoded fields and carry the
//! page's language in a hidden `lang` field, so the answer comes back in it.

use std::ops::Deref;

use askama::Template;

use super::layout::Frame;
use super::text::{fill, hours, minutes, number, text};
use super::{
    render, web_link, Brand, Confirming, ErrorKind, FieldErrors, FieldProblem, FormOptions,
    FormValues, GuestSummary, LinkProblem, RequestSummary, ReviewAsk, SignInProblem, JOB_TITLE_MAX,
    JUSTIFICATION_MAX, REASON_MAX,
};
use crate::core::policy::Language;

/// Declares a page: its template struct, with the frame (and through it the sentences) and the
/// page's values.
macro_rules! pages {
    ($(
        $(#[$doc:meta])*
        $name:ident($path:literal) { $($(#[$field_doc:meta])* $field:ident: $type:ty),* $(,)? }
    )*) => {$(
        $(#[$doc])*
        #[derive(Template)]
        #[template(path = $path)]
        struct $name<'a> {
            frame: Frame<'a>,
            $($(#[$field_doc])* $field: $type,)*
        }

        /// The template reads the frame's fields as its own: `t`, the sentences.
        impl<'a> Deref for $name<'a> {
            type Target = Frame<'a>;
            fn deref(&self) -> &Frame<'a> {
                &self.frame
            }
        }
    )*};
}

pages! {
    SignupForm("pages/signup_form.html") {
        /// The problems listed at the top of the form.
        problems: Vec<Problem<'a>>,
        intro: String,
        fields: Vec<Field<'a>>,
        terms: Option<Terms<'a>>,
        /// With partner sign-in on: the words before the second button, which sends the same
        /// fields to the sign-in (`formaction`).
        sign_in: Option<String>,
    }
    CheckInbox("pages/check_inbox.html") { valid: String }
    ConfirmEmail("pages/confirm_email.html") {
        intro: String,
        /// What is being confirmed: the details of the submission the link was sent for.
        details: String,
        facts: Vec<(&'static str, String)>,
        token: &'a str,
    }
    AccessReady("pages/access_ready.html") { intro: String, redeem_url: Option<&'a str> }
    AccessBeingSetUp("pages/access_being_set_up.html") {}
    AwaitingApproval("pages/awaiting_approval.html") { intro: String }
    RequestClosed("pages/request_closed.html") { contact: String }
    LinkProblemPage("pages/link_problem.html") { explanation: &'static str, back_to_form: bool }
    TooManyRequests("pages/too_many_requests.html") { explanation: String }
    Unavailable("pages/unavailable.html") {}
    ErrorPage("pages/error_page.html") { explanation: String }
    DecisionForm("pages/decision_form.html") {
        intro: String,
        /// "Step 2 of 2", and who approved step 1.
        steps: Vec<String>,
        facts: Vec<(&'static str, String)>,
        approve_outcome: &'static str,
        token: &'a str,
        reason: Field<'a>,
    }
    DecisionRecorded("pages/decision_recorded.html") { outcome: String }
    AlreadyDecided("pages/already_decided.html") { outcome: String }
    ReviewForm("pages/review_form.html") {
        intro: String,
        facts: Vec<(&'static str, String)>,
        /// What no answer does, by when.
        without_answer: String,
        keep_outcome: String,
        keep_button: String,
        token: &'a str,
    }
    CannotDecideOwn("pages/cannot_decide_own.html") {}
    SignInRequired("pages/sign_in_required.html") { sign_in: String, sign_out: String }
    SignInPage("pages/sign_in.html") { explanation: String }
}

/// A validation message for `field` (a form field's name) in `lang`.
pub fn field_message(lang: Language, field: &str, problem: &FieldProblem) -> String {
    let t = text(lang);
    let name = match field {
        "email" => t.field_email,
        "first_name" => t.field_first_name,
        "last_name" => t.field_last_name,
        "organisation" => t.field_organisation,
        "justification" => t.field_justification,
        "job_title" => t.field_job_title,
        "reason" => t.field_reason,
        _ => t.field_other,
    };
    match problem {
        FieldProblem::Required => match field {
            "email" => t.required_email.to_string(),
            "first_name" => t.required_first_name.to_string(),
            "last_name" => t.required_last_name.to_string(),
            "organisation" => t.required_organisation.to_string(),
            "accept_terms" => t.terms_not_accepted.to_string(),
            _ => fill(t.required_other, &[("field", name)]),
        },
        FieldProblem::TooLong { max } => {
            let max = number(lang, u64::try_from(*max).unwrap_or(u64::MAX));
            fill(t.too_long, &[("field", name), ("max", &max)])
        }
        FieldProblem::InvalidEmail => t.invalid_email.to_string(),
        FieldProblem::ControlCharacters => fill(t.control_characters, &[("field", name)]),
        FieldProblem::TermsNotAccepted => t.terms_not_accepted.to_string(),
    }
}

/// The sign-up form, empty or as submitted with its errors.
pub fn signup_form(
    brand: &Brand,
    lang: Language,
    values: &FormValues,
    errors: &FieldErrors,
) -> String {
    signup_form_with(brand, lang, values, errors, FormOptions::default())
}

/// The sign-up form; with `options.sign_in`, a second button sends the same fields to the
/// sign-in (`formaction`), so the partner proves who they are with their work account instead
/// of a mailed link; with `options.job_title`, an optional job title field.
pub fn signup_form_with(
    brand: &Brand,
    lang: Language,
    values: &FormValues,
    errors: &FieldErrors,
    options: FormOptions,
) -> String {
    let t = text(lang);
    let heading = fill(t.signup_heading, &[("org", &brand.branding.org_name)]);
    let frame = Frame::new(brand, lang, &heading).with_errors(!errors.is_empty());
    let justification_max = number(lang, JUSTIFICATION_MAX as u64);
    let field = |name, label, control, value| {
        Field::new(name, label, control, value).with_error(errors.get(name))
    };
    let mut fields = vec![
        field("email", t.label_email, Control::Email, &values.email)
            .with_hint(t.hint_email.to_string()),
        field(
            "first_name",
            t.label_first_name,
            Control::Line("given-name"),
            &values.first_name,
        ),
        field(
            "last_name",
            t.label_last_name,
            Control::Line("family-name"),
            &values.last_name,
        ),
        field(
            "organisation",
            t.label_organisation,
            Control::Line("organization"),
            &values.organisation,
        ),
    ];
    if options.job_title {
        fields.push(
            field(
                "job_title",
                t.label_job_title,
                Control::Line("organization-title"),
                &values.job_title,
            )
            .with_max(JOB_TITLE_MAX)
            .optional(),
        );
    }
    fields.push(
        field(
            "justification",
            t.label_justification,
            Control::Area {
                max: JUSTIFICATION_MAX,
                rows: 5,
            },
            &values.justification,
        )
        .with_hint(frame.say(t.hint_justification, &[("max", &justification_max)]))
        .optional(),
    );
    let terms = Terms::configured(brand, values.accept_terms, errors.get("accept_terms"));
    let on_page = |field: &str| {
        fields.iter().any(|f| f.name == field) || (terms.is_some() && field == "accept_terms")
    };
    let problems = errors
        .0
        .iter()
        .map(|(field, message)| Problem {
            field: on_page(field).then_some(*field),
            message,
        })
        .collect();
    render(&SignupForm {
        problems,
        intro: frame.say(t.signup_intro, &[]),
        fields,
        terms,
        sign_in: options.sign_in.then(|| frame.say(t.sign_in_or, &[])),
        frame,
    })
}

/// The answer to every valid submission, whatever happened to it: it reveals nothing about
/// the address or its domain.
pub fn check_inbox(brand: &Brand, lang: Language, valid_hours: u32) -> String {
    let t = text(lang);
    let valid = hours(lang, u64::from(valid_hours));
    render(&CheckInbox {
        valid: fill(t.check_inbox_valid, &[("hours", &valid)]),
        frame: Frame::new(brand, lang, t.check_inbox_heading),
    })
}

/// What the verification link opens: one button that posts the token. Opening the link
/// changes nothing (mail scanners open links too).
pub fn confirm_email(
    brand: &Brand,
    lang: Language,
    token: &str,
    self_path: &str,
    confirming: &Confirming,
) -> String {
    let t = text(lang);
    let frame = Frame::new(brand, lang, t.confirm_heading).reached_at(self_path);
    let name = format!("{} {}", confirming.first_name, confirming.last_name);
    render(&ConfirmEmail {
        intro: frame.say(t.confirm_body, &[]),
        details: frame.say(t.confirm_details, &[]),
        facts: vec![
            (t.fact_name, name.trim().to_string()),
            (t.fact_email, confirming.email.to_string()),
            (t.fact_organisation, confirming.organisation.to_string()),
        ],
        token,
        frame,
    })
}

/// The guest was invited: the invitation link, prominently (it is also mailed).
pub fn access_ready(brand: &Brand, lang: Language, redeem_url: &str) -> String {
    let t = text(lang);
    let frame = Frame::new(brand, lang, t.ready_heading);
    render(&AccessReady {
        intro: frame.say(t.ready_body, &[]),
        redeem_url: web_link(redeem_url),
        frame,
    })
}

/// Approved, but the invitation could not be made yet; the retry will mail it.
pub fn access_being_set_up(brand: &Brand, lang: Language) -> String {
    render(&AccessBeingSetUp {
        frame: Frame::new(brand, lang, text(lang).setup_heading),
    })
}

/// The address is confirmed and the request waits for an approver.
pub fn awaiting_approval(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    let page = |frame, intro| AwaitingApproval { intro, frame };
    one_sentence(
        brand,
        lang,
        (t.awaiting_heading, t.awaiting_body),
        &[],
        page,
    )
}

/// Denied or not admitted; says no more than that.
pub fn request_closed(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    let page = |frame, contact| RequestClosed { contact, frame };
    one_sentence(brand, lang, (t.closed_heading, t.contact_person), &[], page)
}

/// A mailed link is not proof enough for the policy that admits the address: sign in instead.
pub fn sign_in_needed(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    let words = (t.sign_in_needed_heading, t.sign_in_needed_body);
    one_sentence(brand, lang, words, &[], |frame, explanation| SignInPage {
        explanation,
        frame,
    })
}

/// A page that says one sentence of its own under its heading (`words`: the heading, then the
/// sentence, filled with `values`): the frame and that sentence, handed to the page's template.
fn one_sentence<'a, P: Template>(
    brand: &Brand<'a>,
    lang: Language,
    words: (&str, &str),
    values: &[(&str, &str)],
    page: impl FnOnce(Frame<'a>, String) -> P,
) -> String {
    let frame = Frame::new(brand, lang, words.0);
    let sentence = frame.say(words.1, values);
    render(&page(frame, sentence))
}

/// A sign-in that ended without a request; nothing was recorded, and the page says why.
pub fn sign_in_problem(brand: &Brand, lang: Language, problem: &SignInProblem) -> String {
    let t = text(lang);
    let (heading, body, values): (_, _, Vec<(&str, &str)>) = match problem {
        SignInProblem::Cancelled => (
            t.sign_in_cancelled_heading,
            t.sign_in_cancelled_body,
            vec![],
        ),
        SignInProblem::Expired => (t.sign_in_expired_heading, t.sign_in_expired_body, vec![]),
        SignInProblem::NotVerified => (t.sign_in_failed_heading, t.sign_in_failed_body, vec![]),
        SignInProblem::NoVerifiedAddress => (
            t.sign_in_no_address_heading,
            t.sign_in_no_address_body,
            vec![],
        ),
        SignInProblem::WrongAddress { signed_in, typed } => (
            t.sign_in_wrong_address_heading,
            t.sign_in_wrong_address_body,
            vec![("signed_in", signed_in.as_str()), ("typed", typed.as_str())],
        ),
        SignInProblem::MfaRequired => (t.sign_in_mfa_heading, t.sign_in_mfa_body, vec![]),
    };
    one_sentence(
        brand,
        lang,
        (heading, body),
        &values,
        |frame, explanation| SignInPage { explanation, frame },
    )
}

/// A link from a mail that can't be used.
pub fn link_problem(brand: &Brand, lang: Language, problem: LinkProblem) -> String {
    let t = text(lang);
    let (heading, explanation) = match problem {
        LinkProblem::Invalid => (t.link_invalid_heading, t.link_invalid_body),
        LinkProblem::Expired => (t.link_expired_heading, t.link_expired_body),
        LinkProblem::AlreadyUsed => (t.link_used_heading, t.link_used_body),
    };
    render(&LinkProblemPage {
        frame: Frame::new(brand, lang, heading),
        explanation,
        back_to_form: problem == LinkProblem::Expired,
    })
}

/// 429.
pub fn too_many_requests(brand: &Brand, lang: Language, retry_after_minutes: u64) -> String {
    let t = text(lang);
    let wait = minutes(lang, retry_after_minutes.max(1));
    render(&TooManyRequests {
        frame: Frame::new(brand, lang, t.too_many_heading),
        explanation: fill(t.too_many_body, &[("minutes", &wait)]),
    })
}

/// 503: storage, Graph or mail is down; what was saved is kept and retried.
pub fn unavailable(brand: &Brand, lang: Language) -> String {
    render(&Unavailable {
        frame: Frame::new(brand, lang, text(lang).unavailable_heading),
    })
}

/// A client error a browser can end up on, with a way back to the form.
pub fn error_page(brand: &Brand, lang: Language, kind: ErrorKind) -> String {
    let t = text(lang);
    let max = number(lang, JUSTIFICATION_MAX as u64);
    let (heading, explanation) = match kind {
        ErrorKind::BadRequest => (t.bad_request_heading, t.bad_request_body.to_string()),
        ErrorKind::NotFound => (t.not_found_heading, t.not_found_body.to_string()),
        ErrorKind::TooLarge => (
            t.too_large_heading,
            fill(t.too_large_body, &[("max", &max)]),
        ),
        ErrorKind::UnsupportedType => (t.unsupported_heading, t.unsupported_body.to_string()),
    };
    render(&ErrorPage {
        frame: Frame::new(brand, lang, heading),
        explanation,
    })
}

/// What a decision link opens: the request, and two forms (approve; deny with an optional
/// reason). Opening it decides nothing.
pub fn decision_form(
    brand: &Brand,
    lang: Language,
    summary: &RequestSummary,
    token: &str,
    self_path: &str,
) -> String {
    let t = text(lang);
    let frame = Frame::new(brand, lang, t.decide_heading).reached_at(self_path);
    let reason_max = number(lang, REASON_MAX as u64);
    let reason = Field::new(
        "reason",
        t.label_reason,
        Control::Area {
            max: REASON_MAX,
            rows: 4,
        },
        "",
    )
    .with_hint(fill(t.hint_reason, &[("max", &reason_max)]))
    .optional();
    render(&DecisionForm {
        intro: frame.say(t.decide_intro, &[]),
        steps: summary.steps(t),
        facts: summary.facts(t),
        approve_outcome: if summary.stage < summary.stages {
            t.approve_forward
        } else {
            t.approve_final
        },
        token,
        reason,
        frame,
    })
}

/// The approver's decision was recorded. An approval at an earlier step of several went on to
/// the next step.
pub fn decision_recorded(
    brand: &Brand,
    lang: Language,
    approved: bool,
    summary: &RequestSummary,
) -> String {
    let t = text(lang);
    let (heading, template) = if !approved {
        (t.recorded_denied_heading, t.recorded_denied_body)
    } else if summary.stage < summary.stages {
        (t.recorded_forwarded_heading, t.recorded_forwarded_body)
    } else {
        (t.recorded_approved_heading, t.recorded_approved_body)
    };
    let name = summary.full_name();
    render(&DecisionRecorded {
        frame: Frame::new(brand, lang, heading),
        outcome: fill(template, &[("name", &name), ("email", summary.email)]),
    })
}

/// Someone decided first; who and when.
pub fn already_decided(
    brand: &Brand,
    lang: Language,
    approved: bool,
    by: &str,
    at: &str,
) -> String {
    let t = text(lang);
    let template = if approved {
        t.already_approved
    } else {
        t.already_denied
    };
    render(&AlreadyDecided {
        frame: Frame::new(brand, lang, t.already_heading),
        outcome: fill(template, &[("by", by), ("at", at)]),
    })
}

/// The approver is the requester.
pub fn cannot_decide_own(brand: &Brand, lang: Language) -> String {
    render(&CannotDecideOwn {
        frame: Frame::new(brand, lang, text(lang).own_heading),
    })
}

/// The signed-in principal is missing or is not the approver the link was sent to.
/// `return_to` is the path (on this site) to come back to once signed in: App Service
/// Authentication's own login and logout routes take the approver there.
pub fn sign_in_required(brand: &Brand, lang: Language, return_to: &str) -> String {
    let encode =
        |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    let sign_in = format!(
        "/.auth/login/aad?post_login_redirect_uri={}",
        encode(return_to)
    );
    let sign_out = format!(
        "/.auth/logout?post_logout_redirect_uri={}",
        encode(&sign_in)
    );
    render(&SignInRequired {
        frame: Frame::new(brand, lang, text(lang).sign_in_heading),
        sign_in,
        sign_out,
    })
}

/// What a review link opens: the guest, and two forms (keep for another N days; end access
/// now). Opening it decides nothing.
pub fn review_form(
    brand: &Brand,
    lang: Language,
    guest: &GuestSummary,
    ask: &ReviewAsk,
    token: &str,
    self_path: &str,
) -> String {
    let t = text(lang);
    let frame = Frame::new(brand, lang, t.review_heading).reached_at(self_path);
    let days = ask.days.to_string();
    let mut facts = guest.facts(t);
    facts.push((t.fact_answer_by, ask.deadline.to_string()));
    render(&ReviewForm {
        intro: guest.introduced(t, frame.org),
        facts,
        without_answer: ask.without_answer(t),
        keep_outcome: fill(t.keep_outcome, &[("days", &days)]),
        keep_button: fill(t.keep_button, &[("days", &days)]),
        token,
        frame,
    })
}

/// The sponsor's answer was recorded: kept until `until` (formatted), or ended.
pub fn review_recorded(
    brand: &Brand,
    lang: Language,
    guest: &GuestSummary,
    kept_until: Option<&str>,
) -> String {
    let t = text(lang);
    let name = guest.full_name();
    let (heading, outcome) = match kept_until {
        Some(until) => (
            t.reviewed_kept_heading,
            fill(
                t.reviewed_kept_body,
                &[("name", &name), ("email", guest.email), ("date", until)],
            ),
        ),
        None => (
            t.reviewed_ended_heading,
            fill(
                t.reviewed_ended_body,
                &[("name", &name), ("email", guest.email)],
            ),
        ),
    };
    render(&DecisionRecorded {
        frame: Frame::new(brand, lang, heading),
        outcome,
    })
}

/// The review was answered first by someone else (`by`), or by its default (`by` is `None`).
pub fn already_reviewed(
    brand: &Brand,
    lang: Language,
    kept: bool,
    by: Option<&str>,
    at: &str,
) -> String {
    let t = text(lang);
    let outcome = match (kept, by) {
        (true, Some(by)) => fill(t.already_kept, &[("by", by), ("at", at)]),
        (false, Some(by)) => fill(t.already_ended, &[("by", by), ("at", at)]),
        (true, None) => fill(t.already_kept_default, &[("at", at)]),
        (false, None) => fill(t.already_ended_default, &[("at", at)]),
    };
    render(&AlreadyDecided {
        frame: Frame::new(brand, lang, t.already_reviewed_heading),
        outcome,
    })
}

/// A problem in the summary at the top of the form; it links to its field when the field is
/// on the page.
struct Problem<'a> {
    field: Option<&'a str>,
    message: &'a str,
}

/// The kind of control a field is (`templates/form.html` writes each).
enum Control {
    /// A work email address.
    Email,
    /// One line, with its `autocomplete` token and, if it has one, its longest length.
    Line(&'static str),
    LineUpTo(&'static str, usize),
    Area {
        max: usize,
        rows: u8,
    },
}

/// A labelled form field with its hint and error (`field` in `templates/form.html`).
struct Field<'a> {
    /// The form field's name, also the element's id.
    name: &'static str,
    label: &'static str,
    hint: Option<String>,
    error: Option<&'a str>,
    required: bool,
    value: &'a str,
    control: Control,
}

impl<'a> Field<'a> {
    /// A required field without a hint or an error.
    fn new(name: &'static str, label: &'static str, control: Control, value: &'a str) -> Self {
        Field {
            name,
            label,
            hint: None,
            error: None,
            required: true,
            value,
            control,
        }
    }

    fn with_error(self, error: Option<&'a str>) -> Self {
        Field { error, ..self }
    }

    fn with_hint(self, hint: String) -> Self {
        Field {
            hint: Some(hint),
            ..self
        }
    }

    /// A one-line field that takes at most `max` characters.
    fn with_max(self, max: usize) -> Self {
        let control = match self.control {
            Control::Line(autocomplete) => Control::LineUpTo(autocomplete, max),
            other => other,
        };
        Field { control, ..self }
    }

    fn optional(self) -> Self {
        Field {
            required: false,
            ..self
        }
    }

    /// The ids of the hint and the error, for `aria-describedby`.
    fn described_by(&self) -> Option<String> {
        let ids: Vec<String> = [
            self.hint.as_ref().map(|_| format!("{}-hint", self.name)),
            self.error.map(|_| format!("{}-error", self.name)),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!ids.is_empty()).then(|| ids.join(" "))
    }
}

/// The terms of use and the box to accept them, when the operator configured terms.
struct Terms<'a> {
    /// Operator-written text: blank lines separate paragraphs, single line breaks are kept.
    paragraphs: Vec<String>,
    url: Option<&'a str>,
    accepted: bool,
    error: Option<&'a str>,
}

impl<'a> Terms<'a> {
    fn configured(brand: &Brand<'a>, accepted: bool, error: Option<&'a str>) -> Option<Self> {
        let branding = brand.branding;
        // Shown whenever terms are configured, as that is when the sign-up requires accepting
        // them.
        if branding.terms_text.is_none() && branding.terms_url.is_none() {
            return None;
        }
        let paragraphs = branding
            .terms_text
            .as_deref()
            .map(|text| {
                text.replace("\r\n", "\n")
                    .split("\n\n")
                    .map(str::trim)
                    .filter(|paragraph| !paragraph.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Some(Terms {
            paragraphs,
            url: branding
                .terms_url
                .as_ref()
                .and_then(|url| web_link(url.as_str())),
            accepted,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Branding;
    use crate::views::check::{
        ask, assert_no_raw_hostile, assert_page, assert_same_structure, branding, contoso, escape,
        guest, hostile, inner, request_from_asa, summary, tags, with_logo, without_logo, Tag,
        HOSTILE_MARKUP, LANGS,
    };
    use crate::views::text::HOLES;

    /// The sign-up form's fields that are text, in their order on the page.
    const FIELDS: [&str; 5] = [
        "email",
        "first_name",
        "last_name",
        "organisation",
        "justification",
    ];

    /// The sign-up form as it first appears.
    fn empty_form(brand: &Brand, lang: Language) -> String {
        signup_form(brand, lang, &FormValues::default(), &FieldErrors::default())
    }

    /// Everything a page shows that is not ours.
    struct Inputs {
        value: String,
        token: String,
        self_path: String,
        redeem_url: String,
    }

    fn benign() -> Inputs {
        Inputs {
            value: "Åsa O'Neil".to_string(),
            token: "abc.def-123".to_string(),
            self_path: "/api/approve?token=abc.def-123".to_string(),
            redeem_url: "https://invitations.example/redeem?tenant=1&ticket=2".to_string(),
        }
    }

    fn attacker() -> Inputs {
        Inputs {
            value: hostile(),
            token: hostile(),
            // Without whitespace, so it is kept as the switch's path and must be escaped there.
            self_path: "/api/approve?token=\"><script>alert(1)</script>'onmouseover='".to_string(),
            redeem_url: "https://invitations.example/r?a=\"><script>alert(1)</script>'x'"
                .to_string(),
        }
    }

    fn with_terms(org: &str, terms_text: &str) -> Branding {
        Branding {
            terms_url: Some(url::Url::parse("https://example.com/terms?a=1&b=2").unwrap()),
            terms_text: Some(terms_text.to_string()),
            ..branding(org)
        }
    }

    fn values(v: &str) -> FormValues {
        FormValues {
            email: v.to_string(),
            first_name: v.to_string(),
            last_name: v.to_string(),
            organisation: v.to_string(),
            justification: v.to_string(),
            job_title: v.to_string(),
            accept_terms: true,
        }
    }

    fn all_errors(v: &str) -> FieldErrors {
        let mut errors = FieldErrors::default();
        for field in FIELDS.into_iter().chain(["job_title", "accept_terms"]) {
            errors.push(field, format!("{field}: {v}"));
        }
        errors
    }

    /// Every page the portal has, in every variant, with `i`'s values everywhere.
    fn all_pages(brand: &Brand, lang: Language, i: &Inputs) -> Vec<(String, String)> {
        let v = i.value.as_str();
        let mut pages = vec![
            ("signup_form".into(), empty_form(brand, lang)),
            (
                "signup_form with errors".into(),
                signup_form(brand, lang, &values(v), &all_errors(v)),
            ),
            ("check_inbox".into(), check_inbox(brand, lang, 24)),
            (
                "confirm_email".into(),
                confirm_email(
                    brand,
                    lang,
                    &i.token,
                    &i.self_path,
                    &Confirming {
                        first_name: v,
                        last_name: v,
                        email: v,
                        organisation: v,
                    },
                ),
            ),
            (
                "access_ready".into(),
                access_ready(brand, lang, &i.redeem_url),
            ),
            (
                "access_being_set_up".into(),
                access_being_set_up(brand, lang),
            ),
            ("awaiting_approval".into(), awaiting_approval(brand, lang)),
            ("request_closed".into(), request_closed(brand, lang)),
            (
                "too_many_requests".into(),
                too_many_requests(brand, lang, 15),
            ),
            ("unavailable".into(), unavailable(brand, lang)),
            ("cannot_decide_own".into(), cannot_decide_own(brand, lang)),
            (
                "sign_in_required".into(),
                sign_in_required(brand, lang, &i.self_path),
            ),
            ("sign_in_needed".into(), sign_in_needed(brand, lang)),
            (
                "sign_in_problem wrong address".into(),
                sign_in_problem(
                    brand,
                    lang,
                    &SignInProblem::WrongAddress {
                        signed_in: v.to_string(),
                        typed: v.to_string(),
                    },
                ),
            ),
        ];
        // The form with partner sign-in on, without and with the job title field.
        for job_title in [false, true] {
            let options = FormOptions {
                sign_in: true,
                job_title,
            };
            pages.push((
                format!("signup_form with sign-in, job title {job_title}"),
                signup_form_with(brand, lang, &values(v), &all_errors(v), options),
            ));
        }
        for problem in [
            SignInProblem::Cancelled,
            SignInProblem::Expired,
            SignInProblem::NotVerified,
            SignInProblem::NoVerifiedAddress,
            SignInProblem::MfaRequired,
        ] {
            pages.push((
                format!("{problem:?}"),
                sign_in_problem(brand, lang, &problem),
            ));
        }
        for problem in [
            LinkProblem::Invalid,
            LinkProblem::Expired,
            LinkProblem::AlreadyUsed,
        ] {
            pages.push((format!("{problem:?}"), link_problem(brand, lang, problem)));
        }
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::NotFound,
            ErrorKind::TooLarge,
            ErrorKind::UnsupportedType,
        ] {
            pages.push((format!("{kind:?}"), error_page(brand, lang, kind)));
        }
        for (stage, stages) in [(1, 1), (1, 2), (2, 2)] {
            let s = summary(v, stage, stages);
            pages.push((
                format!("decision_form {stage}/{stages}"),
                decision_form(brand, lang, &s, &i.token, &i.self_path),
            ));
            for approved in [true, false] {
                pages.push((
                    format!("decision_recorded {approved} {stage}/{stages}"),
                    decision_recorded(brand, lang, approved, &s),
                ));
            }
        }
        for approved in [true, false] {
            pages.push((
                format!("already_decided {approved}"),
                already_decided(brand, lang, approved, v, v),
            ));
        }
        for keep in [true, false] {
            pages.push((
                format!("review_form keep={keep}"),
                review_form(
                    brand,
                    lang,
                    &guest(v),
                    &ask(v, keep),
                    &i.token,
                    &i.self_path,
                ),
            ));
            pages.push((
                format!("review_recorded keep={keep}"),
                review_recorded(brand, lang, &guest(v), keep.then_some(v)),
            ));
            pages.push((
                format!("already_reviewed keep={keep} by"),
                already_reviewed(brand, lang, keep, Some(v), v),
            ));
            pages.push((
                format!("already_reviewed keep={keep} by default"),
                already_reviewed(brand, lang, keep, None, v),
            ));
        }
        let mut plain = guest(v);
        plain.organisation = "";
        plain.access_ends = None;
        pages.push((
            "review_form without organisation".into(),
            review_form(brand, lang, &plain, &ask(v, false), &i.token, &i.self_path),
        ));
        pages
    }

    fn opening_tags(html: &str) -> Vec<Tag> {
        tags(html).into_iter().filter(|t| !t.closing).collect()
    }

    fn tag_with_id(html: &str, id: &str) -> Tag {
        opening_tags(html)
            .into_iter()
            .find(|t| t.attr("id") == Some(id))
            .unwrap_or_else(|| panic!("no element with id {id}"))
    }

    /// The escaped text of the element with `id`, up to its end tag.
    fn text_of_id(html: &str, id: &str) -> String {
        let start = html.find(&format!("id=\"{id}\"")).expect("id");
        let from = start + html[start..].find('>').unwrap() + 1;
        let end = from + html[from..].find("</").unwrap();
        html[from..end].to_string()
    }

    #[test]
    fn every_page_in_both_languages_passes_the_page_checks() {
        for terms in [false, true] {
            let branding = if terms {
                with_terms("Contoso", "Be nice.")
            } else {
                branding("Contoso")
            };
            for has_logo in [false, true] {
                let brand = Brand {
                    branding: &branding,
                    has_logo,
                };
                for lang in LANGS {
                    for (name, html) in all_pages(&brand, lang, &benign()) {
                        let result = std::panic::catch_unwind(|| assert_page(&html, lang));
                        assert!(result.is_ok(), "{name} ({lang:?}) failed the page checks");
                    }
                }
            }
        }
    }

    #[test]
    fn hostile_values_are_escaped_on_every_page() {
        // Terms text without line breaks: those become <br> and paragraphs, on purpose.
        let hostile_org = with_terms(&hostile(), &HOSTILE_MARKUP.concat());
        let benign_org = with_terms("Contoso", "Be nice.");
        for lang in LANGS {
            let hostile_pages = all_pages(&with_logo(&hostile_org), lang, &attacker());
            let benign_pages = all_pages(&with_logo(&benign_org), lang, &benign());
            for ((name, bad), (_, good)) in hostile_pages.iter().zip(&benign_pages) {
                let result = std::panic::catch_unwind(|| {
                    assert_no_raw_hostile(bad);
                    assert_same_structure(good, bad);
                    assert_page(bad, lang);
                });
                assert!(
                    result.is_ok(),
                    "{name} ({lang:?}) let a hostile value through"
                );
            }
        }
    }

    #[test]
    fn hostile_tokens_and_paths_are_escaped_in_attributes() {
        let i = attacker();
        let html = confirm_email(
            &contoso(),
            Language::En,
            &i.token,
            &i.self_path,
            &Confirming {
                first_name: "Ada",
                last_name: "Lovelace",
                email: "ada@partner.example",
                organisation: "Partner AB",
            },
        );
        let token = opening_tags(&html)
            .into_iter()
            .find(|t| t.attr("name") == Some("token"))
            .unwrap();
        assert_eq!(token.attr("value"), Some(escape(&i.token).as_str()));
        let switch = opening_tags(&html)
            .into_iter()
            .find(|t| t.attr("hreflang") == Some("sv"))
            .unwrap();
        assert_eq!(
            switch.attr("href"),
            Some(escape(&format!("{}&lang=sv", i.self_path)).as_str())
        );
    }

    #[test]
    fn the_form_posts_the_fields_the_handler_reads() {
        let b = with_terms("Contoso", "Be nice.");
        let brand = without_logo(&b);
        for lang in LANGS {
            let html = empty_form(&brand, lang);
            let tags = opening_tags(&html);
            let form = tags.iter().find(|t| t.name == "form").unwrap();
            assert_eq!(form.attr("action"), Some("/api/signup"));
            assert_eq!(form.attr("method"), Some("post"));
            let field = |name: &str| {
                tags.iter()
                    .find(|t| t.attr("name") == Some(name))
                    .unwrap_or_else(|| panic!("no field {name}"))
            };
            for (name, autocomplete) in [
                ("email", "email"),
                ("first_name", "given-name"),
                ("last_name", "family-name"),
                ("organisation", "organization"),
            ] {
                assert_eq!(
                    field(name).attr("autocomplete"),
                    Some(autocomplete),
                    "{name}"
                );
                assert_eq!(field(name).attr("id"), Some(name));
                assert!(field(name).attr("required").is_some(), "{name} is required");
            }
            assert_eq!(field("email").attr("inputmode"), Some("email"));
            let justification = field("justification");
            assert_eq!(justification.name, "textarea");
            assert_eq!(justification.attr("maxlength"), Some("1000"));
            assert!(justification.attr("required").is_none());
            let terms = field("accept_terms");
            assert_eq!(terms.attr("type"), Some("checkbox"));
            assert_eq!(terms.attr("value"), Some("yes"));
            assert!(terms.attr("checked").is_none());
            assert_eq!(field("lang").attr("value"), Some(lang.as_str()));
            assert_eq!(field("lang").attr("type"), Some("hidden"));
        }
    }

    #[test]
    fn required_and_optional_fields_say_so_in_their_labels() {
        for lang in LANGS {
            let t = text(lang);
            let html = empty_form(&contoso(), lang);
            let labels = inner(&html, "label");
            assert_eq!(labels.len(), 5);
            for label in &labels[..4] {
                assert!(label.contains(&escape(t.required)), "{label}");
            }
            assert!(labels[4].contains(&escape(t.optional)), "{}", labels[4]);
        }
    }

    #[test]
    fn the_form_keeps_values_and_shows_errors_next_to_their_fields() {
        let b = with_terms("Contoso", "Be nice.");
        let brand = without_logo(&b);
        let v = FormValues {
            email: "asa@example.com".into(),
            first_name: "Åsa".into(),
            last_name: "O'Neil".into(),
            organisation: "Fabrikam & Co".into(),
            justification: "\nProject X\nline two".into(),
            job_title: String::new(),
            accept_terms: true,
        };
        for lang in LANGS {
            let mut errors = FieldErrors::default();
            for field in FIELDS {
                errors.push(
                    field,
                    field_message(lang, field, &FieldProblem::TooLong { max: 3 }),
                );
            }
            errors.push(
                "accept_terms",
                field_message(lang, "accept_terms", &FieldProblem::TermsNotAccepted),
            );
            let html = signup_form(&brand, lang, &v, &errors);
            assert_page(&html, lang);

            for (field, value) in [
                ("email", &v.email),
                ("first_name", &v.first_name),
                ("last_name", &v.last_name),
                ("organisation", &v.organisation),
            ] {
                assert_eq!(
                    tag_with_id(&html, field).attr("value"),
                    Some(escape(value).as_str())
                );
            }
            // The textarea keeps a leading line break (the parser drops the first one).
            let justification = inner(&html, "textarea").remove(0);
            assert_eq!(justification, format!("\n{}", escape(&v.justification)));
            assert!(tag_with_id(&html, "accept_terms").attr("checked").is_some());

            for (field, message) in &errors.0 {
                let input = tag_with_id(&html, field);
                assert_eq!(input.attr("aria-invalid"), Some("true"), "{field}");
                let described: Vec<&str> =
                    input.attr("aria-describedby").unwrap().split(' ').collect();
                let error_id = format!("{field}-error");
                assert!(
                    described.contains(&error_id.as_str()),
                    "{field}: {described:?}"
                );
                assert!(
                    text_of_id(&html, &error_id).contains(&escape(message))
                        || html.contains(&format!(
                            "id=\"{error_id}\"><span class=\"visually-hidden\">{}</span> {}</p>",
                            escape(text(lang).error_hidden_prefix),
                            escape(message)
                        )),
                    "{field}: message not next to the field"
                );
                // The error message comes right before its field in the markup.
                let message_at = html.find(&format!("id=\"{error_id}\"")).unwrap();
                let field_at = html.find(&format!("id=\"{field}\"")).unwrap();
                assert!(message_at < field_at, "{field}: message after the field");
                assert!(
                    html[message_at..field_at].matches("class=\"field").count() == 0,
                    "{field}: message in another field's group"
                );
                // And in the summary, linking to the field.
                assert!(
                    html.contains(&format!(
                        "<li><a href=\"#{field}\">{}</a></li>",
                        escape(message)
                    )),
                    "{field}: not in the summary"
                );
            }
            let summary = tags(&html)
                .into_iter()
                .find(|t| t.attr("class") == Some("error-summary"))
                .unwrap();
            assert_eq!(summary.attr("role"), Some("alert"));
            let summary_at = html.find("class=\"error-summary\"").unwrap();
            assert!(
                summary_at < html.find("<form").unwrap(),
                "summary at the top"
            );
            let title = inner(&html, "title").remove(0);
            assert!(title.starts_with(match lang {
                Language::En => "Error: ",
                Language::Sv => "Fel: ",
            }));
        }
    }

    #[test]
    fn fields_without_errors_are_not_marked_invalid() {
        let brand = contoso();
        let mut errors = FieldErrors::default();
        errors.push("last_name", "Enter your last name");
        let html = signup_form(&brand, Language::En, &FormValues::default(), &errors);
        let invalid = |html: &str| {
            opening_tags(html)
                .iter()
                .filter(|t| t.attr("aria-invalid").is_some())
                .count()
        };
        assert_eq!(invalid(&html), 1);
        assert_eq!(
            tag_with_id(&html, "last_name").attr("aria-invalid"),
            Some("true")
        );
        assert_eq!(tag_with_id(&html, "email").attr("aria-invalid"), None);
        assert_eq!(
            tag_with_id(&html, "email").attr("aria-describedby"),
            Some("email-hint")
        );
        assert_eq!(html.matches("class=\"error-message\"").count(), 1);

        let clean = empty_form(&brand, Language::En);
        assert!(!clean.contains("class=\"error-summary\""));
        assert_eq!(invalid(&clean), 0);
        assert!(!inner(&clean, "title")[0].starts_with("Error"));
    }

    #[test]
    fn an_error_for_a_field_not_on_the_page_is_still_shown() {
        let mut errors = FieldErrors::default();
        errors.push("accept_terms", "Accept the terms");
        let html = signup_form(&contoso(), Language::En, &FormValues::default(), &errors);
        assert!(html.contains("<li>Accept the terms</li>"));
        assert!(!html.contains("href=\"#accept_terms\""));
    }

    #[test]
    fn terms_appear_only_when_configured() {
        let none = branding("Contoso");
        let html = empty_form(&without_logo(&none), Language::En);
        assert!(!html.contains("accept_terms"));

        let text_only = Branding {
            terms_text: Some(
                "First paragraph.\nSame paragraph.\r\n\r\nSecond <b>paragraph</b>.".into(),
            ),
            ..branding("Contoso")
        };
        let html = empty_form(&without_logo(&text_only), Language::Sv);
        assert!(html.contains("<p>First paragraph.<br>Same paragraph.</p>\n<p>Second &lt;b&gt;paragraph&lt;/b&gt;.</p>"));
        assert!(html.contains("name=\"accept_terms\""));
        assert!(!html.contains("rel=\"noopener noreferrer\""));

        let url_only = Branding {
            terms_url: Some(url::Url::parse("https://example.com/terms?a=1&b=2").unwrap()),
            ..branding("Contoso")
        };
        let html = empty_form(&without_logo(&url_only), Language::En);
        let link = opening_tags(&html)
            .into_iter()
            .find(|t| t.attr("rel").is_some())
            .unwrap();
        assert_eq!(
            link.attr("href"),
            Some("https://example.com/terms?a=1&amp;b=2")
        );
        assert_eq!(link.attr("rel"), Some("noopener noreferrer"));
        assert_eq!(link.attr("target"), Some("_blank"));
        assert!(html.contains("(opens in a new tab)"));

        let unsafe_url = Branding {
            terms_url: Some(url::Url::parse("javascript:alert(1)").unwrap()),
            ..branding("Contoso")
        };
        let html = empty_form(&without_logo(&unsafe_url), Language::En);
        assert!(!html.contains("javascript:"));
        assert!(
            html.contains("name=\"accept_terms\""),
            "terms are still required"
        );
    }

    #[test]
    fn the_confirmation_page_posts_the_token_and_its_switch_keeps_it() {
        let html = confirm_email(
            &contoso(),
            Language::Sv,
            "tok.en_1",
            "/api/signup/verify?token=tok.en_1",
            &Confirming {
                first_name: "Åsa",
                last_name: "Öberg",
                email: "asa@partner.example",
                organisation: "Partner AB",
            },
        );
        assert!(html.contains("<dd dir=\"auto\">Åsa Öberg</dd>"), "{html}");
        assert!(html.contains("Du bekräftar den här ansökan."));
        assert!(html.contains("<h1>Bekräfta din e-postadress</h1>"));
        assert!(html.contains(">Bekräfta</button>"));
        assert!(html.contains("<form method=\"post\" action=\"/api/signup/verify\">"));
        assert!(html.contains("<input type=\"hidden\" name=\"token\" value=\"tok.en_1\">"));
        assert!(html.contains("<input type=\"hidden\" name=\"lang\" value=\"sv\">"));
        assert!(html.contains(
            "<a href=\"/api/signup/verify?token=tok.en_1&amp;lang=en\" lang=\"en\" hreflang=\"en\">English</a>"
        ));
    }

    #[test]
    fn the_decision_page_has_an_approve_and_a_deny_form() {
        let brand = contoso();
        let s = request_from_asa(None, "2025-05-01 10:00");
        let html = decision_form(&brand, Language::Sv, &s, "t0k", "/api/approve?token=t0k");
        assert_page(&html, Language::Sv);
        let forms = inner(&html, "form");
        assert_eq!(forms.len(), 2);
        assert_eq!(html.matches("action=\"/api/approve\"").count(), 2);
        for (form, decision) in forms.iter().zip(["approve", "deny"]) {
            assert!(form.contains("<input type=\"hidden\" name=\"token\" value=\"t0k\">"));
            assert!(form.contains(&format!(
                "<input type=\"hidden\" name=\"decision\" value=\"{decision}\">"
            )));
            assert!(form.contains("<input type=\"hidden\" name=\"lang\" value=\"sv\">"));
        }
        assert!(forms[0].contains(">Godkänn</button>"));
        assert!(!forms[0].contains("reason"));
        assert!(forms[1].contains(">Avslå</button>"));
        let reason = tag_with_id(&html, "reason");
        assert_eq!(reason.name, "textarea");
        assert_eq!(reason.attr("name"), Some("reason"));
        assert_eq!(reason.attr("maxlength"), Some("500"));
        let share = tag_with_id(&html, "share_reason");
        assert_eq!(share.attr("type"), Some("checkbox"));
        assert_eq!(share.attr("value"), Some("yes"));
        assert!(html.contains("<label for=\"share_reason\">Dela skälet med den som ansökt</label>"));
        for shown in [
            "Åsa Berg",
            "asa@fabrikam.example",
            "Fabrikam",
            "fabrikam.example",
            "2025-05-01 10:00",
            "r-1",
            "Ingen angiven",
        ] {
            assert!(
                html.contains(&format!("<dd dir=\"auto\">{shown}</dd>")),
                "{shown}"
            );
        }
        assert!(
            !html.contains("steg 1 av"),
            "no steps on a one-step approval"
        );
        assert!(html.contains(
            "<a href=\"/api/approve?token=t0k&amp;lang=en\" lang=\"en\" hreflang=\"en\">English</a>"
        ));

        let second = RequestSummary {
            stage: 2,
            stages: 2,
            stage_one_approved_by: Some("boss@contoso.example"),
            ..s
        };
        let html = decision_form(&brand, Language::En, &second, "t", "/api/approve?token=t");
        assert!(html.contains("This is step 2 of 2."));
        assert!(html.contains("Approved in step 1 by boss@contoso.example."));
        assert!(html.contains(text(Language::En).approve_final));
        let first = RequestSummary {
            stage: 1,
            stage_one_approved_by: None,
            ..second
        };
        let html = decision_form(&brand, Language::En, &first, "t", "/api/approve?token=t");
        assert!(html.contains(text(Language::En).approve_forward));
    }

    #[test]
    fn the_job_title_field_is_there_only_when_asked_for_optional_and_bounded() {
        let brand = contoso();
        let without = empty_form(&brand, Language::En);
        assert!(!without.contains("job_title"));
        let html = signup_form_with(
            &brand,
            Language::Sv,
            &FormValues::default(),
            &FieldErrors::default(),
            FormOptions {
                sign_in: false,
                job_title: true,
            },
        );
        assert_page(&html, Language::Sv);
        let field = tag_with_id(&html, "job_title");
        assert_eq!(field.attr("name"), Some("job_title"));
        assert_eq!(field.attr("maxlength"), Some("128"));
        assert_eq!(field.attr("autocomplete"), Some("organization-title"));
        assert!(field.attr("required").is_none(), "optional");
        assert!(html.contains(
            "<label for=\"job_title\">Befattning <span class=\"req\">(valfritt)</span></label>"
        ));
        // On the page after the organisation, before the justification.
        let at = |id: &str| html.find(&format!("id=\"{id}\"")).unwrap();
        assert!(at("organisation") < at("job_title") && at("job_title") < at("justification"));
        assert_eq!(
            field_message(
                Language::En,
                "job_title",
                &FieldProblem::TooLong { max: 128 }
            ),
            "Job title must be 128 characters or fewer"
        );
    }

    #[test]
    fn the_approver_sees_the_job_title_when_there_is_one() {
        let brand = contoso();
        let s = RequestSummary {
            job_title: Some("Engineer"),
            ..request_from_asa(None, "2025-05-01 10:00")
        };
        let html = decision_form(&brand, Language::En, &s, "t", "/api/approve?token=t");
        assert!(
            html.contains("<dt>Job title</dt>\n<dd dir=\"auto\">Engineer</dd>"),
            "{html}"
        );
        let without = request_from_asa(None, "2025-05-01 10:00");
        let html = decision_form(&brand, Language::En, &without, "t", "/api/approve?token=t");
        assert!(!html.contains("Job title"));
    }

    #[test]
    fn the_review_page_has_a_keep_and_an_end_form_and_says_what_no_answer_does() {
        let brand = contoso();
        let guest = GuestSummary {
            first_name: "Ada",
            last_name: "Lovelace",
            email: "ada@partner.example",
            organisation: "Partner AB",
            policy: "partner.example",
            invited: "2026-01-05",
            access_ends: None,
        };
        let ask = ReviewAsk {
            days: 90,
            deadline: "2026-04-05",
            keep_without_answer: false,
        };
        let html = review_form(
            &brand,
            Language::En,
            &guest,
            &ask,
            "r0k",
            "/api/approve/review?token=r0k",
        );
        assert_page(&html, Language::En);
        assert!(html.contains("Ada Lovelace from Partner AB has guest access to Contoso"));
        assert!(html.contains("If no sponsor answers by 2026-04-05, the access ends."));
        let forms = inner(&html, "form");
        assert_eq!(forms.len(), 2);
        assert_eq!(html.matches("action=\"/api/approve/review\"").count(), 2);
        for (form, decision) in forms.iter().zip(["keep", "end"]) {
            assert!(form.contains("<input type=\"hidden\" name=\"token\" value=\"r0k\">"));
            assert!(form.contains(&format!(
                "<input type=\"hidden\" name=\"decision\" value=\"{decision}\">"
            )));
        }
        assert!(forms[0].contains(">Keep for another 90 days</button>"));
        assert!(forms[1].contains(">End access now</button>"));
        for shown in [
            "ada@partner.example",
            "2026-01-05",
            "2026-04-05",
            "partner.example",
        ] {
            assert!(
                html.contains(&format!("<dd dir=\"auto\">{shown}</dd>")),
                "{shown}"
            );
        }
        let sv = review_form(
            &brand,
            Language::Sv,
            &guest,
            &ReviewAsk {
                keep_without_answer: true,
                ..ask
            },
            "r0k",
            "/api/approve/review?token=r0k",
        );
        assert!(sv.contains("fortsätter åtkomsten i 90 dagar till"));
        assert_eq!(inner(&sv, "h1").remove(0), "Granska en gästs åtkomst");
    }

    #[test]
    fn the_recorded_decision_says_what_happens_next() {
        let brand = contoso();
        let mut s = summary("x", 1, 1);
        s.first_name = "Åsa";
        s.last_name = "Berg";
        s.email = "asa@fabrikam.example";
        let heading = |html: &str| inner(html, "h1").remove(0);

        let approved = decision_recorded(&brand, Language::En, true, &s);
        assert_eq!(heading(&approved), "Request approved");
        assert!(approved.contains("You approved the request from Åsa Berg (asa@fabrikam.example). They will get an invitation by email."));
        let denied = decision_recorded(&brand, Language::Sv, false, &s);
        assert_eq!(heading(&denied), "Ansökan avslagen");
        let two_stage = RequestSummary { stages: 2, ..s };
        let forwarded = decision_recorded(&brand, Language::En, true, &two_stage);
        assert_eq!(heading(&forwarded), "Request sent on to the next step");
        let final_stage = RequestSummary {
            stage: 2,
            ..two_stage
        };
        assert_eq!(
            heading(&decision_recorded(&brand, Language::En, true, &final_stage)),
            "Request approved"
        );
        assert_eq!(
            heading(&decision_recorded(&brand, Language::En, false, &two_stage)),
            "Request denied"
        );
    }

    #[test]
    fn already_decided_says_who_and_when() {
        let brand = contoso();
        let html = already_decided(
            &brand,
            Language::En,
            true,
            "kim@contoso.example",
            "2 May 2025",
        );
        assert!(html
            .contains("This request was already approved by kim@contoso.example on 2 May 2025."));
        let html = already_decided(
            &brand,
            Language::Sv,
            false,
            "kim@contoso.example",
            "2 maj 2025",
        );
        assert!(html.contains("Ansökan avslogs redan av kim@contoso.example den 2 maj 2025."));
    }

    #[test]
    fn check_inbox_reveals_nothing_and_gives_the_validity() {
        let brand = contoso();
        let html = check_inbox(&brand, Language::En, 24);
        assert_eq!(html, check_inbox(&brand, Language::En, 24));
        assert!(html.contains("<h1>Check your inbox</h1>"));
        assert!(html.contains("If the address can be given access, we have sent a link to it."));
        assert!(html.contains("valid for 24 hours"));
        assert!(check_inbox(&brand, Language::En, 1).contains("valid for 1 hour."));
        let sv = check_inbox(&brand, Language::Sv, 2);
        assert!(sv.contains("<h1>Kontrollera din inkorg</h1>"));
        assert!(sv.contains("gäller i 2 timmar"));
    }

    #[test]
    fn link_problems_explain_and_expired_links_lead_back_to_the_form() {
        let brand = contoso();
        for lang in LANGS {
            let back = format!("href=\"/api/signup?lang={}\"", lang.as_str());
            assert!(link_problem(&brand, lang, LinkProblem::Expired).contains(&back));
            assert!(!link_problem(&brand, lang, LinkProblem::Invalid).contains(&back));
            assert!(!link_problem(&brand, lang, LinkProblem::AlreadyUsed).contains(&back));
            let headings: std::collections::HashSet<String> = [
                LinkProblem::Invalid,
                LinkProblem::Expired,
                LinkProblem::AlreadyUsed,
            ]
            .into_iter()
            .map(|p| inner(&link_problem(&brand, lang, p), "h1").remove(0))
            .collect();
            assert_eq!(headings.len(), 3);
        }
    }

    #[test]
    fn waiting_times_read_naturally() {
        let brand = contoso();
        assert!(too_many_requests(&brand, Language::En, 0).contains("Try again in 1 minute."));
        assert!(too_many_requests(&brand, Language::En, 15).contains("Try again in 15 minutes."));
        assert!(too_many_requests(&brand, Language::Sv, 1).contains("Försök igen om 1 minut."));
        assert!(unavailable(&brand, Language::En)
            .contains("Nothing has been lost. Try again in a few minutes."));
    }

    #[test]
    fn the_invitation_link_is_only_linked_when_it_is_a_web_address() {
        let brand = contoso();
        let html = access_ready(
            &brand,
            Language::En,
            "https://invitations.example/r?a=1&b=2",
        );
        assert!(html.contains(
            "<a class=\"button\" href=\"https://invitations.example/r?a=1&amp;b=2\">Accept the invitation</a>"
        ));
        let html = access_ready(&brand, Language::En, "javascript:alert(document.cookie)");
        assert!(!html.contains("javascript:"));
        assert!(!html.contains("class=\"button\""));
        assert_page(&html, Language::En);
    }

    #[test]
    fn the_logo_and_accent_come_from_the_branding() {
        let mut b = branding("Contoso & Co");
        b.accent_color = "#ffeb3b".into();
        let html = request_closed(&with_logo(&b), Language::En);
        assert!(html.contains("<img src=\"/api/signup/logo\" alt=\"Contoso &amp; Co logo\">"));
        assert!(html.contains(":root{--accent:#ffeb3b;--on-accent:#000000}"));
        assert!(html.contains("contact your contact person at Contoso &amp; Co."));
        let sv = request_closed(&with_logo(&b), Language::Sv);
        assert!(sv.contains("alt=\"Logotyp för Contoso &amp; Co\""));
        let without = request_closed(&without_logo(&b), Language::En);
        assert!(!without.contains("<img"));
        b.accent_color = "#0f6cbd".into();
        let html = unavailable(&without_logo(&b), Language::En);
        assert!(html.contains(":root{--accent:#0f6cbd;--on-accent:#ffffff}"));
    }

    #[test]
    fn every_sentence_on_a_page_is_filled_in() {
        // A template that placed a sentence with holes as it is (`{{ t.confirm_body }}`) would
        // show "{org}" to the partner.
        let b = with_terms("Contoso", "Be nice.");
        for lang in LANGS {
            for (name, html) in all_pages(&with_logo(&b), lang, &benign()) {
                for hole in HOLES {
                    assert!(!html.contains(&format!("{{{hole}}}")), "{name}: {{{hole}}}");
                }
            }
        }
    }

    #[test]
    fn pages_load_nothing_from_elsewhere() {
        let b = with_terms("Contoso", "Be nice.");
        let brand = with_logo(&b);
        for lang in LANGS {
            for (name, html) in all_pages(&brand, lang, &benign()) {
                assert!(!html.contains("<script"), "{name}");
                assert!(
                    !html.contains("@import") && !html.contains("url("),
                    "{name}: CSS fetches"
                );
                for tag in opening_tags(&html) {
                    if let Some(src) = tag.attr("src") {
                        assert!(src.starts_with('/'), "{name}: {src}");
                    }
                }
            }
        }
    }

    #[test]
    fn swedish_pages_are_in_swedish() {
        let brand = contoso();
        let sv = Language::Sv;
        let h1 = |html: String| inner(&html, "h1").remove(0);
        assert_eq!(
            h1(empty_form(&brand, sv)),
            "Ansök om gäståtkomst till Contoso"
        );
        assert_eq!(h1(check_inbox(&brand, sv, 24)), "Kontrollera din inkorg");
        assert_eq!(
            h1(access_ready(&brand, sv, "https://x.example/")),
            "Din åtkomst är klar"
        );
        assert_eq!(h1(request_closed(&brand, sv)), "Vi kunde inte ge åtkomst");
        assert_eq!(
            h1(link_problem(&brand, sv, LinkProblem::Expired)),
            "Länken har gått ut"
        );
        assert_eq!(
            h1(error_page(&brand, sv, ErrorKind::NotFound)),
            "Sidan hittades inte"
        );
        assert_eq!(
            h1(cannot_decide_own(&brand, sv)),
            "Du kan inte besluta om din egen ansökan"
        );
        let form = empty_form(&brand, sv);
        assert!(form.contains("<a href=\"?lang=en\" lang=\"en\" hreflang=\"en\">English</a>"));
        assert!(form.contains("<nav aria-label=\"Språk\">"));
        assert!(form.contains(">Fortsätt</button>"));
        let en = empty_form(&brand, Language::En);
        assert!(en.contains("<a href=\"?lang=sv\" lang=\"sv\" hreflang=\"sv\">Svenska</a>"));
    }

    #[test]
    fn field_messages_are_specific_and_in_the_page_language() {
        use FieldProblem::*;
        let en = Language::En;
        let sv = Language::Sv;
        for (lang, field, problem, message) in [
            (en, "email", Required, "Enter your work email address"),
            (sv, "first_name", Required, "Ange ditt förnamn"),
            (
                en,
                "email",
                InvalidEmail,
                "Enter a valid work email address, like name@company.com",
            ),
            (
                en,
                "justification",
                TooLong { max: 1000 },
                "Justification must be 1,000 characters or fewer",
            ),
            (
                sv,
                "organisation",
                TooLong { max: 200 },
                "Företagsnamnet får vara högst 200 tecken",
            ),
            (
                sv,
                "accept_terms",
                TermsNotAccepted,
                "Du måste godkänna användarvillkoren för att fortsätta",
            ),
            (en, "something", Required, "This field is required"),
        ] {
            assert_eq!(field_message(lang, field, &problem), message);
        }
        assert!(field_message(sv, "last_name", &ControlCharacters)
            .starts_with("Efternamnet innehåller dolda tecken"));
        assert_eq!(
            field_message(en, "accept_terms", &Required),
            field_message(en, "accept_terms", &TermsNotAccepted)
        );
        // Every field and problem has a message in both languages, and they differ.
        for field in FIELDS.into_iter().chain(["reason", "accept_terms", "x"]) {
            for problem in [
                Required,
                TooLong { max: 5 },
                InvalidEmail,
                ControlCharacters,
                TermsNotAccepted,
            ] {
                let (a, b) = (
                    field_message(en, field, &problem),
                    field_message(sv, field, &problem),
                );
                assert!(!a.is_empty() && a != b, "{field} {problem:?}");
            }
        }
    }
}
