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
use super::outbox::{self, Recorded};
use super::web::{self, brand, page, wants_json};
use super::Portal;
use crate::adapters::tables::{StoreError, TableName};
use crate::core::email::EmailAddress;
use crate::core::outbox::{Letter, LinkRecipe, MailKind};
use crate::core::policy::{admit, admit_as, Admission, Language};
use crate::core::request::{AfterVerification, Applicant, RequestStatus, SignupRequest};
use crate::core::token::{new_nonce, TokenClaims, TokenError, TokenPurpose};
use crate::host::request::{self, HttpRequest, Response};
use crate::store::audit::{self, AuditEntry};
use crate::store::demand::{self, Unadmitted};
use crate::store::limits::{self, LimitKind};
use crate::store::requests::{self, Claim};
use crate::views::{self, FieldErrors, FieldProblem, FormValues, LinkProblem};

pub async fn handle(portal: &Arc<Portal>, req: HttpRequest) -> Response {
    let route = req.path.trim_end_matches('/').to_string();
    let head = req.method == Method::HEAD;
    let res = match (route.as_str(), req.method.clone()) {
        ("/api/signup", Method::GET | Method::HEAD) => show_form(portal, &req),
        ("/api/signup", Method::POST) => submit(portal, &req).await,
        ("/api/signup", _) => request::method_not_allowed("GET, HEAD, POST"),
        ("/api/signup/verify", Method::GET | Method::HEAD) => show_confirm(portal, &req).await,
        ("/api/signup/verify", Method::POST) => verify(portal, &req).await,
        ("/api/signup/verify", _) => request::method_not_allowed("GET, HEAD, POST"),
        ("/api/signup/sign-in", Method::POST) => super::sign_in::start(portal, &req).await,
        ("/api/signup/sign-in", _) => request::method_not_allowed("POST"),
        ("/api/signup/signed-in", Method::GET) => super::sign_in::callback(portal, &req).await,
        ("/api/signup/signed-in", _) => request::method_not_allowed("GET"),
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

/// What the form offers besides the mailed link: the sign-in button, the job title field.
pub(super) fn form_options(portal: &Portal) -> views::FormOptions {
    views::FormOptions {
        sign_in: portal.sign_in.is_some(),
        job_title: portal.settings.portal.ask_job_title,
    }
}

fn show_form(portal: &Portal, req: &HttpRequest) -> Response {
    let lang = web::language(portal, req, None);
    let res = page(
        StatusCode::OK,
        views::signup_form_with(
            &brand(portal),
            lang,
            &FormValues::default(),
            &FieldErrors::default(),
            form_options(portal),
        ),
    );
    super::sign_in::allow_sign_in_redirect(portal, res)
}

/// The submission as sent, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Submission {
    email: String,
    first_name: String,
    last_name: String,
    organisation: String,
    justification: String,
    job_title: String,
    #[serde(deserialize_with = "accept_bool_or_text")]
    accept_terms: bool,
    pub(super) lang: Option<String>,
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

pub(super) enum Parsed {
    Ok(Submission),
    Unsupported,
    Malformed(String),
}

pub(super) fn parse_submission(req: &HttpRequest) -> Parsed {
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
                    "job_title" => s.job_title = v,
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

/// What the partner typed, checked: the applicant, and the job title where the form asks for
/// one (`PORTAL_ASK_JOB_TITLE`; a job title posted to a form that does not ask is ignored).
pub(super) fn validate(
    portal: &Portal,
    lang: Language,
    s: &Submission,
) -> Result<requests::Typed, Box<(FormValues, FieldErrors)>> {
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
    let job_title = if portal.settings.portal.ask_job_title {
        clean(
            lang,
            &mut errors,
            "job_title",
            &s.job_title,
            views::JOB_TITLE_MAX,
            false,
        )
    } else {
        String::new()
    };
    let branding = &portal.settings.portal.branding;
    if (branding.terms_url.is_some() || branding.terms_text.is_some()) && !s.accept_terms {
        errors.push(
            "accept_terms",
            views::field_message(lang, "accept_terms", &FieldProblem::TermsNotAccepted),
        );
    }
    match email {
        Some(email) if errors.is_empty() => Ok((
            Applicant {
                email,
                first_name,
                last_name,
                organisation,
                justification: (!justification.is_empty()).then_some(justification),
                language: lang,
            },
            (!job_title.is_empty()).then_some(job_title),
        )),
        _ => Err(Box::new((
            FormValues {
                email: s.email.clone(),
                first_name: s.first_name.clone(),
                last_name: s.last_name.clone(),
                organisation: s.organisation.clone(),
                justification: s.justification.clone(),
                job_title: s.job_title.clone(),
                accept_terms: s.accept_terms,
            },
            errors,
        ))),
    }
}

async fn submit(portal: &Arc<Portal>, req: &HttpRequest) -> Response {
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
    let typed = match validate(portal, lang, &submission) {
        Ok(t) => t,
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
            let res = page(
                StatusCode::BAD_REQUEST,
                views::signup_form_with(
                    &brand(portal),
                    lang,
                    &values,
                    &errors,
                    form_options(portal),
                ),
            );
            return super::sign_in::allow_sign_in_redirect(portal, res);
        }
    };
    match accept(portal, req, typed).await {
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

/// Everything after validation, up to the answer: the rate limits, then the submission
/// recorded as it was typed. What the policies make of it happens after the answer
/// ([`process`]), so the answer does the same storage work and takes the same time whether
/// the domain is admitted, denied, unknown or the address already has an open request: the
/// form cannot be used to probe policies or people, by its words or by its clock.
async fn accept(
    portal: &Arc<Portal>,
    req: &HttpRequest,
    (applicant, job_title): requests::Typed,
) -> Result<Accepted, StoreError> {
    let now = portal.now();
    if let Some(wait) = over_limit(portal, req, &applicant.email, now).await? {
        return Ok(Accepted::Limited(wait));
    }
    record_submission(portal, applicant, job_title, now).await?;
    Ok(Accepted::CheckInbox)
}

/// The rate limits every sign-up passes (per client, per mailbox, per domain), counted: how
/// long to wait when one is over, else `None`.
pub(super) async fn over_limit(
    portal: &Portal,
    req: &HttpRequest,
    email: &EmailAddress,
    now: OffsetDateTime,
) -> Result<Option<std::time::Duration>, StoreError> {
    let limits = &portal.settings.portal.limits;
    if let Some(ip) = req.client_key(portal.settings.portal.client_ip_header.as_deref()) {
        if let Some(wait) =
            limits::hit(&portal.store, LimitKind::ClientIp, &ip, limits.per_ip, now).await?
        {
            tracing::info!("sign-up refused: client IP over its limit");
            return Ok(Some(wait));
        }
    }
    // Per mailbox, not per spelling: `jane+1@`, `Jane+2@` ... are one inbox.
    if let Some(wait) = limits::hit(
        &portal.store,
        LimitKind::Address,
        &email.mailbox_key(),
        limits.per_address,
        now,
    )
    .await?
    {
        tracing::info!(address = %email.masked(), "sign-up refused: mailbox over its limit");
        return Ok(Some(wait));
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
        return Ok(Some(wait));
    }
    Ok(None)
}

/// Records the submission as typed and lets the policies look at it after the answer.
pub(super) async fn record_submission(
    portal: &Arc<Portal>,
    applicant: Applicant,
    job_title: Option<String>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut request = SignupRequest::submitted(requests::new_id(), applicant, now);
    request.job_title = job_title;
    let etag = requests::insert(&portal.store, &request).await?;
    let portal = portal.clone();
    tokio::spawn(async move {
        let id = request.id.clone();
        let stored = requests::Stored { request, etag };
        if let Err(e) = process(&portal, stored, now).await {
            // Recorded and not lost: the timer's sweep processes it again.
            tracing::warn!(request_id = %id, error = %e, "processing a submission failed; the timer retries");
        }
    });
    Ok(())
}

/// What the policies make of a recorded submission: right after the partner's answer, or by
/// the timer's sweep when the instance died first. Safe to run twice or concurrently: each
/// step is an insert or a compare-and-swap, and the mail it causes is written with it.
///
/// - No policy admits the address: the domain's demand is counted (no personal data) and the
///   submission is deleted. No mail: nobody admitted it (no backscatter).
/// - Admitted, no open request: the submission becomes the request, waiting for the mailbox
///   proof, with its verification mail.
/// - Admitted, a request for the address waits for its proof: this submission is kept beside
///   it with a verification mail of its own, whose link confirms *these* details (so whoever
///   typed the address first cannot put their name on the real person's request).
/// - Admitted, a request for the address is further along: nothing to send.
pub async fn process(
    portal: &Portal,
    submission: requests::Stored,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    if submission.request.status != RequestStatus::Submitted {
        return Ok(());
    }
    let email = submission.request.applicant.email.clone();
    let policies = portal.policies().await?;
    let unadmitted = match admit(&policies, &email) {
        Admission::Admitted(p) if !p.proof.accepts_mailbox() => {
            return sign_in_needed(portal, submission, now).await;
        }
        Admission::Admitted(_) => None,
        Admission::Denied(_) => Some(Unadmitted::Denied),
        Admission::NoMatch => Some(Unadmitted::NoPolicy),
    };
    if let Some(why) = unadmitted {
        tracing::info!(request_id = %submission.request.id, domain = %email.domain().as_str(), "submission no policy admits: counted as demand, no mail");
        demand::count(
            &portal.store,
            email.domain().as_str(),
            why,
            &submission.request.id,
            now,
        )
        .await?;
        return requests::discard(&portal.store, &submission)
            .await
            .or_else(ignore_changed);
    }
    for _ in 0..3 {
        match requests::claim_address(&portal.store, &email, &submission.request.id).await? {
            Claim::Ours => return first_submission(portal, submission, now).await,
            Claim::Held { request_id, etag } => {
                let open = requests::get(&portal.store, &request_id).await?;
                match open.map(|s| s.request) {
                    Some(open)
                        if matches!(
                            open.status,
                            RequestStatus::Submitted | RequestStatus::PendingVerification
                        ) =>
                    {
                        return later_submission(portal, &open, submission, now).await;
                    }
                    Some(open) if !open.status.is_closed() => {
                        tracing::info!(request_id = %open.id, "repeat sign-up while a request is open");
                        return requests::discard(&portal.store, &submission)
                            .await
                            .or_else(ignore_changed);
                    }
                    // The claim is stale (its request closed or never got written): take it
                    // over, unless someone else just did; then look again.
                    _ => {
                        if requests::take_over_claim(
                            &portal.store,
                            &email,
                            &submission.request.id,
                            &etag,
                        )
                        .await?
                        {
                            return first_submission(portal, submission, now).await;
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

fn ignore_changed(e: StoreError) -> Result<(), StoreError> {
    match e {
        StoreError::Changed => Ok(()),
        e => Err(e),
    }
}

/// The submission becomes the address's request: waiting for the proof, with its mail.
async fn first_submission(
    portal: &Portal,
    submission: requests::Stored,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let requests::Stored { mut request, etag } = submission;
    if request.await_verification(now).is_err() {
        return Ok(());
    }
    let letter = verification_letter(portal, &request.id, &request.id, &request.applicant, now);
    let recorded = match outbox::record(
        &portal.outbox,
        TableName::Requests,
        &request.id,
        vec![requests::replace_write(&request, &etag)],
        vec![letter],
        now,
    )
    .await
    {
        Ok((_, recorded)) => recorded,
        // Processed meanwhile by another instance (the sweep): theirs stands.
        Err(StoreError::Changed) => return Ok(()),
        Err(e) => return Err(e),
    };
    audit::record(
        &portal.store,
        AuditEntry::new(now, "requester", "request.submitted")
            .request(&request.id)
            .detail(request.applicant.email.masked()),
    )
    .await?;
    portal.outbox.send_now(recorded).await;
    Ok(())
}

/// Another submission for an address whose request still waits for its proof.
async fn later_submission(
    portal: &Portal,
    open: &SignupRequest,
    submission: requests::Stored,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let applicant = &submission.request.applicant;
    let letter = verification_letter(portal, &open.id, &submission.request.id, applicant, now);
    let recorded = match outbox::record(
        &portal.outbox,
        TableName::Requests,
        &open.id,
        vec![requests::submission_write(
            &open.id,
            &submission.request.id,
            applicant,
            submission.request.job_title.as_deref(),
            now,
        )],
        vec![letter],
        now,
    )
    .await
    {
        Ok((_, recorded)) => recorded,
        // Recorded by an earlier attempt at this submission; only the clean-up is left.
        Err(StoreError::AlreadyExists) => Recorded::none(),
        Err(e) => return Err(e),
    };
    requests::discard(&portal.store, &submission)
        .await
        .or_else(ignore_changed)?;
    if !recorded.is_empty() {
        audit::record(
            &portal.store,
            AuditEntry::new(now, "requester", "request.submitted_again")
                .request(&open.id)
                .detail(applicant.email.masked()),
        )
        .await?;
        portal.outbox.send_now(recorded).await;
    }
    Ok(())
}

/// The address's policy wants a sign-in, not a mailed link: the submission goes, and in the
/// same transaction a mail tells the mailbox's owner to sign in on the form (no link that
/// proves anything; the answer to the form was the same as for everyone).
async fn sign_in_needed(
    portal: &Portal,
    submission: requests::Stored,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let applicant = &submission.request.applicant;
    let form_url = format!(
        "{}/api/signup?lang={}",
        portal
            .settings
            .portal
            .public_url
            .as_str()
            .trim_end_matches('/'),
        applicant.language.as_str()
    );
    let mail = views::sign_in_needed_mail(
        &brand(portal),
        applicant.language,
        &applicant.first_name,
        &form_url,
    );
    let letter = Letter::new(
        MailKind::SignInNeeded,
        applicant.email.as_str(),
        mail.subject,
        mail.text,
        mail.html,
    );
    let recorded = match outbox::record(
        &portal.outbox,
        TableName::Requests,
        &submission.request.id,
        vec![requests::discard_write(&submission)],
        vec![letter],
        now,
    )
    .await
    {
        Ok((_, recorded)) => recorded,
        // Processed meanwhile by another instance: theirs stands.
        Err(StoreError::Changed) => return Ok(()),
        Err(e) => return Err(e),
    };
    if portal.sign_in.is_none() {
        tracing::warn!(
            "a policy asks for sign-in, but SIGN_IN_CLIENT_ID is not set: the form offers none"
        );
    }
    tracing::info!(request_id = %submission.request.id, "submission under a sign-in policy: asked to sign in");
    portal.outbox.send_now(recorded).await;
    Ok(())
}

/// The verification mail for `submission_id` of request `request_id`: its link names the
/// submission (the token's nonce), valid for `PORTAL_VERIFICATION_HOURS`.
fn verification_letter(
    portal: &Portal,
    request_id: &str,
    submission_id: &str,
    applicant: &Applicant,
    now: OffsetDateTime,
) -> Letter {
    let hours = portal.settings.portal.verification_hours;
    let claims = TokenClaims {
        purpose: TokenPurpose::Verify,
        request_id: request_id.to_string(),
        subject: applicant.email.identity_key(),
        stage: 0,
        expires_at: (now + Duration::hours(hours as i64)).unix_timestamp(),
        nonce: requests::submission_nonce(submission_id).unwrap_or_else(new_nonce),
    };
    let recipe = LinkRecipe::new(&claims, true);
    let mail = views::verification_mail(
        &brand(portal),
        applicant.language,
        &applicant.first_name,
        &recipe.placeholder,
        hours,
    );
    Letter::new(
        MailKind::Verification,
        applicant.email.as_str(),
        mail.subject,
        mail.text,
        mail.html,
    )
    .with_id(submission_id)
    .with_link(recipe)
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

/// The GET behind the mailed link: a page with a button that shows what is being confirmed
/// (the details of the submission this link was sent for). It reads, and changes nothing.
async fn show_confirm(portal: &Portal, req: &HttpRequest) -> Response {
    let lang = web::language(portal, req, None);
    let invalid = || {
        page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand(portal), lang, LinkProblem::Invalid),
        )
    };
    let Some(token) = req.query_param("token") else {
        return invalid();
    };
    let now = portal.now().unix_timestamp();
    let claims = match portal
        .settings
        .portal
        .signing_keys
        .verify(&token, TokenPurpose::Verify, now)
    {
        Ok(c) => c,
        Err(e) => return link_problem(portal, lang, &e),
    };
    let submission_id = requests::submission_id(&claims.nonce);
    let found = match requests::get_with_submission(
        &portal.store,
        &claims.request_id,
        &submission_id,
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return web::unavailable(portal, req, lang, &e),
    };
    let Some((stored, Some((applicant, _)))) = found else {
        return invalid();
    };
    if applicant.email.identity_key() != claims.subject {
        return invalid();
    }
    if stored.request.status != RequestStatus::PendingVerification {
        return page(
            StatusCode::CONFLICT,
            views::link_problem(&brand(portal), lang, LinkProblem::AlreadyUsed),
        );
    }
    page(
        StatusCode::OK,
        views::confirm_email(
            &brand(portal),
            lang,
            &token,
            &web::self_path(req),
            &views::Confirming {
                first_name: &applicant.first_name,
                last_name: &applicant.last_name,
                email: applicant.email.as_str(),
                organisation: &applicant.organisation,
            },
        ),
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
    if !web::same_origin(portal, req) {
        return web::cross_site(portal, req, lang_hint);
    }
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
    let invalid = |lang: Language| {
        Ok(page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand, lang, LinkProblem::Invalid),
        ))
    };
    // The link names the submission whose details it confirms (its nonce): the details typed
    // by whoever sent *this* link to the mailbox, not by whoever typed the address first.
    let submission_id = requests::submission_id(&claims.nonce);
    let Some((stored, submission)) =
        requests::get_with_submission(&portal.store, &claims.request_id, &submission_id).await?
    else {
        return invalid(chosen.unwrap_or_default());
    };
    let mut request = stored.request;
    let lang = chosen.unwrap_or(request.applicant.language);
    // The token names the address it was sent to; a token for another request's address is
    // a forgery or a bug, never a reason to act.
    let Some((applicant, job_title)) =
        submission.filter(|(a, _)| a.email.identity_key() == claims.subject)
    else {
        return invalid(lang);
    };
    if request.status == RequestStatus::PendingVerification {
        request.applicant = applicant;
        request.job_title = job_title;
    }
    let stored = requests::Stored {
        request,
        etag: stored.etag,
    };
    after_proof(portal, stored, lang, now).await
}

/// The requester has proved who they are: by the mailed link, or by a sign-in recorded on the
/// request (`signed_in`). The policy that admits them now decides what happens (policies may
/// have changed since the form was sent), in one compare-and-swap on the request that makes
/// the proof single-use; the page says what it was.
pub(super) async fn after_proof(
    portal: &Portal,
    stored: requests::Stored,
    lang: Language,
    now: OffsetDateTime,
) -> Result<Response, StoreError> {
    let brand = brand(portal);
    let mut request = stored.request;
    let policies = portal.policies().await?;
    let tenant = request.signed_in.as_ref().map(|s| s.tenant_id);
    let admission = admit_as(&policies, &request.applicant.email, tenant.as_ref());
    // A mailed link is no proof for a policy that asks for a sign-in (it did not when the
    // link was sent): nothing changes, and the page says how to go on.
    if let Admission::Admitted(p) = &admission {
        if request.signed_in.is_none() && !p.proof.accepts_mailbox() {
            return Ok(page(
                StatusCode::CONFLICT,
                views::sign_in_needed(&brand, lang),
            ));
        }
    }
    let admitted = match admission {
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
    // The compare-and-swap that makes the link single-use: of two clicks racing, one wins. It
    // carries what the verification causes (approvers' mails, or the refusal).
    let etag = &stored.etag;
    let written = match next {
        AfterVerification::Invite => match requests::save(&portal.store, &request, etag).await {
            Ok(etag) => Some(etag),
            Err(StoreError::Changed) => None,
            Err(e) => return Err(e),
        },
        AfterVerification::AskApprovers => {
            let policy = policies
                .iter()
                .find(|p| Some(p.key()) == request.policy_key)
                .cloned();
            match policy {
                Some(policy) => {
                    let approvers = super::approvals::approvers_for(&policy, &request);
                    super::approvals::save_and_ask(
                        portal,
                        &request,
                        etag,
                        &policy,
                        views::ApproverMailKind::Request,
                        &approvers,
                        now,
                    )
                    .await?
                }
                None => None,
            }
        }
        AfterVerification::Deny => super::approvals::save_closed(portal, &mut request, etag, now)
            .await?
            .then(String::new),
    };
    let Some(etag) = written else {
        return Ok(page(
            StatusCode::CONFLICT,
            views::link_problem(&brand, lang, LinkProblem::AlreadyUsed),
        ));
    };
    let proof = match &request.signed_in {
        Some(s) => format!("sign-in from tenant {}", s.tenant_id),
        None => "mailbox".to_string(),
    };
    audit::record(
        &portal.store,
        AuditEntry::new(now, "requester", "request.verified")
            .request(&request.id)
            .detail(format!("next: {next:?}; proof: {proof}")),
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
            page(StatusCode::OK, views::awaiting_approval(&brand, lang))
        }
        AfterVerification::Deny => page(StatusCode::OK, views::request_closed(&brand, lang)),
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
