//! Partners who prove who they are by signing in with their work account, instead of a mailed
//! link: OpenID Connect's authorization code flow with PKCE against the Microsoft identity
//! platform (`/organizations`: any organisation's work accounts).
//!
//! - `POST /api/signup/sign-in` takes the same form as `POST /api/signup` (the form's second
//!   button), checks it and the rate limits the same way, records the started sign-in and sends
//!   the browser to the authorize endpoint. The sign-in is bound to this browser: a random value
//!   in an HttpOnly, SameSite=Lax cookie, whose hash is stored with the sign-in, and the random
//!   `state` that names the stored sign-in. The `nonce` and the PKCE verifier stay server-side.
//! - `GET /api/signup/signed-in?code=&state=` is where the identity platform sends the browser
//!   back. The stored sign-in is taken once (a replayed or second callback finds nothing), must
//!   match the browser's cookie and be recent; the code is recorded by insert and redeemed once
//!   with the PKCE verifier, the portal authenticating with its managed identity; the ID token
//!   is checked (`core::sign_in`). Then the address the tenant vouches for must be the one on
//!   the form, and the policy that admits *this person from this tenant* decides: its proof
//!   must allow a sign-in, its MFA requirement must be met. Only then is a request recorded,
//!   already verified, and it goes straight on: invited, sent to approvers, or denied.
//!
//! Every refusal shows a page that says what happened and records nothing. The person is
//! authenticated once the token passes, so unlike the mailbox path's uniform answer the page
//! may say what the policy does for them.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use time::Duration;
use warp::http::{header, HeaderValue, StatusCode};

use super::signup::{self, Parsed};
use super::web::{self, brand, page};
use super::Portal;
use crate::adapters::sign_in::SignInError;
use crate::adapters::tables::StoreError;
use crate::core::policy::{admit_signed_in, Admission, Language};
use crate::core::request::{Applicant, RequestStatus, SignInProof, SignupRequest};
use crate::core::sign_in::{code_challenge, looks_random, new_code_verifier, new_random_value};
use crate::host::request::{self, HttpRequest, Response};
use crate::store::demand::{self, Unadmitted};
use crate::store::requests::{self, Claim};
use crate::store::sign_ins::{self, PendingSignIn, SIGN_IN_MINUTES};
use crate::views::{self, FieldErrors, FormValues, SignInProblem};

/// The cookie that binds a sign-in to the browser that started it. `__Host-` (Secure, no
/// Domain, Path=/) wherever the portal is served over https, so no other host can set it.
fn cookie_name(portal: &Portal) -> &'static str {
    if portal.settings.portal.public_url.scheme() == "https" {
        "__Host-signin"
    } else {
        "signin"
    }
}

fn set_cookie(portal: &Portal, value: &str, max_age: i64) -> String {
    if portal.settings.portal.public_url.scheme() == "https" {
        format!(
            "{}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax",
            cookie_name(portal)
        )
    } else {
        format!(
            "{}={value}; Path=/api/signup; Max-Age={max_age}; HttpOnly; SameSite=Lax",
            cookie_name(portal)
        )
    }
}

fn browser_binding(portal: &Portal, req: &HttpRequest) -> Option<String> {
    let name = cookie_name(portal);
    req.headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| looks_random(v))
}

fn binding_hash(value: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// The form's pages send the browser to the identity platform when the partner signs in: the
/// page's `form-action` must allow the redirect's destination (browsers check it on the
/// redirect after a form post).
pub fn allow_sign_in_redirect(portal: &Portal, mut res: Response) -> Response {
    let Some(settings) = &portal.settings.sign_in else {
        return res;
    };
    let origin = settings.authority.origin().ascii_serialization();
    let csp = format!(
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// `POST /api/signup/sign-in`: the form, sent on to the sign-in page.
pub async fn start(portal: &Arc<Portal>, req: &HttpRequest) -> Response {
    let pre_lang = web::language(portal, req, None);
    let Some(client) = &portal.sign_in else {
        return web::error(portal, req, pre_lang, views::ErrorKind::NotFound);
    };
    if !web::same_origin(portal, req) {
        return web::cross_site(portal, req, pre_lang);
    }
    let submission = match signup::parse_submission(req) {
        Parsed::Ok(s) => s,
        Parsed::Unsupported => {
            return web::error(portal, req, pre_lang, views::ErrorKind::UnsupportedType)
        }
        Parsed::Malformed(_) => {
            return web::error(portal, req, pre_lang, views::ErrorKind::BadRequest)
        }
    };
    let lang = web::language(portal, req, submission.lang.as_deref());
    let (applicant, job_title) = match signup::validate(portal, lang, &submission) {
        Ok(typed) => typed,
        Err(invalid) => {
            let (values, errors): (FormValues, FieldErrors) = *invalid;
            let res = page(
                StatusCode::BAD_REQUEST,
                views::signup_form_with(
                    &brand(portal),
                    lang,
                    &values,
                    &errors,
                    signup::form_options(portal),
                ),
            );
            return allow_sign_in_redirect(portal, res);
        }
    };
    let now = portal.now();
    match signup::over_limit(portal, req, &applicant.email, now).await {
        Ok(Some(wait)) => return web::too_many(portal, req, lang, wait),
        Ok(None) => {}
        Err(e) => return web::unavailable(portal, req, lang, &e),
    }
    // One value per browser, kept across sign-ins started in several tabs.
    let binding = browser_binding(portal, req).unwrap_or_else(new_random_value);
    let pending = PendingSignIn {
        state: new_random_value(),
        binding_hash: binding_hash(&binding),
        nonce: new_random_value(),
        code_verifier: new_code_verifier(),
        applicant,
        job_title,
        expires_at: now + Duration::minutes(SIGN_IN_MINUTES),
    };
    let target = match client
        .authorize_url(
            &pending.state,
            &pending.nonce,
            &code_challenge(&pending.code_verifier),
            pending.applicant.email.as_str(),
        )
        .await
    {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a sign-in");
            return web::unavailable(
                portal,
                req,
                lang,
                &StoreError::Unavailable("the identity platform".into()),
            );
        }
    };
    if let Err(e) = sign_ins::begin(
        &portal.store,
        &portal.settings.portal.signing_keys,
        &pending,
    )
    .await
    {
        return web::unavailable(portal, req, lang, &e);
    }
    tracing::info!("sign-in started");
    let mut res = request::plain(StatusCode::SEE_OTHER, "");
    res = request::with_header(res, header::LOCATION, &target);
    res = request::with_header(res, header::REFERRER_POLICY, "no-referrer");
    request::with_header(
        res,
        header::SET_COOKIE,
        &set_cookie(portal, &binding, SIGN_IN_MINUTES * 60),
    )
}

/// `GET /api/signup/signed-in`: the identity platform's answer.
pub async fn callback(portal: &Arc<Portal>, req: &HttpRequest) -> Response {
    let lang = web::language(portal, req, None);
    let res = match completed(portal, req, lang).await {
        Ok(res) => res,
        Err(e) => web::unavailable(portal, req, lang, &e),
    };
    // The binding has done its job either way; a later sign-in gets a fresh one.
    request::with_header(res, header::SET_COOKIE, &set_cookie(portal, "", 0))
}

fn problem(portal: &Portal, lang: Language, status: StatusCode, p: SignInProblem) -> Response {
    page(status, views::sign_in_problem(&brand(portal), lang, &p))
}

async fn completed(
    portal: &Arc<Portal>,
    req: &HttpRequest,
    fallback_lang: Language,
) -> Result<Response, StoreError> {
    let Some(client) = &portal.sign_in else {
        return Ok(web::error(
            portal,
            req,
            fallback_lang,
            views::ErrorKind::NotFound,
        ));
    };
    let expired = |lang| {
        Ok(problem(
            portal,
            lang,
            StatusCode::BAD_REQUEST,
            SignInProblem::Expired,
        ))
    };
    let Some(state) = req.query_param("state").filter(|s| looks_random(s)) else {
        return expired(fallback_lang);
    };
    let keys = &portal.settings.portal.signing_keys;
    // Taken first, whatever follows: a state comes back once.
    let Some(pending) = sign_ins::take(&portal.store, keys, &state).await? else {
        tracing::info!("sign-in callback for a state that is unknown or already used");
        return expired(fallback_lang);
    };
    let lang = req
        .query_param("lang")
        .and_then(|l| l.parse().ok())
        .unwrap_or(pending.applicant.language);
    let same_browser = browser_binding(portal, req).is_some_and(|b| {
        bool::from(
            binding_hash(&b)
                .as_bytes()
                .ct_eq(pending.binding_hash.as_bytes()),
        )
    });
    if !same_browser {
        tracing::info!("sign-in callback from another browser than the one that started it");
        return expired(lang);
    }
    let now = portal.now();
    if now > pending.expires_at {
        return expired(lang);
    }
    if let Some(error) = req.query_param("error") {
        tracing::info!(error = %error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect::<String>(), "sign-in ended without a code");
        let p = if error == "access_denied" {
            SignInProblem::Cancelled
        } else {
            SignInProblem::NotVerified
        };
        return Ok(problem(portal, lang, StatusCode::BAD_REQUEST, p));
    }
    let Some(code) = req
        .query_param("code")
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return Ok(problem(
            portal,
            lang,
            StatusCode::BAD_REQUEST,
            SignInProblem::NotVerified,
        ));
    };
    if !sign_ins::first_use_of_code(&portal.store, &code, now).await? {
        tracing::info!("sign-in callback with a code already redeemed");
        return expired(lang);
    }
    let refused = |e: SignInError| -> Result<Response, StoreError> {
        match e {
            SignInError::Unavailable(why) | SignInError::Credential(why) => {
                tracing::warn!(error = %why, "sign-in: the identity platform could not be used");
                Err(StoreError::Unavailable("the identity platform".into()))
            }
            SignInError::Refused {
                error,
                codes,
                description,
            } => {
                tracing::warn!(%error, ?codes, %description, "sign-in: the token endpoint refused the code");
                Ok(problem(
                    portal,
                    lang,
                    StatusCode::BAD_REQUEST,
                    SignInProblem::NotVerified,
                ))
            }
            SignInError::Token(e) => {
                tracing::warn!(check = e.code(), "sign-in: the ID token was refused");
                Ok(problem(
                    portal,
                    lang,
                    StatusCode::BAD_REQUEST,
                    SignInProblem::NotVerified,
                ))
            }
        }
    };
    let id_token = match client.redeem(&code, &pending.code_verifier).await {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    let person = match client
        .verify(&id_token, &pending.nonce, now.unix_timestamp())
        .await
    {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    let typed = &pending.applicant.email;
    let Some(address) = person.verified_address.clone() else {
        tracing::info!(tenant = %person.tenant_id, "sign-in without an address its tenant verified");
        return Ok(problem(
            portal,
            lang,
            StatusCode::FORBIDDEN,
            SignInProblem::NoVerifiedAddress,
        ));
    };
    if address.identity_key() != typed.identity_key() {
        tracing::info!(tenant = %person.tenant_id, "sign-in as another address than the form's");
        return Ok(problem(
            portal,
            lang,
            StatusCode::FORBIDDEN,
            SignInProblem::WrongAddress {
                signed_in: address.as_str().to_string(),
                typed: typed.as_str().to_string(),
            },
        ));
    }
    let policies = portal.policies().await?;
    let policy = match admit_signed_in(&policies, &address, &person.tenant_id) {
        Admission::Admitted(p) => p.clone(),
        other => {
            let why = if matches!(other, Admission::Denied(_)) {
                Unadmitted::Denied
            } else {
                Unadmitted::NoPolicy
            };
            tracing::info!(tenant = %person.tenant_id, domain = %address.domain().as_str(), "signed in, but no policy admits this person");
            demand::count(
                &portal.store,
                address.domain().as_str(),
                why,
                &requests::new_id(),
                now,
            )
            .await?;
            return Ok(page(
                StatusCode::FORBIDDEN,
                views::request_closed(&brand(portal), lang),
            ));
        }
    };
    let applicant = Applicant {
        language: lang,
        ..pending.applicant
    };
    let job_title = pending.job_title;
    if !policy.proof.accepts_sign_in() {
        // The admin asked for the mailbox itself to be proved: the mailed link, as for anyone.
        tracing::info!("signed in under a mailbox policy: the mailed link follows");
        signup::record_submission(portal, applicant, job_title, now).await?;
        return Ok(page(
            StatusCode::OK,
            views::check_inbox(
                &brand(portal),
                lang,
                portal.settings.portal.verification_hours,
            ),
        ));
    }
    if policy.require_mfa && !person.mfa {
        tracing::info!(tenant = %person.tenant_id, "sign-in without MFA under a policy that requires it");
        return Ok(problem(
            portal,
            lang,
            StatusCode::FORBIDDEN,
            SignInProblem::MfaRequired,
        ));
    }
    let proof = SignInProof {
        tenant_id: person.tenant_id,
        object_id: person.object_id,
        name: person.name,
        address,
        mfa: person.mfa,
        at: now,
    };
    tracing::info!(tenant = %proof.tenant_id, "signed in; the request goes on");
    signed_in_request(portal, applicant, job_title, proof, lang).await
}

/// The signed-in person's request, verified by the sign-in: the address's one open request
/// (a new one, or the one still waiting for its mailed link, which the sign-in proves), then
/// what the policy says.
async fn signed_in_request(
    portal: &Portal,
    applicant: Applicant,
    job_title: Option<String>,
    proof: SignInProof,
    lang: Language,
) -> Result<Response, StoreError> {
    let now = proof.at;
    let email = applicant.email.clone();
    let mut request = SignupRequest::submitted(requests::new_id(), applicant, now);
    request.signed_in = Some(proof);
    request.job_title = job_title;
    request
        .await_verification(now)
        .expect("a new submission awaits verification");
    for _ in 0..3 {
        match requests::claim_address(&portal.store, &email, &request.id).await? {
            Claim::Ours => {
                let etag = requests::insert(&portal.store, &request).await?;
                let stored = requests::Stored { request, etag };
                return signup::after_proof(portal, stored, lang, now).await;
            }
            Claim::Held {
                request_id,
                etag: claim_etag,
            } => {
                let open = requests::get(&portal.store, &request_id).await?;
                match open {
                    Some(mut open)
                        if matches!(
                            open.request.status,
                            RequestStatus::Submitted | RequestStatus::PendingVerification
                        ) =>
                    {
                        // Proved by the sign-in, with the signed-in person's details.
                        open.request.applicant = request.applicant.clone();
                        open.request.job_title = request.job_title.clone();
                        open.request.signed_in = request.signed_in.clone();
                        if open.request.status == RequestStatus::Submitted {
                            let _ = open.request.await_verification(now);
                        }
                        return signup::after_proof(portal, open, lang, now).await;
                    }
                    Some(open) if !open.request.status.is_closed() => {
                        let brand = brand(portal);
                        let body = match open.request.status {
                            RequestStatus::PendingApproval => {
                                views::awaiting_approval(&brand, lang)
                            }
                            _ => views::access_being_set_up(&brand, lang),
                        };
                        return Ok(page(StatusCode::OK, body));
                    }
                    _ => {
                        if requests::take_over_claim(
                            &portal.store,
                            &email,
                            &request.id,
                            &claim_etag,
                        )
                        .await?
                        {
                            let etag = requests::insert(&portal.store, &request).await?;
                            let stored = requests::Stored { request, etag };
                            return signup::after_proof(portal, stored, lang, now).await;
                        }
                    }
                }
            }
        }
    }
    Err(StoreError::Unavailable(
        "the address's claim kept changing".into(),
    ))
}
