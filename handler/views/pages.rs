//! The portal's pages: the sign-up form and what follows it, the approvers' pages, and the
//! answers to requests that can't go on.
//!
//! Each function builds the page's body from escaped pieces and hands it to
//! [`layout::page`](super::layout::page), which adds the frame. Forms post URL-encoded fields
//! and carry the page's language in a hidden `lang` field, so the answer comes back in it.

use super::layout::{page, Page};
use super::text::{fill, hours, minutes, number, text, Text};
use super::{
    escape, web_link, Brand, Confirming, ErrorKind, FieldErrors, FieldProblem, FormValues,
    LinkProblem, RequestSummary, SignInProblem, EMAIL_MAX, JUSTIFICATION_MAX, REASON_MAX,
};
use crate::core::policy::Language;

const SIGNUP_ACTION: &str = "/api/signup";
const VERIFY_ACTION: &str = "/api/signup/verify";
const APPROVE_ACTION: &str = "/api/approve";
const SIGN_IN_ACTION: &str = "/api/signup/sign-in";

/// A validation message for `field` (a form field's name) in `lang`.
pub fn field_message(lang: Language, field: &str, problem: &FieldProblem) -> String {
    let t = text(lang);
    let name = match field {
        "email" => t.field_email,
        "first_name" => t.field_first_name,
        "last_name" => t.field_last_name,
        "organisation" => t.field_organisation,
        "justification" => t.field_justification,
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
    signup_form_with(brand, lang, values, errors, false)
}

/// The sign-up form; with `sign_in`, a second button sends the same fields to the sign-in
/// (`formaction`), so the partner proves who they are with their work account instead of a
/// mailed link.
pub fn signup_form_with(
    brand: &Brand,
    lang: Language,
    values: &FormValues,
    errors: &FieldErrors,
    sign_in: bool,
) -> String {
    let t = text(lang);
    let org = org(brand);
    let justification_max = number(lang, JUSTIFICATION_MAX as u64);
    let fields = [
        Field {
            name: "email",
            label: t.label_email,
            hint: Some(t.hint_email.to_string()),
            required: true,
            value: &values.email,
            control: Control::Email,
        },
        Field {
            name: "first_name",
            label: t.label_first_name,
            hint: None,
            required: true,
            value: &values.first_name,
            control: Control::Line("given-name"),
        },
        Field {
            name: "last_name",
            label: t.label_last_name,
            hint: None,
            required: true,
            value: &values.last_name,
            control: Control::Line("family-name"),
        },
        Field {
            name: "organisation",
            label: t.label_organisation,
            hint: None,
            required: true,
            value: &values.organisation,
            control: Control::Line("organization"),
        },
        Field {
            name: "justification",
            label: t.label_justification,
            hint: Some(fill(
                t.hint_justification,
                &[("org", org), ("max", &justification_max)],
            )),
            required: false,
            value: &values.justification,
            control: Control::Area {
                max: JUSTIFICATION_MAX,
                rows: 5,
            },
        },
    ];
    let terms = terms(t, brand, values.accept_terms, errors.get("accept_terms"));

    let mut on_page: Vec<&str> = fields.iter().map(|field| field.name).collect();
    if terms.is_some() {
        on_page.push("accept_terms");
    }
    let mut body = String::new();
    if !errors.is_empty() {
        body.push_str(&error_summary(t, errors, &on_page));
    }
    body.push_str(&para(&fill(t.signup_intro, &[("org", org)])));
    body.push_str(&format!(
        "<form method=\"post\" action=\"{SIGNUP_ACTION}\" novalidate>\n"
    ));
    for field in &fields {
        body.push_str(&field.html(t, errors.get(field.name)));
    }
    body.push_str(&terms.unwrap_or_default());
    body.push_str(&hidden("lang", lang.as_str()));
    body.push_str(&submit(t.submit_signup, false));
    if sign_in {
        body.push_str(&note(t.sign_in_or));
        body.push_str(&format!(
            "<button type=\"submit\" class=\"button button-secondary\" formaction=\"{SIGN_IN_ACTION}\">{}</button>\n",
            escape(t.sign_in_button)
        ));
    }
    body.push_str("</form>\n");

    page(
        brand,
        lang,
        &Page {
            heading: &fill(t.signup_heading, &[("org", org)]),
            has_errors: !errors.is_empty(),
            self_path: None,
            body: &body,
        },
    )
}

/// The answer to every valid submission, whatever happened to it: it reveals nothing about
/// the address or its domain.
pub fn check_inbox(brand: &Brand, lang: Language, valid_hours: u32) -> String {
    let t = text(lang);
    let valid = fill(
        t.check_inbox_valid,
        &[("hours", &hours(lang, u64::from(valid_hours)))],
    );
    let body = [para(t.check_inbox_body), para(&valid), note(t.close_page)].concat();
    simple(brand, lang, t.check_inbox_heading, &body)
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
    let name = format!("{} {}", confirming.first_name, confirming.last_name);
    let mut details = para(t.confirm_details);
    details.push_str("<dl class=\"summary\">\n");
    for (label, value) in [
        (t.fact_name, name.trim()),
        (t.fact_email, confirming.email),
        (t.fact_organisation, confirming.organisation),
    ] {
        details.push_str(&format!(
            "<dt>{}</dt>\n<dd dir=\"auto\">{}</dd>\n",
            escape(label),
            escape(value)
        ));
    }
    details.push_str("</dl>\n");
    let body = format!(
        "{intro}{details}<form method=\"post\" action=\"{VERIFY_ACTION}\">\n{token}{lang_field}{button}</form>\n",
        intro = para(&fill(t.confirm_body, &[("org", org(brand))])),
        token = hidden("token", token),
        lang_field = hidden("lang", lang.as_str()),
        button = submit(t.confirm_button, false),
    );
    page(
        brand,
        lang,
        &Page {
            heading: t.confirm_heading,
            has_errors: false,
            self_path: Some(self_path),
            body: &body,
        },
    )
}

/// The guest was invited: the invitation link, prominently (it is also mailed).
pub fn access_ready(brand: &Brand, lang: Language, redeem_url: &str) -> String {
    let t = text(lang);
    let mut body = para(&fill(t.ready_body, &[("org", org(brand))]));
    if let Some(url) = web_link(redeem_url) {
        body.push_str(&format!(
            "<p><a class=\"button\" href=\"{}\">{}</a></p>\n",
            escape(url),
            escape(t.ready_button)
        ));
    }
    body.push_str(&note(t.ready_mailed));
    simple(brand, lang, t.ready_heading, &body)
}

/// Approved, but the invitation could not be made yet; the retry will mail it.
pub fn access_being_set_up(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    simple(brand, lang, t.setup_heading, &para(t.setup_body))
}

/// The address is confirmed and the request waits for an approver.
pub fn awaiting_approval(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    let body = para(&fill(t.awaiting_body, &[("org", org(brand))])) + &note(t.close_page);
    simple(brand, lang, t.awaiting_heading, &body)
}

/// Denied or not admitted; says no more than that.
pub fn request_closed(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    let body = para(t.closed_body) + &para(&fill(t.contact_person, &[("org", org(brand))]));
    simple(brand, lang, t.closed_heading, &body)
}

/// A link from a mail that can't be used.
pub fn link_problem(brand: &Brand, lang: Language, problem: LinkProblem) -> String {
    let t = text(lang);
    let (heading, body) = match problem {
        LinkProblem::Invalid => (t.link_invalid_heading, para(t.link_invalid_body)),
        LinkProblem::Expired => (
            t.link_expired_heading,
            para(t.link_expired_body) + &form_link(t, lang),
        ),
        LinkProblem::AlreadyUsed => (t.link_used_heading, para(t.link_used_body)),
    };
    simple(brand, lang, heading, &body)
}

/// 429.
pub fn too_many_requests(brand: &Brand, lang: Language, retry_after_minutes: u64) -> String {
    let t = text(lang);
    let wait = minutes(lang, retry_after_minutes.max(1));
    simple(
        brand,
        lang,
        t.too_many_heading,
        &para(&fill(t.too_many_body, &[("minutes", &wait)])),
    )
}

/// 503: storage, Graph or mail is down; what was saved is kept and retried.
pub fn unavailable(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    simple(
        brand,
        lang,
        t.unavailable_heading,
        &para(t.unavailable_body),
    )
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
    simple(
        brand,
        lang,
        heading,
        &(para(&explanation) + &form_link(t, lang)),
    )
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
    let mut body = para(&fill(t.decide_intro, &[("org", org(brand))]));
    body.push_str(&stage_lines(t, summary));
    body.push_str(&summary_list(t, summary));
    body.push_str(&note(t.decide_note));

    let decision_fields = |decision: &str| {
        [
            hidden("token", token),
            hidden("lang", lang.as_str()),
            hidden("decision", decision),
        ]
        .concat()
    };
    let approve_outcome = if summary.stage < summary.stages {
        t.approve_forward
    } else {
        t.approve_final
    };
    body.push_str(&format!(
        "<section class=\"decision\" aria-labelledby=\"approve-heading\">\n\
<h2 id=\"approve-heading\">{heading}</h2>\n\
{outcome}\
<form method=\"post\" action=\"{APPROVE_ACTION}\">\n{fields}{button}</form>\n\
</section>\n",
        heading = escape(t.approve_heading),
        outcome = para(approve_outcome),
        fields = decision_fields("approve"),
        button = submit(t.approve_button, false),
    ));
    let reason_max = number(lang, REASON_MAX as u64);
    let reason = Field {
        name: "reason",
        label: t.label_reason,
        hint: Some(fill(t.hint_reason, &[("max", &reason_max)])),
        required: false,
        value: "",
        control: Control::Area {
            max: REASON_MAX,
            rows: 4,
        },
    };
    body.push_str(&format!(
        "<section class=\"decision\" aria-labelledby=\"deny-heading\">\n\
<h2 id=\"deny-heading\">{heading}</h2>\n\
<form method=\"post\" action=\"{APPROVE_ACTION}\">\n{fields}{reason}\
<div class=\"field check\">\n\
<input type=\"checkbox\" id=\"share_reason\" name=\"share_reason\" value=\"yes\">\n\
<label for=\"share_reason\">{share}</label>\n\
</div>\n\
{button}</form>\n\
</section>\n",
        heading = escape(t.deny_heading),
        fields = decision_fields("deny"),
        reason = reason.html(t, None),
        share = escape(t.label_share_reason),
        button = submit(t.deny_button, true),
    ));

    page(
        brand,
        lang,
        &Page {
            heading: t.decide_heading,
            has_errors: false,
            self_path: Some(self_path),
            body: &body,
        },
    )
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
    let name = full_name(summary);
    let body = para(&fill(
        template,
        &[("name", &name), ("email", summary.email)],
    )) + &note(t.close_page);
    simple(brand, lang, heading, &body)
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
    let body = para(&fill(template, &[("by", by), ("at", at)])) + &note(t.nothing_more);
    simple(brand, lang, t.already_heading, &body)
}

/// The approver is the requester.
pub fn cannot_decide_own(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    simple(brand, lang, t.own_heading, &para(t.own_body))
}

/// The signed-in principal is missing or is not the approver the link was sent to.
pub fn sign_in_required(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    simple(brand, lang, t.sign_in_heading, &para(t.sign_in_body))
}

// Building blocks.

/// A mailed link is not proof enough for the policy that admits the address: sign in instead.
pub fn sign_in_needed(brand: &Brand, lang: Language) -> String {
    let t = text(lang);
    let body = para(&fill(t.sign_in_needed_body, &[("org", org(brand))])) + &form_link(t, lang);
    simple(brand, lang, t.sign_in_needed_heading, &body)
}

/// A sign-in that ended without a request; nothing was recorded, and the page says why.
pub fn sign_in_problem(brand: &Brand, lang: Language, problem: &SignInProblem) -> String {
    let t = text(lang);
    let o = org(brand);
    let (heading, body) = match problem {
        SignInProblem::Cancelled => (t.sign_in_cancelled_heading, para(t.sign_in_cancelled_body)),
        SignInProblem::Expired => (t.sign_in_expired_heading, para(t.sign_in_expired_body)),
        SignInProblem::NotVerified => (
            t.sign_in_failed_heading,
            para(&fill(t.sign_in_failed_body, &[("org", o)])),
        ),
        SignInProblem::NoVerifiedAddress => (
            t.sign_in_no_address_heading,
            para(t.sign_in_no_address_body),
        ),
        SignInProblem::WrongAddress { signed_in, typed } => (
            t.sign_in_wrong_address_heading,
            para(&fill(
                t.sign_in_wrong_address_body,
                &[("signed_in", signed_in), ("typed", typed)],
            )),
        ),
        SignInProblem::MfaRequired => (
            t.sign_in_mfa_heading,
            para(&fill(t.sign_in_mfa_body, &[("org", o)])),
        ),
    };
    simple(brand, lang, heading, &(body + &form_link(t, lang)))
}

fn org<'a>(brand: &'a Brand) -> &'a str {
    &brand.branding.org_name
}

/// A page that is a heading and some text; the language switch reloads it in place.
fn simple(brand: &Brand, lang: Language, heading: &str, body: &str) -> String {
    page(
        brand,
        lang,
        &Page {
            heading,
            has_errors: false,
            self_path: None,
            body,
        },
    )
}

fn para(text: &str) -> String {
    format!("<p>{}</p>\n", escape(text))
}

fn note(text: &str) -> String {
    format!("<p class=\"note\">{}</p>\n", escape(text))
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
        escape(name),
        escape(value)
    )
}

fn submit(label: &str, secondary: bool) -> String {
    let class = if secondary {
        "button button-secondary"
    } else {
        "button"
    };
    format!(
        "<button type=\"submit\" class=\"{class}\">{}</button>\n",
        escape(label)
    )
}

fn form_link(t: &Text, lang: Language) -> String {
    format!(
        "<p><a href=\"{SIGNUP_ACTION}?lang={}\">{}</a></p>\n",
        lang.as_str(),
        escape(t.back_to_form)
    )
}

fn full_name(summary: &RequestSummary) -> String {
    format!("{} {}", summary.first_name, summary.last_name)
        .trim()
        .to_string()
}

/// The top-of-form list of problems, each linking to its field when the field is on the page.
fn error_summary(t: &Text, errors: &FieldErrors, on_page: &[&str]) -> String {
    let mut items = String::new();
    for (field, message) in &errors.0 {
        if on_page.contains(field) {
            items.push_str(&format!(
                "<li><a href=\"#{}\">{}</a></li>\n",
                escape(field),
                escape(message)
            ));
        } else {
            items.push_str(&format!("<li>{}</li>\n", escape(message)));
        }
    }
    format!(
        "<div class=\"error-summary\" role=\"alert\" aria-labelledby=\"error-summary-title\">\n\
<h2 id=\"error-summary-title\">{}</h2>\n<ul>\n{items}</ul>\n</div>\n",
        escape(t.error_summary_heading)
    )
}

/// An error shown next to its field; `id` is what the field's `aria-describedby` names.
fn error_message(t: &Text, field: &str, message: &str) -> String {
    format!(
        "<p class=\"error-message\" id=\"{}-error\"><span class=\"visually-hidden\">{}</span> {}</p>\n",
        escape(field),
        escape(t.error_hidden_prefix),
        escape(message)
    )
}

/// ` aria-describedby="..."` and ` aria-invalid="true"` as needed.
fn aria(described_by: &[String], invalid: bool) -> String {
    let mut out = String::new();
    if !described_by.is_empty() {
        out.push_str(&format!(
            " aria-describedby=\"{}\"",
            escape(&described_by.join(" "))
        ));
    }
    if invalid {
        out.push_str(" aria-invalid=\"true\"");
    }
    out
}

enum Control {
    /// A work email address. A text input rather than `type=email`, whose browser check
    /// refuses internationalised domains the portal accepts; `inputmode` still brings up the
    /// email keyboard.
    Email,
    /// One line, with its `autocomplete` token.
    Line(&'static str),
    Area {
        max: usize,
        rows: u8,
    },
}

/// A labelled form field with its hint and error.
struct Field<'a> {
    /// The form field's name, also the element's id.
    name: &'static str,
    label: &'a str,
    hint: Option<String>,
    required: bool,
    value: &'a str,
    control: Control,
}

impl Field<'_> {
    fn html(&self, t: &Text, error: Option<&str>) -> String {
        let id = escape(self.name);
        let mut described_by = Vec::new();
        let mut out = format!(
            "<div class=\"field{}\">\n",
            if error.is_some() { " field-error" } else { "" }
        );
        let marker = if self.required {
            t.required
        } else {
            t.optional
        };
        out.push_str(&format!(
            "<label for=\"{id}\">{} <span class=\"req\">{}</span></label>\n",
            escape(self.label),
            escape(marker)
        ));
        if let Some(hint) = &self.hint {
            out.push_str(&format!(
                "<p class=\"hint\" id=\"{id}-hint\">{}</p>\n",
                escape(hint)
            ));
            described_by.push(format!("{}-hint", self.name));
        }
        if let Some(message) = error {
            out.push_str(&error_message(t, self.name, message));
            described_by.push(format!("{}-error", self.name));
        }
        let attributes = format!(
            "class=\"input\" id=\"{id}\" name=\"{id}\"{}{}",
            if self.required { " required" } else { "" },
            aria(&described_by, error.is_some())
        );
        let value = escape(self.value);
        out.push_str(&match self.control {
            Control::Email => format!(
                "<input {attributes} type=\"text\" inputmode=\"email\" autocomplete=\"email\" \
spellcheck=\"false\" autocapitalize=\"none\" maxlength=\"{EMAIL_MAX}\" value=\"{value}\">\n"
            ),
            Control::Line(autocomplete) => format!(
                "<input {attributes} type=\"text\" autocomplete=\"{autocomplete}\" value=\"{value}\">\n"
            ),
            // The newline after the start tag is dropped by HTML parsers, so a value that
            // starts with a line break keeps it.
            Control::Area { max, rows } => format!(
                "<textarea {attributes} rows=\"{rows}\" maxlength=\"{max}\">\n{value}</textarea>\n"
            ),
        });
        out.push_str("</div>\n");
        out
    }
}

/// The terms of use and the box to accept them, when the operator configured terms.
fn terms(t: &Text, brand: &Brand, checked: bool, error: Option<&str>) -> Option<String> {
    let branding = brand.branding;
    // Shown whenever terms are configured, as that is when the sign-up requires accepting them.
    if branding.terms_text.is_none() && branding.terms_url.is_none() {
        return None;
    }
    let text = branding.terms_text.as_deref();
    let url = branding
        .terms_url
        .as_ref()
        .and_then(|url| web_link(url.as_str()));
    let mut out = format!(
        "<div class=\"field{}\">\n<div class=\"terms\">\n<h2>{}</h2>\n",
        if error.is_some() { " field-error" } else { "" },
        escape(t.terms_heading)
    );
    if let Some(text) = text {
        out.push_str(&paragraphs(text));
    }
    if let Some(url) = url {
        out.push_str(&format!(
            "<p><a href=\"{}\" target=\"_blank\" rel=\"noopener noreferrer\">{} {}</a></p>\n",
            escape(url),
            escape(t.terms_link),
            escape(t.new_tab)
        ));
    }
    out.push_str("</div>\n");
    let mut described_by = Vec::new();
    if let Some(message) = error {
        out.push_str(&error_message(t, "accept_terms", message));
        described_by.push("accept_terms-error".to_string());
    }
    out.push_str(&format!(
        "<div class=\"check\">\n\
<input type=\"checkbox\" id=\"accept_terms\" name=\"accept_terms\" value=\"yes\"{checked} required{aria}>\n\
<label for=\"accept_terms\">{label} <span class=\"req\">{required}</span></label>\n\
</div>\n</div>\n",
        checked = if checked { " checked" } else { "" },
        aria = aria(&described_by, error.is_some()),
        label = escape(t.label_accept_terms),
        required = escape(t.required),
    ));
    Some(out)
}

/// Operator-written text: blank lines separate paragraphs, single line breaks are kept.
fn paragraphs(text: &str) -> String {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|paragraph| !paragraph.is_empty())
        .map(|paragraph| format!("<p>{}</p>\n", escape(paragraph).replace('\n', "<br>")))
        .collect()
}

/// "Step 2 of 2" and who approved step 1, for multi-step approvals.
fn stage_lines(t: &Text, summary: &RequestSummary) -> String {
    let mut out = String::new();
    if summary.stages > 1 {
        let stage = summary.stage.to_string();
        let stages = summary.stages.to_string();
        out.push_str(&para(&fill(
            t.stage,
            &[("stage", &stage), ("stages", &stages)],
        )));
    }
    if let Some(by) = summary.stage_one_approved_by {
        out.push_str(&para(&fill(t.stage_one_by, &[("by", by)])));
    }
    out
}

/// The request as a description list. Values are isolated (`dir="auto"`) so a name written
/// right to left, or one with direction overrides, can't reorder the text around it.
fn summary_list(t: &Text, summary: &RequestSummary) -> String {
    let name = full_name(summary);
    let rows = [
        (t.fact_name, name.as_str()),
        (t.fact_email, summary.email),
        (t.fact_organisation, summary.organisation),
        (
            t.fact_justification,
            summary
                .justification
                .filter(|text| !text.trim().is_empty())
                .unwrap_or(t.fact_no_justification),
        ),
        (t.fact_policy, summary.policy),
        (t.fact_submitted, summary.submitted),
        (t.fact_request_id, summary.request_id),
    ];
    let mut out = String::from("<dl class=\"summary\">\n");
    for (label, value) in rows {
        out.push_str(&format!(
            "<dt>{}</dt>\n<dd dir=\"auto\">{}</dd>\n",
            escape(label),
            escape(value)
        ));
    }
    out.push_str("</dl>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Branding;
    use crate::views::check::{
        assert_no_raw_hostile, assert_page, assert_same_structure, branding, hostile, inner, tags,
        Tag, HOSTILE_MARKUP, LANGS,
    };

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

    fn summary<'a>(v: &'a str, stage: u8, stages: u8) -> RequestSummary<'a> {
        RequestSummary {
            request_id: v,
            email: v,
            first_name: v,
            last_name: v,
            organisation: v,
            justification: Some(v),
            policy: v,
            submitted: v,
            stage,
            stages,
            stage_one_approved_by: (stage > 1).then_some(v),
        }
    }

    fn values(v: &str) -> FormValues {
        FormValues {
            email: v.to_string(),
            first_name: v.to_string(),
            last_name: v.to_string(),
            organisation: v.to_string(),
            justification: v.to_string(),
            accept_terms: true,
        }
    }

    fn all_errors(v: &str) -> FieldErrors {
        let mut errors = FieldErrors::default();
        for field in [
            "email",
            "first_name",
            "last_name",
            "organisation",
            "justification",
            "accept_terms",
        ] {
            errors.push(field, format!("{field}: {v}"));
        }
        errors
    }

    /// Every page the portal has, in every variant, with `i`'s values everywhere.
    fn all_pages(brand: &Brand, lang: Language, i: &Inputs) -> Vec<(String, String)> {
        let v = i.value.as_str();
        let mut pages = vec![
            (
                "signup_form".into(),
                signup_form(brand, lang, &FormValues::default(), &FieldErrors::default()),
            ),
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
            ("sign_in_required".into(), sign_in_required(brand, lang)),
        ];
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
            let hostile_pages = all_pages(
                &Brand {
                    branding: &hostile_org,
                    has_logo: true,
                },
                lang,
                &attacker(),
            );
            let benign_pages = all_pages(
                &Brand {
                    branding: &benign_org,
                    has_logo: true,
                },
                lang,
                &benign(),
            );
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
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
        let i = attacker();
        let html = confirm_email(
            &brand,
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
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
        for lang in LANGS {
            let html = signup_form(
                &brand,
                lang,
                &FormValues::default(),
                &FieldErrors::default(),
            );
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
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
        for lang in LANGS {
            let t = text(lang);
            let html = signup_form(
                &brand,
                lang,
                &FormValues::default(),
                &FieldErrors::default(),
            );
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
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
        let v = FormValues {
            email: "asa@example.com".into(),
            first_name: "Åsa".into(),
            last_name: "O'Neil".into(),
            organisation: "Fabrikam & Co".into(),
            justification: "\nProject X\nline two".into(),
            accept_terms: true,
        };
        for lang in LANGS {
            let mut errors = FieldErrors::default();
            for field in [
                "email",
                "first_name",
                "last_name",
                "organisation",
                "justification",
            ] {
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
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
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

        let clean = signup_form(
            &brand,
            Language::En,
            &FormValues::default(),
            &FieldErrors::default(),
        );
        assert!(!clean.contains("class=\"error-summary\""));
        assert_eq!(invalid(&clean), 0);
        assert!(!inner(&clean, "title")[0].starts_with("Error"));
    }

    #[test]
    fn an_error_for_a_field_not_on_the_page_is_still_shown() {
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
        let mut errors = FieldErrors::default();
        errors.push("accept_terms", "Accept the terms");
        let html = signup_form(&brand, Language::En, &FormValues::default(), &errors);
        assert!(html.contains("<li>Accept the terms</li>"));
        assert!(!html.contains("href=\"#accept_terms\""));
    }

    #[test]
    fn terms_appear_only_when_configured() {
        let none = branding("Contoso");
        let html = signup_form(
            &Brand {
                branding: &none,
                has_logo: false,
            },
            Language::En,
            &FormValues::default(),
            &FieldErrors::default(),
        );
        assert!(!html.contains("accept_terms"));

        let text_only = Branding {
            terms_text: Some(
                "First paragraph.\nSame paragraph.\r\n\r\nSecond <b>paragraph</b>.".into(),
            ),
            ..branding("Contoso")
        };
        let html = signup_form(
            &Brand {
                branding: &text_only,
                has_logo: false,
            },
            Language::Sv,
            &FormValues::default(),
            &FieldErrors::default(),
        );
        assert!(html.contains("<p>First paragraph.<br>Same paragraph.</p>\n<p>Second &lt;b&gt;paragraph&lt;/b&gt;.</p>"));
        assert!(html.contains("name=\"accept_terms\""));
        assert!(!html.contains("rel=\"noopener noreferrer\""));

        let url_only = Branding {
            terms_url: Some(url::Url::parse("https://example.com/terms?a=1&b=2").unwrap()),
            ..branding("Contoso")
        };
        let html = signup_form(
            &Brand {
                branding: &url_only,
                has_logo: false,
            },
            Language::En,
            &FormValues::default(),
            &FieldErrors::default(),
        );
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
        let html = signup_form(
            &Brand {
                branding: &unsafe_url,
                has_logo: false,
            },
            Language::En,
            &FormValues::default(),
            &FieldErrors::default(),
        );
        assert!(!html.contains("javascript:"));
        assert!(
            html.contains("name=\"accept_terms\""),
            "terms are still required"
        );
    }

    #[test]
    fn the_confirmation_page_posts_the_token_and_its_switch_keeps_it() {
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
        let html = confirm_email(
            &brand,
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
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
        let s = RequestSummary {
            request_id: "r-1",
            email: "asa@fabrikam.example",
            first_name: "Åsa",
            last_name: "Berg",
            organisation: "Fabrikam",
            justification: None,
            policy: "fabrikam.example",
            submitted: "2025-05-01 10:00",
            stage: 1,
            stages: 1,
            stage_one_approved_by: None,
        };
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
    fn the_recorded_decision_says_what_happens_next() {
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
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
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
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
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
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
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
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
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
        assert!(too_many_requests(&brand, Language::En, 0).contains("Try again in 1 minute."));
        assert!(too_many_requests(&brand, Language::En, 15).contains("Try again in 15 minutes."));
        assert!(too_many_requests(&brand, Language::Sv, 1).contains("Försök igen om 1 minut."));
        assert!(unavailable(&brand, Language::En)
            .contains("Nothing has been lost. Try again in a few minutes."));
    }

    #[test]
    fn the_invitation_link_is_only_linked_when_it_is_a_web_address() {
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
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
        let html = request_closed(
            &Brand {
                branding: &b,
                has_logo: true,
            },
            Language::En,
        );
        assert!(html.contains("<img src=\"/api/signup/logo\" alt=\"Contoso &amp; Co logo\">"));
        assert!(html.contains(":root{--accent:#ffeb3b;--on-accent:#000000}"));
        assert!(html.contains("contact your contact person at Contoso &amp; Co."));
        let sv = request_closed(
            &Brand {
                branding: &b,
                has_logo: true,
            },
            Language::Sv,
        );
        assert!(sv.contains("alt=\"Logotyp för Contoso &amp; Co\""));
        let without = request_closed(
            &Brand {
                branding: &b,
                has_logo: false,
            },
            Language::En,
        );
        assert!(!without.contains("<img"));
        b.accent_color = "#0f6cbd".into();
        let html = unavailable(
            &Brand {
                branding: &b,
                has_logo: false,
            },
            Language::En,
        );
        assert!(html.contains(":root{--accent:#0f6cbd;--on-accent:#ffffff}"));
    }

    #[test]
    fn pages_load_nothing_from_elsewhere() {
        let b = with_terms("Contoso", "Be nice.");
        let brand = Brand {
            branding: &b,
            has_logo: true,
        };
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
        let b = branding("Contoso");
        let brand = Brand {
            branding: &b,
            has_logo: false,
        };
        let sv = Language::Sv;
        let h1 = |html: String| inner(&html, "h1").remove(0);
        assert_eq!(
            h1(signup_form(
                &brand,
                sv,
                &FormValues::default(),
                &FieldErrors::default()
            )),
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
        let form = signup_form(&brand, sv, &FormValues::default(), &FieldErrors::default());
        assert!(form.contains("<a href=\"?lang=en\" lang=\"en\" hreflang=\"en\">English</a>"));
        assert!(form.contains("<nav aria-label=\"Språk\">"));
        assert!(form.contains(">Fortsätt</button>"));
        let en = signup_form(
            &brand,
            Language::En,
            &FormValues::default(),
            &FieldErrors::default(),
        );
        assert!(en.contains("<a href=\"?lang=sv\" lang=\"sv\" hreflang=\"sv\">Svenska</a>"));
    }

    #[test]
    fn field_messages_are_specific_and_in_the_page_language() {
        use FieldProblem::*;
        let en = Language::En;
        let sv = Language::Sv;
        assert_eq!(
            field_message(en, "email", &Required),
            "Enter your work email address"
        );
        assert_eq!(
            field_message(sv, "first_name", &Required),
            "Ange ditt förnamn"
        );
        assert_eq!(
            field_message(en, "email", &InvalidEmail),
            "Enter a valid work email address, like name@company.com"
        );
        assert_eq!(
            field_message(en, "justification", &TooLong { max: 1000 }),
            "Justification must be 1,000 characters or fewer"
        );
        assert_eq!(
            field_message(sv, "organisation", &TooLong { max: 200 }),
            "Företagsnamnet får vara högst 200 tecken"
        );
        assert!(field_message(sv, "last_name", &ControlCharacters)
            .starts_with("Efternamnet innehåller dolda tecken"));
        assert_eq!(
            field_message(en, "accept_terms", &Required),
            field_message(en, "accept_terms", &TermsNotAccepted)
        );
        assert_eq!(
            field_message(sv, "accept_terms", &TermsNotAccepted),
            "Du måste godkänna användarvillkoren för att fortsätta"
        );
        assert_eq!(
            field_message(en, "something", &Required),
            "This field is required"
        );
        // Every field and problem has a message in both languages, and they differ.
        for field in [
            "email",
            "first_name",
            "last_name",
            "organisation",
            "justification",
            "reason",
            "accept_terms",
            "x",
        ] {
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
