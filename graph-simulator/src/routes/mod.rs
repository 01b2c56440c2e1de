//! The Graph router. Direct calls and `$batch` sub-requests both go through
//! [`execute_single`], so counting, faults, throttles and handlers behave the
//! same for both — the property the portal's batch retry logic is tested on.

mod directory;
mod groups;
mod invitations;
mod policies;
mod service_principals;
mod users;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use warp::http::Method;

use crate::batch;
use crate::errors::{ApiResponse, GraphError, GraphResult};
use crate::faults::{FaultOutcome, Kind};
use crate::odata::QueryParams;
use crate::permissions::{Caller, Need};
use crate::shared::Shared;
use crate::util::new_guid;

/// One Graph request, direct or from a batch, with its path relative to `/v1.0`.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    pub method: Method,
    /// Starts with `/`, percent-decoded, without the `/v1.0` prefix.
    pub path: String,
    pub query: QueryParams,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// `http://host:port`, for absolute nextLinks.
    pub origin: String,
    pub request_id: String,
    pub client_request_id: String,
    pub in_batch: bool,
    /// Whose token the call carries (a batch's sub-requests carry the batch's).
    pub caller: Caller,
}

impl ApiRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json_body(&self) -> GraphResult<Value> {
        serde_json::from_slice(&self.body).map_err(|_| GraphError::invalid_json())
    }

    /// `ConsistencyLevel: eventual`, half of what an advanced query needs.
    pub fn eventual(&self) -> bool {
        self.header("consistencylevel")
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
    }

    pub fn graph_base(&self) -> String {
        format!("{}/v1.0", self.origin)
    }

    fn error(&self, e: GraphError) -> ApiResponse {
        e.into_response(&self.request_id, &self.client_request_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Invite,
    ListUsers,
    GetUser(String),
    PatchUser(String),
    DeleteUser(String),
    CheckMemberGroups(String),
    MemberOf(String),
    ListSponsors(String),
    AddSponsor(String),
    /// The user, and the sponsor to remove.
    RemoveSponsor(String, String),
    GetGroup(String),
    ListMembers(String),
    /// The group, and the OData cast segment if any.
    ListTransitiveMembers(String, Option<String>),
    AddMember(String),
    RemoveMember(String, String),
    GetServicePrincipal(String),
    /// `/servicePrincipals(appId='...')`, the alternate key.
    GetServicePrincipalByAppId(String),
    ListServicePrincipals,
    AssignAppRole(String),
    ListAppRoleAssignments(String),
    /// `/servicePrincipals/{id}/appRoleAssignments`: the roles the principal holds.
    ListHeldAppRoleAssignments(String),
    GetAuthorizationPolicy,
    ListDeleted,
    GetDeleted(String),
    PurgeDeleted(String),
    Restore(String),
    Batch,
}

impl Route {
    fn kind(&self) -> Kind {
        match self {
            Route::Invite => Kind::Invitations,
            Route::ListUsers => Kind::ListUsers,
            Route::GetUser(_) => Kind::GetUser,
            Route::PatchUser(_) => Kind::PatchUser,
            Route::DeleteUser(_) => Kind::DeleteUser,
            Route::AddMember(_) => Kind::AddMember,
            Route::AssignAppRole(_) => Kind::AppRole,
            Route::Batch => Kind::Batch,
            _ => Kind::Other,
        }
    }

    /// The permissions the call needs (any one of them), as Graph's reference pages list them.
    fn need(&self) -> Need {
        match self {
            Route::Invite => Need::Invite,
            Route::ListUsers
            | Route::GetUser(_)
            | Route::ListDeleted
            | Route::GetDeleted(_)
            | Route::ListSponsors(_) => Need::ReadUsers,
            Route::PatchUser(_)
            | Route::DeleteUser(_)
            | Route::PurgeDeleted(_)
            | Route::Restore(_)
            | Route::AddSponsor(_)
            | Route::RemoveSponsor(..) => Need::WriteUsers,
            Route::CheckMemberGroups(_)
            | Route::MemberOf(_)
            | Route::GetGroup(_)
            | Route::ListMembers(_)
            | Route::ListTransitiveMembers(..) => Need::ReadGroups,
            Route::AddMember(_) | Route::RemoveMember(..) => Need::WriteMembers,
            Route::GetServicePrincipal(_)
            | Route::GetServicePrincipalByAppId(_)
            | Route::ListServicePrincipals
            | Route::ListAppRoleAssignments(_)
            | Route::ListHeldAppRoleAssignments(_) => Need::ReadApplications,
            Route::AssignAppRole(_) => Need::AssignAppRoles,
            Route::GetAuthorizationPolicy => Need::ReadAuthorizationPolicy,
            Route::Batch => Need::Nothing,
        }
    }

    /// Writes count against the directory write quota; `checkMemberGroups` is
    /// a POST but only reads, and the batch envelope is free.
    fn is_write(&self) -> bool {
        matches!(
            self,
            Route::Invite
                | Route::PatchUser(_)
                | Route::DeleteUser(_)
                | Route::AddMember(_)
                | Route::RemoveMember(..)
                | Route::AssignAppRole(_)
                | Route::PurgeDeleted(_)
                | Route::Restore(_)
                | Route::AddSponsor(_)
                | Route::RemoveSponsor(..)
        )
    }
}

fn classify(method: &Method, path: &str) -> GraphResult<Route> {
    let segs: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let own = |i: usize| segs[i].to_string();
    let m = method.clone();
    let pick = |options: Vec<(Method, Route)>| -> GraphResult<Route> {
        options
            .into_iter()
            .find(|(mm, _)| *mm == m)
            .map(|(_, r)| r)
            .ok_or_else(GraphError::method_not_allowed)
    };
    match l.as_slice() {
        ["invitations"] => pick(vec![(Method::POST, Route::Invite)]),
        ["users"] => pick(vec![(Method::GET, Route::ListUsers)]),
        ["users", _] => pick(vec![
            (Method::GET, Route::GetUser(own(1))),
            (Method::PATCH, Route::PatchUser(own(1))),
            (Method::DELETE, Route::DeleteUser(own(1))),
        ]),
        ["users", _, "checkmembergroups"] => {
            pick(vec![(Method::POST, Route::CheckMemberGroups(own(1)))])
        }
        ["users", _, "memberof"] => pick(vec![(Method::GET, Route::MemberOf(own(1)))]),
        ["users", _, "sponsors"] => pick(vec![(Method::GET, Route::ListSponsors(own(1)))]),
        ["users", _, "sponsors", "$ref"] => pick(vec![(Method::POST, Route::AddSponsor(own(1)))]),
        ["users", _, "sponsors", _, "$ref"] => {
            pick(vec![(Method::DELETE, Route::RemoveSponsor(own(1), own(3)))])
        }
        ["groups", _] => pick(vec![(Method::GET, Route::GetGroup(own(1)))]),
        ["groups", _, "members"] => pick(vec![(Method::GET, Route::ListMembers(own(1)))]),
        ["groups", _, "transitivemembers"] => pick(vec![(
            Method::GET,
            Route::ListTransitiveMembers(own(1), None),
        )]),
        ["groups", _, "transitivemembers", _] => pick(vec![(
            Method::GET,
            Route::ListTransitiveMembers(own(1), Some(own(3))),
        )]),
        ["groups", _, "members", "$ref"] => pick(vec![(Method::POST, Route::AddMember(own(1)))]),
        ["groups", _, "members", _, "$ref"] => {
            pick(vec![(Method::DELETE, Route::RemoveMember(own(1), own(3)))])
        }
        ["serviceprincipals"] => pick(vec![(Method::GET, Route::ListServicePrincipals)]),
        [key] if key.starts_with("serviceprincipals(appid=") && key.ends_with(')') => {
            let app_id = segs[0]["servicePrincipals(appId=".len()..segs[0].len() - 1]
                .trim_matches('\'')
                .to_string();
            pick(vec![(
                Method::GET,
                Route::GetServicePrincipalByAppId(app_id),
            )])
        }
        ["serviceprincipals", _] => pick(vec![(Method::GET, Route::GetServicePrincipal(own(1)))]),
        ["serviceprincipals", _, "approleassignments"] => pick(vec![(
            Method::GET,
            Route::ListHeldAppRoleAssignments(own(1)),
        )]),
        ["policies", "authorizationpolicy"] => {
            pick(vec![(Method::GET, Route::GetAuthorizationPolicy)])
        }
        ["serviceprincipals", _, "approleassignedto"] => pick(vec![
            (Method::POST, Route::AssignAppRole(own(1))),
            (Method::GET, Route::ListAppRoleAssignments(own(1))),
        ]),
        ["directory", "deleteditems", "microsoft.graph.user"] => {
            pick(vec![(Method::GET, Route::ListDeleted)])
        }
        ["directory", "deleteditems", _] => pick(vec![
            (Method::GET, Route::GetDeleted(own(2))),
            (Method::DELETE, Route::PurgeDeleted(own(2))),
        ]),
        ["directory", "deleteditems", _, "restore"] => {
            pick(vec![(Method::POST, Route::Restore(own(2)))])
        }
        ["$batch"] => pick(vec![(Method::POST, Route::Batch)]),
        _ => {
            // Graph names the first segment it could not resolve.
            const KNOWN: &[&str] = &[
                "invitations",
                "users",
                "groups",
                "serviceprincipals",
                "directory",
                "policies",
                "$batch",
            ];
            let bad = match l.first() {
                Some(first) if !KNOWN.contains(first) => segs[0],
                _ => segs.last().copied().unwrap_or_default(),
            };
            Err(GraphError::unknown_segment(bad))
        }
    }
}

/// Counting, fault injection and throttling, in the order Graph's front door
/// would apply them. `Err` carries the answer that replaces the handler's.
async fn admit(shared: &Shared, req: &ApiRequest, route: &Route) -> Result<(), ApiResponse> {
    let kind = route.kind();
    shared.count_kind(kind, req.in_batch);
    if !req.caller.holds_any(route.need().any_of()) {
        return Err(req.error(GraphError::denied()));
    }
    if let Some(action) = shared.take_fault(kind) {
        if let Some(d) = action.delay {
            tokio::time::sleep(d).await;
        }
        match action.outcome {
            FaultOutcome::Proceed => {}
            FaultOutcome::Drop => return Err(ApiResponse::dropped()),
            FaultOutcome::Fail {
                status,
                retry_after,
                message,
            } => {
                if status == 429 {
                    shared.count(|c| c.throttled_429 += 1);
                }
                let mut e = GraphError::for_status(status);
                e.retry_after = retry_after;
                if let Some(m) = message {
                    e.message = m;
                }
                return Err(req.error(e));
            }
        }
    }
    if *route == Route::Invite {
        if let Err(secs) = shared.admit_invitation() {
            shared.count(|c| c.throttled_429 += 1);
            return Err(req.error(GraphError::too_many_requests(secs)));
        }
    }
    if route.is_write() {
        if let Err(secs) = shared.admit_write() {
            shared.count(|c| c.throttled_429 += 1);
            return Err(req.error(GraphError::too_many_requests(secs)));
        }
    }
    Ok(())
}

/// Runs one non-batch request (a direct call or a batch sub-request).
pub(crate) async fn execute_single(shared: &Shared, req: ApiRequest) -> ApiResponse {
    let route = match classify(&req.method, &req.path) {
        Ok(Route::Batch) => {
            shared.count_kind(Kind::Other, req.in_batch);
            return req.error(GraphError::bad_request(
                "A $batch request cannot be nested inside another $batch request.",
            ));
        }
        Ok(r) => r,
        Err(e) => {
            shared.count_kind(Kind::Other, req.in_batch);
            return req.error(e);
        }
    };
    if let Err(resp) = admit(shared, &req, &route).await {
        return resp;
    }
    let result = match &route {
        Route::Invite => invitations::invite(shared, &req),
        Route::ListUsers => users::list(shared, &req),
        Route::GetUser(id) => users::get(shared, &req, id),
        Route::PatchUser(id) => users::patch(shared, &req, id),
        Route::DeleteUser(id) => users::delete(shared, id),
        Route::CheckMemberGroups(id) => users::check_member_groups(shared, &req, id),
        Route::MemberOf(id) => users::member_of(shared, &req, id),
        Route::ListSponsors(id) => users::list_sponsors(shared, &req, id),
        Route::AddSponsor(id) => users::add_sponsor(shared, &req, id),
        Route::RemoveSponsor(id, sponsor) => users::remove_sponsor(shared, id, sponsor),
        Route::GetGroup(id) => groups::get(shared, &req, id),
        Route::ListMembers(id) => groups::list_members(shared, &req, id),
        Route::ListTransitiveMembers(id, cast) => {
            groups::list_transitive_members(shared, &req, id, cast.as_deref())
        }
        Route::AddMember(id) => groups::add_member(shared, &req, id),
        Route::RemoveMember(g, u) => groups::remove_member(shared, g, u),
        Route::GetServicePrincipal(id) => service_principals::get(shared, &req, id),
        Route::GetServicePrincipalByAppId(app_id) => {
            service_principals::get_by_app_id(shared, &req, app_id)
        }
        Route::ListServicePrincipals => service_principals::list_all(shared, &req),
        Route::ListHeldAppRoleAssignments(id) => service_principals::held(shared, &req, id),
        Route::GetAuthorizationPolicy => policies::authorization_policy(shared, &req),
        Route::AssignAppRole(id) => service_principals::assign(shared, &req, id),
        Route::ListAppRoleAssignments(id) => service_principals::list(shared, &req, id),
        Route::ListDeleted => directory::list_deleted(shared, &req),
        Route::GetDeleted(id) => directory::get_deleted(shared, &req, id),
        Route::PurgeDeleted(id) => directory::purge(shared, id),
        Route::Restore(id) => directory::restore(shared, &req, id),
        Route::Batch => unreachable!("handled above"),
    };
    result.unwrap_or_else(|e| req.error(e))
}

/// Runs an outer (direct) Graph call, which may be a `$batch`.
pub(crate) async fn execute(shared: &Arc<Shared>, req: ApiRequest) -> ApiResponse {
    if classify(&req.method, &req.path) != Ok(Route::Batch) {
        return execute_single(shared, req).await;
    }
    if let Err(resp) = admit(shared, &req, &Route::Batch).await {
        return resp;
    }
    match batch::handle(shared, &req).await {
        Ok(resp) => resp,
        Err(e) => req.error(e),
    }
}

/// A fresh request id for a sub-request.
pub(crate) fn sub_request_id() -> String {
    new_guid()
}
