//! The outbox: every mail the portal sends, as a record before it is a message.
//!
//! A mail is recorded in Table Storage together with the state change that causes it (the
//! request moving to "waiting for approval" and the approvers' mails are one entity-group
//! transaction), and sent afterwards: by the instance that made the change, right after it
//! answered, or by the timer's sweep when that instance died or the mail server failed. So the
//! partner's answer never waits for SMTP, a crash never loses a mail, and a lost race never
//! sends one (the losing transaction records nothing).
//!
//! This module is the pure part: what a recorded mail is ([`Letter`]), how its delivery
//! moves ([`Delivery`]: sending → delivered, or pending with backoff, or dead after
//! [`MAX_ATTEMPTS`] or a permanent refusal), and how the link it carries is filled in at send
//! time. Links are *not* stored: a mail row holds a [`LinkRecipe`] (the token's claims) and a
//! random placeholder where the link goes; the token is signed when the mail is sent. Whoever
//! can read the table therefore finds no link that decides anything, and a row that someone
//! else wrote cannot make the portal mint one, because every row is signed with the portal's
//! key (see `store::outbox`).

use rand::RngCore;
use time::{Duration, OffsetDateTime};

use super::token::{TokenClaims, TokenPurpose};

/// Attempts before a mail that keeps failing temporarily becomes dead (about six hours of
/// backoff: 1, 2, 4 ... minutes, capped at [`MAX_BACKOFF`]).
pub const MAX_ATTEMPTS: u32 = 10;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::hours(2);
/// How long a sender owns a mail it is sending, given the mail client's timeout: longer than
/// any exchange with the server can last plus the write that records it, so a sweep never
/// sends a mail its sender is still sending; short enough that a mail whose sender died goes
/// out at the next sweep.
pub fn sending_lease(smtp_timeout: std::time::Duration) -> Duration {
    Duration::seconds(2 * smtp_timeout.as_secs() as i64 + 5)
}

/// What a mail is for: for the admin's list and the logs, never for deciding anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MailKind {
    Verification,
    ApproverRequest,
    ApproverReminder,
    ApproverEscalation,
    Invitation,
    Denied,
    Expired,
    RedeemReminder,
    RemovalWarning,
    /// The address's policy asks for a sign-in, not a mailed link.
    SignInNeeded,
    /// A sponsor is asked whether a guest keeps access (a personal link).
    ReviewRequest,
    /// ... and reminded once.
    ReviewReminder,
    /// The sponsors hear what no answer did (the policy's default).
    ReviewDefault,
    /// The sponsors hear that a guest is about to be disabled, and why.
    SponsorNotice,
}

impl MailKind {
    pub const ALL: [MailKind; 14] = [
        MailKind::Verification,
        MailKind::ApproverRequest,
        MailKind::ApproverReminder,
        MailKind::ApproverEscalation,
        MailKind::Invitation,
        MailKind::Denied,
        MailKind::Expired,
        MailKind::RedeemReminder,
        MailKind::RemovalWarning,
        MailKind::SignInNeeded,
        MailKind::ReviewRequest,
        MailKind::ReviewReminder,
        MailKind::ReviewDefault,
        MailKind::SponsorNotice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Verification => "verification",
            MailKind::ApproverRequest => "approver_request",
            MailKind::ApproverReminder => "approver_reminder",
            MailKind::ApproverEscalation => "approver_escalation",
            MailKind::Invitation => "invitation",
            MailKind::Denied => "denied",
            MailKind::Expired => "expired",
            MailKind::RedeemReminder => "redeem_reminder",
            MailKind::RemovalWarning => "removal_warning",
            MailKind::SignInNeeded => "sign_in_needed",
            MailKind::ReviewRequest => "review_request",
            MailKind::ReviewReminder => "review_reminder",
            MailKind::ReviewDefault => "review_default",
            MailKind::SponsorNotice => "sponsor_notice",
        }
    }
}

impl std::str::FromStr for MailKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MailKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown mail kind {s:?}"))
    }
}

/// Where a mail's delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MailState {
    /// A sender owns it until the lease ends (see [`SENDING_LEASE`]).
    Sending,
    /// Waiting for its next attempt.
    Pending,
    /// The mail server accepted it.
    Delivered,
    /// Refused for good, out of attempts, or not ours: an admin looks (`handler mail list
    /// --failed`) and may retry it.
    Dead,
}

impl MailState {
    pub const ALL: [MailState; 4] = [
        MailState::Sending,
        MailState::Pending,
        MailState::Delivered,
        MailState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailState::Sending => "sending",
            MailState::Pending => "pending",
            MailState::Delivered => "delivered",
            MailState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for MailState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MailState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown mail state {s:?}"))
    }
}

/// The link a mail carries, as the claims of the token to sign when it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRecipe {
    pub purpose: TokenPurpose,
    pub request_id: String,
    pub subject: String,
    pub stage: u8,
    pub expires_at: i64,
    /// Fixed when the token must name something (a verification link names its submission);
    /// otherwise a fresh random nonce is drawn when the link is made.
    pub nonce: Option<[u8; 16]>,
    /// The text in the rendered mail that the link replaces: random, so no value a requester
    /// typed into the mail can stand for it.
    pub placeholder: String,
}

impl LinkRecipe {
    pub fn new(claims: &TokenClaims, fixed_nonce: bool) -> Self {
        LinkRecipe {
            purpose: claims.purpose,
            request_id: claims.request_id.clone(),
            subject: claims.subject.clone(),
            stage: claims.stage,
            expires_at: claims.expires_at,
            nonce: fixed_nonce.then_some(claims.nonce),
            placeholder: new_placeholder(),
        }
    }

    /// The claims to sign, with `fresh` as the nonce unless one is fixed.
    pub fn claims(&self, fresh: [u8; 16]) -> TokenClaims {
        TokenClaims {
            purpose: self.purpose,
            request_id: self.request_id.clone(),
            subject: self.subject.clone(),
            stage: self.stage,
            expires_at: self.expires_at,
            nonce: self.nonce.unwrap_or(fresh),
        }
    }

    /// One line for the row: `purpose|request|subject|stage|expires|nonce-hex or -|placeholder`.
    /// None of the fields can hold `|` (ids, identity keys, numbers, hex, a URL of ours).
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}",
            match self.purpose {
                TokenPurpose::Verify => "verify",
                TokenPurpose::Decide => "decide",
                TokenPurpose::Review => "review",
            },
            self.request_id,
            self.subject,
            self.stage,
            self.expires_at,
            self.nonce.map(hex::encode).unwrap_or_else(|| "-".into()),
            self.placeholder
        )
    }

    pub fn decode(text: &str) -> Result<LinkRecipe, String> {
        let parts: Vec<&str> = text.split('|').collect();
        let [purpose, request_id, subject, stage, expires_at, nonce, placeholder] = parts[..]
        else {
            return Err("the link recipe does not have seven fields".into());
        };
        let purpose = match purpose {
            "verify" => TokenPurpose::Verify,
            "decide" => TokenPurpose::Decide,
            "review" => TokenPurpose::Review,
            other => return Err(format!("unknown link purpose {other:?}")),
        };
        let nonce = match nonce {
            "-" => None,
            hex_text => {
                let bytes = hex::decode(hex_text).map_err(|_| "the nonce is not hex")?;
                Some(<[u8; 16]>::try_from(bytes).map_err(|_| "the nonce is not 16 bytes")?)
            }
        };
        Ok(LinkRecipe {
            purpose,
            request_id: request_id.to_string(),
            subject: subject.to_string(),
            stage: stage.parse().map_err(|_| "the stage is not a number")?,
            expires_at: expires_at
                .parse()
                .map_err(|_| "the expiry is not a number")?,
            nonce,
            placeholder: placeholder.to_string(),
        })
    }
}

/// A link placeholder: a well-formed https URL (so the views render it as a link) on a
/// reserved name (`.invalid`, RFC 2606) with 128 random bits.
pub fn new_placeholder() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("https://link.invalid/{}", hex::encode(bytes))
}

/// A mail as recorded: rendered, addressed, and (if it carries one) with its link to fill in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    /// Unique across the portal: `<kind>-<32 hex>`.
    pub id: String,
    pub kind: MailKind,
    /// The canonical address, as the partner typed it.
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub link: Option<LinkRecipe>,
    /// The row (in the mail's partition) that learns when the mail was delivered: the cause
    /// of the mail, when what happens next depends on the mail having arrived.
    pub receipt: Option<String>,
}

impl Letter {
    pub fn new(kind: MailKind, to: &str, subject: String, text: String, html: String) -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Letter {
            id: format!("{}-{}", kind.as_str(), hex::encode(bytes)),
            kind,
            to: to.to_string(),
            subject,
            text,
            html,
            link: None,
            receipt: None,
        }
    }

    /// The same letter under an id derived from something unique (so recording it twice
    /// fails instead of recording two mails).
    pub fn with_id(mut self, unique: &str) -> Self {
        self.id = format!("{}-{unique}", self.kind.as_str());
        self
    }

    pub fn with_link(mut self, recipe: LinkRecipe) -> Self {
        self.link = Some(recipe);
        self
    }

    pub fn with_receipt(mut self, row_key: &str) -> Self {
        self.receipt = Some(row_key.to_string());
        self
    }

    /// What the signature covers, as one canonical text: where the row is, and everything
    /// that decides what is sent to whom. Delivery bookkeeping (state, attempts) is outside
    /// it: the portal changes that.
    pub fn signed_content(&self, place: &str) -> String {
        let link = self
            .link
            .as_ref()
            .map(LinkRecipe::encode)
            .unwrap_or_default();
        serde_json::to_string(&[
            place,
            &self.id,
            self.kind.as_str(),
            &self.to,
            &self.subject,
            &self.text,
            &self.html,
            &link,
            self.receipt.as_deref().unwrap_or(""),
        ])
        .expect("strings serialize")
    }

    /// Subject, text and HTML with the link in place (HTML-escaped in the HTML part).
    pub fn filled(&self, link: Option<&str>) -> (String, String, String) {
        match (&self.link, link) {
            (Some(recipe), Some(link)) => (
                self.subject.clone(),
                self.text.replace(&recipe.placeholder, link),
                self.html
                    .replace(&recipe.placeholder, &escape_attribute(link)),
            ),
            _ => (self.subject.clone(), self.text.clone(), self.html.clone()),
        }
    }
}

fn escape_attribute(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A mail's delivery bookkeeping.
///
/// Two clocks meet here. When a pending mail is due is a matter of the run's time (the timer
/// acts on the host's "now"); how long a sender owns a mail it is sending is a matter of the
/// real clock of the machines involved, because it protects a send that is in flight right
/// now (as the timer's own lease does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub state: MailState,
    pub attempts: u32,
    pub created_at: OffsetDateTime,
    /// When a pending mail's next attempt is due (the run's time).
    pub due_at: OffsetDateTime,
    /// Until when a sending mail belongs to its sender (the real clock).
    pub lease_until: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
    /// The last failure, with addresses masked.
    pub last_error: Option<String>,
}

/// What happened to one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    Accepted,
    /// Connection failures, timeouts, 4xx: try again later.
    Deferred(String),
    /// 5xx and the like: retrying will not help.
    Refused(String),
}

impl Delivery {
    /// A mail its recorder will send at once: owned by that sender for `lease` of real time.
    pub fn new(now: OffsetDateTime, real_now: OffsetDateTime, lease: Duration) -> Self {
        Delivery {
            state: MailState::Sending,
            attempts: 0,
            created_at: now,
            due_at: now,
            lease_until: real_now + lease,
            delivered_at: None,
            last_error: None,
        }
    }

    /// Whether a sweep should take it: pending and due by the run's time, or sending with its
    /// lease over by the real clock (its sender died).
    pub fn is_due(&self, now: OffsetDateTime, real_now: OffsetDateTime) -> bool {
        match self.state {
            MailState::Pending => self.due_at <= now,
            MailState::Sending => self.lease_until <= real_now,
            MailState::Delivered | MailState::Dead => false,
        }
    }

    /// A sender takes the mail for itself (written with compare-and-swap, so of two sweeps
    /// only one sends).
    pub fn take(&mut self, real_now: OffsetDateTime, lease: Duration) {
        self.state = MailState::Sending;
        self.lease_until = real_now + lease;
    }

    /// Records an attempt's result at the run's time `now`.
    pub fn record(&mut self, attempt: Attempt, now: OffsetDateTime) {
        self.attempts += 1;
        self.due_at = now;
        match attempt {
            Attempt::Accepted => {
                self.state = MailState::Delivered;
                self.delivered_at = Some(now);
            }
            Attempt::Deferred(why) if self.attempts < MAX_ATTEMPTS => {
                self.state = MailState::Pending;
                self.due_at = now + backoff(self.attempts);
                self.last_error = Some(why);
            }
            Attempt::Deferred(why) => {
                self.state = MailState::Dead;
                self.last_error = Some(format!("gave up after {} attempts: {why}", self.attempts));
            }
            Attempt::Refused(why) => {
                self.state = MailState::Dead;
                self.last_error = Some(why);
            }
        }
    }

    /// A mail that is not ours (its seal does not verify): dead, never sent.
    pub fn reject(&mut self, why: &str, now: OffsetDateTime) {
        self.state = MailState::Dead;
        self.due_at = now;
        self.last_error = Some(why.to_string());
    }

    /// An admin asks for another round: due now, with a fresh set of attempts.
    pub fn retry(&mut self, now: OffsetDateTime) -> bool {
        if self.state != MailState::Dead {
            return false;
        }
        self.state = MailState::Pending;
        self.attempts = 0;
        self.due_at = now;
        true
    }
}

/// The wait after `attempts` failed attempts: 1, 2, 4 ... minutes, at most [`MAX_BACKOFF`].
pub fn backoff(attempts: u32) -> Duration {
    let minutes = 1i64 << attempts.saturating_sub(1).min(16);
    Duration::minutes(minutes).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn recipe() -> LinkRecipe {
        LinkRecipe::new(
            &TokenClaims {
                purpose: TokenPurpose::Decide,
                request_id: "abc123".into(),
                subject: "boss@contoso.com".into(),
                stage: 2,
                expires_at: 1_800_000_000,
                nonce: [7; 16],
            },
            false,
        )
    }

    #[test]
    fn link_recipes_survive_their_row() {
        let r = recipe();
        assert_eq!(LinkRecipe::decode(&r.encode()).unwrap(), r);
        let fixed = LinkRecipe {
            nonce: Some([9; 16]),
            ..r
        };
        assert_eq!(LinkRecipe::decode(&fixed.encode()).unwrap(), fixed);
        assert_eq!(fixed.claims([1; 16]).nonce, [9; 16], "a fixed nonce stays");
        assert_eq!(recipe().claims([1; 16]).nonce, [1; 16], "otherwise fresh");
        for bad in [
            "",
            "verify|a",
            "sign|a|b|1|2|-|p",
            "verify|a|b|x|2|-|p",
            "verify|a|b|1|2|zz|p",
        ] {
            assert!(LinkRecipe::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_link_replaces_only_its_own_placeholder() {
        let r = recipe();
        let p = r.placeholder.clone();
        let letter = Letter::new(
            MailKind::ApproverRequest,
            "boss@contoso.com",
            "Subject".into(),
            format!("Open\n{p}\n"),
            format!("<a href=\"{p}\">{p}</a> https://link.invalid/typed-by-someone"),
        )
        .with_link(r);
        let (_, text, html) = letter.filled(Some("https://portal.example/api/approve?token=a&b"));
        assert_eq!(text, "Open\nhttps://portal.example/api/approve?token=a&b\n");
        assert!(html.contains("href=\"https://portal.example/api/approve?token=a&amp;b\""));
        assert!(html.contains("https://link.invalid/typed-by-someone"));
        assert!(!html.contains(&p));
        assert_ne!(new_placeholder(), new_placeholder());
    }

    const LEASE: Duration = Duration::seconds(35);

    #[test]
    fn delivery_retries_with_backoff_then_dies() {
        let real = NOW;
        let mut d = Delivery::new(NOW, real, LEASE);
        assert_eq!(d.state, MailState::Sending);
        assert!(
            !d.is_due(NOW + Duration::days(30), real),
            "its sender owns it"
        );
        assert!(
            d.is_due(NOW, real + LEASE),
            "until the lease ends on the real clock"
        );
        let mut at = NOW;
        for n in 1..MAX_ATTEMPTS {
            d.record(Attempt::Deferred("451 try later".into()), at);
            assert_eq!(d.state, MailState::Pending, "attempt {n}");
            assert_eq!(d.due_at, at + backoff(n));
            assert!(!d.is_due(at, real + Duration::days(1)));
            at = d.due_at;
            assert!(d.is_due(at, real), "due by the run's time");
            d.take(real, LEASE);
            assert!(!d.is_due(at + Duration::days(1), real));
        }
        d.record(Attempt::Deferred("451 try later".into()), at);
        assert_eq!(d.state, MailState::Dead);
        assert!(d
            .last_error
            .as_deref()
            .unwrap()
            .contains("gave up after 10 attempts"));
        assert!(
            !d.is_due(at + Duration::days(30), real + Duration::days(30)),
            "dead mail is not swept"
        );
        assert!(d.retry(at));
        assert_eq!((d.state, d.attempts), (MailState::Pending, 0));
        assert!(!d.retry(at), "only dead mail is retried by hand");
    }

    #[test]
    fn a_permanent_refusal_is_final_and_acceptance_is_recorded() {
        let mut d = Delivery::new(NOW, NOW, LEASE);
        d.record(Attempt::Refused("550 unknown user".into()), NOW);
        assert_eq!(d.state, MailState::Dead);
        assert_eq!(d.attempts, 1);
        let mut d = Delivery::new(NOW, NOW, LEASE);
        d.record(Attempt::Accepted, NOW);
        assert_eq!((d.state, d.delivered_at), (MailState::Delivered, Some(NOW)));
        assert!(!d.is_due(NOW + Duration::days(1), NOW + Duration::days(1)));
    }

    #[test]
    fn the_lease_outlasts_the_mail_clients_patience() {
        let timeout = std::time::Duration::from_secs(15);
        assert!(sending_lease(timeout) > Duration::seconds(30));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::minutes(1));
        assert_eq!(backoff(2), Duration::minutes(2));
        assert_eq!(backoff(5), Duration::minutes(16));
        assert_eq!(backoff(8), MAX_BACKOFF);
        assert_eq!(backoff(40), MAX_BACKOFF);
        let total: Duration = (1..MAX_ATTEMPTS).map(backoff).sum();
        assert!(
            total > Duration::hours(6) && total < Duration::hours(12),
            "{total}"
        );
    }

    #[test]
    fn kinds_and_states_round_trip() {
        for k in MailKind::ALL {
            assert_eq!(k.as_str().parse::<MailKind>().unwrap(), k);
        }
        for s in MailState::ALL {
            assert_eq!(s.as_str().parse::<MailState>().unwrap(), s);
        }
    }
}
