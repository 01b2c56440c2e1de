//! Admission policies: who may sign up, how they prove who they are, and what happens then.
//!
//! A policy names a domain (optionally with its subdomains), one or more Entra ID tenants, or
//! both, and an action: `auto` invites a verified requester straight away, `approve` asks named
//! approvers first (one or two stages, with reminders and escalation), `deny` refuses. Its
//! `proof` says how the person proves who they are: `mailbox` (a mailed single-use link),
//! `sign_in` (signing in with their work account, see `core::sign_in`) or `either`; a tenant can
//! only be known from a sign-in, so a policy naming tenants asks for `sign_in`, and when it names
//! a domain too, both must hold. [`admit`] and [`admit_signed_in`] decide which policy applies;
//! they are pure and total so that the rule "who may become a guest" is tested here, in one
//! place, with tables.
//!
//! Admins write policies by hand (CLI, JSON/CSV import), so there are two shapes:
//! [`PolicyDraft`] is what was typed, raw strings and all, and [`PolicyDraft::validate`] turns it
//! into a [`Policy`] or into the complete list of problems, so a person fixes them in one pass.
//! A policy may also name sponsors and a review interval: the guests it admitted are then
//! reviewed by their sponsors every so many days (see `core::review`). An `auto` policy for a
//! consumer mail domain (gmail.com and the like, see `core::consumer_domains`) is refused
//! unless the admin allows it explicitly.
//!
//! A `Policy` read back from storage was validated when it was written; its `Deserialize`
//! re-checks every address and domain (they deserialize through their parsers) but not the
//! cross-field rules, which only `validate` applies.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::consumer_domains::covered_consumer_domain;
use super::email::{Domain, EmailAddress};

/// Where a guest lands after redeeming the invitation when a policy does not say.
pub const DEFAULT_REDIRECT_URL: &str = "https://myapplications.microsoft.com/";
/// Days a request waits for approval when a policy does not say.
pub const DEFAULT_APPROVAL_WINDOW_DAYS: u32 = 14;
const MAX_APPROVAL_WINDOW_DAYS: u32 = 90;
const MAX_ACCESS_DAYS: u32 = 3650;
/// Reviews come at most this often: a sponsor asked more than monthly-ish stops reading.
const MIN_REVIEW_DAYS: u32 = 7;
const MAX_REVIEW_DAYS: u32 = 3650;
const MAX_NOTE_CHARS: usize = 500;
const MAX_REDIRECT_URL_BYTES: usize = 2048;

/// What happens to a request from a matching address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// Invite as soon as the requester has proved the mailbox.
    Auto,
    /// Invite after the policy's approvers agree.
    Approve,
    /// Never invite (and say nothing different to the requester).
    Deny,
}

impl PolicyAction {
    /// The lower-case name used in settings, files and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::Auto => "auto",
            PolicyAction::Approve => "approve",
            PolicyAction::Deny => "deny",
        }
    }

    /// How strict the action is; on a tie between equally specific policies the stricter wins.
    fn strictness(self) -> u8 {
        match self {
            PolicyAction::Auto => 0,
            PolicyAction::Approve => 1,
            PolicyAction::Deny => 2,
        }
    }
}

impl fmt::Display for PolicyAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyAction {
    type Err = String;

    /// Accepts `auto`, `approve` or `deny`, in any ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(PolicyAction::Auto),
            "approve" => Ok(PolicyAction::Approve),
            "deny" => Ok(PolicyAction::Deny),
            _ => Err(format!("Choose one of auto, approve or deny (got '{s}').")),
        }
    }
}

/// How a partner proves who they are before the policy's action applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proof {
    /// A single-use link mailed to the address (the mailbox is proved).
    #[default]
    Mailbox,
    /// Signing in with the work account of the address's own Entra ID tenant.
    SignIn,
    /// Either of the two; the partner chooses on the form.
    Either,
}

impl Proof {
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::Mailbox => "mailbox",
            Proof::SignIn => "sign_in",
            Proof::Either => "either",
        }
    }

    /// Whether a mailed link is proof enough.
    pub fn accepts_mailbox(self) -> bool {
        matches!(self, Proof::Mailbox | Proof::Either)
    }

    /// Whether a sign-in is proof enough.
    pub fn accepts_sign_in(self) -> bool {
        matches!(self, Proof::SignIn | Proof::Either)
    }
}

impl fmt::Display for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proof {
    type Err = String;

    /// Accepts `mailbox`, `sign_in` (or `sign-in`) or `either`, in any ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mailbox" => Ok(Proof::Mailbox),
            "sign_in" | "sign-in" => Ok(Proof::SignIn),
            "either" => Ok(Proof::Either),
            _ => Err(format!(
                "Choose one of mailbox, sign_in or either (got '{s}')."
            )),
        }
    }
}

/// What happens to a guest when no sponsor answers an access review in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNoAnswer {
    /// Access ends: nobody vouches for the guest any more (the default).
    #[default]
    End,
    /// Access goes on for another review interval.
    Keep,
}

impl OnNoAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            OnNoAnswer::End => "end",
            OnNoAnswer::Keep => "keep",
        }
    }
}

impl fmt::Display for OnNoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OnNoAnswer {
    type Err = String;

    /// Accepts `end` or `keep`, in any ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "end" => Ok(OnNoAnswer::End),
            "keep" => Ok(OnNoAnswer::Keep),
            _ => Err(format!("Choose end or keep (got '{s}').")),
        }
    }
}

/// A language the portal's pages and the invitation can be in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Sv,
}

impl Language {
    /// The ISO 639-1 code: `en` or `sv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Sv => "sv",
        }
    }

    /// The supported language a browser prefers most, from an `Accept-Language` header
    /// (RFC 9110 section 12.5.4): `sv`, `sv-SE`, `sv-FI` are Swedish, `en` and `en-*` English.
    /// The highest `q` wins, earlier entries win ties, `q=0` means "not this one", entries with
    /// a malformed `q` are ignored, and `*` is ignored (the caller's default applies).
    pub fn from_accept_language(header: &str) -> Option<Language> {
        // Browsers send a handful of entries; a header with more is not worth more work.
        const MAX_ENTRIES: usize = 32;
        let mut best: Option<(u16, Language)> = None;
        for entry in header.split(',').take(MAX_ENTRIES) {
            let mut parts = entry.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let primary = tag.split('-').next().unwrap_or_default();
            let language = if primary.eq_ignore_ascii_case("sv") {
                Language::Sv
            } else if primary.eq_ignore_ascii_case("en") {
                Language::En
            } else {
                continue;
            };
            let mut quality = Some(1000);
            for parameter in parts {
                if let Some((name, value)) = parameter.split_once('=') {
                    if name.trim().eq_ignore_ascii_case("q") {
                        quality = parse_qvalue(value.trim());
                    }
                }
            }
            let Some(quality) = quality else { continue };
            if quality == 0 {
                continue;
            }
            if best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, language));
            }
        }
        best.map(|(_, language)| language)
    }
}

/// An RFC 9110 qvalue as thousandths: `0`, `0.5`, `0.875`, `1`, `1.000`; anything else is None.
fn parse_qvalue(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = String;

    /// Accepts `en` or `sv`, in any ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "en" => Ok(Language::En),
            "sv" => Ok(Language::Sv),
            _ => Err(format!("Choose en or sv as the language (got '{s}').")),
        }
    }
}

/// An app role the guest is assigned on redemption.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppRoleGrant {
    /// Object id of the resource's service principal.
    pub resource_id: Uuid,
    /// The app role's id; the nil UUID means default access.
    pub app_role_id: Uuid,
}

/// One stage of approval: who is asked, in order of stages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalStage {
    /// The policy field the stage comes from: `approvers` or `second_stage_approvers`.
    pub name: String,
    pub approvers: Vec<EmailAddress>,
}

/// A validated admission policy (see [`PolicyDraft::validate`] for the rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The email domain; `None` for a policy that names tenants only.
    pub domain: Option<Domain>,
    pub include_subdomains: bool,
    /// Entra ID tenant ids, sorted; empty means any (the domain decides).
    pub tenants: Vec<Uuid>,
    pub proof: Proof,
    /// Only a sign-in whose authentication methods include a second factor counts.
    pub require_mfa: bool,
    pub action: PolicyAction,
    /// Stage 1; non-empty exactly when `action` is `approve`.
    pub approvers: Vec<EmailAddress>,
    /// Optional stage 2 (for example security); empty means one stage.
    pub second_stage_approvers: Vec<EmailAddress>,
    /// Who is asked when the stage approvers have not decided after `escalate_after_days`.
    pub fallback_approvers: Vec<EmailAddress>,
    /// Group object ids the guest is added to.
    pub groups: Vec<Uuid>,
    pub app_roles: Vec<AppRoleGrant>,
    /// Where the guest lands after redemption: `https`, or `http` only for localhost.
    pub redirect_url: String,
    /// Invitation language; `None` uses the requester's.
    pub language: Option<Language>,
    /// Days of access before the guest is reviewed for removal; 0 means no expiry.
    pub access_days: u32,
    /// Days a request waits for decisions before it expires (1..=90).
    pub approval_window_days: u32,
    pub reminder_after_days: Option<u32>,
    pub escalate_after_days: Option<u32>,
    pub note: Option<String>,
    /// Named sponsors: they review the guests of an `auto` policy (beside the approvers who
    /// admitted them, on an `approve` policy) and hear before such a guest is disabled.
    #[serde(default)]
    pub sponsors: Vec<EmailAddress>,
    /// Days between access reviews by the guest's sponsors; 0: no reviews.
    #[serde(default)]
    pub review_days: u32,
    /// What happens when no sponsor answers a review in time.
    #[serde(default)]
    pub on_no_answer: OnNoAnswer,
    /// An `auto` policy for a consumer mail domain, on purpose (see `core::consumer_domains`).
    #[serde(default)]
    pub allow_consumer_domain: bool,
}

impl Policy {
    /// True when the address is within the policy's domain (or one of its subdomains if the
    /// policy includes them, label-wise, see [`Domain::is_within`]); a policy without a
    /// domain covers every address.
    pub fn covers_address(&self, address: &EmailAddress) -> bool {
        self.domain
            .as_ref()
            .is_none_or(|d| address.domain().is_within(d, self.include_subdomains))
    }

    /// Whether the policy applies to someone who has not signed in: it names no tenant (a
    /// tenant is only known from a sign-in) and covers the address.
    pub fn matches(&self, address: &EmailAddress) -> bool {
        self.tenants.is_empty() && self.covers_address(address)
    }

    /// Whether the policy applies to someone signed in from `tenant` with `address`: both the
    /// domain and the tenants it names must hold.
    pub fn matches_signed_in(&self, address: &EmailAddress, tenant: &Uuid) -> bool {
        (self.tenants.is_empty() || self.tenants.contains(tenant)) && self.covers_address(address)
    }

    /// The storage row key: `contoso.com` for the exact domain, `*.contoso.com` for the policy
    /// that also covers subdomains, `tenant:<id>[+<id>...]` for tenants (sorted), and
    /// `<domain key>+tenant:...` for both. `*`, `+` and `:` never occur in a canonical domain,
    /// so keys never collide.
    pub fn key(&self) -> String {
        let domain = self.domain.as_ref().map(|d| {
            if self.include_subdomains {
                format!("*.{d}")
            } else {
                d.to_string()
            }
        });
        let tenants = (!self.tenants.is_empty()).then(|| {
            let ids: Vec<String> = self.tenants.iter().map(Uuid::to_string).collect();
            format!("tenant:{}", ids.join("+"))
        });
        match (domain, tenants) {
            (Some(d), Some(t)) => format!("{d}+{t}"),
            (Some(d), None) => d,
            (None, Some(t)) => t,
            (None, None) => String::new(),
        }
    }

    /// The approval stages in order (stage 1 first); empty unless `action` is `approve`.
    /// A decision token's `stage` is the 1-based position in this list.
    pub fn stages(&self) -> Vec<ApprovalStage> {
        [
            ("approvers", &self.approvers),
            ("second_stage_approvers", &self.second_stage_approvers),
        ]
        .into_iter()
        .filter(|(_, approvers)| !approvers.is_empty())
        .map(|(name, approvers)| ApprovalStage {
            name: name.to_string(),
            approvers: approvers.clone(),
        })
        .collect()
    }

    /// How specific the policy is for someone it matches: naming the tenant beats naming only
    /// a domain (the tenant is a verified fact, the domain a claim the tenant backs); then a
    /// longer domain is more specific, and the exact-domain policy beats the with-subdomains
    /// one for the same domain.
    fn specificity(&self) -> (bool, usize, bool) {
        (
            !self.tenants.is_empty(),
            self.domain.as_ref().map_or(0, |d| d.as_str().len()),
            !self.include_subdomains,
        )
    }
}

/// The outcome of matching an address against all policies.
#[derive(Debug, PartialEq)]
pub enum Admission<'a> {
    /// The most specific allowing policy; its action is `auto` or `approve`.
    Admitted(&'a Policy),
    /// A `deny` policy matched (the most specific one is given).
    Denied(&'a Policy),
    NoMatch,
}

/// Decides which policy applies to an address whose owner has not signed in (policies naming
/// tenants never apply).
///
/// Deny wins over allow for the same address, even when the deny is for a parent domain and
/// the allow for a subdomain: a deny is an admin's explicit "never", and carving exceptions out
/// of it is a mistake waiting to happen. Among allowing policies the most specific wins (the
/// exact domain over the longest matching parent domain; for one domain the exact policy over
/// the with-subdomains one); a remaining tie goes to the stricter action (approve before auto),
/// then to the earlier policy in the slice. No allocation.
pub fn admit<'a>(policies: &'a [Policy], address: &EmailAddress) -> Admission<'a> {
    choose(policies.iter().filter(|p| p.matches(address)))
}

/// Decides which policy applies to someone signed in from `tenant` with `address`: as
/// [`admit`], with the policies naming that tenant too, which are more specific than any
/// policy naming only a domain.
pub fn admit_signed_in<'a>(
    policies: &'a [Policy],
    address: &EmailAddress,
    tenant: &Uuid,
) -> Admission<'a> {
    choose(
        policies
            .iter()
            .filter(|p| p.matches_signed_in(address, tenant)),
    )
}

/// [`admit_signed_in`] when the person signed in from a tenant, else [`admit`].
pub fn admit_as<'a>(
    policies: &'a [Policy],
    address: &EmailAddress,
    tenant: Option<&Uuid>,
) -> Admission<'a> {
    match tenant {
        Some(t) => admit_signed_in(policies, address, t),
        None => admit(policies, address),
    }
}

fn choose<'a>(matching: impl Iterator<Item = &'a Policy>) -> Admission<'a> {
    let mut denied: Option<&Policy> = None;
    let mut admitted: Option<&Policy> = None;
    for policy in matching {
        let slot = if policy.action == PolicyAction::Deny {
            &mut denied
        } else {
            &mut admitted
        };
        let better = match slot {
            None => true,
            Some(best) => {
                (policy.specificity(), policy.action.strictness())
                    > (best.specificity(), best.action.strictness())
            }
        };
        if better {
            *slot = Some(policy);
        }
    }
    match (denied, admitted) {
        (Some(policy), _) => Admission::Denied(policy),
        (None, Some(policy)) => Admission::Admitted(policy),
        (None, None) => Admission::NoMatch,
    }
}

/// An app role grant as typed: ids as text, `app_role_id` empty or absent for default access.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleGrantDraft {
    pub resource_id: String,
    #[serde(default)]
    pub app_role_id: Option<String>,
}

/// A policy as an admin typed it or a file holds it: raw text and options, checked by
/// [`PolicyDraft::validate`]. Field names are the same as [`Policy`]'s; unknown fields are an
/// error so that a misspelt `include_subdomain` is not silently ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDraft {
    /// Empty for a policy that names tenants only.
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub include_subdomains: bool,
    /// Entra ID tenant ids (GUIDs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// `mailbox`, `sign_in` or `either`; absent or empty: `mailbox`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_mfa: bool,
    pub action: String,
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default)]
    pub second_stage_approvers: Vec<String>,
    #[serde(default)]
    pub fallback_approvers: Vec<String>,
    /// Group object ids.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub app_roles: Vec<AppRoleGrantDraft>,
    /// Absent or empty: [`DEFAULT_REDIRECT_URL`].
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// `en`, `sv`, or absent/empty for the requester's language.
    #[serde(default)]
    pub language: Option<String>,
    /// Absent: 0 (no expiry).
    #[serde(default)]
    pub access_days: Option<u32>,
    /// Absent: [`DEFAULT_APPROVAL_WINDOW_DAYS`].
    #[serde(default)]
    pub approval_window_days: Option<u32>,
    #[serde(default)]
    pub reminder_after_days: Option<u32>,
    #[serde(default)]
    pub escalate_after_days: Option<u32>,
    /// Absent or empty: no note.
    #[serde(default)]
    pub note: Option<String>,
    /// Who reviews the guests (and hears before one is disabled), besides the approvers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sponsors: Vec<String>,
    /// Days between access reviews; absent or 0: no reviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_days: Option<u32>,
    /// `end` (the default) or `keep`: what no answer to a review means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_answer: Option<String>,
    /// An `auto` policy for a consumer mail domain (gmail.com and the like), on purpose.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_consumer_domain: bool,
}

/// One thing wrong with a draft: the field (as named in files and the CLI) and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyProblem {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Collects problems so `validate` can report all of them at once.
#[derive(Default)]
struct Problems(Vec<PolicyProblem>);

impl Problems {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(PolicyProblem {
            field,
            message: message.into(),
        });
    }
}

impl PolicyDraft {
    /// Checks every field and every rule between fields, and returns the policy or all the
    /// problems found (never just the first):
    ///
    /// - `domain` parses as a [`Domain`]; `action` is `auto`, `approve` or `deny`.
    /// - `approve` needs at least one approver. Approver lists, reminders and escalation belong
    ///   to `approve` only: on `auto` or `deny` they are rejected rather than silently ignored,
    ///   so nobody believes a policy has approvers that will never be asked.
    /// - Every approver is a valid, non-empty address, and one person (by
    ///   [`EmailAddress::identity_key`]) appears once across stage 1, stage 2 and fallback:
    ///   the same person in two stages would defeat the point of a second stage.
    /// - Fallback approvers and `escalate_after_days` come together (one without the other
    ///   would never be used).
    /// - `approval_window_days` is 1..=90 (default 14); reminders and escalation are at least
    ///   one day and strictly inside the window.
    /// - `deny` grants nothing: groups and app roles are rejected on it.
    /// - Groups and app role ids are UUIDs (not nil for groups and resources), without
    ///   duplicates.
    /// - `redirect_url` is an absolute `https` URL without user name or password (`http` only
    ///   for `localhost`, `127.0.0.1` or `[::1]`, for the development loop), <= 2048 bytes,
    ///   stored in its normalised form.
    /// - `access_days` <= 3650; `note` <= 500 characters without control characters other
    ///   than line breaks and tabs.
    /// - `sponsors` are valid addresses, each person once, and not on a `deny` policy.
    /// - `review_days` is 0 (no reviews) or 7..=3650, and needs someone to review: sponsors, or
    ///   the approvers of an `approve` policy; `on_no_answer` (`end` or `keep`) only with it.
    /// - An `auto` policy for a consumer mail domain (see `core::consumer_domains`) needs
    ///   `allow_consumer_domain`, which is refused anywhere else.
    pub fn validate(self) -> Result<Policy, Vec<PolicyProblem>> {
        let mut problems = Problems::default();

        // `Some(None)`: no domain, on purpose (a tenant policy); `None`: a problem.
        let domain = if self.domain.is_empty() {
            if self.tenants.is_empty() {
                problems.add(
                    "domain",
                    "Enter the domain this policy is for, like contoso.com, or the tenants it admits, or both.",
                );
                None
            } else {
                if self.include_subdomains {
                    problems.add(
                        "include_subdomains",
                        "Subdomains of what? Set a domain, or remove include_subdomains.",
                    );
                }
                Some(None)
            }
        } else {
            Domain::parse(&self.domain)
                .map_err(|e| problems.add("domain", e.to_string()))
                .ok()
                .map(Some)
        };
        let tenants = parse_tenants(&self.tenants, &mut problems);
        let proof = match self.proof.as_deref() {
            None | Some("") => Some(Proof::Mailbox),
            Some(raw) => raw
                .parse::<Proof>()
                .map_err(|e| problems.add("proof", e))
                .ok(),
        };
        if !self.tenants.is_empty() && proof.is_some_and(|p| p != Proof::SignIn) {
            problems.add(
                "proof",
                "A policy that names tenants needs proof sign_in: only a sign-in tells which tenant someone is from.",
            );
        }
        if self.require_mfa && proof.is_some_and(|p| p != Proof::SignIn) {
            problems.add(
                "require_mfa",
                "Multi-factor authentication can only be checked on a sign-in: set proof to sign_in.",
            );
        }

        let action = self
            .action
            .parse::<PolicyAction>()
            .map_err(|e| problems.add("action", e))
            .ok();
        let approve = action == Some(PolicyAction::Approve);
        let not_approve = match action {
            Some(PolicyAction::Approve) | None => None,
            Some(other) => Some(other),
        };

        let mut seen = HashSet::new();
        let approvers = parse_approvers("approvers", &self.approvers, &mut seen, &mut problems);
        let second_stage_approvers = parse_approvers(
            "second_stage_approvers",
            &self.second_stage_approvers,
            &mut seen,
            &mut problems,
        );
        let fallback_approvers = parse_approvers(
            "fallback_approvers",
            &self.fallback_approvers,
            &mut seen,
            &mut problems,
        );
        if approve && self.approvers.is_empty() {
            problems.add(
                "approvers",
                "An approve policy needs at least one approver.",
            );
        }
        if let Some(action) = not_approve {
            for (field, given) in [
                ("approvers", &self.approvers),
                ("second_stage_approvers", &self.second_stage_approvers),
                ("fallback_approvers", &self.fallback_approvers),
            ] {
                if !given.is_empty() {
                    problems.add(
                        field,
                        format!("Approvers are only used when the action is approve, not {action}; remove them."),
                    );
                }
            }
            for (field, given) in [
                ("reminder_after_days", self.reminder_after_days),
                ("escalate_after_days", self.escalate_after_days),
            ] {
                if given.is_some() {
                    problems.add(
                        field,
                        format!("This is only used when the action is approve, not {action}; remove it."),
                    );
                }
            }
        }
        if approve {
            match (self.fallback_approvers.is_empty(), self.escalate_after_days) {
                (false, None) => problems.add(
                    "fallback_approvers",
                    "Fallback approvers are only asked after escalate_after_days; set it or remove them.",
                ),
                (true, Some(_)) => problems.add(
                    "escalate_after_days",
                    "Escalation needs fallback approvers to escalate to; add them or remove this.",
                ),
                _ => {}
            }
        }

        let approval_window_days = self
            .approval_window_days
            .unwrap_or(DEFAULT_APPROVAL_WINDOW_DAYS);
        if !(1..=MAX_APPROVAL_WINDOW_DAYS).contains(&approval_window_days) {
            problems.add(
                "approval_window_days",
                format!("The approval window must be 1 to {MAX_APPROVAL_WINDOW_DAYS} days (got {approval_window_days})."),
            );
        }
        for (field, what, days) in [
            (
                "reminder_after_days",
                "A reminder",
                self.reminder_after_days,
            ),
            (
                "escalate_after_days",
                "Escalation",
                self.escalate_after_days,
            ),
        ] {
            match days {
                Some(0) => problems.add(field, format!("{what} must come at least one day after the request.")),
                Some(d) if d >= approval_window_days => problems.add(
                    field,
                    format!("{what} after {d} days would come after the request expires ({approval_window_days} days); use fewer days."),
                ),
                _ => {}
            }
        }

        if action == Some(PolicyAction::Deny) {
            if !self.groups.is_empty() {
                problems.add("groups", "A deny policy grants nothing; remove the groups.");
            }
            if !self.app_roles.is_empty() {
                problems.add(
                    "app_roles",
                    "A deny policy grants nothing; remove the app roles.",
                );
            }
        }
        let groups = parse_groups(&self.groups, &mut problems);
        let app_roles = parse_app_roles(&self.app_roles, &mut problems);

        let redirect_url = match self.redirect_url.as_deref() {
            None | Some("") => Some(DEFAULT_REDIRECT_URL.to_string()),
            Some(raw) => check_redirect_url(raw)
                .map_err(|message| problems.add("redirect_url", message))
                .ok(),
        };

        let language = match self.language.as_deref() {
            None | Some("") => None,
            Some(raw) => raw
                .parse::<Language>()
                .map_err(|e| problems.add("language", e))
                .ok(),
        };

        let access_days = self.access_days.unwrap_or(0);
        if access_days > MAX_ACCESS_DAYS {
            problems.add(
                "access_days",
                format!("Access can last at most {MAX_ACCESS_DAYS} days (got {access_days}); use 0 for no expiry."),
            );
        }

        let mut seen_sponsors = HashSet::new();
        let sponsors = parse_people(
            "sponsors",
            "Sponsor",
            &self.sponsors,
            &mut seen_sponsors,
            &mut problems,
        );
        if action == Some(PolicyAction::Deny) && !self.sponsors.is_empty() {
            problems.add(
                "sponsors",
                "A deny policy admits nobody to sponsor; remove the sponsors.",
            );
        }
        let review_days = self.review_days.unwrap_or(0);
        if review_days > 0 && !(MIN_REVIEW_DAYS..=MAX_REVIEW_DAYS).contains(&review_days) {
            problems.add(
                "review_days",
                format!("Reviews come every {MIN_REVIEW_DAYS} to {MAX_REVIEW_DAYS} days (got {review_days}); use 0 for no reviews."),
            );
        }
        if review_days > 0 {
            match action {
                Some(PolicyAction::Deny) => problems.add(
                    "review_days",
                    "A deny policy admits nobody to review; remove review_days.",
                ),
                Some(PolicyAction::Auto) if self.sponsors.is_empty() => problems.add(
                    "review_days",
                    "Reviews need someone to answer them: name sponsors (nobody approved the guests of an auto policy).",
                ),
                _ => {}
            }
        }
        let on_no_answer = match self.on_no_answer.as_deref() {
            None | Some("") => Some(OnNoAnswer::default()),
            Some(raw) => {
                if review_days == 0 {
                    problems.add(
                        "on_no_answer",
                        "This is only used with review_days; set it or remove this.",
                    );
                }
                raw.parse::<OnNoAnswer>()
                    .map_err(|e| problems.add("on_no_answer", e))
                    .ok()
            }
        };
        let consumer = domain
            .as_ref()
            .and_then(|d| d.as_ref())
            .and_then(|d| covered_consumer_domain(d, self.include_subdomains));
        match (action, consumer, self.allow_consumer_domain) {
            (Some(PolicyAction::Auto), Some(provider), false) => problems.add(
                "domain",
                format!("{provider} is a public mail provider: anyone can get an address there, so an auto policy would invite whoever asks. Use approve, or set allow_consumer_domain if that is what you want."),
            ),
            (Some(PolicyAction::Auto), Some(_), true) | (_, _, false) => {}
            (_, _, true) => problems.add(
                "allow_consumer_domain",
                "This is only for an auto policy for a public mail provider's domain; remove it.",
            ),
        }

        let note = match self.note {
            None => None,
            Some(note) if note.is_empty() => None,
            Some(note) => {
                if note.chars().count() > MAX_NOTE_CHARS {
                    problems.add(
                        "note",
                        format!("The note is longer than {MAX_NOTE_CHARS} characters."),
                    );
                }
                if note
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
                {
                    problems.add("note", "The note contains a control character; remove it.");
                }
                Some(note)
            }
        };

        match (domain, action, redirect_url, proof, on_no_answer) {
            (Some(domain), Some(action), Some(redirect_url), Some(proof), Some(on_no_answer))
                if problems.0.is_empty() =>
            {
                Ok(Policy {
                    domain,
                    include_subdomains: self.include_subdomains,
                    tenants,
                    proof,
                    require_mfa: self.require_mfa,
                    action,
                    approvers,
                    second_stage_approvers,
                    fallback_approvers,
                    groups,
                    app_roles,
                    redirect_url,
                    language,
                    access_days,
                    approval_window_days,
                    reminder_after_days: self.reminder_after_days,
                    escalate_after_days: self.escalate_after_days,
                    note,
                    sponsors,
                    review_days,
                    on_no_answer,
                    allow_consumer_domain: self.allow_consumer_domain,
                })
            }
            _ => Err(problems.0),
        }
    }
}

fn parse_approvers(
    field: &'static str,
    raw: &[String],
    seen: &mut HashSet<String>,
    problems: &mut Problems,
) -> Vec<EmailAddress> {
    parse_people(field, "Approver", raw, seen, problems)
}

/// Addresses of people (approvers, sponsors), each person (by identity key) once across the
/// lists that share `seen`.
fn parse_people(
    field: &'static str,
    who: &str,
    raw: &[String],
    seen: &mut HashSet<String>,
    problems: &mut Problems,
) -> Vec<EmailAddress> {
    let mut people = Vec::with_capacity(raw.len());
    for (index, text) in raw.iter().enumerate() {
        let position = index + 1;
        if text.is_empty() {
            problems.add(field, format!("{who} {position} is empty."));
            continue;
        }
        match EmailAddress::parse(text) {
            Ok(address) => {
                if seen.insert(address.identity_key()) {
                    people.push(address);
                } else {
                    problems.add(
                        field,
                        format!("{who} {position} ({address}) is listed more than once; each person may appear once across all {} lists.", who.to_lowercase()),
                    );
                }
            }
            Err(e) => problems.add(field, format!("{who} {position} ('{text}'): {e}")),
        }
    }
    people
}

fn parse_tenants(raw: &[String], problems: &mut Problems) -> Vec<Uuid> {
    let mut tenants = Vec::with_capacity(raw.len());
    for (index, text) in raw.iter().enumerate() {
        let position = index + 1;
        match Uuid::parse_str(text.trim()) {
            Ok(id) if id.is_nil() => {
                problems.add("tenants", format!("Tenant {position} is the nil id."))
            }
            Ok(id) if id.to_string() == super::sign_in::CONSUMER_TENANT => problems.add(
                "tenants",
                format!("Tenant {position} is the tenant of personal Microsoft accounts, not an organisation."),
            ),
            Ok(id) if tenants.contains(&id) => problems.add(
                "tenants",
                format!("Tenant {position} ({id}) is listed more than once."),
            ),
            Ok(id) => tenants.push(id),
            Err(_) => problems.add(
                "tenants",
                format!("Tenant {position} ('{text}') is not a tenant id (a GUID, the Directory ID in the Entra admin center)."),
            ),
        }
    }
    tenants.sort();
    tenants
}

fn parse_groups(raw: &[String], problems: &mut Problems) -> Vec<Uuid> {
    let mut groups = Vec::with_capacity(raw.len());
    for (index, text) in raw.iter().enumerate() {
        let position = index + 1;
        match Uuid::parse_str(text) {
            Ok(id) if id.is_nil() => {
                problems.add("groups", format!("Group {position} is the nil id."))
            }
            Ok(id) if groups.contains(&id) => problems.add(
                "groups",
                format!("Group {position} ({id}) is listed more than once."),
            ),
            Ok(id) => groups.push(id),
            Err(_) => problems.add(
                "groups",
                format!("Group {position} ('{text}') is not a group object id (a GUID)."),
            ),
        }
    }
    groups
}

fn parse_app_roles(raw: &[AppRoleGrantDraft], problems: &mut Problems) -> Vec<AppRoleGrant> {
    let mut grants: Vec<AppRoleGrant> = Vec::with_capacity(raw.len());
    for (index, draft) in raw.iter().enumerate() {
        let position = index + 1;
        let resource_id = match Uuid::parse_str(&draft.resource_id) {
            Ok(id) if !id.is_nil() => Some(id),
            _ => {
                problems.add(
                    "app_roles",
                    format!("App role {position}: resource_id ('{}') is not a service principal object id (a GUID).", draft.resource_id),
                );
                None
            }
        };
        let app_role_id = match draft.app_role_id.as_deref() {
            None | Some("") => Some(Uuid::nil()),
            Some(text) => match Uuid::parse_str(text) {
                Ok(id) => Some(id),
                Err(_) => {
                    problems.add(
                        "app_roles",
                        format!("App role {position}: app_role_id ('{text}') is not a GUID; leave it empty for default access."),
                    );
                    None
                }
            },
        };
        if let (Some(resource_id), Some(app_role_id)) = (resource_id, app_role_id) {
            let grant = AppRoleGrant {
                resource_id,
                app_role_id,
            };
            if grants.contains(&grant) {
                problems.add(
                    "app_roles",
                    format!("App role {position} is listed more than once."),
                );
            } else {
                grants.push(grant);
            }
        }
    }
    grants
}

/// Validates a redirect URL and returns its normalised form.
fn check_redirect_url(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_REDIRECT_URL_BYTES {
        return Err(format!(
            "The redirect URL is longer than {MAX_REDIRECT_URL_BYTES} characters."
        ));
    }
    // The URL parser silently drops tabs and line breaks; refuse them so what is stored is
    // what the admin sees.
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("The redirect URL contains a space or control character; remove it.".into());
    }
    let url = url::Url::parse(raw).map_err(|_| {
        "The redirect URL must be a full address starting with https://, like https://contoso.com/welcome.".to_string()
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("The redirect URL may not contain a user name or password.".into());
    }
    let local = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url.to_string()),
        "http" if local => Ok(url.to_string()),
        "http" => Err("The redirect URL must use https:// (http:// only for localhost).".into()),
        _ => Err(
            "The redirect URL must be a full address starting with https://, like https://contoso.com/welcome.".into(),
        ),
    }
}

impl From<&Policy> for PolicyDraft {
    /// The draft that validates back to an equal policy (for export and for editing).
    fn from(policy: &Policy) -> Self {
        let texts = |list: &[EmailAddress]| list.iter().map(|a| a.as_str().to_string()).collect();
        PolicyDraft {
            domain: policy
                .domain
                .as_ref()
                .map(|d| d.as_str().to_string())
                .unwrap_or_default(),
            include_subdomains: policy.include_subdomains,
            tenants: policy.tenants.iter().map(Uuid::to_string).collect(),
            proof: (policy.proof != Proof::Mailbox).then(|| policy.proof.as_str().to_string()),
            require_mfa: policy.require_mfa,
            action: policy.action.as_str().to_string(),
            approvers: texts(&policy.approvers),
            second_stage_approvers: texts(&policy.second_stage_approvers),
            fallback_approvers: texts(&policy.fallback_approvers),
            groups: policy.groups.iter().map(Uuid::to_string).collect(),
            app_roles: policy
                .app_roles
                .iter()
                .map(|grant| AppRoleGrantDraft {
                    resource_id: grant.resource_id.to_string(),
                    app_role_id: Some(grant.app_role_id.to_string()),
                })
                .collect(),
            redirect_url: Some(policy.redirect_url.clone()),
            language: policy.language.map(|l| l.as_str().to_string()),
            access_days: Some(policy.access_days),
            approval_window_days: Some(policy.approval_window_days),
            reminder_after_days: policy.reminder_after_days,
            escalate_after_days: policy.escalate_after_days,
            note: policy.note.clone(),
            sponsors: texts(&policy.sponsors),
            review_days: (policy.review_days > 0).then_some(policy.review_days),
            on_no_answer: (policy.review_days > 0)
                .then(|| policy.on_no_answer.as_str().to_string()),
            allow_consumer_domain: policy.allow_consumer_domain,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> EmailAddress {
        EmailAddress::parse(text).unwrap()
    }

    fn policy(domain: &str, include_subdomains: bool, action: PolicyAction) -> Policy {
        let approvers = if action == PolicyAction::Approve {
            vec![address("boss@fabrikam.com")]
        } else {
            vec![]
        };
        Policy {
            domain: Some(Domain::parse(domain).unwrap()),
            include_subdomains,
            tenants: vec![],
            proof: Proof::Mailbox,
            require_mfa: false,
            action,
            approvers,
            second_stage_approvers: vec![],
            fallback_approvers: vec![],
            groups: vec![],
            app_roles: vec![],
            redirect_url: DEFAULT_REDIRECT_URL.into(),
            language: None,
            access_days: 0,
            approval_window_days: DEFAULT_APPROVAL_WINDOW_DAYS,
            reminder_after_days: None,
            escalate_after_days: None,
            note: None,
            sponsors: vec![],
            review_days: 0,
            on_no_answer: OnNoAnswer::End,
            allow_consumer_domain: false,
        }
    }

    fn draft(domain: &str, action: &str) -> PolicyDraft {
        PolicyDraft {
            domain: domain.into(),
            action: action.into(),
            ..PolicyDraft::default()
        }
    }

    fn approve_draft() -> PolicyDraft {
        PolicyDraft {
            approvers: vec!["boss@fabrikam.com".into()],
            ..draft("contoso.com", "approve")
        }
    }

    #[test]
    fn policy_matches_whole_labels_only() {
        use PolicyAction::*;
        // (policy domain, include_subdomains, address, matches)
        let rows: &[(&str, bool, &str, bool)] = &[
            ("contoso.com", false, "a@contoso.com", true),
            ("contoso.com", false, "a@CONTOSO.COM", true),
            ("contoso.com", false, "a@mail.contoso.com", false),
            ("contoso.com", true, "a@contoso.com", true),
            ("contoso.com", true, "a@mail.contoso.com", true),
            ("contoso.com", true, "a@x.y.contoso.com", true),
            ("contoso.com", true, "a@evilcontoso.com", false),
            ("contoso.com", false, "a@evilcontoso.com", false),
            ("contoso.com", true, "a@contoso.com.evil.com", false),
            ("contoso.com", true, "a@contoso.co", false),
            ("contoso.com", true, "a@contoso.community", false),
            ("contoso.com", true, "a@xcontoso.com", false),
            ("contoso.com", true, "a@contoso-com.com", false),
            ("contoso.com", true, "a@ｃｏｎｔｏｓｏ.com", true),
            ("mail.contoso.com", true, "a@contoso.com", false),
            ("bücher.example", false, "a@xn--bcher-kva.example", true),
            ("bücher.example", false, "a@bucher.example", false),
            ("github.com", false, "a@github.com", true),
        ];
        for (domain, subdomains, text, expected) in rows {
            let p = policy(domain, *subdomains, Auto);
            assert_eq!(
                p.matches(&address(text)),
                *expected,
                "{text} vs {}",
                p.key()
            );
            let expected_admission = if *expected {
                Admission::Admitted(&p)
            } else {
                Admission::NoMatch
            };
            assert_eq!(
                admit(std::slice::from_ref(&p), &address(text)),
                expected_admission,
                "{text}"
            );
        }
    }

    #[test]
    fn admit_picks_deny_then_the_most_specific_then_the_strictest() {
        use PolicyAction::*;
        let policies = vec![
            policy("contoso.com", true, Auto),        // 0
            policy("eu.contoso.com", true, Approve),  // 1
            policy("contoso.com", false, Approve),    // 2
            policy("banned.contoso.com", true, Deny), // 3
            policy("fabrikam.com", true, Auto),       // 4
            policy("fabrikam.com", true, Approve),    // 5
            policy("deny.fabrikam.com", false, Deny), // 6
            policy("deny.fabrikam.com", false, Auto), // 7
            policy("tailspin.com", true, Deny),       // 8
            policy("a.tailspin.com", false, Auto),    // 9
            policy("litware.com", true, Approve),     // 10
            policy("litware.com", false, Auto),       // 11
            policy("x.litware.com", true, Auto),      // 12
        ];
        // (address, expected: Some((index, denied)) or None)
        let rows: &[(&str, Option<(usize, bool)>)] = &[
            ("a@contoso.com", Some((2, false))), // exact beats with-subdomains, same domain
            ("a@sales.contoso.com", Some((0, false))),
            ("a@eu.contoso.com", Some((1, false))), // longer parent wins
            ("a@x.eu.contoso.com", Some((1, false))),
            ("a@banned.contoso.com", Some((3, true))),
            ("a@x.banned.contoso.com", Some((3, true))),
            ("a@fabrikam.com", Some((5, false))), // tie: approve beats auto
            ("a@x.fabrikam.com", Some((5, false))),
            ("a@deny.fabrikam.com", Some((6, true))), // deny beats allow of the same domain
            ("a@a.tailspin.com", Some((8, true))),    // deny of a parent beats a specific allow
            ("a@tailspin.com", Some((8, true))),
            ("a@litware.com", Some((11, false))), // exact auto beats with-subdomains approve
            ("a@y.litware.com", Some((10, false))),
            ("a@x.litware.com", Some((12, false))),
            ("a@z.x.litware.com", Some((12, false))),
            ("a@evilcontoso.com", None),
            ("a@contoso.com.evil.com", None),
            ("a@notfabrikam.com", None),
            ("a@northwind.com", None),
        ];
        for (text, expected) in rows {
            let got = admit(&policies, &address(text));
            let want = match expected {
                None => Admission::NoMatch,
                Some((i, true)) => Admission::Denied(&policies[*i]),
                Some((i, false)) => Admission::Admitted(&policies[*i]),
            };
            assert_eq!(got, want, "{text}");
            if let Admission::Admitted(p) | Admission::Denied(p) = got {
                assert!(
                    std::ptr::eq(p, &policies[expected.unwrap().0]),
                    "{text}: identity"
                );
            }
        }
        // Order of the slice does not change the outcome when ranks differ.
        let mut reversed = policies.clone();
        reversed.reverse();
        for (text, expected) in rows {
            let got = admit(&reversed, &address(text));
            match (got, expected) {
                (Admission::NoMatch, None) => {}
                (Admission::Admitted(p), Some((i, false)))
                | (Admission::Denied(p), Some((i, true))) => {
                    assert_eq!(p, &policies[*i], "{text}")
                }
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
        assert_eq!(admit(&[], &address("a@contoso.com")), Admission::NoMatch);
    }

    #[test]
    fn keys_distinguish_exact_and_subdomain_policies() {
        use PolicyAction::*;
        let rows: &[(&str, bool, &str)] = &[
            ("contoso.com", false, "contoso.com"),
            ("contoso.com", true, "*.contoso.com"),
            ("CONTOSO.com", true, "*.contoso.com"),
            ("bücher.example", false, "xn--bcher-kva.example"),
        ];
        for (domain, subdomains, key) in rows {
            assert_eq!(policy(domain, *subdomains, Auto).key(), *key);
        }
    }

    #[test]
    fn valid_drafts_become_policies() {
        let full = PolicyDraft {
            domain: "Contoso.COM".into(),
            include_subdomains: true,
            tenants: vec![],
            proof: None,
            require_mfa: false,
            action: "Approve".into(),
            approvers: vec!["Boss@Fabrikam.com".into(), "second@fabrikam.com".into()],
            second_stage_approvers: vec!["security@fabrikam.com".into()],
            fallback_approvers: vec!["cio@fabrikam.com".into()],
            groups: vec!["6f1c6b7e-2b1a-4f3e-9d7c-1a2b3c4d5e6f".into()],
            app_roles: vec![
                AppRoleGrantDraft {
                    resource_id: "0b9a4a38-1f4f-4e53-a2d6-9b7e6c5d4e3f".into(),
                    app_role_id: None,
                },
                AppRoleGrantDraft {
                    resource_id: "0b9a4a38-1f4f-4e53-a2d6-9b7e6c5d4e3f".into(),
                    app_role_id: Some("8a1e0f2c-7d3b-4c5a-9e6f-0a1b2c3d4e5f".into()),
                },
            ],
            redirect_url: Some("https://Portal.Fabrikam.com/welcome?x=1".into()),
            language: Some("SV".into()),
            access_days: Some(365),
            approval_window_days: Some(21),
            reminder_after_days: Some(3),
            escalate_after_days: Some(7),
            note: Some("Partner programme.\nOwner: Jane".into()),
            sponsors: vec!["Owner@Contoso.com".into()],
            review_days: Some(90),
            on_no_answer: Some("KEEP".into()),
            allow_consumer_domain: false,
        };
        let p = full.clone().validate().unwrap();
        assert_eq!(p.sponsors[0].as_str(), "Owner@contoso.com");
        assert_eq!((p.review_days, p.on_no_answer), (90, OnNoAnswer::Keep));
        assert_eq!(p.domain.as_ref().unwrap().as_str(), "contoso.com");
        assert_eq!(p.key(), "*.contoso.com");
        assert_eq!(p.action, PolicyAction::Approve);
        assert_eq!(p.approvers[0].as_str(), "Boss@fabrikam.com");
        assert_eq!(p.app_roles[0].app_role_id, Uuid::nil());
        assert_eq!(p.redirect_url, "https://portal.fabrikam.com/welcome?x=1");
        assert_eq!(p.language, Some(Language::Sv));
        assert_eq!(p.stages().len(), 2);
        assert_eq!(p.stages()[1].approvers[0].as_str(), "security@fabrikam.com");
        // Export and re-validate: the same policy.
        assert_eq!(PolicyDraft::from(&p).validate().unwrap(), p);

        let minimal_rows: &[(PolicyDraft, PolicyAction)] = &[
            (draft("contoso.com", "auto"), PolicyAction::Auto),
            (draft("contoso.com", "deny"), PolicyAction::Deny),
            (draft("contoso.com", "DENY"), PolicyAction::Deny),
            (approve_draft(), PolicyAction::Approve),
        ];
        for (d, action) in minimal_rows {
            let p = d
                .clone()
                .validate()
                .unwrap_or_else(|e| panic!("{d:?}: {e:?}"));
            assert_eq!(p.action, *action);
            assert_eq!(p.redirect_url, DEFAULT_REDIRECT_URL);
            assert_eq!(p.approval_window_days, DEFAULT_APPROVAL_WINDOW_DAYS);
            assert_eq!(p.access_days, 0);
            assert_eq!(p.language, None);
            assert_eq!(
                p.stages().len(),
                usize::from(*action == PolicyAction::Approve)
            );
            assert_eq!(PolicyDraft::from(&p).validate().unwrap(), p);
        }

        let redirect_rows = [
            ("http://localhost:7071/done", "http://localhost:7071/done"),
            ("http://127.0.0.1/", "http://127.0.0.1/"),
            ("http://[::1]:8080/x", "http://[::1]:8080/x"),
            ("https://contoso.com", "https://contoso.com/"),
            ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ];
        for (raw, stored) in redirect_rows {
            let p = PolicyDraft {
                redirect_url: Some(raw.into()),
                ..draft("contoso.com", "auto")
            }
            .validate()
            .unwrap_or_else(|e| panic!("{raw}: {e:?}"));
            assert_eq!(p.redirect_url, stored);
        }
    }

    #[test]
    fn reviews_need_someone_to_answer_and_default_to_ending_access() {
        let sponsored = PolicyDraft {
            sponsors: vec!["owner@contoso.com".into()],
            review_days: Some(90),
            ..draft("fabrikam.example", "auto")
        };
        let p = sponsored.clone().validate().unwrap();
        assert_eq!(
            p.on_no_answer,
            OnNoAnswer::End,
            "no answer ends access by default"
        );
        assert_eq!(PolicyDraft::from(&p).validate().unwrap(), p);
        // The approvers who admitted a guest review it on an approve policy.
        let approve = PolicyDraft {
            review_days: Some(30),
            on_no_answer: Some("keep".into()),
            ..approve_draft()
        };
        assert_eq!(approve.validate().unwrap().on_no_answer, OnNoAnswer::Keep);
        let field_of = |d: PolicyDraft| -> Vec<&'static str> {
            d.validate()
                .unwrap_err()
                .into_iter()
                .map(|p| p.field)
                .collect()
        };
        let rows: Vec<(PolicyDraft, &str)> = vec![
            (
                PolicyDraft {
                    review_days: Some(90),
                    ..draft("fabrikam.example", "auto")
                },
                "review_days",
            ),
            (
                PolicyDraft {
                    review_days: Some(6),
                    ..sponsored.clone()
                },
                "review_days",
            ),
            (
                PolicyDraft {
                    review_days: Some(3651),
                    ..sponsored.clone()
                },
                "review_days",
            ),
            (
                PolicyDraft {
                    on_no_answer: Some("maybe".into()),
                    ..sponsored.clone()
                },
                "on_no_answer",
            ),
            (
                PolicyDraft {
                    on_no_answer: Some("keep".into()),
                    review_days: None,
                    ..sponsored.clone()
                },
                "on_no_answer",
            ),
            (
                PolicyDraft {
                    sponsors: vec!["a@contoso.com".into(), "A@contoso.com".into()],
                    ..sponsored.clone()
                },
                "sponsors",
            ),
            (
                PolicyDraft {
                    sponsors: vec!["not an address".into()],
                    ..sponsored.clone()
                },
                "sponsors",
            ),
            (
                PolicyDraft {
                    sponsors: vec!["a@contoso.com".into()],
                    ..draft("fabrikam.example", "deny")
                },
                "sponsors",
            ),
        ];
        for (d, field) in rows {
            let label = format!("{d:?}");
            assert!(field_of(d).contains(&field), "{label}: {field}");
        }
    }

    #[test]
    fn auto_policies_for_public_mail_providers_need_the_explicit_flag() {
        for provider in [
            "gmail.com",
            "OUTLOOK.com",
            "hotmail.com",
            "web.de",
            "gmx.net",
        ] {
            let problems = draft(provider, "auto").validate().unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].field, "domain");
            assert!(
                problems[0].message.contains("public mail provider")
                    && problems[0].message.contains("allow_consumer_domain"),
                "{}",
                problems[0].message
            );
            let allowed = PolicyDraft {
                allow_consumer_domain: true,
                ..draft(provider, "auto")
            }
            .validate()
            .unwrap();
            assert!(allowed.allow_consumer_domain);
            assert_eq!(PolicyDraft::from(&allowed).validate().unwrap(), allowed);
            // A person decides, or nobody gets in: nothing to refuse.
            let approve = PolicyDraft {
                domain: provider.into(),
                ..approve_draft()
            };
            assert!(approve.validate().is_ok());
            assert!(draft(provider, "deny").validate().is_ok());
        }
        // Subdomains of a provider, and a parent that takes its subdomains, count too.
        assert!(draft("mail.gmail.com", "auto").validate().is_err());
        let parent = PolicyDraft {
            include_subdomains: true,
            ..draft("co.uk", "auto")
        };
        assert!(parent.validate().is_err());
        assert!(draft("co.uk", "auto").validate().is_ok());
        // The flag is refused where it means nothing, so nobody thinks it does something.
        for d in [
            draft("contoso.com", "auto"),
            draft("gmail.com", "deny"),
            PolicyDraft {
                domain: "gmail.com".into(),
                ..approve_draft()
            },
        ] {
            let flagged = PolicyDraft {
                allow_consumer_domain: true,
                ..d
            };
            let problems = flagged.validate().unwrap_err();
            assert_eq!(problems[0].field, "allow_consumer_domain", "{problems:?}");
        }
    }

    #[test]
    fn invalid_drafts_report_each_problem() {
        let nil = Uuid::nil().to_string();
        let group = "6f1c6b7e-2b1a-4f3e-9d7c-1a2b3c4d5e6f".to_string();
        let long_url = format!("https://contoso.com/{}", "a".repeat(2048));
        // (draft, the field that must be reported, a fragment of its message)
        let rows: Vec<(PolicyDraft, &str, &str)> = vec![
            (draft("", "auto"), "domain", "Enter the domain"),
            (draft("contoso", "auto"), "domain", "at least one dot"),
            (draft("*.contoso.com", "auto"), "domain", "'*'"),
            (draft("аpple.com", "auto"), "domain", "alphabets"),
            (draft("contoso.com.", "auto"), "domain", "ends with a dot"),
            (draft("contoso.com", ""), "action", "auto, approve or deny"),
            (draft("contoso.com", "allow"), "action", "(got 'allow')"),
            (
                draft("contoso.com", "approve"),
                "approvers",
                "at least one approver",
            ),
            (
                PolicyDraft {
                    approvers: vec!["a@b.com".into()],
                    ..draft("contoso.com", "deny")
                },
                "approvers",
                "not deny",
            ),
            (
                PolicyDraft {
                    approvers: vec!["a@b.com".into()],
                    ..draft("contoso.com", "auto")
                },
                "approvers",
                "not auto",
            ),
            (
                PolicyDraft {
                    second_stage_approvers: vec!["a@b.com".into()],
                    ..draft("contoso.com", "auto")
                },
                "second_stage_approvers",
                "only used",
            ),
            (
                PolicyDraft {
                    fallback_approvers: vec!["a@b.com".into()],
                    ..draft("contoso.com", "deny")
                },
                "fallback_approvers",
                "only used",
            ),
            (
                PolicyDraft {
                    reminder_after_days: Some(2),
                    ..draft("contoso.com", "auto")
                },
                "reminder_after_days",
                "only used",
            ),
            (
                PolicyDraft {
                    escalate_after_days: Some(2),
                    ..draft("contoso.com", "deny")
                },
                "escalate_after_days",
                "only used",
            ),
            (
                PolicyDraft {
                    approvers: vec!["".into()],
                    ..draft("contoso.com", "approve")
                },
                "approvers",
                "Approver 1 is empty",
            ),
            (
                PolicyDraft {
                    approvers: vec!["boss".into()],
                    ..draft("contoso.com", "approve")
                },
                "approvers",
                "has no @",
            ),
            (
                PolicyDraft {
                    approvers: vec!["a@b.com".into(), "A@B.COM".into()],
                    ..draft("contoso.com", "approve")
                },
                "approvers",
                "Approver 2 (A@b.com) is listed more than once",
            ),
            (
                PolicyDraft {
                    second_stage_approvers: vec!["BOSS@fabrikam.com".into()],
                    ..approve_draft()
                },
                "second_stage_approvers",
                "more than once",
            ),
            (
                PolicyDraft {
                    fallback_approvers: vec!["boss@fabrikam.com".into()],
                    escalate_after_days: Some(3),
                    ..approve_draft()
                },
                "fallback_approvers",
                "more than once",
            ),
            (
                PolicyDraft {
                    second_stage_approvers: vec![" x@y.com".into()],
                    ..approve_draft()
                },
                "second_stage_approvers",
                "space",
            ),
            (
                PolicyDraft {
                    fallback_approvers: vec!["cio@fabrikam.com".into()],
                    ..approve_draft()
                },
                "fallback_approvers",
                "escalate_after_days",
            ),
            (
                PolicyDraft {
                    escalate_after_days: Some(3),
                    ..approve_draft()
                },
                "escalate_after_days",
                "needs fallback approvers",
            ),
            (
                PolicyDraft {
                    approval_window_days: Some(0),
                    ..approve_draft()
                },
                "approval_window_days",
                "1 to 90",
            ),
            (
                PolicyDraft {
                    approval_window_days: Some(91),
                    ..approve_draft()
                },
                "approval_window_days",
                "got 91",
            ),
            (
                PolicyDraft {
                    reminder_after_days: Some(14),
                    ..approve_draft()
                },
                "reminder_after_days",
                "after the request expires",
            ),
            (
                PolicyDraft {
                    reminder_after_days: Some(0),
                    ..approve_draft()
                },
                "reminder_after_days",
                "at least one day",
            ),
            (
                PolicyDraft {
                    reminder_after_days: Some(5),
                    approval_window_days: Some(5),
                    ..approve_draft()
                },
                "reminder_after_days",
                "(5 days)",
            ),
            (
                PolicyDraft {
                    escalate_after_days: Some(20),
                    fallback_approvers: vec!["c@d.com".into()],
                    ..approve_draft()
                },
                "escalate_after_days",
                "after the request expires",
            ),
            (
                PolicyDraft {
                    escalate_after_days: Some(0),
                    fallback_approvers: vec!["c@d.com".into()],
                    ..approve_draft()
                },
                "escalate_after_days",
                "at least one day",
            ),
            (
                PolicyDraft {
                    groups: vec![group.clone()],
                    ..draft("contoso.com", "deny")
                },
                "groups",
                "grants nothing",
            ),
            (
                PolicyDraft {
                    app_roles: vec![AppRoleGrantDraft {
                        resource_id: group.clone(),
                        app_role_id: None,
                    }],
                    ..draft("contoso.com", "deny")
                },
                "app_roles",
                "grants nothing",
            ),
            (
                PolicyDraft {
                    groups: vec!["sales".into()],
                    ..draft("contoso.com", "auto")
                },
                "groups",
                "Group 1 ('sales')",
            ),
            (
                PolicyDraft {
                    groups: vec![nil.clone()],
                    ..draft("contoso.com", "auto")
                },
                "groups",
                "nil",
            ),
            (
                PolicyDraft {
                    groups: vec![group.clone(), group.to_uppercase()],
                    ..draft("contoso.com", "auto")
                },
                "groups",
                "Group 2",
            ),
            (
                PolicyDraft {
                    app_roles: vec![AppRoleGrantDraft {
                        resource_id: "x".into(),
                        app_role_id: None,
                    }],
                    ..draft("contoso.com", "auto")
                },
                "app_roles",
                "resource_id ('x')",
            ),
            (
                PolicyDraft {
                    app_roles: vec![AppRoleGrantDraft {
                        resource_id: nil.clone(),
                        app_role_id: None,
                    }],
                    ..draft("contoso.com", "auto")
                },
                "app_roles",
                "resource_id",
            ),
            (
                PolicyDraft {
                    app_roles: vec![AppRoleGrantDraft {
                        resource_id: group.clone(),
                        app_role_id: Some("reader".into()),
                    }],
                    ..draft("contoso.com", "auto")
                },
                "app_roles",
                "app_role_id ('reader')",
            ),
            (
                PolicyDraft {
                    app_roles: vec![
                        AppRoleGrantDraft {
                            resource_id: group.clone(),
                            app_role_id: None,
                        },
                        AppRoleGrantDraft {
                            resource_id: group.clone(),
                            app_role_id: Some(nil.clone()),
                        },
                    ],
                    ..draft("contoso.com", "auto")
                },
                "app_roles",
                "App role 2 is listed more than once",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("http://contoso.com/".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "https://",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("http://localhost.evil.com/".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "https://",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("http://127.0.0.2/".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "https://",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("javascript:alert(1)".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "full address",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("data:text/html,x".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "full address",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("ftp://contoso.com/".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "full address",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("/welcome".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "full address",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("contoso.com/welcome".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "full address",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("https://user:pw@contoso.com/".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "user name or password",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("https://contoso.com@evil.com/".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "user name or password",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("https://contoso.com/\r\nx".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "space or control",
            ),
            (
                PolicyDraft {
                    redirect_url: Some("https://contoso.com/a b".into()),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "space or control",
            ),
            (
                PolicyDraft {
                    redirect_url: Some(long_url),
                    ..draft("contoso.com", "auto")
                },
                "redirect_url",
                "longer than 2048",
            ),
            (
                PolicyDraft {
                    language: Some("de".into()),
                    ..draft("contoso.com", "auto")
                },
                "language",
                "en or sv",
            ),
            (
                PolicyDraft {
                    access_days: Some(3651),
                    ..draft("contoso.com", "auto")
                },
                "access_days",
                "at most 3650",
            ),
            (
                PolicyDraft {
                    note: Some("x".repeat(501)),
                    ..draft("contoso.com", "auto")
                },
                "note",
                "longer than 500",
            ),
            (
                PolicyDraft {
                    note: Some("bell\u{7}".into()),
                    ..draft("contoso.com", "auto")
                },
                "note",
                "control character",
            ),
        ];
        for (d, field, fragment) in &rows {
            let problems = d.clone().validate().expect_err(&format!("{d:?} must fail"));
            assert!(
                problems
                    .iter()
                    .any(|p| p.field == *field && p.message.contains(fragment)),
                "{d:?}: expected {field} ~ {fragment:?}, got {problems:?}"
            );
        }
        assert!(rows.len() >= 50);
    }

    #[test]
    fn limits_are_inclusive() {
        let rows: Vec<(PolicyDraft, bool)> = vec![
            (
                PolicyDraft {
                    approval_window_days: Some(1),
                    ..approve_draft()
                },
                true,
            ),
            (
                PolicyDraft {
                    approval_window_days: Some(90),
                    ..approve_draft()
                },
                true,
            ),
            (
                PolicyDraft {
                    reminder_after_days: Some(13),
                    ..approve_draft()
                },
                true,
            ),
            (
                PolicyDraft {
                    access_days: Some(3650),
                    ..draft("contoso.com", "auto")
                },
                true,
            ),
            (
                PolicyDraft {
                    note: Some("é".repeat(500)),
                    ..draft("contoso.com", "auto")
                },
                true,
            ),
            (
                PolicyDraft {
                    note: Some(String::new()),
                    ..draft("contoso.com", "auto")
                },
                true,
            ),
            (
                PolicyDraft {
                    redirect_url: Some(String::new()),
                    ..draft("contoso.com", "auto")
                },
                true,
            ),
            (
                PolicyDraft {
                    language: Some(String::new()),
                    ..draft("contoso.com", "auto")
                },
                true,
            ),
            (
                PolicyDraft {
                    approval_window_days: Some(90),
                    ..draft("contoso.com", "deny")
                },
                true,
            ),
            (
                PolicyDraft {
                    access_days: Some(3651),
                    ..draft("contoso.com", "auto")
                },
                false,
            ),
        ];
        for (d, valid) in rows {
            assert_eq!(d.clone().validate().is_ok(), valid, "{d:?}");
        }
    }

    #[test]
    fn validate_reports_all_problems_at_once() {
        let d = PolicyDraft {
            domain: "contoso".into(),
            action: "maybe".into(),
            groups: vec!["x".into()],
            language: Some("fi".into()),
            access_days: Some(99999),
            ..PolicyDraft::default()
        };
        let problems = d.validate().unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            ["domain", "action", "groups", "language", "access_days"]
        );
        assert!(problems[0].to_string().starts_with("domain: "));
    }

    #[test]
    fn draft_files_reject_unknown_fields_and_policies_round_trip_through_json() {
        let json = r#"{"domain":"contoso.com","action":"approve","approvers":["a@b.com"],"include_subdomain":true}"#;
        let err = serde_json::from_str::<PolicyDraft>(json).unwrap_err();
        assert!(err.to_string().contains("include_subdomain"), "{err}");

        let json = r#"{"domain":"contoso.com","action":"approve","approvers":["a@b.com"]}"#;
        let p = serde_json::from_str::<PolicyDraft>(json)
            .unwrap()
            .validate()
            .unwrap();
        let stored = serde_json::to_string(&p).unwrap();
        assert!(stored.contains(r#""action":"approve""#), "{stored}");
        assert_eq!(serde_json::from_str::<Policy>(&stored).unwrap(), p);
        let tampered = stored.replace("a@b.com", "a@аpple.com");
        assert!(serde_json::from_str::<Policy>(&tampered).is_err());
    }

    #[test]
    fn enums_parse_and_print() {
        let actions = [
            ("auto", PolicyAction::Auto),
            ("approve", PolicyAction::Approve),
            ("deny", PolicyAction::Deny),
        ];
        for (text, action) in actions {
            assert_eq!(text.parse::<PolicyAction>(), Ok(action));
            assert_eq!(text.to_uppercase().parse::<PolicyAction>(), Ok(action));
            assert_eq!(action.to_string(), text);
            assert_eq!(
                serde_json::to_string(&action).unwrap(),
                format!("\"{text}\"")
            );
        }
        for bad in ["", "allow", "auto ", "approved"] {
            assert!(bad.parse::<PolicyAction>().is_err(), "{bad:?}");
        }
        for (text, language) in [("en", Language::En), ("sv", Language::Sv)] {
            assert_eq!(text.parse::<Language>(), Ok(language));
            assert_eq!(language.to_string(), text);
            assert_eq!(
                serde_json::to_string(&language).unwrap(),
                format!("\"{text}\"")
            );
        }
        assert!("sv-SE".parse::<Language>().is_err());
        assert_eq!(Language::default(), Language::En);
    }

    #[test]
    fn accept_language_honours_q_values() {
        use Language::*;
        let rows: &[(&str, Option<Language>)] = &[
            ("sv", Some(Sv)),
            ("sv-SE", Some(Sv)),
            ("sv-FI", Some(Sv)),
            ("SV-se", Some(Sv)),
            ("en", Some(En)),
            ("en-US", Some(En)),
            ("en-GB,en;q=0.9", Some(En)),
            ("sv-SE,sv;q=0.9,en-US;q=0.8,en;q=0.7", Some(Sv)),
            ("en-US,en;q=0.9,sv;q=0.8", Some(En)),
            ("de-DE,de;q=0.9,sv;q=0.5,en;q=0.4", Some(Sv)),
            ("de-DE,de;q=0.9,en;q=0.5,sv;q=0.4", Some(En)),
            ("en;q=0.5,sv;q=0.6", Some(Sv)),
            ("en;q=0.5, sv ; q=0.6", Some(Sv)),
            ("sv;q=0.5,en;q=0.5", Some(Sv)), // tie: earlier wins
            ("en;q=0.5,sv;q=0.5", Some(En)),
            ("sv;q=0,en;q=0.1", Some(En)), // q=0 excluded
            ("sv;q=0.000", None),
            ("sv;q=0", None),
            ("en;q=0", None),
            ("de,fr", None),
            ("*", None),
            ("", None),
            ("svenska", None),
            ("english", None),
            ("sv;q=2,en;q=0.1", Some(En)), // malformed q ignored
            ("sv;q=abc,en;q=0.1", Some(En)),
            ("sv;q=0.5555,en;q=0.1", Some(En)),
            ("sv;q=1.0001", None),
            ("sv;q=1.000", Some(Sv)),
            ("en;q=1,sv;q=1.0", Some(En)),
            ("en;Q=0.2,sv;q=0.3", Some(Sv)),
            ("x-sv,sv-x", Some(Sv)),
            ("en-sv", Some(En)),
        ];
        for (header, expected) in rows {
            assert_eq!(
                Language::from_accept_language(header),
                *expected,
                "{header:?}"
            );
        }
        let long = format!("{}sv", "de,".repeat(100));
        assert_eq!(
            Language::from_accept_language(&long),
            None,
            "entries past the cap are ignored"
        );
    }

    const FABRIKAM: &str = "3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6";
    const NORTHWIND: &str = "8a7b6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d";

    fn tenant(id: &str) -> Uuid {
        Uuid::parse_str(id).unwrap()
    }

    fn signed_in_draft(domain: &str, tenants: &[&str], action: &str) -> PolicyDraft {
        PolicyDraft {
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            proof: Some("sign_in".into()),
            ..draft(domain, action)
        }
    }

    #[test]
    fn tenant_policies_validate_and_key() {
        // (draft, key or the fields with problems)
        let rows: Vec<(PolicyDraft, Result<&str, Vec<&str>>)> = vec![
            (signed_in_draft("", &[FABRIKAM], "auto"), Ok("tenant:3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6")),
            (
                signed_in_draft("", &[NORTHWIND, FABRIKAM], "auto"),
                Ok("tenant:3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6+8a7b6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d"),
            ),
            (
                signed_in_draft("Fabrikam.example", &[FABRIKAM], "auto"),
                Ok("fabrikam.example+tenant:3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6"),
            ),
            (
                PolicyDraft { include_subdomains: true, ..signed_in_draft("fabrikam.example", &[FABRIKAM], "auto") },
                Ok("*.fabrikam.example+tenant:3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6"),
            ),
            (PolicyDraft { proof: Some("either".into()), ..draft("fabrikam.example", "auto") }, Ok("fabrikam.example")),
            (PolicyDraft { proof: Some("SIGN-IN".into()), require_mfa: true, ..draft("fabrikam.example", "auto") }, Ok("fabrikam.example")),
            (draft("", "auto"), Err(vec!["domain"])),
            (PolicyDraft { proof: Some("mailbox".into()), ..signed_in_draft("", &[FABRIKAM], "auto") }, Err(vec!["proof"])),
            (PolicyDraft { proof: Some("either".into()), ..signed_in_draft("", &[FABRIKAM], "auto") }, Err(vec!["proof"])),
            (PolicyDraft { proof: None, ..signed_in_draft("x.example", &[FABRIKAM], "auto") }, Err(vec!["proof"])),
            (PolicyDraft { require_mfa: true, ..draft("fabrikam.example", "auto") }, Err(vec!["require_mfa"])),
            (PolicyDraft { require_mfa: true, proof: Some("either".into()), ..draft("fabrikam.example", "auto") }, Err(vec!["require_mfa"])),
            (PolicyDraft { proof: Some("link".into()), ..draft("fabrikam.example", "auto") }, Err(vec!["proof"])),
            (signed_in_draft("", &["not-a-guid"], "auto"), Err(vec!["tenants"])),
            (signed_in_draft("", &["00000000-0000-0000-0000-000000000000"], "auto"), Err(vec!["tenants"])),
            (signed_in_draft("", &[super::super::sign_in::CONSUMER_TENANT], "auto"), Err(vec!["tenants"])),
            (signed_in_draft("", &[FABRIKAM, "3C1E2F4A-5B6C-4D7E-8F90-A1B2C3D4E5F6"], "auto"), Err(vec!["tenants"])),
            (PolicyDraft { include_subdomains: true, ..signed_in_draft("", &[FABRIKAM], "auto") }, Err(vec!["include_subdomains"])),
        ];
        for (d, want) in rows {
            match (d.clone().validate(), want) {
                (Ok(p), Ok(key)) => {
                    assert_eq!(p.key(), key, "{d:?}");
                    assert_eq!(PolicyDraft::from(&p).validate().unwrap(), p, "round trip");
                }
                (Err(problems), Err(fields)) => {
                    let got: Vec<&str> = problems.iter().map(|p| p.field).collect();
                    assert_eq!(got, fields, "{d:?}: {problems:?}");
                }
                (got, want) => panic!("{d:?}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn tenants_are_known_only_from_a_sign_in_and_both_must_hold() {
        let by_tenant = signed_in_draft("", &[FABRIKAM], "auto").validate().unwrap();
        let both = PolicyDraft {
            approvers: vec!["boss@contoso.com".into()],
            ..signed_in_draft("fabrikam.example", &[FABRIKAM], "approve")
        }
        .validate()
        .unwrap();
        let by_domain = policy("fabrikam.example", false, PolicyAction::Auto);
        let banned = signed_in_draft("", &[NORTHWIND], "deny")
            .validate()
            .unwrap();
        let policies = vec![
            by_domain.clone(),
            by_tenant.clone(),
            both.clone(),
            banned.clone(),
        ];
        let fab = tenant(FABRIKAM);
        let north = tenant(NORTHWIND);
        let other = tenant("11111111-2222-4333-8444-555555555555");
        // (address, signed in from, expected policy or None; Some(true) for denied)
        type Row<'a> = (&'a str, Option<Uuid>, Option<(&'a Policy, bool)>);
        let rows: &[Row] = &[
            // Not signed in: tenant policies never apply.
            ("a@fabrikam.example", None, Some((&by_domain, false))),
            ("a@litware.example", None, None),
            // From the tenant with its domain: the policy naming both, the most specific.
            ("a@fabrikam.example", Some(fab), Some((&both, false))),
            // From the tenant, another domain: the tenant-only policy.
            ("a@litware.example", Some(fab), Some((&by_tenant, false))),
            // The domain from another tenant: only the domain policy.
            ("a@fabrikam.example", Some(other), Some((&by_domain, false))),
            ("a@litware.example", Some(other), None),
            // A denied tenant, whatever the address.
            ("a@fabrikam.example", Some(north), Some((&banned, true))),
        ];
        for (address, from, want) in rows {
            let a = EmailAddress::parse(address).unwrap();
            let got = match from {
                Some(t) => admit_signed_in(&policies, &a, t),
                None => admit(&policies, &a),
            };
            let want = match want {
                None => Admission::NoMatch,
                Some((p, true)) => Admission::Denied(p),
                Some((p, false)) => Admission::Admitted(p),
            };
            assert_eq!(got, want, "{address} from {from:?}");
        }
    }
}
