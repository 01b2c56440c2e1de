//! Signed, expiring, purpose-bound link tokens.
//!
//! The links in the portal's mail ("confirm your address", "approve or deny this request",
//! "keep this guest or end its access") carry a token that proves the portal issued them for
//! one request (or, for a review, one guest), one purpose and one person, until a deadline. Tokens are HMAC-SHA256 over their claims with a server secret, so
//! nobody without the secret can forge or alter one, and they are verified in constant time.
//! Tokens are not single-use by themselves: the request's state (compare-and-swap on its ETag)
//! makes the first decision win; the token only says who may try.
//!
//! # Wire format
//!
//! ```text
//! v1.<kid>.<payload>.<mac>
//! payload = base64url(no padding) of the binary claims (below)
//! mac     = base64url(no padding) of HMAC-SHA256(secret[kid], "v1.<kid>.<payload>")
//! claims  = purpose:u8 (1 verify, 2 decide, 3 review) | stage:u8 | expires_at:i64 BE | nonce:16 bytes
//!           | request_id length:u8 | request_id | subject length:u8 | subject
//! ```
//!
//! Why this shape:
//! - Only `[A-Za-z0-9_.-]`: survives URLs, mail clients' line wrapping and copy-paste without
//!   escaping.
//! - Binary claims keep a decision link under ~450 characters (JSON would nearly double it).
//! - The MAC covers the version and key id as well as the payload, so neither can be swapped.
//! - The key id selects the key without trying each one: key rotation means a new key signs
//!   while old ones still verify, and a retired key gives a distinct error (`UnknownKey`).
//! - The MAC is checked *before* the payload is decoded or parsed, so the claims parser only
//!   ever sees bytes we produced; and input over 1 KiB is refused before any work at all, so a
//!   hostile link cannot make us hash megabytes.
//! - The payload is compared as the exact text we signed, and base64 decoding is strict
//!   (canonical, no padding), so there is exactly one valid spelling of each token.
//! - A 128-bit random nonce makes every token unique, so two links for the same claims differ
//!   and a token reveals nothing by being equal to another.
//!
//! # Signed records
//!
//! The same keys sign records the portal writes now and acts on later (the cleanup's plan and
//! checkpoint in the Jobs table): whoever can write that table must not be able to make the
//! portal act on something it did not decide. A record's signature is `<kid>.<mac>` with
//! `mac = HMAC-SHA256(secret[kid], "rec1\n<kid>\n<kind>\n<content>")`: the `rec1` prefix
//! keeps a record's MAC from ever being a token's (tokens sign text starting `v1.`), and
//! `kind` keeps one kind of record from passing for another.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are refused before any decoding or hashing. A token with the
/// longest valid claims (64-byte request id, 254-byte subject) is about 500 bytes.
pub const MAX_TOKEN_LEN: usize = 1024;
const VERSION: &str = "v1";
const MAC_LEN: usize = 32;
const MIN_SECRET_LEN: usize = 32;
const MAX_KID_LEN: usize = 8;
const MAX_REQUEST_ID_LEN: usize = 64;
const MAX_SUBJECT_LEN: usize = 254;
/// purpose, stage, expires_at, nonce, two length bytes.
const FIXED_CLAIMS_LEN: usize = 1 + 1 + 8 + 16 + 1 + 1;

/// What a token lets its holder do; a token for one purpose is refused for the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    /// The requester confirms they control the address.
    Verify,
    /// An approver approves or denies a request.
    Decide,
    /// A sponsor keeps a guest or ends its access: `request_id` is the guest's directory id,
    /// `stage` the review's round (see `core::review`).
    Review,
}

impl TokenPurpose {
    fn to_byte(self) -> u8 {
        match self {
            TokenPurpose::Verify => 1,
            TokenPurpose::Decide => 2,
            TokenPurpose::Review => 3,
        }
    }

    fn from_byte(byte: u8) -> Option<TokenPurpose> {
        match byte {
            1 => Some(TokenPurpose::Verify),
            2 => Some(TokenPurpose::Decide),
            3 => Some(TokenPurpose::Review),
            _ => None,
        }
    }
}

/// What a token says. Limits (enforced by `verify`, expected by `sign`): `request_id` is
/// `[A-Za-z0-9-]{1,64}`, `subject` is 1..=254 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    pub purpose: TokenPurpose,
    /// The request's id, `[A-Za-z0-9-]{1,64}`.
    pub request_id: String,
    /// [`identity_key`](super::email::EmailAddress::identity_key) of the requester (verify) or
    /// the approver (decide).
    pub subject: String,
    /// The approval stage, 1-based; 0 for verify.
    pub stage: u8,
    /// Unix seconds; the token is expired from this second on.
    pub expires_at: i64,
    /// 128 random bits, from [`new_nonce`].
    pub nonce: [u8; 16],
}

impl TokenClaims {
    /// True when the claims are within the limits the wire format and `verify` accept.
    fn is_well_formed(&self) -> bool {
        (1..=MAX_REQUEST_ID_LEN).contains(&self.request_id.len())
            && self
                .request_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && (1..=MAX_SUBJECT_LEN).contains(&self.subject.len())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(FIXED_CLAIMS_LEN + self.request_id.len() + self.subject.len());
        out.push(self.purpose.to_byte());
        out.push(self.stage);
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        for field in [&self.request_id, &self.subject] {
            // Lengths beyond u8 are a caller bug (see `sign`); saturate rather than panic,
            // and the resulting token fails to verify.
            let len = u8::try_from(field.len()).unwrap_or(u8::MAX);
            out.push(len);
            out.extend_from_slice(&field.as_bytes()[..usize::from(len)]);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<TokenClaims> {
        let (&purpose, rest) = bytes.split_first()?;
        let (&stage, rest) = rest.split_first()?;
        let (expires_at, rest) = rest.split_first_chunk::<8>()?;
        let (nonce, rest) = rest.split_first_chunk::<16>()?;
        let (request_id, rest) = take_string(rest)?;
        let (subject, rest) = take_string(rest)?;
        if !rest.is_empty() {
            return None;
        }
        let claims = TokenClaims {
            purpose: TokenPurpose::from_byte(purpose)?,
            request_id,
            subject,
            stage,
            expires_at: i64::from_be_bytes(*expires_at),
            nonce: *nonce,
        };
        claims.is_well_formed().then_some(claims)
    }
}

fn take_string(bytes: &[u8]) -> Option<(String, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    if rest.len() < len {
        return None;
    }
    let (text, rest) = rest.split_at(len);
    Some((String::from_utf8(text.to_vec()).ok()?, rest))
}

/// 128 random bits from the operating system, for [`TokenClaims::nonce`].
pub fn new_nonce() -> [u8; 16] {
    let mut nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Why a token was refused. `Display` is a sentence for the person who clicked the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of ours at all: wrong shape, too long, bad encoding (often a link broken
    /// by a mail client).
    Malformed,
    /// Signed with a key we no longer have (retired by rotation), or never had.
    UnknownKey,
    /// The signature does not match: altered or forged.
    BadSignature,
    /// A genuine token for the other purpose.
    WrongPurpose,
    /// A genuine token past its deadline; the claims say which request it was for.
    Expired { claims: TokenClaims },
}

impl TokenError {
    /// A stable machine code for logs and APIs.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongPurpose => "wrong_purpose",
            TokenError::Expired { .. } => "expired",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed => f.write_str(
                "This link is incomplete or damaged. Open it again from the email, or copy the whole link into the browser.",
            ),
            TokenError::UnknownKey => f.write_str(
                "This link is no longer valid because the portal's keys have been replaced. Ask for a new link.",
            ),
            TokenError::BadSignature => f.write_str(
                "This link is not valid; it may have been changed. Open it again from the email.",
            ),
            TokenError::WrongPurpose => f.write_str("This link is meant for a different step; use the link from the right email."),
            TokenError::Expired { claims } => {
                let when = time::OffsetDateTime::from_unix_timestamp(claims.expires_at)
                    .ok()
                    .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
                match when {
                    Some(when) => write!(f, "This link expired at {when} (UTC). Ask for a new link."),
                    None => f.write_str("This link has expired. Ask for a new link."),
                }
            }
        }
    }
}

impl std::error::Error for TokenError {}

/// One HMAC key with its short id. `Debug` shows the id only, never the secret.
#[derive(Clone)]
pub struct SigningKey {
    /// `[a-z0-9]{1,8}`, written into every token it signs.
    pub id: String,
    secret: Vec<u8>,
}

impl SigningKey {
    /// A key from its id (`[a-z0-9]{1,8}`) and secret (at least 32 bytes).
    pub fn new(id: &str, secret: Vec<u8>) -> Result<SigningKey, String> {
        if !is_kid(id) {
            return Err(format!(
                "Key id '{id}' must be 1 to {MAX_KID_LEN} lower-case letters or digits."
            ));
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "The secret of key '{id}' is {} bytes; it must be at least {MIN_SECRET_LEN}.",
                secret.len()
            ));
        }
        Ok(SigningKey {
            id: id.to_string(),
            secret,
        })
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length")
    }
}

impl SigningKey {
    /// Why this key's secret does not look like the random bytes it should be, if it does not.
    /// 32 random bytes are never all printable text (a chance of about 1 in 10^14) and have
    /// about 30 distinct values; a typed passphrase, a sample value or a repeated pattern fails
    /// one of these. Says nothing about the secret itself.
    pub fn weakness(&self) -> Option<String> {
        let distinct = self
            .secret
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if self.secret.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Some(format!(
                "the secret of key '{}' is printable text, not random bytes (a passphrase or a sample value)",
                self.id
            ));
        }
        if distinct < 16 {
            return Some(format!(
                "the secret of key '{}' has only {distinct} distinct byte values, not random bytes",
                self.id
            ));
        }
        None
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn is_kid(id: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The current key (signs and verifies) and previous keys (verify only, during rotation).
#[derive(Clone, Debug)]
pub struct SigningKeys {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

impl SigningKeys {
    /// Parses the setting `kid:base64secret[,kid:base64secret...]`; the first key is current,
    /// the rest only verify. Spaces around entries are ignored; the secret is standard base64
    /// with or without padding (as `openssl rand -base64 32` prints). Errors name the entry and
    /// what is wrong with it, never the secret.
    pub fn parse(setting: &str) -> Result<SigningKeys, String> {
        let engine = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let mut keys: Vec<SigningKey> = Vec::new();
        for (index, entry) in setting.split(',').enumerate() {
            let position = index + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(format!(
                    "Signing key entry {position} is empty; expected kid:base64secret."
                ));
            }
            let Some((id, secret)) = entry.split_once(':') else {
                return Err(format!(
                    "Signing key entry {position} has no ':' between the key id and the secret."
                ));
            };
            let secret = engine.decode(secret).map_err(|_| {
                format!("The secret of signing key entry {position} ('{id}') is not valid base64.")
            })?;
            let key = SigningKey::new(id, secret)
                .map_err(|e| format!("Signing key entry {position}: {e}"))?;
            if keys.iter().any(|k| k.id == key.id) {
                return Err(format!("Signing key id '{}' is used twice.", key.id));
            }
            keys.push(key);
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or("No signing key is configured.")?;
        Ok(SigningKeys {
            current,
            previous: keys.collect(),
        })
    }

    /// The id of the key that signs new tokens.
    /// Every key, the current one first.
    pub fn all(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }

    /// Why any key is weak (see [`SigningKey::weakness`]), and keys that share one secret.
    pub fn weaknesses(&self) -> Vec<String> {
        let mut found: Vec<String> = self.all().filter_map(SigningKey::weakness).collect();
        let keys: Vec<&SigningKey> = self.all().collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                if a.secret == b.secret {
                    found.push(format!(
                        "keys '{}' and '{}' have the same secret, so rotating between them changes nothing",
                        a.id, b.id
                    ));
                }
            }
        }
        found
    }

    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Signs claims with the current key. The claims must be within the documented limits
    /// (`request_id` `[A-Za-z0-9-]{1,64}`, `subject` 1..=254 bytes); a token for claims outside
    /// them is still produced but will never verify (checked by a debug assertion in tests).
    pub fn sign(&self, claims: &TokenClaims) -> String {
        debug_assert!(
            claims.is_well_formed(),
            "claims outside the token limits: {claims:?}"
        );
        let key = &self.current;
        let payload = URL_SAFE_NO_PAD.encode(claims.encode());
        let signed = format!("{VERSION}.{}.{payload}", key.id);
        let mut mac = key.mac();
        mac.update(signed.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{tag}")
    }

    /// Checks a token and returns its claims. Order of checks: size, shape, key, MAC (constant
    /// time), then — only for authentic tokens — payload, purpose and expiry (`now_unix >=
    /// expires_at` is expired).
    pub fn verify(
        &self,
        token: &str,
        purpose: TokenPurpose,
        now_unix: i64,
    ) -> Result<TokenClaims, TokenError> {
        // Refuse oversized input before splitting, decoding or hashing anything.
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(version), Some(kid), Some(payload), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        if version != VERSION || !is_kid(kid) || payload.is_empty() {
            return Err(TokenError::Malformed);
        }
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == kid)
            .ok_or(TokenError::UnknownKey)?;
        // The signed text is everything before the final `.<mac>`.
        let signed = &token[..token.len() - tag.len() - 1];
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        if tag.len() != MAC_LEN {
            return Err(TokenError::Malformed);
        }
        let mut mac = key.mac();
        mac.update(signed.as_bytes());
        // `verify_slice` compares in constant time (it uses `subtle`).
        mac.verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;

        // Authentic from here on: the bytes below are ones we produced.
        let claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| TokenClaims::decode(&bytes))
            .ok_or(TokenError::Malformed)?;
        if claims.purpose != purpose {
            return Err(TokenError::WrongPurpose);
        }
        if now_unix >= claims.expires_at {
            return Err(TokenError::Expired { claims });
        }
        Ok(claims)
    }
}

/// Why a record the portal wrote earlier is not trusted. `Display` is a reason for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordSignatureError {
    /// No signature at all (written by an older version, or by someone else).
    Missing,
    /// Not of the shape `<kid>.<mac>`.
    Malformed,
    /// Signed with a key that is no longer configured (retired by rotation), or never was.
    UnknownKey(String),
    /// The signature does not match the content: changed or forged.
    BadSignature,
}

impl fmt::Display for RecordSignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordSignatureError::Missing => f.write_str("it carries no signature"),
            RecordSignatureError::Malformed => f.write_str("its signature is malformed"),
            RecordSignatureError::UnknownKey(kid) => write!(
                f,
                "it is signed with key '{kid}', which is not among PORTAL_SIGNING_KEYS"
            ),
            RecordSignatureError::BadSignature => {
                f.write_str("its signature does not match its content (changed or forged)")
            }
        }
    }
}

impl std::error::Error for RecordSignatureError {}

fn record_mac(key: &SigningKey, kind: &str, content: &str) -> HmacSha256 {
    let mut mac = key.mac();
    for part in ["rec1\n", key.id.as_str(), "\n", kind, "\n", content] {
        mac.update(part.as_bytes());
    }
    mac
}

impl SigningKeys {
    /// Signs a record of `kind` (a fixed name, without line breaks) whose canonical text is
    /// `content`, with the current key: `<kid>.<mac>`.
    pub fn sign_record(&self, kind: &str, content: &str) -> String {
        let tag = record_mac(&self.current, kind, content)
            .finalize()
            .into_bytes();
        format!("{}.{}", self.current.id, URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks a record's signature (from any configured key, current or previous) in
    /// constant time.
    pub fn verify_record(
        &self,
        kind: &str,
        content: &str,
        signature: Option<&str>,
    ) -> Result<(), RecordSignatureError> {
        let signature = signature
            .filter(|s| !s.is_empty())
            .ok_or(RecordSignatureError::Missing)?;
        let (kid, tag) = signature
            .split_once('.')
            .filter(|(kid, _)| is_kid(kid))
            .ok_or(RecordSignatureError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .ok()
            .filter(|t| t.len() == MAC_LEN)
            .ok_or(RecordSignatureError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == kid)
            .ok_or_else(|| RecordSignatureError::UnknownKey(kid.to_string()))?;
        record_mac(key, kind, content)
            .verify_slice(&tag)
            .map_err(|_| RecordSignatureError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;
    // 32 bytes of 0x01 / 0x02 / 0x03, base64.
    const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    const K3: &str = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=";

    fn keys(setting: &str) -> SigningKeys {
        SigningKeys::parse(setting).unwrap()
    }

    fn claims(purpose: TokenPurpose) -> TokenClaims {
        TokenClaims {
            purpose,
            request_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            subject: "jane+x@contoso.com".into(),
            stage: if purpose == TokenPurpose::Verify {
                0
            } else {
                1
            },
            expires_at: NOW + 3600,
            nonce: [7; 16],
        }
    }

    #[test]
    fn round_trips_for_every_purpose() {
        let k = keys(&format!("k1:{K1}"));
        for purpose in [
            TokenPurpose::Verify,
            TokenPurpose::Decide,
            TokenPurpose::Review,
        ] {
            let c = claims(purpose);
            let token = k.sign(&c);
            assert!(token.starts_with("v1.k1."), "{token}");
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{token}"
            );
            assert_eq!(k.verify(&token, purpose, NOW), Ok(c.clone()));
            assert_eq!(k.verify(&token, purpose, NOW + 3599), Ok(c));
        }
    }

    #[test]
    fn longest_claims_fit_and_round_trip() {
        let k = keys(&format!("abcdefgh:{K1}"));
        let c = TokenClaims {
            request_id: "A".repeat(64),
            subject: "s".repeat(254),
            stage: u8::MAX,
            expires_at: i64::MAX,
            nonce: [0xff; 16],
            ..claims(TokenPurpose::Decide)
        };
        let token = k.sign(&c);
        assert!(token.len() <= MAX_TOKEN_LEN / 2 + 64, "{}", token.len());
        assert_eq!(k.verify(&token, TokenPurpose::Decide, i64::MAX - 1), Ok(c));
    }

    #[test]
    fn nonces_make_tokens_differ() {
        let k = keys(&format!("k1:{K1}"));
        let a = TokenClaims {
            nonce: new_nonce(),
            ..claims(TokenPurpose::Verify)
        };
        let b = TokenClaims {
            nonce: new_nonce(),
            ..claims(TokenPurpose::Verify)
        };
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(k.sign(&a), k.sign(&b));
        assert_eq!(
            k.sign(&a),
            k.sign(&a),
            "signing is deterministic for equal claims"
        );
    }

    #[test]
    fn purpose_and_expiry_are_enforced() {
        let k = keys(&format!("k1:{K1}"));
        let verify = k.sign(&claims(TokenPurpose::Verify));
        let decide = k.sign(&claims(TokenPurpose::Decide));
        let review = k.sign(&claims(TokenPurpose::Review));
        let rows: &[(&str, TokenPurpose, i64, Result<(), TokenError>)] = &[
            (&verify, TokenPurpose::Verify, NOW, Ok(())),
            (
                &verify,
                TokenPurpose::Decide,
                NOW,
                Err(TokenError::WrongPurpose),
            ),
            (
                &decide,
                TokenPurpose::Verify,
                NOW,
                Err(TokenError::WrongPurpose),
            ),
            (&decide, TokenPurpose::Decide, NOW + 3599, Ok(())),
            (
                &decide,
                TokenPurpose::Review,
                NOW,
                Err(TokenError::WrongPurpose),
            ),
            (
                &review,
                TokenPurpose::Decide,
                NOW,
                Err(TokenError::WrongPurpose),
            ),
            (&review, TokenPurpose::Review, NOW, Ok(())),
            (
                &decide,
                TokenPurpose::Decide,
                NOW + 3600,
                Err(TokenError::Expired {
                    claims: claims(TokenPurpose::Decide),
                }),
            ),
            (
                &verify,
                TokenPurpose::Verify,
                NOW + 86_400,
                Err(TokenError::Expired {
                    claims: claims(TokenPurpose::Verify),
                }),
            ),
            // Wrong purpose is reported even when also expired: the link is for another step.
            (
                &verify,
                TokenPurpose::Decide,
                NOW + 86_400,
                Err(TokenError::WrongPurpose),
            ),
        ];
        for (token, purpose, now, expected) in rows {
            assert_eq!(
                k.verify(token, *purpose, *now).map(|_| ()),
                *expected,
                "{purpose:?} at {now}"
            );
        }
        let expired = k
            .verify(&decide, TokenPurpose::Decide, NOW + 3600)
            .unwrap_err();
        assert_eq!(
            expired.to_string(),
            "This link expired at 2025-06-15T16:06:40Z (UTC). Ask for a new link."
        );
    }

    #[test]
    fn key_rotation() {
        let old = keys(&format!("k1:{K1}"));
        let rotated = keys(&format!("k2:{K2}, k1:{K1}"));
        let retired = keys(&format!("k3:{K3},k2:{K2}"));
        let c = claims(TokenPurpose::Verify);
        let by_old = old.sign(&c);
        let by_new = rotated.sign(&c);
        assert!(by_new.starts_with("v1.k2."));
        assert_eq!(rotated.current_id(), "k2");
        let rows: &[(&SigningKeys, &str, Result<(), TokenError>)] = &[
            (&rotated, &by_old, Ok(())),
            (&rotated, &by_new, Ok(())),
            (&retired, &by_new, Ok(())),
            (&retired, &by_old, Err(TokenError::UnknownKey)),
            (&old, &by_new, Err(TokenError::UnknownKey)),
        ];
        for (keys, token, expected) in rows {
            assert_eq!(
                keys.verify(token, TokenPurpose::Verify, NOW).map(|_| ()),
                *expected,
                "{token}"
            );
        }
        // Same kid, different secret: the signature fails.
        let impostor = keys(&format!("k1:{K3}"));
        assert_eq!(
            impostor.verify(&by_old, TokenPurpose::Verify, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn every_single_byte_change_is_refused() {
        let k = keys(&format!("k1:{K1},k2:{K2}"));
        let token = k.sign(&claims(TokenPurpose::Decide));
        let replacements = [b'A', b'a', b'0', b'-', b'_', b'.', b'Q', b'z'];
        let mut tried = 0;
        for i in 0..token.len() {
            for &r in &replacements {
                let mut bytes = token.clone().into_bytes();
                if bytes[i] == r {
                    continue;
                }
                bytes[i] = r;
                let mutated = String::from_utf8(bytes).unwrap();
                tried += 1;
                assert!(
                    k.verify(&mutated, TokenPurpose::Decide, NOW).is_err(),
                    "accepted {mutated}"
                );
            }
            // Deleting or inserting a byte is refused too.
            let mut shorter = token.clone();
            shorter.remove(i);
            assert!(
                k.verify(&shorter, TokenPurpose::Decide, NOW).is_err(),
                "accepted {shorter}"
            );
            let mut longer = token.clone();
            longer.insert(i, 'A');
            assert!(
                k.verify(&longer, TokenPurpose::Decide, NOW).is_err(),
                "accepted {longer}"
            );
        }
        assert!(tried > token.len() * 6);
    }

    #[test]
    fn malformed_tokens() {
        let k = keys(&format!("k1:{K1}"));
        let good = k.sign(&claims(TokenPurpose::Verify));
        let parts: Vec<&str> = good.split('.').collect();
        let (payload, tag) = (parts[2], parts[3]);
        let forged_payload = {
            let mut c = claims(TokenPurpose::Verify);
            c.request_id = "other".into();
            URL_SAFE_NO_PAD.encode(c.encode())
        };
        let rows: Vec<(String, TokenError)> = vec![
            (String::new(), TokenError::Malformed),
            ("v1".into(), TokenError::Malformed),
            ("v1.k1".into(), TokenError::Malformed),
            (format!("v1.k1.{payload}"), TokenError::Malformed),
            (format!("v1.k1.{payload}."), TokenError::Malformed),
            (format!("{good}.x"), TokenError::Malformed),
            (format!("v2.k1.{payload}.{tag}"), TokenError::Malformed),
            (format!("V1.k1.{payload}.{tag}"), TokenError::Malformed),
            (format!("v1.K1.{payload}.{tag}"), TokenError::Malformed),
            (format!("v1..{payload}.{tag}"), TokenError::Malformed),
            (format!("v1.k1..{tag}"), TokenError::Malformed),
            (
                format!("v1.toolongid.{payload}.{tag}"),
                TokenError::Malformed,
            ),
            (format!("v1.k9.{payload}.{tag}"), TokenError::UnknownKey),
            (
                format!("v1.k1.{payload}.{}", &tag[..tag.len() - 1]),
                TokenError::Malformed,
            ),
            (format!("v1.k1.{payload}.{tag}A"), TokenError::Malformed),
            (format!("v1.k1.{payload}.{tag}=="), TokenError::Malformed),
            (
                format!("v1.k1.{payload}.+{}", &tag[1..]),
                TokenError::Malformed,
            ),
            (format!("v1.k1.{payload}.!!!!"), TokenError::Malformed),
            (
                format!("v1.k1.{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
                TokenError::BadSignature,
            ),
            (
                format!("v1.k1.{forged_payload}.{tag}"),
                TokenError::BadSignature,
            ),
            (
                format!("v1.k1.{}.{tag}", &payload[..payload.len() - 2]),
                TokenError::BadSignature,
            ),
            (format!("v1.k1.{payload}=.{tag}"), TokenError::BadSignature),
            (format!(" {good}"), TokenError::Malformed),
            (format!("{good}\n"), TokenError::Malformed),
            (good.replace('.', "%2E"), TokenError::Malformed),
            ("é".repeat(4), TokenError::Malformed),
            (
                format!("v1.k1.{}.{tag}", "A".repeat(MAX_TOKEN_LEN)),
                TokenError::Malformed,
            ),
            ("a".repeat(1 << 20), TokenError::Malformed),
        ];
        for (token, expected) in &rows {
            let shown: String = token.chars().take(120).collect();
            assert_eq!(
                k.verify(token, TokenPurpose::Verify, NOW).as_ref().err(),
                Some(expected),
                "{shown:?}"
            );
        }
        // A correctly signed payload that is not valid claims is still refused.
        let junk = URL_SAFE_NO_PAD.encode(b"not claims");
        let signed = format!("v1.k1.{junk}");
        let mut mac = k.current.mac();
        mac.update(signed.as_bytes());
        let token = format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(
            k.verify(&token, TokenPurpose::Verify, NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn claims_decoder_is_strict() {
        let good = claims(TokenPurpose::Decide).encode();
        assert!(TokenClaims::decode(&good).is_some());
        let mut trailing = good.clone();
        trailing.push(0);
        let mut bad_purpose = good.clone();
        bad_purpose[0] = 4;
        let mut bad_request_id = good.clone();
        bad_request_id[FIXED_CLAIMS_LEN - 1] = b'/'; // first byte of request_id
        let rows: Vec<(Vec<u8>, bool)> = vec![
            (good.clone(), true),
            (trailing, false),
            (good[..good.len() - 1].to_vec(), false),
            (good[..10].to_vec(), false),
            (vec![], false),
            (bad_purpose, false),
            (bad_request_id, false),
            (
                TokenClaims {
                    request_id: String::new(),
                    ..claims(TokenPurpose::Verify)
                }
                .encode(),
                false,
            ),
            (
                TokenClaims {
                    subject: String::new(),
                    ..claims(TokenPurpose::Verify)
                }
                .encode(),
                false,
            ),
            (
                TokenClaims {
                    request_id: "a_b".into(),
                    ..claims(TokenPurpose::Verify)
                }
                .encode(),
                false,
            ),
        ];
        for (bytes, ok) in rows {
            assert_eq!(TokenClaims::decode(&bytes).is_some(), ok, "{bytes:?}");
        }
    }

    #[test]
    fn key_setting_parsing() {
        let short = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=="; // 31 bytes
                                                                    // (setting, Ok((current id, number of previous keys)) or Err(fragment of the message))
        type Expected = Result<(&'static str, usize), &'static str>;
        let rows: Vec<(String, Expected)> = vec![
            (format!("k1:{K1}"), Ok(("k1", 0))),
            (format!("k1:{}", K1.trim_end_matches('=')), Ok(("k1", 0))),
            (format!(" k1:{K1} , k2:{K2} "), Ok(("k1", 1))),
            (format!("k3:{K3},k2:{K2},k1:{K1}"), Ok(("k3", 2))),
            (String::new(), Err("entry 1 is empty")),
            (format!("k1:{K1},"), Err("entry 2 is empty")),
            (K1.to_string(), Err("entry 1 has no ':'")),
            (format!("K1:{K1}"), Err("'K1' must be 1 to 8")),
            (format!("toolongid:{K1}"), Err("must be 1 to 8")),
            (format!(":{K1}"), Err("must be 1 to 8")),
            ("k1:".to_string(), Err("is 0 bytes")),
            (
                format!("k1:{short}"),
                Err("is 31 bytes; it must be at least 32"),
            ),
            (
                "k1:not base64!".to_string(),
                Err("entry 1 ('k1') is not valid base64"),
            ),
            (format!("k1:{K1},k1:{K2}"), Err("'k1' is used twice")),
        ];
        for (setting, expected) in rows {
            match (SigningKeys::parse(&setting), expected) {
                (Ok(k), Ok((current, previous))) => {
                    assert_eq!(k.current_id(), current, "{setting}");
                    assert_eq!(k.previous.len(), previous, "{setting}");
                }
                (Err(e), Err(fragment)) => {
                    assert!(e.contains(fragment), "{setting}: {e}");
                    for secret in [K1, K2, K3, short] {
                        assert!(!e.contains(secret), "{e} echoes a secret");
                    }
                }
                (got, want) => panic!("{setting}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn debug_never_prints_secrets() {
        let k = keys(&format!("k1:{K1},k2:{K2}"));
        let shown = format!("{k:?}");
        assert!(
            shown.contains("k1") && shown.contains("<redacted>"),
            "{shown}"
        );
        for needle in ["[1, 1, 1", "[2, 2, 2", "AQEB", "AgIC"] {
            assert!(!shown.contains(needle), "{shown}");
        }
    }

    #[test]
    fn errors_have_sentences_and_codes() {
        let all = [
            TokenError::Malformed,
            TokenError::UnknownKey,
            TokenError::BadSignature,
            TokenError::WrongPurpose,
            TokenError::Expired {
                claims: TokenClaims {
                    expires_at: i64::MAX,
                    ..claims(TokenPurpose::Verify)
                },
            },
        ];
        let mut codes = std::collections::HashSet::new();
        for e in &all {
            let text = e.to_string();
            assert!(text.starts_with("This link"), "{text}");
            assert!(text.ends_with('.'), "{text}");
            assert!(codes.insert(e.code()));
        }
    }

    #[test]
    fn weak_secrets_are_told_from_random_ones() {
        let random = "k1:3q2+7w8Jx0mQ1vR9ZtYb4E6pLs5aKdHfGuNcIoWjTyU=";
        assert!(SigningKeys::parse(random).unwrap().weaknesses().is_empty());
        // Printable text, however long: a passphrase or the sample's value.
        let text = format!(
            "k1:{}",
            base64::engine::general_purpose::STANDARD
                .encode("correct horse battery staple, twice over")
        );
        let weak = SigningKeys::parse(&text).unwrap().weaknesses();
        assert_eq!(weak.len(), 1, "{weak:?}");
        assert!(weak[0].contains("printable text"), "{weak:?}");
        // A repeated pattern of non-printable bytes.
        let pattern = format!(
            "k1:{}",
            base64::engine::general_purpose::STANDARD.encode([0u8, 1, 2, 255].repeat(10))
        );
        let weak = SigningKeys::parse(&pattern).unwrap().weaknesses();
        assert!(weak[0].contains("4 distinct"), "{weak:?}");
        // The same secret under two ids.
        let secret = random.trim_start_matches("k1:");
        let twice = SigningKeys::parse(&format!("k2:{secret},k1:{secret}")).unwrap();
        let weak = twice.weaknesses();
        assert_eq!(weak.len(), 1);
        assert!(weak[0].contains("'k2' and 'k1'"), "{weak:?}");
        // Nothing of a secret is ever in the words.
        assert!(!weak[0].contains(secret));
    }

    #[test]
    fn records_verify_under_their_kind_and_key_only() {
        let k = keys(&format!("k1:{K1}"));
        let sig = k.sign_record("cleanup-plan", "[\"a\",1]");
        assert!(sig.starts_with("k1."), "{sig}");
        assert_eq!(
            k.verify_record("cleanup-plan", "[\"a\",1]", Some(&sig)),
            Ok(())
        );
        assert_eq!(
            k.verify_record("cleanup-plan", "[\"a\",2]", Some(&sig)),
            Err(RecordSignatureError::BadSignature)
        );
        assert_eq!(
            k.verify_record("cleanup-checkpoint", "[\"a\",1]", Some(&sig)),
            Err(RecordSignatureError::BadSignature),
            "a plan row's signature is not a checkpoint's"
        );
        assert_eq!(
            k.verify_record("cleanup-plan", "x", None),
            Err(RecordSignatureError::Missing)
        );
        for bad in ["", "k1", "k1.", "K1.abc", "k1.!!!", "k1.AAAA"] {
            let got = k.verify_record("cleanup-plan", "x", Some(bad));
            assert!(
                matches!(
                    got,
                    Err(RecordSignatureError::Malformed | RecordSignatureError::Missing)
                ),
                "{bad:?}: {got:?}"
            );
        }
        // Rotation: a record signed with the old key verifies while the key is kept...
        let rotated = keys(&format!("k2:{K2},k1:{K1}"));
        assert_eq!(
            rotated.verify_record("cleanup-plan", "[\"a\",1]", Some(&sig)),
            Ok(())
        );
        assert!(rotated.sign_record("cleanup-plan", "x").starts_with("k2."));
        // ... and is refused, by name, once it is retired.
        let retired = keys(&format!("k3:{K3}"));
        assert_eq!(
            retired.verify_record("cleanup-plan", "[\"a\",1]", Some(&sig)),
            Err(RecordSignatureError::UnknownKey("k1".into()))
        );
        // The same id with another secret is a forgery.
        let impostor = keys(&format!("k1:{K2}"));
        assert_eq!(
            impostor.verify_record("cleanup-plan", "[\"a\",1]", Some(&sig)),
            Err(RecordSignatureError::BadSignature)
        );
    }
}
