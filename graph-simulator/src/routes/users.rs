//! `/users`: list (filter, select, paging, count), get, patch, soft delete,
//! `checkMemberGroups`, `memberOf`, and `sponsors` (list, add and remove by `$ref`).

use std::ops::Bound;

use serde_json::{json, Map, Value};

use super::ApiRequest;
use crate::errors::{ApiResponse, GraphError, GraphResult};
use crate::odata::{
    decode_skiptoken, encode_skiptoken, parse_top, parse_user_select, wants_count, UserFilter,
};
use crate::shared::Shared;
use crate::state::{User, PATCHABLE_STRINGS};

fn no_premium() -> GraphError {
    GraphError::new(
        403,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        "Neither tenant is B2C or tenant doesn't have premium license",
    )
}

/// `@odata.context` for users, naming the selected properties as Graph does.
pub(super) fn users_context(req: &ApiRequest, entity: bool) -> String {
    let sel = req
        .query
        .get("$select")
        .map(|s| format!("({s})"))
        .unwrap_or_default();
    let suffix = if entity { "/$entity" } else { "" };
    format!("{}/$metadata#users{sel}{suffix}", req.graph_base())
}

pub(super) fn select_or_403(shared: &Shared, req: &ApiRequest) -> GraphResult<Vec<&'static str>> {
    let select = parse_user_select(&req.query)?;
    if select.contains(&"signInActivity") {
        if !req
            .caller
            .holds_any(crate::permissions::READ_SIGN_IN_ACTIVITY)
        {
            return Err(GraphError::denied());
        }
        if !shared.p1_license {
            return Err(no_premium());
        }
    }
    Ok(select)
}

pub(super) fn list(shared: &Shared, req: &ApiRequest) -> GraphResult<ApiResponse> {
    let top = parse_top(&req.query)?;
    let select = select_or_403(shared, req)?;
    let count = wants_count(&req.query);
    let advanced = count && req.eventual();
    if count && !req.eventual() {
        return Err(GraphError::directory_bad_request(
            "$count is not currently supported.",
        ));
    }
    let filter = user_filter(req, advanced)?;
    if let Some(f) = &filter {
        if f.mixes_sign_in() {
            return Err(GraphError::unsupported_query(
                "Filtering on signInActivity can't be combined with filtering on other properties of resource 'User'.",
            ));
        }
        if f.uses_sign_in()
            && !req
                .caller
                .holds_any(crate::permissions::READ_SIGN_IN_ACTIVITY)
        {
            return Err(GraphError::denied());
        }
        if f.uses_sign_in() && !shared.p1_license {
            return Err(no_premium());
        }
    }
    let after = req
        .query
        .get("$skiptoken")
        .map(|t| decode_skiptoken(t, "users"))
        .transpose()?;
    let matches = |u: &User| filter.as_ref().is_none_or(|f| f.matches(u));

    let dir = shared.dir();
    let mut page: Vec<&User> = Vec::with_capacity(top.min(1000));
    let mut has_more = false;
    // The mail index answers the portal's "does this email already exist" query
    // without a scan; anything else walks the ordered map from the cursor.
    let indexed = filter.as_ref().and_then(|f| f.mail_eq());
    // Likewise `id in (...)`, a re-read of known users, answered by id.
    let by_id = filter.as_ref().and_then(|f| f.id_in());
    let candidates: Box<dyn Iterator<Item = &User>> = match (indexed, &by_id) {
        (Some(mail), _) => {
            let mut us = dir.users_by_mail(mail);
            us.sort_by_key(|u| u.seq);
            Box::new(
                us.into_iter()
                    .filter(move |u| after.is_none_or(|a| u.seq > a)),
            )
        }
        (None, Some(ids)) => {
            let mut us: Vec<&User> = ids.iter().filter_map(|id| dir.user(id)).collect();
            us.sort_by_key(|u| u.seq);
            us.dedup_by_key(|u| u.seq);
            Box::new(
                us.into_iter()
                    .filter(move |u| after.is_none_or(|a| u.seq > a)),
            )
        }
        (None, None) => {
            let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
            Box::new(dir.users.range((lower, Bound::Unbounded)).map(|(_, u)| u))
        }
    };
    for u in candidates.filter(|u| matches(u)) {
        if page.len() == top {
            has_more = true;
            break;
        }
        page.push(u);
    }

    let mut body = Map::new();
    body.insert("@odata.context".into(), json!(users_context(req, false)));
    if advanced {
        let total = match (indexed, &by_id) {
            (Some(mail), _) => dir
                .users_by_mail(mail)
                .into_iter()
                .filter(|u| matches(u))
                .count(),
            (None, Some(ids)) => {
                let mut seqs: Vec<u64> = ids
                    .iter()
                    .filter_map(|id| dir.user(id))
                    .filter(|u| matches(u))
                    .map(|u| u.seq)
                    .collect();
                seqs.sort_unstable();
                seqs.dedup();
                seqs.len()
            }
            (None, None) => dir.users.values().filter(|u| matches(u)).count(),
        };
        body.insert("@odata.count".into(), json!(total));
    }
    if has_more {
        let last = page.last().map(|u| u.seq).unwrap_or_default();
        let token = encode_skiptoken("users", last);
        body.insert(
            "@odata.nextLink".into(),
            json!(format!(
                "{}{}?{}",
                req.graph_base(),
                req.path,
                req.query.with_skiptoken(&token)
            )),
        );
    }
    let value: Vec<Value> = page
        .iter()
        .map(|u| Value::Object(u.render(&select)))
        .collect();
    body.insert("value".into(), Value::Array(value));
    Ok(ApiResponse::json(200, Value::Object(body)))
}

/// The request's `$filter` on users, if any: one that needs an advanced query (`ne`, `not`,
/// `endsWith`) only as one (`advanced`: `$count=true` with `ConsistencyLevel: eventual`).
pub(super) fn user_filter(req: &ApiRequest, advanced: bool) -> GraphResult<Option<UserFilter>> {
    let filter = req
        .query
        .get("$filter")
        .map(UserFilter::parse)
        .transpose()?;
    if let Some(f) = &filter {
        if f.needs_advanced && !advanced {
            let prop = f.props.iter().next().copied().unwrap_or("userType");
            return Err(GraphError::unsupported_query(format!(
                "Unsupported or invalid query filter clause specified for property '{prop}' of resource 'User'."
            )));
        }
    }
    Ok(filter)
}

pub(super) fn get(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let select = select_or_403(shared, req)?;
    let dir = shared.dir();
    let user = dir.user(id).ok_or_else(|| GraphError::not_found(id))?;
    let mut body = user.render(&select);
    body.insert("@odata.context".into(), json!(users_context(req, true)));
    Ok(ApiResponse::json(200, Value::Object(body)))
}

fn invalid_value(prop: &str) -> GraphError {
    GraphError::directory_bad_request(format!(
        "Invalid value specified for property '{prop}' of resource 'User'."
    ))
}

pub(super) fn patch(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let body = req.json_body()?;
    let Value::Object(props) = body else {
        return Err(GraphError::invalid_json());
    };
    // Validate everything before changing anything: a PATCH is all or nothing.
    for (k, v) in &props {
        let ok = match k.as_str() {
            "accountEnabled" => v.is_boolean(),
            "displayName" => v.as_str().is_some_and(|s| !s.trim().is_empty()),
            "mail" => v.as_str().is_some_and(|s| s.contains('@')) || v.is_null(),
            "userType" => matches!(v.as_str(), Some("Guest" | "Member")),
            k if PATCHABLE_STRINGS.contains(&k) => v.is_string() || v.is_null(),
            "id"
            | "createdDateTime"
            | "creationType"
            | "externalUserState"
            | "externalUserStateChangeDateTime"
            | "signInActivity"
            | "deletedDateTime"
            | "userPrincipalName" => {
                return Err(GraphError::directory_bad_request(format!(
                    "Property '{k}' is read-only and cannot be set."
                )))
            }
            _ => {
                return Err(GraphError::directory_bad_request(format!(
                    "Property '{k}' does not exist as a declared property or extension property."
                )))
            }
        };
        if !ok {
            return Err(invalid_value(k));
        }
    }
    let mut dir = shared.dir();
    if dir.user(id).is_none() {
        return Err(GraphError::not_found(id));
    }
    if let Some(mail) = props.get("mail") {
        dir.set_mail(id, mail.as_str().unwrap_or_default().to_string());
    }
    let user = dir.user_mut(id).expect("checked above");
    for (k, v) in props {
        match k.as_str() {
            "accountEnabled" => user.account_enabled = v.as_bool().unwrap_or(true),
            "displayName" => user.display_name = v.as_str().unwrap_or_default().to_string(),
            "userType" => user.user_type = v.as_str().unwrap_or("Guest").to_string(),
            "mail" => {}
            _ => {
                user.props.insert(k, v);
            }
        }
    }
    Ok(ApiResponse::no_content())
}

pub(super) fn delete(shared: &Shared, id: &str) -> GraphResult<ApiResponse> {
    if shared.dir().soft_delete(id) {
        Ok(ApiResponse::no_content())
    } else {
        Err(GraphError::not_found(id))
    }
}

pub(super) fn check_member_groups(
    shared: &Shared,
    req: &ApiRequest,
    id: &str,
) -> GraphResult<ApiResponse> {
    let body = req.json_body()?;
    let ids: Vec<String> = body
        .get("groupIds")
        .and_then(Value::as_array)
        .ok_or_else(|| GraphError::bad_request("The 'groupIds' parameter is required."))?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| GraphError::bad_request("'groupIds' must be an array of strings."))?;
    if ids.len() > 20 {
        return Err(GraphError::directory_bad_request(
            "The number of group ids in the request exceeds the limit of 20.",
        ));
    }
    let dir = shared.dir();
    let user = dir.user(id).ok_or_else(|| GraphError::not_found(id))?;
    // Transitive, as Graph's checkMemberGroups is: a member of a nested group counts.
    let value: Vec<&String> = ids
        .iter()
        .filter(|g| dir.groups.contains_key(g.as_str()) && dir.is_transitive_member(&user.id, g))
        .collect();
    Ok(ApiResponse::json(
        200,
        json!({
            "@odata.context": format!("{}/$metadata#Collection(Edm.String)", req.graph_base()),
            "value": value,
        }),
    ))
}

pub(super) fn member_of(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let dir = shared.dir();
    let user = dir.user(id).ok_or_else(|| GraphError::not_found(id))?;
    let value: Vec<Value> = dir
        .groups_of(&user.id)
        .into_iter()
        .map(group_object)
        .collect();
    Ok(directory_objects(req, value))
}

/// A group as a directory object in a collection.
fn group_object(g: &crate::state::Group) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.group",
        "id": g.id,
        "displayName": g.display_name,
    })
}

/// A collection of directory objects (`memberOf`, `sponsors`).
fn directory_objects(req: &ApiRequest, value: Vec<Value>) -> ApiResponse {
    ApiResponse::json(
        200,
        json!({
            "@odata.context": format!("{}/$metadata#directoryObjects", req.graph_base()),
            "value": value,
        }),
    )
}

/// Graph keeps at most this many sponsors for a user.
const MAX_SPONSORS: usize = 5;

/// `GET /users/{id}/sponsors`: the users and groups sponsoring the user, as directory objects.
pub(super) fn list_sponsors(
    shared: &Shared,
    req: &ApiRequest,
    id: &str,
) -> GraphResult<ApiResponse> {
    let dir = shared.dir();
    let user = dir.user(id).ok_or_else(|| GraphError::not_found(id))?;
    let value: Vec<Value> = user
        .sponsors
        .iter()
        .filter_map(|s| match dir.user(s) {
            Some(u) => Some(json!({
                "@odata.type": "#microsoft.graph.user",
                "id": u.id,
                "displayName": u.display_name,
                "mail": u.mail,
                "userPrincipalName": u.upn,
            })),
            None => dir.groups.get(s).map(group_object),
        })
        .collect();
    Ok(directory_objects(req, value))
}

/// `POST /users/{id}/sponsors/$ref` with the `@odata.id` of a user or group: 204.
pub(super) fn add_sponsor(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let body = req.json_body()?;
    let sponsor = super::groups::referenced_id(&body)?;
    let mut dir = shared.dir();
    let user_id = dir
        .user(id)
        .map(|u| u.id.clone())
        .ok_or_else(|| GraphError::not_found(id))?;
    let sponsor = match dir.user(&sponsor) {
        Some(u) => u.id.clone(),
        None if dir.groups.contains_key(&sponsor) => sponsor,
        None => return Err(GraphError::not_found(&sponsor)),
    };
    let user = dir.user_mut(&user_id).expect("checked");
    if user.sponsors.contains(&sponsor) {
        return Err(GraphError::directory_bad_request(
            "One or more added object references already exist for the following modified properties: 'sponsors'.",
        ));
    }
    if user.sponsors.len() >= MAX_SPONSORS {
        return Err(GraphError::directory_bad_request(format!(
            "A user can have at most {MAX_SPONSORS} sponsors."
        )));
    }
    user.sponsors.push(sponsor);
    Ok(ApiResponse::no_content())
}

/// `DELETE /users/{id}/sponsors/{sponsorId}/$ref`: 204, or 404 when it is not a sponsor.
pub(super) fn remove_sponsor(shared: &Shared, id: &str, sponsor: &str) -> GraphResult<ApiResponse> {
    let mut dir = shared.dir();
    let user = dir.user_mut(id).ok_or_else(|| GraphError::not_found(id))?;
    let before = user.sponsors.len();
    user.sponsors.retain(|s| !s.eq_ignore_ascii_case(sponsor));
    if user.sponsors.len() == before {
        return Err(GraphError::not_found(sponsor));
    }
    Ok(ApiResponse::no_content())
}
