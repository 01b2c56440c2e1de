//! Partners who prove who they are by signing in with their work account: the checks an ID
//! token from the Microsoft identity platform must pass before the portal believes a word of
//! it, and the PKCE values of the authorization code flow.
//!
//! The ID token arrives from the token endpoint over TLS, in answer to the portal's own request
//! (never from the browser), and is still checked in full, as OpenID Connect asks:
//! - the header says `RS256` and names a key (`kid`) of the issuer's published set. Nothing else
//!   is accepted: not `none`, not `HS256` (which would make a public key a shared secret), not
//!   another RSA or EC variant. The signature is RSASSA-PKCS1-v1_5 with SHA-256 over a
//!   2048-8192-bit key (aws-lc, the library the portal's TLS already uses).
//! - `iss` is the discovery document's issuer with the token's own `tid` put in (the
//!   multi-tenant issuer is a template, `https://login.microsoftonline.com/{tenantid}/v2.0`),
//!   so a token issued by one tenant cannot claim another; the consumer (Microsoft account)
//!   tenant is refused outright.
//! - `aud` is the portal's client id; `exp` is in the future and `nbf` not, within five
//!   minutes of clock skew; `nonce` is the one this browser's sign-in was started with.
//!
//! Which address the token proves: the `email` claim, and only when `xms_edov` is true, i.e.
//! the person's tenant has verified that the email's domain is its own. `preferred_username`
//! is documented as mutable and not proof of anything, and `email` alone can be any value an
//! administrator (or, for some account kinds, the user) typed; a tenant could otherwise put
//! `someone@yourcompany.com` on an account it controls and be believed (the "nOAuth" pattern).
//!
//! MFA: the `amr` claim lists the authentication methods; `mfa` among them means a second
//! factor was used (RFC 8176). Microsoft documents `amr` for v1.0 tokens and v2.0 ID tokens
//! leave it out today, so a policy that requires MFA refuses a token without the claim: it
//! fails closed, and says why.

use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::email::EmailAddress;

/// Tokens from the identity platform are a few KiB; anything this large is not one.
pub const MAX_ID_TOKEN_LEN: usize = 16 * 1024;
/// Clock skew tolerated on `exp` and `nbf`.
pub const CLOCK_SKEW_SECONDS: i64 = 300;
/// The tenant of personal Microsoft accounts: never a partner organisation.
pub const CONSUMER_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// What the multi-tenant issuer template holds in place of the tenant id.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// One published signing key (an RSA JWK), as the issuer's `jwks_uri` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedKey {
    pub kid: String,
    /// Modulus and exponent, big-endian without leading zeros.
    pub n: Vec<u8>,
    pub e: Vec<u8>,
}

/// Reads a JWK Set: the RSA signing keys in it (others are skipped, as they can sign nothing
/// this portal accepts). Fails only when the document is not a key set at all.
pub fn parse_key_set(json: &[u8]) -> Result<Vec<PublishedKey>, String> {
    #[derive(Deserialize)]
    struct Jwk {
        kty: Option<String>,
        #[serde(rename = "use")]
        usage: Option<String>,
        kid: Option<String>,
        n: Option<String>,
        e: Option<String>,
    }
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<Jwk>,
    }
    let set: Jwks =
        serde_json::from_slice(json).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
    Ok(set
        .keys
        .into_iter()
        .filter(|k| {
            k.kty.as_deref() == Some("RSA") && k.usage.as_deref().is_none_or(|u| u == "sig")
        })
        .filter_map(|k| {
            let decode = |v: Option<String>| {
                URL_SAFE_NO_PAD
                    .decode(v?.trim_end_matches('='))
                    .ok()
                    .map(|b| {
                        let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                        b[start..].to_vec()
                    })
                    .filter(|b| !b.is_empty())
            };
            Some(PublishedKey {
                kid: k.kid.filter(|k| !k.is_empty())?,
                n: decode(k.n)?,
                e: decode(k.e)?,
            })
        })
        .collect())
}

/// What the portal expects of the ID token of one sign-in.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// The portal's application (client) id.
    pub client_id: &'a str,
    /// The discovery document's `issuer`, possibly the `{tenantid}` template.
    pub issuer: &'a str,
    /// The nonce this browser's sign-in was started with.
    pub nonce: &'a str,
    pub now_unix: i64,
}

/// Who signed in, as the token says and the checks above allow believing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedIn {
    pub tenant_id: Uuid,
    pub object_id: Uuid,
    /// The display name from the person's directory (may be empty).
    pub name: String,
    /// The address the tenant vouches for (`email` with `xms_edov`), or `None`.
    pub verified_address: Option<EmailAddress>,
    /// `amr` lists `mfa`.
    pub mfa: bool,
}

/// Why an ID token was refused. None of these is shown to the person in detail (the page says
/// the sign-in could not be verified); the code is logged, without the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdTokenError {
    /// Not three base64url parts of JSON, or too long.
    Malformed,
    /// `alg` is not RS256 (`none`, `HS256`, ...).
    Algorithm(String),
    /// The header names no key, or one not in the published set (the caller refreshes the set
    /// once and tries again).
    UnknownKey(String),
    BadSignature,
    /// `iss` is not the issuer for the token's own `tid`, or `tid` is not a tenant id.
    Issuer,
    ConsumerAccount,
    Audience,
    Expired,
    NotYetValid,
    Nonce,
    /// `oid` missing or not an object id.
    Subject,
}

impl IdTokenError {
    /// A short stable code for logs and audit.
    pub fn code(&self) -> &'static str {
        match self {
            IdTokenError::Malformed => "malformed",
            IdTokenError::Algorithm(_) => "algorithm",
            IdTokenError::UnknownKey(_) => "unknown_key",
            IdTokenError::BadSignature => "bad_signature",
            IdTokenError::Issuer => "issuer",
            IdTokenError::ConsumerAccount => "consumer_account",
            IdTokenError::Audience => "audience",
            IdTokenError::Expired => "expired",
            IdTokenError::NotYetValid => "not_yet_valid",
            IdTokenError::Nonce => "nonce",
            IdTokenError::Subject => "subject",
        }
    }
}

impl std::fmt::Display for IdTokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdTokenError::Algorithm(a) => write!(f, "algorithm {a:?} is not RS256"),
            IdTokenError::UnknownKey(k) => write!(f, "key {k:?} is not published"),
            other => f.write_str(other.code()),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

/// `aud` is a string in Microsoft's tokens; a one-element array means the same.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    nonce: Option<String>,
    tid: Option<String>,
    oid: Option<String>,
    name: Option<String>,
    email: Option<String>,
    xms_edov: Option<serde_json::Value>,
    amr: Option<Vec<String>>,
}

fn decode_part(part: &str) -> Result<Vec<u8>, IdTokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| IdTokenError::Malformed)
}

/// The header's key id, so the caller can refresh the key set when it is unknown.
pub fn key_id(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    serde_json::from_slice::<Header>(&decode_part(header).ok()?)
        .ok()?
        .kid
}

/// Checks an ID token against the published keys and what this sign-in expects.
pub fn verify_id_token(
    token: &str,
    keys: &[PublishedKey],
    expected: &Expected<'_>,
) -> Result<SignedIn, IdTokenError> {
    if token.len() > MAX_ID_TOKEN_LEN {
        return Err(IdTokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed);
    };
    let header: Header =
        serde_json::from_slice(&decode_part(header_b64)?).map_err(|_| IdTokenError::Malformed)?;
    // Exactly RS256: the algorithm is the verifier's choice, never the token's.
    match header.alg.as_deref() {
        Some("RS256") => {}
        other => {
            return Err(IdTokenError::Algorithm(
                other.unwrap_or("(none given)").to_string(),
            ))
        }
    }
    let kid = header.kid.unwrap_or_default();
    let Some(key) = keys.iter().find(|k| !kid.is_empty() && k.kid == kid) else {
        return Err(IdTokenError::UnknownKey(kid));
    };
    let signature = decode_part(signature_b64)?;
    let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
    RsaPublicKeyComponents {
        n: key.n.as_slice(),
        e: key.e.as_slice(),
    }
    .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
    .map_err(|_| IdTokenError::BadSignature)?;

    // Authentic from here on; now whether it is meant for us, now, for this sign-in.
    let claims: Claims =
        serde_json::from_slice(&decode_part(payload_b64)?).map_err(|_| IdTokenError::Malformed)?;
    let tenant_id = claims
        .tid
        .as_deref()
        .and_then(canonical_guid)
        .ok_or(IdTokenError::Issuer)?;
    let tid_text = tenant_id.to_string();
    if tid_text == CONSUMER_TENANT {
        return Err(IdTokenError::ConsumerAccount);
    }
    let wanted_issuer = expected.issuer.replace(TENANT_PLACEHOLDER, &tid_text);
    if claims.iss.as_deref() != Some(wanted_issuer.as_str()) {
        return Err(IdTokenError::Issuer);
    }
    let audience_ok = match &claims.aud {
        Some(Audience::One(a)) => a == expected.client_id,
        Some(Audience::Many(list)) => list.len() == 1 && list[0] == expected.client_id,
        None => false,
    };
    if !audience_ok {
        return Err(IdTokenError::Audience);
    }
    match claims.exp {
        Some(exp) if expected.now_unix < exp + CLOCK_SKEW_SECONDS => {}
        _ => return Err(IdTokenError::Expired),
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > expected.now_unix + CLOCK_SKEW_SECONDS)
    {
        return Err(IdTokenError::NotYetValid);
    }
    let nonce_ok = claims.nonce.as_deref().is_some_and(|n| {
        subtle::ConstantTimeEq::ct_eq(n.as_bytes(), expected.nonce.as_bytes()).into()
    });
    if !nonce_ok || expected.nonce.is_empty() {
        return Err(IdTokenError::Nonce);
    }
    let object_id = claims
        .oid
        .as_deref()
        .and_then(canonical_guid)
        .ok_or(IdTokenError::Subject)?;
    let domain_verified = matches!(&claims.xms_edov, Some(serde_json::Value::Bool(true)))
        || matches!(&claims.xms_edov, Some(serde_json::Value::String(s)) if s == "1" || s.eq_ignore_ascii_case("true"))
        || matches!(&claims.xms_edov, Some(serde_json::Value::Number(n)) if n.as_u64() == Some(1));
    let verified_address = claims
        .email
        .as_deref()
        .filter(|_| domain_verified)
        .and_then(|e| EmailAddress::parse(e).ok());
    Ok(SignedIn {
        tenant_id,
        object_id,
        name: claims
            .name
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect(),
        verified_address,
        mfa: claims.amr.unwrap_or_default().iter().any(|m| m == "mfa"),
    })
}

/// A GUID in its canonical lower-case hyphenated form, or `None`.
fn canonical_guid(text: &str) -> Option<Uuid> {
    (text.len() == 36)
        .then(|| Uuid::parse_str(text).ok())
        .flatten()
}

/// A PKCE code verifier (RFC 7636): 32 random bytes, base64url (43 characters).
pub fn new_code_verifier() -> String {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 challenge of a verifier.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An unguessable value for `state`, `nonce` and the browser binding: 32 random bytes.
pub fn new_random_value() -> String {
    new_code_verifier()
}

/// Whether `text` could be one of our random values (43 base64url characters): anything else
/// in a `state` or cookie is refused before a storage lookup.
pub fn looks_random(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
    use hmac::Mac;
    use serde_json::json;

    const CLIENT: &str = "5160a11e-0b2b-4c1e-9a55-516e00000002";
    const TENANT: &str = "11111111-2222-4333-8444-555555555555";
    const ISSUER: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const NOW: i64 = 1_800_000_000;

    struct Issuer {
        pair: RsaKeyPair,
        kid: String,
    }

    impl Issuer {
        fn new(kid: &str) -> Issuer {
            Issuer {
                pair: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
                kid: kid.into(),
            }
        }
        fn published(&self) -> PublishedKey {
            let p = self.pair.public_key();
            PublishedKey {
                kid: self.kid.clone(),
                n: p.modulus().big_endian_without_leading_zero().to_vec(),
                e: p.exponent().big_endian_without_leading_zero().to_vec(),
            }
        }
        fn sign(&self, header: serde_json::Value, claims: &serde_json::Value) -> String {
            let signed = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let mut sig = vec![0; self.pair.public_modulus_len()];
            self.pair
                .sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    signed.as_bytes(),
                    &mut sig,
                )
                .unwrap();
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
        }
        fn token(&self, claims: &serde_json::Value) -> String {
            self.sign(
                json!({"typ": "JWT", "alg": "RS256", "kid": self.kid}),
                claims,
            )
        }
    }

    fn claims() -> serde_json::Value {
        json!({
            "aud": CLIENT,
            "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600,
            "tid": TENANT,
            "oid": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
            "name": "Ada Lovelace",
            "preferred_username": "ada@fabrikam.example",
            "email": "Ada@Fabrikam.example",
            "xms_edov": true,
            "nonce": "the-nonce",
            "amr": ["pwd", "mfa"],
            "ver": "2.0",
        })
    }

    fn expected() -> Expected<'static> {
        Expected {
            client_id: CLIENT,
            issuer: ISSUER,
            nonce: "the-nonce",
            now_unix: NOW,
        }
    }

    fn with(changes: serde_json::Value) -> serde_json::Value {
        let mut c = claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    #[test]
    fn a_genuine_token_gives_the_person() {
        let issuer = Issuer::new("k1");
        let got =
            verify_id_token(&issuer.token(&claims()), &[issuer.published()], &expected()).unwrap();
        assert_eq!(got.tenant_id.to_string(), TENANT);
        assert_eq!(got.name, "Ada Lovelace");
        assert_eq!(
            got.verified_address.unwrap().identity_key(),
            EmailAddress::parse("ada@fabrikam.example")
                .unwrap()
                .identity_key()
        );
        assert!(got.mfa);
    }

    #[test]
    fn every_claim_check_refuses_its_forgery() {
        let issuer = Issuer::new("k1");
        let keys = [issuer.published()];
        // (changes to the claims, expected error)
        let rows: Vec<(serde_json::Value, IdTokenError)> = vec![
            (json!({"aud": "someone-else"}), IdTokenError::Audience),
            (json!({"aud": [CLIENT, "other"]}), IdTokenError::Audience),
            (json!({"aud": null}), IdTokenError::Audience),
            (
                json!({"iss": "https://login.microsoftonline.com/22222222-2222-4333-8444-555555555555/v2.0"}),
                IdTokenError::Issuer,
            ),
            (
                json!({"iss": "https://sts.windows.net/11111111-2222-4333-8444-555555555555/"}),
                IdTokenError::Issuer,
            ),
            (
                json!({"tid": "22222222-2222-4333-8444-555555555555"}),
                IdTokenError::Issuer,
            ),
            (json!({"tid": "not-a-guid"}), IdTokenError::Issuer),
            (json!({"tid": null}), IdTokenError::Issuer),
            (
                json!({"tid": CONSUMER_TENANT, "iss": format!("https://login.microsoftonline.com/{CONSUMER_TENANT}/v2.0")}),
                IdTokenError::ConsumerAccount,
            ),
            (
                json!({"exp": NOW - CLOCK_SKEW_SECONDS}),
                IdTokenError::Expired,
            ),
            (json!({"exp": null}), IdTokenError::Expired),
            (
                json!({"nbf": NOW + CLOCK_SKEW_SECONDS + 1}),
                IdTokenError::NotYetValid,
            ),
            (json!({"nonce": "another"}), IdTokenError::Nonce),
            (json!({"nonce": null}), IdTokenError::Nonce),
            (json!({"oid": null}), IdTokenError::Subject),
            (json!({"oid": "x"}), IdTokenError::Subject),
        ];
        for (changes, want) in rows {
            let token = issuer.token(&with(changes.clone()));
            assert_eq!(
                verify_id_token(&token, &keys, &expected()),
                Err(want),
                "{changes}"
            );
        }
        // Within the skew: still fine.
        let token = issuer.token(&with(
            json!({"exp": NOW - CLOCK_SKEW_SECONDS + 1, "nbf": NOW + CLOCK_SKEW_SECONDS}),
        ));
        assert!(verify_id_token(&token, &keys, &expected()).is_ok());
    }

    #[test]
    fn only_rs256_from_a_published_key_passes() {
        let issuer = Issuer::new("k1");
        let stranger = Issuer::new("k1");
        let keys = [issuer.published()];
        let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
        let none = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"none"}"#)
        );
        assert_eq!(
            verify_id_token(&none, &keys, &expected()),
            Err(IdTokenError::Algorithm("none".into()))
        );
        // HS256 keyed with the public key, as an attacker who read the JWKS would.
        let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"HS256","kid":"k1"}"#);
        let signed = format!("{header}.{payload}");
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&keys[0].n).unwrap();
        mac.update(signed.as_bytes());
        let hs = format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(
            verify_id_token(&hs, &keys, &expected()),
            Err(IdTokenError::Algorithm("HS256".into()))
        );
        for alg in ["RS384", "PS256", "ES256", "rs256"] {
            let t = issuer.sign(json!({"alg": alg, "kid": "k1"}), &claims());
            assert_eq!(
                verify_id_token(&t, &keys, &expected()),
                Err(IdTokenError::Algorithm(alg.into()))
            );
        }
        // The right kid, someone else's key.
        assert_eq!(
            verify_id_token(&stranger.token(&claims()), &keys, &expected()),
            Err(IdTokenError::BadSignature)
        );
        // A key not (or no longer) published.
        let retired = Issuer::new("k0");
        assert_eq!(
            verify_id_token(&retired.token(&claims()), &keys, &expected()),
            Err(IdTokenError::UnknownKey("k0".into()))
        );
        let no_kid = issuer.sign(json!({"alg": "RS256"}), &claims());
        assert_eq!(
            verify_id_token(&no_kid, &keys, &expected()),
            Err(IdTokenError::UnknownKey(String::new()))
        );
        // Claims changed after signing.
        let good = issuer.token(&claims());
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(with(json!({"email": "ceo@contoso.example"})).to_string()),
            parts[2]
        );
        assert_eq!(
            verify_id_token(&tampered, &keys, &expected()),
            Err(IdTokenError::BadSignature)
        );
        for junk in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.??.**",
            &"a".repeat(MAX_ID_TOKEN_LEN + 1),
        ] {
            assert!(
                verify_id_token(junk, &keys, &expected()).is_err(),
                "{junk:.20}"
            );
        }
    }

    #[test]
    fn the_address_counts_only_when_the_tenant_verified_its_domain() {
        let issuer = Issuer::new("k1");
        let keys = [issuer.published()];
        let rows: &[(serde_json::Value, bool)] = &[
            (json!({}), true),
            (json!({"xms_edov": "1"}), true),
            (json!({"xms_edov": 1}), true),
            (json!({"xms_edov": false}), false),
            (json!({"xms_edov": "0"}), false),
            (json!({"xms_edov": null}), false),
            (json!({"email": null}), false),
            (json!({"email": "not an address"}), false),
        ];
        for (changes, verified) in rows {
            let got =
                verify_id_token(&issuer.token(&with(changes.clone())), &keys, &expected()).unwrap();
            assert_eq!(got.verified_address.is_some(), *verified, "{changes}");
        }
        // MFA only with `mfa` in amr; no amr (Entra's v2.0 ID tokens) is not MFA.
        for (amr, mfa) in [
            (json!(["pwd", "mfa"]), true),
            (json!(["pwd"]), false),
            (json!(["mfa"]), true),
            (json!(null), false),
        ] {
            let got = verify_id_token(
                &issuer.token(&with(json!({"amr": amr.clone()}))),
                &keys,
                &expected(),
            )
            .unwrap();
            assert_eq!(got.mfa, mfa, "{amr}");
        }
    }

    #[test]
    fn key_sets_keep_rsa_signing_keys_only() {
        let set = br#"{"keys":[
            {"kty":"RSA","use":"sig","kid":"a","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"b","n":"AAEAAQ","e":"AQAB"},
            {"kty":"RSA","use":"enc","kid":"c","n":"AQAB","e":"AQAB"},
            {"kty":"EC","use":"sig","kid":"d","x":"AQAB","y":"AQAB"},
            {"kty":"RSA","use":"sig","n":"AQAB","e":"AQAB"}
        ]}"#;
        let keys = parse_key_set(set).unwrap();
        assert_eq!(
            keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(keys[1].n, vec![1, 0, 1], "leading zeros dropped");
        assert!(parse_key_set(b"{}").is_err());
        assert!(parse_key_set(b"<html>").is_err());
    }

    #[test]
    fn pkce_values_follow_rfc_7636() {
        // The RFC's appendix B example.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let v = new_code_verifier();
        assert!(looks_random(&v));
        assert_ne!(v, new_code_verifier());
        assert!(!looks_random("short"));
        assert!(!looks_random(&format!("{}!", &v[..42])));
    }
}
