//! `function-signup`: the partner's path from the form to an invitation.
//!
//! - `GET /api/signup` shows the form; `POST /api/signup` takes it (form or JSON). A valid
//!   submission always gets the same answer ("check your inbox"), whatever the domain or
//!   history; only an address some policy admits gets a verification mail.
//! - `GET /api/signup/verify?token=` shows a confirm button and changes nothing (mail scanners
//!   fetch links); `POST /api/signup/verify` proves the mailbox and lets the policy decide.
//! - `GET /api/signup/logo` serves the operator's logo, so pages load nothing from elsewhere.

use std::sync::Arc;

use serde::Deserialize;
use time::{Duration, OffsetDateTime};
use warp::http::{header, Method, StatusCode};

use super::access::{self, SetupOutcome};
use super::web::{self, brand, page, wants_json};
use super::Portal;
use crate::adapters::mail::OutgoingMail;
use crate::adapters::tables::StoreError;
use crate::core::email::EmailAddress;
use crate::core::policy::{admit, Admission, Language};
use crate::core::request::{AfterVerification, Applicant, RequestStatus, SignupRequest};
use crate::core::token::{new_nonce, TokenClaims, TokenError, TokenPurpose};
use crate::host::request::{self, HttpRequest, Response};
use crate::store::audit::{self, AuditEntry};
use crate::store::limits::{self, LimitKind};
use crate::store::requests;
use crate::views::{self, FieldErrors, FieldProblem, FormValues, LinkProblem};

pub async fn handle(portal: &Arc<Portal>, req: HttpRequest) -> Response {
    let route = req.path.trim_end_matches('/').to_string();
    let head = req.method == Method::HEAD;
    let res = match (route.as_str(), req.method.clone()) {
        ("/api/signup", Method::GET | Method::HEAD) => show_form(portal, &req),
        ("/api/signup", Method::POST) => submit(portal, &req).await,
        ("/api/signup", _) => request::method_not_allowed("GET, HEAD, POST"),
        ("/api/signup/verify", Method::GET | Method::HEAD) => show_confirm(portal, &req),
        ("/api/signup/verify", Method::POST) => verify(portal, &req).await,
        ("/api/signup/verify", _) => request::method_not_allowed("GET, HEAD, POST"),
        ("/api/signup/logo", Method::GET | Method::HEAD) => logo(portal).await,
        ("/api/signup/logo", _) => request::method_not_allowed("GET, HEAD"),
        _ => {
            let lang = web::language(portal, &req, None);
            web::error(portal, &req, lang, views::ErrorKind::NotFound)
        }
    };
    if head {
        request::strip_body(res)
    } else {
        res
    }
}

fn show_form(portal: &Portal, req: &HttpRequest) -> Response {
    let lang = web::language(portal, req, None);
    page(
        StatusCode::OK,
        views::signup_form(
            &brand(portal),
            lang,
            &FormValues::default(),
            &FieldErrors::default(),
        ),
    )
}

/// The submission as sent, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Submission {
    email: String,
    first_name: String,
    last_name: String,
    organisation: String,
    justification: String,
    #[serde(deserialize_with = "accept_bool_or_text")]
    accept_terms: bool,
    lang: Option<String>,
}

fn accept_bool_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Text(String),
    }
    Ok(match B::deserialize(d)? {
        B::Bool(b) => b,
        B::Text(t) => matches!(t.as_str(), "yes" | "on" | "true"),
    })
}

enum Parsed {
    Ok(Submission),
    Unsupported,
    Malformed(String),
}

fn parse_submission(req: &HttpRequest) -> Parsed {
    let Ok(text) = std::str::from_utf8(&req.body) else {
        return Parsed::Malformed("the body is not UTF-8".into());
    };
    match req.content_type().as_deref() {
        Some("application/x-www-form-urlencoded") => {
            let mut s = Submission::default();
            // First value wins for repeated fields, as for query strings.
            let mut seen = std::collections::HashSet::new();
            for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
                if !seen.insert(k.to_string()) {
                    continue;
                }
                let v = v.into_owned();
                match k.as_ref() {
                    "email" => s.email = v,
                    "first_name" => s.first_name = v,
                    "last_name" => s.last_name = v,
                    "organisation" => s.organisation = v,
                    "justification" => s.justification = v,
                    "accept_terms" => s.accept_terms = matches!(v.as_str(), "yes" | "on" | "true"),
                    "lang" => s.lang = Some(v),
                    _ => {}
                }
            }
            Parsed::Ok(s)
        }
        Some("application/json") => match serde_json::from_str::<Submission>(text) {
            Ok(s) => Parsed::Ok(s),
            Err(e) => Parsed::Malformed(format!("the JSON could not be read: {e}")),
        },
        _ => Parsed::Unsupported,
    }
}

/// Text fields: trimmed, bounded, and free of control characters (a CR/LF in a name could
/// otherwise end up in a mail header or forge lines in a text mail).
fn clean(
    lang: Language,
    errors: &mut FieldErrors,
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> String {
    let v = value.trim();
    if v.is_empty() {
        if required {
            errors.push(
                field,
                views::field_message(lang, field, &FieldProblem::Required),
            );
        }
    } else if v.chars().count() > max {
        errors.push(
            field,
            views::field_message(lang, field, &FieldProblem::TooLong { max }),
        );
    } else if v
        .chars()
        .any(|c| c.is_control() && !(field == "justification" && matches!(c, '\n' | '\r' | '\t')))
    {
        errors.push(
            field,
            views::field_message(lang, field, &FieldProblem::ControlCharacters),
        );
    }
    v.to_string()
}

fn validate(
    portal: &Portal,
    lang: Language,
    s: &Submission,
) -> Result<Applicant, Box<(FormValues, FieldErrors)>> {
    let mut errors = FieldErrors::default();
    let email_text = s.email.trim();
    let email = match EmailAddress::parse(email_text) {
        Ok(e) => Some(e),
        Err(_) => {
            let problem = if email_text.is_empty() {
                FieldProblem::Required
            } else {
                FieldProblem::InvalidEmail
            };
            errors.push("email", views::field_message(lang, "email", &problem));
            None
        }
    };
    let first_name = clean(lang, &mut errors, "first_name", &s.first_name, 100, true);
    let last_name = clean(lang, &mut errors, "last_name", &s.last_name, 100, true);
    let organisation = clean(
        lang,
        &mut errors,
        "organisation",
        &s.organisation,
        200,
        true,
    );
    let justification = clean(
        lang,
        &mut errors,
        "justification",
        &s.justification,
        1000,
        false,
    );
    let branding = &portal.settings.portal.branding;
    if (branding.terms_url.is_some() || branding.terms_text.is_some()) && !s.accept_terms {
        errors.push(
            "accept_terms",
            views::field_message(lang, "accept_terms", &FieldProblem::TermsNotAccepted),
        );
    }
    match email {
        Some(email) if errors.is_empty() => Ok(Applicant {
            email,
            first_name,
            last_name,
            organisation,
            justification: (!justification.is_empty()).then_some(justification),
            language: lang,
        }),
        _ => Err(Box::new((
            FormValues {
                email: s.email.clone(),
                first_name: s.first_name.clone(),
                last_name: s.last_name.clone(),
                organisation: s.organisation.clone(),
                justification: s.justification.clone(),
                accept_terms: s.accept_terms,
            },
            errors,
        ))),
    }
}

async fn submit(portal: &Portal, req: &HttpRequest) -> Response {
    let pre_lang = web::language(portal, req, None);
    let submission = match parse_submission(req) {
        Parsed::Ok(s) => s,
        Parsed::Unsupported => {
            return web::error(portal, req, pre_lang, views::ErrorKind::UnsupportedType)
        }
        Parsed::Malformed(why) => {
            if wants_json(req) {
                return request::json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({"error": "bad_request", "message": why}),
                );
            }
            return web::error(portal, req, pre_lang, views::ErrorKind::BadRequest);
        }
    };
    let lang = web::language(portal, req, submission.lang.as_deref());
    let applicant = match validate(portal, lang, &submission) {
        Ok(a) => a,
        Err(invalid) => {
            let (values, errors) = *invalid;
            if wants_json(req) {
                let fields: serde_json::Map<String, serde_json::Value> = errors
                    .0
                    .iter()
                    .map(|(f, m)| (f.to_string(), m.clone().into()))
                    .collect();
                return request::json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({"error": "invalid", "fields": fields}),
                );
            }
            return page(
                StatusCode::BAD_REQUEST,
                views::signup_form(&brand(portal), lang, &values, &errors),
            );
        }
    };
    match accept(portal, req, &applicant).await {
        Ok(Accepted::CheckInbox) => {
            if wants_json(req) {
                return request::json(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({"status": "check_inbox", "message": "If the address can be given access, a link has been sent to it."}),
                );
            }
            page(
                StatusCode::OK,
                views::check_inbox(
                    &brand(portal),
                    lang,
                    portal.settings.portal.verification_hours,
                ),
            )
        }
        Ok(Accepted::Limited(wait)) => web::too_many(portal, req, lang, wait),
        Err(e) => web::unavailable(portal, req, lang, &e),
    }
}

enum Accepted {
    CheckInbox,
    Limited(std::time::Duration),
}

/// Everything after validation. The answer is [`Accepted::CheckInbox`] whether or not the
/// address is admitted, so the form cannot be used to probe policies.
async fn accept(
    portal: &Portal,
    req: &HttpRequest,
    applicant: &Applicant,
) -> Result<Accepted, StoreError> {
    let now = portal.now();
    let limits = &portal.settings.portal.limits;
    let email = &applicant.email;
    if let Some(ip) = req.client_ip() {
        if let Some(wait) =
            limits::hit(&portal.store, LimitKind::ClientIp, &ip, limits.per_ip, now).await?
        {
            tracing::info!("sign-up refused: client IP over its limit");
            return Ok(Accepted::Limited(wait));
        }
    }
    if let Some(wait) = limits::hit(
        &portal.store,
        LimitKind::Address,
        &email.identity_key(),
        limits.per_address,
        now,
    )
    .await?
    {
        tracing::info!(address = %email.masked(), "sign-up refused: address over its limit");
        return Ok(Accepted::Limited(wait));
    }
    if let Some(wait) = limits::hit(
        &portal.store,
        LimitKind::Domain,
        email.domain().as_str(),
        limits.per_domain,
        now,
    )
    .await?
    {
        tracing::info!(domain = %email.domain().as_str(), "sign-up refused: domain over its limit");
        return Ok(Accepted::Limited(wait));
    }
    let policies = portal.policies().await?;
    match admit(&policies, email) {
        Admission::Admitted(_) => {}
        // No mail at all: no backscatter to addresses nobody admitted.
        Admission::Denied(_) | Admission::NoMatch => {
            tracing::info!(address = %email.masked(), "sign-up for an address no policy admits: no mail sent");
            return Ok(Accepted::CheckInbox);
        }
    }

    let id = requests::new_id();
    let request = match requests::claim_address(&portal.store, email, &id).await? {
        None => {
            let request = SignupRequest::new(id, applicant.clone(), now);
            requests::insert(&portal.store, &request).await?;
            audit::record(
                &portal.store,
                AuditEntry::new(now, "requester", "request.submitted")
                    .request(&request.id)
                    .detail(email.masked()),
            )
            .await?;
            request
        }
        Some(existing) => match requests::get(&portal.store, &existing).await? {
            // Still waiting for the mailbox proof: send the link again (the per-address limit
            // above bounds how often).
            Some(s) if s.request.status == RequestStatus::PendingVerification => s.request,
            // Already verified and in progress: nothing to send, same answer.
            Some(s) if !s.request.status.is_closed() => {
                tracing::info!(request_id = %s.request.id, "repeat sign-up while a request is open");
                return Ok(Accepted::CheckInbox);
            }
            // The claim is stale (its request closed or was never written): start afresh.
            _ => {
                let request = SignupRequest::new(id, applicant.clone(), now);
                requests::insert(&portal.store, &request).await?;
                requests::take_over_claim(&portal.store, email, &request.id).await?;
                audit::record(
                    &portal.store,
                    AuditEntry::new(now, "requester", "request.submitted")
                        .request(&request.id)
                        .detail(email.masked()),
                )
                .await?;
                request
            }
        },
    };
    send_verification(portal, &request, now).await;
    Ok(Accepted::CheckInbox)
}

/// Mails the verification link. A failure is logged, not shown: the partner's answer must not
/// differ by domain, and submitting again (or the next mail) re-sends.
pub async fn send_verification(
    portal: &Portal,
    request: &SignupRequest,
    now: OffsetDateTime,
) -> bool {
    let hours = portal.settings.portal.verification_hours;
    let token = portal.settings.portal.signing_keys.sign(&TokenClaims {
        purpose: TokenPurpose::Verify,
        request_id: request.id.clone(),
        subject: request.applicant.email.identity_key(),
        stage: 0,
        expires_at: (now + Duration::hours(hours as i64)).unix_timestamp(),
        nonce: new_nonce(),
    });
    let link = web::public_link(portal, "/api/signup/verify", &token);
    let mail = views::verification_mail(
        &brand(portal),
        request.applicant.language,
        &request.applicant.first_name,
        &link,
        hours,
    );
    match portal
        .mailer
        .send(&OutgoingMail {
            to: request.applicant.email.as_str().to_string(),
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
        })
        .await
    {
        Ok(()) => {
            tracing::info!(request_id = %request.id, address = %request.applicant.email.masked(), "verification mail sent");
            true
        }
        Err(e) => {
            tracing::warn!(request_id = %request.id, error = %e, "verification mail failed; a new submission re-sends it");
            false
        }
    }
}

/// A field of a posted form (first value wins), or of a JSON body.
fn posted_field(req: &HttpRequest, name: &str) -> Option<String> {
    let text = std::str::from_utf8(&req.body).ok()?;
    if req.content_type().as_deref() == Some("application/json") {
        return serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v[name].as_str().map(str::to_string));
    }
    url::form_urlencoded::parse(text.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn token_from_query_or_form(req: &HttpRequest) -> Option<String> {
    if req.method == Method::POST {
        return posted_field(req, "token");
    }
    req.query_param("token")
}

fn link_problem(portal: &Portal, lang: Language, e: &TokenError) -> Response {
    let problem = match e {
        TokenError::Expired { .. } => LinkProblem::Expired,
        _ => LinkProblem::Invalid,
    };
    page(
        StatusCode::BAD_REQUEST,
        views::link_problem(&brand(portal), lang, problem),
    )
}

/// The GET behind the mailed link: a page with a button, nothing else. Checks the token so a
/// broken link says so at once, but reads and writes nothing.
fn show_confirm(portal: &Portal, req: &HttpRequest) -> Response {
    let lang = web::language(portal, req, None);
    let Some(token) = req.query_param("token") else {
        return page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand(portal), lang, LinkProblem::Invalid),
        );
    };
    let now = portal.now().unix_timestamp();
    if let Err(e) = portal
        .settings
        .portal
        .signing_keys
        .verify(&token, TokenPurpose::Verify, now)
    {
        return link_problem(portal, lang, &e);
    }
    page(
        StatusCode::OK,
        views::confirm_email(&brand(portal), lang, &token, &web::self_path(req)),
    )
}

async fn verify(portal: &Portal, req: &HttpRequest) -> Response {
    // A language chosen on the page (its switch, or the form's own field) wins over the
    // language the partner signed up in.
    let chosen = req
        .query_param("lang")
        .or_else(|| posted_field(req, "lang"))
        .and_then(|l| l.parse::<Language>().ok());
    let lang_hint = chosen.unwrap_or_else(|| web::language(portal, req, None));
    if !matches!(
        req.content_type().as_deref(),
        Some("application/x-www-form-urlencoded") | Some("application/json")
    ) {
        return web::error(portal, req, lang_hint, views::ErrorKind::UnsupportedType);
    }
    let Some(token) = token_from_query_or_form(req) else {
        return page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand(portal), lang_hint, LinkProblem::Invalid),
        );
    };
    let now = portal.now();
    let claims = match portal.settings.portal.signing_keys.verify(
        &token,
        TokenPurpose::Verify,
        now.unix_timestamp(),
    ) {
        Ok(c) => c,
        Err(e) => return link_problem(portal, lang_hint, &e),
    };
    match verified(portal, &claims, chosen, now).await {
        Ok(res) => res,
        Err(e) => web::unavailable(portal, req, lang_hint, &e),
    }
}

async fn verified(
    portal: &Portal,
    claims: &TokenClaims,
    chosen: Option<Language>,
    now: OffsetDateTime,
) -> Result<Response, StoreError> {
    let brand = brand(portal);
    let Some(stored) = requests::get(&portal.store, &claims.request_id).await? else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand, chosen.unwrap_or_default(), LinkProblem::Invalid),
        ));
    };
    let mut request = stored.request;
    let lang = chosen.unwrap_or(request.applicant.language);
    // The token names the address it was sent to; a token for another request's address is
    // a forgery or a bug, never a reason to act.
    if request.applicant.email.identity_key() != claims.subject {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand, lang, LinkProblem::Invalid),
        ));
    }
    let policies = portal.policies().await?;
    let admitted = match admit(&policies, &request.applicant.email) {
        Admission::Admitted(p) => Some((p.key(), p.action)),
        Admission::Denied(p) => Some((p.key(), p.action)),
        Admission::NoMatch => None,
    };
    let next = match request.verify(admitted.as_ref().map(|(k, a)| (k.as_str(), *a)), now) {
        Ok(next) => next,
        Err(_) => {
            return Ok(page(
                StatusCode::CONFLICT,
                views::link_problem(&brand, lang, LinkProblem::AlreadyUsed),
            ));
        }
    };
    // The compare-and-swap that makes the link single-use: of two clicks racing, one wins.
    let etag = match requests::save(&portal.store, &request, &stored.etag).await {
        Ok(etag) => etag,
        Err(StoreError::Changed) => {
            return Ok(page(
                StatusCode::CONFLICT,
                views::link_problem(&brand, lang, LinkProblem::AlreadyUsed),
            ));
        }
        Err(e) => return Err(e),
    };
    audit::record(
        &portal.store,
        AuditEntry::new(now, "requester", "request.verified")
            .request(&request.id)
            .detail(format!("next: {next:?}")),
    )
    .await?;
    let res = match next {
        AfterVerification::Invite => {
            let graph = portal.graph.clone();
            let stored = requests::Stored { request, etag };
            match access::set_up_stored(portal, &graph, stored, now).await? {
                SetupOutcome::Ready { redeem_url } => page(
                    StatusCode::OK,
                    views::access_ready(&brand, lang, &redeem_url),
                ),
                _ => page(
                    StatusCode::ACCEPTED,
                    views::access_being_set_up(&brand, lang),
                ),
            }
        }
        AfterVerification::AskApprovers => {
            super::approvals::ask(portal, &request.id, now).await?;
            page(StatusCode::OK, views::awaiting_approval(&brand, lang))
        }
        AfterVerification::Deny => {
            super::approvals::tell_denied(portal, &request.id, now).await?;
            page(StatusCode::OK, views::request_closed(&brand, lang))
        }
    };
    Ok(res)
}

async fn logo(portal: &Portal) -> Response {
    let Some(path) = &portal.settings.portal.branding.logo_file else {
        return request::not_found();
    };
    let content_type = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        // SVG can carry script; served only with a CSP that forbids it.
        Some("svg") => "image/svg+xml",
        _ => return request::not_found(),
    };
    match tokio::fs::read(path).await {
        Ok(bytes) if bytes.len() <= 256 * 1024 => {
            let mut res = Response::new(bytes.into());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(content_type),
            );
            res.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            );
            res.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                header::HeaderValue::from_static("nosniff"),
            );
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("public, max-age=3600"),
            );
            res
        }
        _ => {
            tracing::warn!("PORTAL_LOGO_FILE cannot be read or is over 256 KiB");
            request::not_found()
        }
    }
}
