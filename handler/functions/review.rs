//! `/api/approve/review`: sponsors answer access reviews from their inbox, as approvers
//! decide requests (see `approve`), by the same rules.
//!
//! `GET /api/approve/review?token=` shows the guest and two buttons (keep for another N
//! days; end access now) and changes nothing: mail scanners fetch links freely, and HEAD
//! likewise. The answer is the `POST` from that page, from this site only. The token names the
//! guest (its directory id), the sponsor and the review's round; a holder who may no longer
//! answer for the guest sees the same page as a broken link, and the answer itself is recorded
//! by [`super::reviews::answer`], where the first one wins and a later one sees who answered.

use warp::http::StatusCode;

use super::approve::{authorise, posted_form};
use super::reviews::{self, Answered, Shown};
use super::web::{self, brand, page};
use super::Portal;
use crate::adapters::tables::format_time;
use crate::core::policy::{Language, OnNoAnswer};
use crate::core::review::{Decider, Decision, Reviews};
use crate::core::token::TokenPurpose;
use crate::host::request::{HttpRequest, Response};
use crate::store::guests;
use crate::views::{self, LinkProblem, ReviewAsk};

fn day(t: time::OffsetDateTime) -> String {
    format_time(t)[..10].to_string()
}

fn invalid(portal: &Portal, l: Language) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        views::link_problem(&brand(portal), l, LinkProblem::Invalid),
    )
}

/// Who answered first, and when; a review closed without an answer reads as a broken link.
fn already(portal: &Portal, l: Language, status: StatusCode, last: Option<&Decision>) -> Response {
    match last {
        Some(d) => page(
            status,
            views::already_reviewed(
                &brand(portal),
                l,
                d.keep,
                d.by.person(),
                &super::approvals::format_date(d.at),
            ),
        ),
        None => invalid(portal, l),
    }
}

pub async fn show(portal: &Portal, req: &HttpRequest) -> Response {
    let l = web::language(portal, req, None);
    let token = req.query_param("token");
    let (claims, _sponsor) =
        match authorise(portal, req, l, token.clone(), TokenPurpose::Review).await {
            Ok(x) => x,
            Err(res) => return *res,
        };
    let guest = match guests::get(&portal.store, &claims.request_id).await {
        Ok(Some((g, _))) => g,
        Ok(None) => return invalid(portal, l),
        Err(e) => return web::unavailable(portal, req, l, &e),
    };
    let policies = match portal.policies().await {
        Ok(p) => p,
        Err(e) => return web::unavailable(portal, req, l, &e),
    };
    let policy = guest
        .policy_key
        .as_deref()
        .and_then(|key| policies.iter().find(|p| p.key() == key));
    if !reviews::may_use_link(&guest, policy, &claims.subject) {
        return invalid(portal, l);
    }
    let r = &guest.reviews;
    let (Some(open), Some(policy)) = (r.open, policy) else {
        return already(portal, l, StatusCode::OK, r.last.as_ref());
    };
    if Reviews::link_stage(r.round) != claims.stage {
        return already(portal, l, StatusCode::OK, r.last.as_ref());
    }
    let shown = Shown::of(&guest);
    let deadline = day(open.deadline);
    let ask = ReviewAsk {
        days: policy.review_days,
        deadline: &deadline,
        keep_without_answer: policy.on_no_answer == OnNoAnswer::Keep,
    };
    page(
        StatusCode::OK,
        views::review_form(
            &brand(portal),
            l,
            &shown.summary(&guest),
            &ask,
            &token.unwrap_or_default(),
            &web::self_path(req),
        ),
    )
}

pub async fn submit(portal: &Portal, req: &HttpRequest) -> Response {
    let (l, fields) = match posted_form(portal, req) {
        Ok(posted) => posted,
        Err(res) => return *res,
    };
    let (claims, sponsor) = match authorise(
        portal,
        req,
        l,
        fields.get("token").cloned(),
        TokenPurpose::Review,
    )
    .await
    {
        Ok(x) => x,
        Err(res) => return *res,
    };
    let keep = match fields.get("decision").map(String::as_str) {
        Some("keep") => true,
        Some("end") => false,
        _ => return web::error(portal, req, l, views::ErrorKind::BadRequest),
    };
    let outcome = reviews::answer(
        portal,
        &claims.request_id,
        Decider::Sponsor(sponsor.identity_key()),
        Some(claims.stage),
        keep,
        None,
        sponsor.as_str(),
        portal.now(),
    )
    .await;
    match outcome {
        Err(e) => web::unavailable(portal, req, l, &e),
        Ok(Answered::Recorded {
            guest, next_due, ..
        }) => {
            let shown = Shown::of(&guest);
            let until = next_due.map(day);
            page(
                StatusCode::OK,
                views::review_recorded(&brand(portal), l, &shown.summary(&guest), until.as_deref()),
            )
        }
        Ok(Answered::Already(last)) => already(portal, l, StatusCode::CONFLICT, last.as_ref()),
        Ok(Answered::NotASponsor | Answered::NotFound | Answered::NoInterval) => invalid(portal, l),
    }
}
