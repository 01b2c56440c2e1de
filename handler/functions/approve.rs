//! `function-approve`: approvers decide from their inbox, without signing in to a portal (and
//! sponsors answer access reviews the same way, under `/api/approve/review`: see `review`).
//!
//! `GET /api/approve?token=` shows the request and two buttons and changes nothing (Safe
//! Links and other scanners fetch it freely; HEAD likewise). The decision is the `POST` from
//! that page. The token names the request, the approver and the stage; the decision itself is
//! recorded by [`super::approvals::decide`], where the first decision wins.

use std::sync::Arc;

use warp::http::{Method, StatusCode};

use super::approvals::{self, DecideOutcome};
use super::web::{self, brand, page};
use super::Portal;
use crate::core::email::{same_person, EmailAddress};
use crate::core::policy::Language;
use crate::core::request::RequestStatus;
use crate::core::token::{TokenClaims, TokenError, TokenPurpose};
use crate::host::request::{self, HttpRequest, Response};
use crate::store::requests;
use crate::views::{self, LinkProblem};

pub async fn handle(portal: &Arc<Portal>, req: HttpRequest) -> Response {
    let route = req.path.trim_end_matches('/').to_string();
    let head = req.method == Method::HEAD;
    let res = match (route.as_str(), req.method.clone()) {
        ("/api/approve", Method::GET | Method::HEAD) => show(portal, &req).await,
        ("/api/approve", Method::POST) => submit(portal, &req).await,
        ("/api/approve", _) => request::method_not_allowed("GET, HEAD, POST"),
        ("/api/approve/review", Method::GET | Method::HEAD) => {
            super::review::show(portal, &req).await
        }
        ("/api/approve/review", Method::POST) => super::review::submit(portal, &req).await,
        ("/api/approve/review", _) => request::method_not_allowed("GET, HEAD, POST"),
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

fn lang(portal: &Portal, req: &HttpRequest) -> Language {
    web::language(portal, req, None)
}

/// Checks the token (for `purpose`: a decision, or a review) and, when the hardening option is
/// on, that the signed-in principal is the person the token names.
pub(super) async fn authorise(
    portal: &Portal,
    req: &HttpRequest,
    l: Language,
    token: Option<String>,
    purpose: TokenPurpose,
) -> Result<(TokenClaims, EmailAddress), Box<Response>> {
    let invalid = |problem| {
        Err(Box::new(page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand(portal), l, problem),
        )))
    };
    let Some(token) = token else {
        return invalid(LinkProblem::Invalid);
    };
    let claims = match portal.settings.portal.signing_keys.verify(
        &token,
        purpose,
        portal.now().unix_timestamp(),
    ) {
        Ok(c) => c,
        Err(TokenError::Expired { .. }) => return invalid(LinkProblem::Expired),
        Err(_) => return invalid(LinkProblem::Invalid),
    };
    let Ok(approver) = EmailAddress::parse(&claims.subject) else {
        return invalid(LinkProblem::Invalid);
    };
    if portal.settings.portal.approvers_must_sign_in {
        match signed_in_as_approver(portal, req, &approver).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    "link refused: the signed-in principal is not the person the link names"
                );
                // Back to this link's page once signed in (a POST's token goes back into the
                // query of the page it came from): a decision's, or a review's.
                let token_param: String =
                    url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
                let page_path = match purpose {
                    TokenPurpose::Review => "/api/approve/review",
                    _ => "/api/approve",
                };
                let return_to = format!("{page_path}?token={token_param}&lang={}", l.as_str());
                return Err(Box::new(page(
                    StatusCode::FORBIDDEN,
                    views::sign_in_required(&brand(portal), l, &return_to),
                )));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not look the approver up in the directory");
                return Err(Box::new(web::unavailable(
                    portal,
                    req,
                    l,
                    &crate::adapters::tables::StoreError::Unavailable(
                        "the directory could not be asked".into(),
                    ),
                )));
            }
        }
    }
    Ok((claims, approver))
}

/// Whether the principal App Service Authentication signed in is the approver, by object id:
/// the id the platform puts in `X-MS-CLIENT-PRINCIPAL-ID` against the id the directory gives
/// the approver's address. Names (`preferred_username`) are mutable and not compared. The
/// platform strips these headers from incoming requests and sets them itself; the handler
/// refuses to start with this option unless the platform says Authentication is on.
async fn signed_in_as_approver(
    portal: &Portal,
    req: &HttpRequest,
    approver: &EmailAddress,
) -> Result<bool, crate::adapters::graph::GraphError> {
    let Some(principal) = req
        .header("x-ms-client-principal-id")
        .map(str::trim)
        .filter(|p| !p.is_empty())
    else {
        return Ok(false);
    };
    let expected = portal.graph.find_user_by_mail(approver.as_str()).await?;
    Ok(expected.is_some_and(|id| id.eq_ignore_ascii_case(principal)))
}

async fn show(portal: &Portal, req: &HttpRequest) -> Response {
    let l = lang(portal, req);
    let (claims, _approver) = match authorise(
        portal,
        req,
        l,
        req.query_param("token"),
        TokenPurpose::Decide,
    )
    .await
    {
        Ok(x) => x,
        Err(res) => return *res,
    };
    let stored = match requests::get(&portal.store, &claims.request_id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return page(
                StatusCode::BAD_REQUEST,
                views::link_problem(&brand(portal), l, LinkProblem::Invalid),
            )
        }
        Err(e) => return web::unavailable(portal, req, l, &e),
    };
    let r = &stored.request;
    let key = r.policy_key.clone().unwrap_or_default();
    let policy = match portal.policies().await {
        Ok(p) => p.iter().find(|p| p.key() == key).cloned(),
        Err(e) => return web::unavailable(portal, req, l, &e),
    };
    if same_person(r.applicant.email.as_str(), &claims.subject) {
        return page(
            StatusCode::FORBIDDEN,
            views::cannot_decide_own(&brand(portal), l),
        );
    }
    // A link whose holder can no longer decide (removed from the policy, or the policy is
    // gone) shows nothing of the request: the same answer as a link that was never valid.
    let Some(policy) =
        policy.filter(|p| approvals::may_use_link(p, r, &claims.subject, claims.stage))
    else {
        return page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand(portal), l, LinkProblem::Invalid),
        );
    };
    if r.status != RequestStatus::PendingApproval || r.stage != claims.stage {
        return already_page(portal, l, r);
    }
    let stages = approvals::stages(&policy);
    let submitted = approvals::format_date(r.created_at);
    let summary = approvals::summary(r, &key, &submitted, stages);
    let token = req.query_param("token").unwrap_or_default();
    page(
        StatusCode::OK,
        views::decision_form(&brand(portal), l, &summary, &token, &web::self_path(req)),
    )
}

fn already_page(portal: &Portal, l: Language, r: &crate::core::request::SignupRequest) -> Response {
    let (approved, by, at) = match (&r.decision, &r.stage_one_approved_by) {
        (Some(d), _) => (d.approve, d.by.clone(), d.at),
        // Stage 1 approved, stage 2 pending: a stage-1 link shows who moved it on.
        (None, Some(by)) => (true, by.clone(), r.updated_at),
        (None, None) => (false, r.status.as_str().to_string(), r.updated_at),
    };
    page(
        StatusCode::OK,
        views::already_decided(
            &brand(portal),
            l,
            approved,
            &by,
            &approvals::format_date(at),
        ),
    )
}

/// The fields a decision page posts (first value wins), and the page's language: only from
/// this site (`Origin`), only as a form.
pub(super) fn posted_form(
    portal: &Portal,
    req: &HttpRequest,
) -> Result<(Language, std::collections::HashMap<String, String>), Box<Response>> {
    let l = lang(portal, req);
    if !web::same_origin(portal, req) {
        return Err(Box::new(web::cross_site(portal, req, l)));
    }
    if req.content_type().as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(Box::new(web::error(
            portal,
            req,
            l,
            views::ErrorKind::UnsupportedType,
        )));
    }
    let Ok(text) = std::str::from_utf8(&req.body) else {
        return Err(Box::new(web::error(
            portal,
            req,
            l,
            views::ErrorKind::BadRequest,
        )));
    };
    let mut fields = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        fields
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    // The page's own language field keeps the person's choice across the POST.
    let l = web::language(portal, req, fields.get("lang").map(String::as_str));
    Ok((l, fields))
}

async fn submit(portal: &Portal, req: &HttpRequest) -> Response {
    let (l, fields) = match posted_form(portal, req) {
        Ok(posted) => posted,
        Err(res) => return *res,
    };
    let (claims, approver) = match authorise(
        portal,
        req,
        l,
        fields.get("token").cloned(),
        TokenPurpose::Decide,
    )
    .await
    {
        Ok(x) => x,
        Err(res) => return *res,
    };
    let approve = match fields.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => return web::error(portal, req, l, views::ErrorKind::BadRequest),
    };
    let reason = fields
        .get("reason")
        .map(|r| {
            r.trim()
                .chars()
                .take(500)
                .filter(|c| !c.is_control() || *c == '\n')
                .collect::<String>()
        })
        .filter(|r| !r.is_empty());
    let share = fields
        .get("share_reason")
        .is_some_and(|v| matches!(v.as_str(), "yes" | "on" | "true"));
    let now = portal.now();
    let outcome = approvals::decide(
        portal,
        &portal.graph,
        &claims.request_id,
        &approver,
        Some(claims.stage),
        approve,
        reason,
        share,
        approver.as_str(),
        now,
    )
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return web::unavailable(portal, req, l, &e),
    };
    match outcome {
        DecideOutcome::Recorded {
            approved, request, ..
        } => {
            let key = request.policy_key.clone().unwrap_or_default();
            let submitted = approvals::format_date(request.created_at);
            // The summary shows the stage that was decided, so a stage-1 yes reads as
            // "sent on to the second stage".
            let mut shown = (*request).clone();
            shown.stage = claims.stage;
            let summary = approvals::summary(
                &shown,
                &key,
                &submitted,
                if request.stage == 2 || claims.stage == 2 {
                    2
                } else {
                    1
                },
            );
            page(
                StatusCode::OK,
                views::decision_recorded(&brand(portal), l, approved, &summary),
            )
        }
        DecideOutcome::AlreadyDecided { approved, by, at } => page(
            StatusCode::CONFLICT,
            views::already_decided(
                &brand(portal),
                l,
                approved,
                &by,
                &approvals::format_date(at),
            ),
        ),
        DecideOutcome::OwnRequest => page(
            StatusCode::FORBIDDEN,
            views::cannot_decide_own(&brand(portal), l),
        ),
        DecideOutcome::StageMoved(request) => already_page(portal, l, &request),
        DecideOutcome::NotAnApprover => page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand(portal), l, LinkProblem::Invalid),
        ),
        DecideOutcome::NotFound => page(
            StatusCode::BAD_REQUEST,
            views::link_problem(&brand(portal), l, LinkProblem::Invalid),
        ),
    }
}
