//! Pages and mails, in Swedish and English.
//!
//! Everything here is a pure function from values to a string: no I/O, no clock, no settings
//! lookups. The functions that answer requests decide *what* to show; this module decides how
//! it reads and looks, and keeps requester input harmless on the way out.
//!
//! Each page and each mail is a template in `templates/` (compiled into the binary by askama,
//! so a template that names a value the page doesn't have does not build), filled from a struct
//! that holds what it shows. The templates escape by construction ([`escapers`]):
//! - In `.html` templates (pages, the HTML part of mails) every `{{ value }}` is HTML-escaped,
//!   in text and in attributes alike; no template marks anything as safe.
//! - In `.txt` templates (the text part of mails) values are placed as typed but as one line
//!   ([`one_line`]), so a value can't start a line of its own (a fake link, a forged "From:"
//!   block).
//! - Mail subjects carry only the organisation's name, which an administrator sets, and that
//!   through [`one_line`] too.
//!
//! Pages carry no script and load nothing from elsewhere; their CSS is embedded, and they work
//! without JavaScript. They aim at WCAG 2.1 AA: one `<h1>`, landmarks, labels tied to inputs,
//! errors next to their fields and summarised at the top, text colours that keep their
//! contrast whatever accent colour the organisation picks ([`text_on`]).
//!
//! Layout: `text` holds every sentence in both languages side by side, `layout` the page frame
//! and colours, `pages` and `mails` what each page and mail shows, `escapers` the two escapers,
//! `templates/` the markup and the CSS.

mod escapers;
mod layout;
mod mails;
mod pages;
mod text;

#[cfg(test)]
mod check;

use crate::settings::Branding;
use text::{fill, Text};

pub use escapers::one_line;
pub use layout::text_on;
pub use mails::{
    approver_mail, denied_mail, expired_mail, invitation_mail, redeem_reminder_mail,
    removal_warning_mail, review_default_mail, review_mail, sign_in_needed_mail,
    sponsor_notice_mail, verification_mail,
};
pub use pages::{
    access_being_set_up, access_ready, already_decided, already_reviewed, awaiting_approval,
    cannot_decide_own, check_inbox, confirm_email, decision_form, decision_recorded, error_page,
    field_message, link_problem, request_closed, review_form, review_recorded, sign_in_needed,
    sign_in_problem, sign_in_required, signup_form, signup_form_with, too_many_requests,
    unavailable,
};

/// The longest justification the form accepts.
pub const JUSTIFICATION_MAX: usize = 1000;
/// The longest reason an approver can give for a denial.
pub const REASON_MAX: usize = 500;
/// The longest job title the form takes (Graph's `jobTitle` holds 128 characters).
pub const JOB_TITLE_MAX: usize = 128;
/// The longest email address (RFC 5321 with RFC 3696 erratum 1690).
pub const EMAIL_MAX: usize = 254;

/// Who the pages and mails speak for.
#[derive(Clone, Copy, Debug)]
pub struct Brand<'a> {
    pub branding: &'a Branding,
    /// An operator configured a logo, served at `/api/signup/logo`.
    pub has_logo: bool,
}

/// A rendered mail: both parts say the same; the subject never holds requester input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What the sign-up form holds, as typed, to show it again with errors.
#[derive(Default, Clone, Debug)]
pub struct FormValues {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub organisation: String,
    pub justification: String,
    pub job_title: String,
    pub accept_terms: bool,
}

/// What the sign-up form offers besides the mailed link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormOptions {
    /// A second button, "Continue with your work account" (partner sign-in is set up).
    pub sign_in: bool,
    /// An optional job title field (`PORTAL_ASK_JOB_TITLE`).
    pub job_title: bool,
}

/// Problems with the sign-up form, per field (`email`, `first_name`, `last_name`,
/// `organisation`, `job_title`, `justification`, `accept_terms`), each message in the page's
/// language.
#[derive(Default, Clone, Debug)]
pub struct FieldErrors(pub Vec<(&'static str, String)>);

impl FieldErrors {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first message for `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
    }

    pub fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push((field, message.into()));
    }
}

/// Why a field was not accepted; [`field_message`] says it in the page's language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldProblem {
    Required,
    TooLong {
        max: usize,
    },
    /// Generic on purpose: it says nothing about which domains are admitted.
    InvalidEmail,
    ControlCharacters,
    TermsNotAccepted,
}

/// Why a link from a mail can't be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkProblem {
    Invalid,
    Expired,
    AlreadyUsed,
}

/// Why a sign-in with a work account ended without a request (nothing was recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInProblem {
    /// The partner cancelled on the sign-in page.
    Cancelled,
    /// The sign-in was used already, is too old, or was started in another browser.
    Expired,
    /// The identity platform's answer did not pass the checks (signature, issuer, audience,
    /// expiry, nonce) or its token endpoint refused the code.
    NotVerified,
    /// The account's tenant vouches for no address (no `email`, or its domain unverified).
    NoVerifiedAddress,
    /// Signed in as one address, asked for another.
    WrongAddress { signed_in: String, typed: String },
    /// The policy asks for multi-factor authentication and the sign-in showed none.
    MfaRequired,
}

/// Client errors a browser can end up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400
    BadRequest,
    /// 404
    NotFound,
    /// 413
    TooLarge,
    /// 415
    UnsupportedType,
}

/// What the partner confirms on the page the verification link opens: the details of the
/// submission that link was sent for.
#[derive(Clone, Copy, Debug)]
pub struct Confirming<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    pub organisation: &'a str,
}

/// What an approver decides on. All of it but `stage`/`stages` is shown escaped.
#[derive(Clone, Copy, Debug)]
pub struct RequestSummary<'a> {
    pub request_id: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub organisation: &'a str,
    /// Where the form asks for one, and it was filled in.
    pub job_title: Option<&'a str>,
    pub justification: Option<&'a str>,
    /// The policy's key or domain.
    pub policy: &'a str,
    /// When the request was submitted, formatted.
    pub submitted: &'a str,
    /// The approval step this summary is for, from 1.
    pub stage: u8,
    pub stages: u8,
    pub stage_one_approved_by: Option<&'a str>,
}

/// Why an approver is mailed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApproverMailKind {
    Request,
    Reminder,
    Escalation,
}

/// Why the cleanup is about to remove a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalReason {
    AccessPeriodOver,
    Inactive,
    /// An access review ended the access.
    Review,
    /// The invitation was not accepted (the sponsors' notice; the guest gets its reminder).
    Unredeemed,
}

/// A guest as its sponsors see it, on the review page and in their mails. Everything but the
/// dates is shown escaped as typed.
#[derive(Clone, Copy, Debug)]
pub struct GuestSummary<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
    /// Empty on records from before organisations were kept.
    pub organisation: &'a str,
    /// The policy's key.
    pub policy: &'a str,
    /// When the guest was invited, formatted.
    pub invited: &'a str,
    /// When the access ends, formatted, if it does.
    pub access_ends: Option<&'a str>,
}

impl GuestSummary<'_> {
    pub(crate) fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }

    /// "Ada Lovelace from Partner AB has guest access ...", or without the organisation.
    pub(crate) fn introduced(&self, t: &Text, org: &str) -> String {
        let name = self.full_name();
        let name = if name.is_empty() { self.email } else { &name };
        if self.organisation.trim().is_empty() {
            text::fill_org(t.review_intro_no_organisation, org, &[("name", name)])
        } else {
            text::fill_org(
                t.review_intro,
                org,
                &[("name", name), ("organisation", self.organisation)],
            )
        }
    }

    /// The guest as labelled values.
    pub(crate) fn facts(&self, t: &Text) -> Vec<(&'static str, String)> {
        let mut facts = vec![
            (t.fact_name, self.full_name()),
            (t.fact_email, self.email.to_string()),
        ];
        if !self.organisation.trim().is_empty() {
            facts.push((t.fact_organisation, self.organisation.to_string()));
        }
        facts.push((t.fact_policy, self.policy.to_string()));
        facts.push((t.fact_guest_since, self.invited.to_string()));
        if let Some(end) = self.access_ends {
            facts.push((t.fact_access_ends, end.to_string()));
        }
        facts
    }
}

/// What a review asks: keep for `days` more days, answered by `deadline` (formatted), and
/// what happens without an answer.
#[derive(Clone, Copy, Debug)]
pub struct ReviewAsk<'a> {
    pub days: u32,
    pub deadline: &'a str,
    pub keep_without_answer: bool,
}

impl ReviewAsk<'_> {
    pub(crate) fn without_answer(&self, t: &Text) -> String {
        let days = self.days.to_string();
        if self.keep_without_answer {
            fill(
                t.review_default_keep,
                &[("date", self.deadline), ("days", &days)],
            )
        } else {
            fill(t.review_default_end, &[("date", self.deadline)])
        }
    }
}

/// `url` if it is an absolute `http(s)` address, the only kind a page or mail links to: an
/// escaped `javascript:` URL would still run when clicked. No whitespace either (the URL
/// parser would quietly drop a line break, and a text mail's link must be one line).
pub(crate) fn web_link(url: &str) -> Option<&str> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "https" | "http").then_some(url)
}

impl RequestSummary<'_> {
    /// The requester's first and last name.
    pub(crate) fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }

    /// "Step 2 of 2" and who approved step 1, for multi-step approvals; nothing for one step.
    pub(crate) fn steps(&self, t: &Text) -> Vec<String> {
        let mut steps = Vec::new();
        if self.stages > 1 {
            let (stage, stages) = (self.stage.to_string(), self.stages.to_string());
            steps.push(fill(t.stage, &[("stage", &stage), ("stages", &stages)]));
        }
        if let Some(by) = self.stage_one_approved_by {
            steps.push(fill(t.stage_one_by, &[("by", by)]));
        }
        steps
    }

    /// The request as labelled values, as the decision page and the approvers' mails show it.
    pub(crate) fn facts(&self, t: &Text) -> Vec<(&'static str, String)> {
        let justification = self
            .justification
            .filter(|text| !text.trim().is_empty())
            .unwrap_or(t.fact_no_justification);
        let name = self.full_name();
        let mut facts = vec![
            (t.fact_name, name.as_str()),
            (t.fact_email, self.email),
            (t.fact_organisation, self.organisation),
        ];
        if let Some(title) = self.job_title.filter(|title| !title.trim().is_empty()) {
            facts.push((t.fact_job_title, title));
        }
        facts.extend([
            (t.fact_justification, justification),
            (t.fact_policy, self.policy),
            (t.fact_submitted, self.submitted),
            (t.fact_request_id, self.request_id),
        ]);
        facts
            .into_iter()
            .map(|(label, value)| (label, value.to_string()))
            .collect()
    }
}

/// A template rendered into a String. Writing into a String can't fail and no value a
/// template shows has a `Display` that fails, so there is no error to hand on.
fn render(template: &impl askama::Template) -> String {
    template
        .render()
        .expect("rendering into a String does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_addresses_become_links() {
        assert_eq!(
            web_link("https://invitations.microsoft.com/redeem/?x=1&y=2"),
            Some("https://invitations.microsoft.com/redeem/?x=1&y=2")
        );
        assert_eq!(
            web_link("http://localhost:7071/api/x"),
            Some("http://localhost:7071/api/x")
        );
        for bad in [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,x",
            "/relative",
            "",
            "https://a.example/\r\nBcc: x",
            "https://a.example/ x",
        ] {
            assert_eq!(web_link(bad), None, "{bad}");
        }
    }

    #[test]
    fn field_errors_find_the_first_message_per_field() {
        let mut errors = FieldErrors::default();
        assert!(errors.is_empty());
        errors.push("email", "first");
        errors.push("email", String::from("second"));
        errors.push("last_name", "x");
        assert!(!errors.is_empty());
        assert_eq!(errors.get("email"), Some("first"));
        assert_eq!(errors.get("last_name"), Some("x"));
        assert_eq!(errors.get("first_name"), None);
    }
}
