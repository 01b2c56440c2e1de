//! Pages and mails, in Swedish and English.
//!
//! Everything here is a pure function from values to a string: no I/O, no clock, no settings
//! lookups. The functions that answer requests decide *what* to show; this module decides how
//! it reads and looks, and keeps requester input harmless on the way out:
//! - In HTML, every value that is not one of our own constants goes through [`escape`], in text
//!   and in attributes alike.
//! - In text mails, requester values are placed as typed but through [`one_line`], so a value
//!   can't start a line of its own (a fake link, a forged "From:" block).
//! - Mail subjects carry only the organisation's name, which an administrator sets, and that
//!   through [`one_line`] too.
//!
//! Pages carry no script and load nothing from elsewhere; their CSS is embedded, and they work
//! without JavaScript. They aim at WCAG 2.1 AA: one `<h1>`, landmarks, labels tied to inputs,
//! errors next to their fields and summarised at the top, text colours that keep their
//! contrast whatever accent colour the organisation picks ([`text_on`]).
//!
//! Layout: `text` holds every sentence in both languages side by side, `layout` the page frame
//! and colours, `pages` the pages, `mails` the mails.

mod layout;
mod mails;
mod pages;
mod text;

#[cfg(test)]
mod check;

use crate::settings::Branding;

pub use layout::text_on;
pub use mails::{
    approver_mail, denied_mail, expired_mail, invitation_mail, redeem_reminder_mail,
    removal_warning_mail, sign_in_needed_mail, verification_mail,
};
pub use pages::{
    access_being_set_up, access_ready, already_decided, awaiting_approval, cannot_decide_own,
    check_inbox, confirm_email, decision_form, decision_recorded, error_page, field_message,
    link_problem, request_closed, sign_in_needed, sign_in_problem, sign_in_required, signup_form,
    signup_form_with, too_many_requests, unavailable,
};

/// The longest justification the form accepts.
pub const JUSTIFICATION_MAX: usize = 1000;
/// The longest reason an approver can give for a denial.
pub const REASON_MAX: usize = 500;
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
    pub accept_terms: bool,
}

/// Problems with the sign-up form, per field (`email`, `first_name`, `last_name`,
/// `organisation`, `justification`, `accept_terms`), each message in the page's language.
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
}

/// `s` safe to place in HTML text or in a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `s` as one line of a text mail: every control character (CR, LF, tab, NEL...), the Unicode
/// line and paragraph separators and the bidirectional overrides become spaces, so the value
/// can neither start a line of its own nor visually reorder the text around it.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if breaks_text(c) { ' ' } else { c })
        .collect()
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

fn breaks_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(escape("Åsa Öberg"), "Åsa Öberg");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn one_line_leaves_nothing_that_breaks_a_line() {
        let hostile = "a\r\nb\nc\rd\te\u{85}f\u{2028}g\u{2029}h\u{202e}i\u{0}j\u{7f}k\u{2066}l";
        let line = one_line(hostile);
        assert_eq!(line, "a  b c d e f g h i j k l");
        assert_eq!(line.lines().count(), 1);
        assert_eq!(one_line("Åsa O'Brien <x>"), "Åsa O'Brien <x>");
    }

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
