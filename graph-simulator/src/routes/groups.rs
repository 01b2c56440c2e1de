//! `/groups/{id}`, its members (paged), and adding/removing members by `$ref`.

use serde_json::{json, Map, Value};

use super::users::select_or_403;
use super::ApiRequest;
use crate::errors::{ApiResponse, GraphError, GraphResult};
use crate::odata::{decode_skiptoken, encode_skiptoken, parse_top};
use crate::shared::Shared;
use crate::util::graph_datetime;

pub(super) fn get(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let dir = shared.dir();
    let g = dir
        .groups
        .get(id)
        .ok_or_else(|| GraphError::not_found(id))?;
    Ok(ApiResponse::json(
        200,
        json!({
            "@odata.context": format!("{}/$metadata#groups/$entity", req.graph_base()),
            "id": g.id,
            "displayName": g.display_name,
            "createdDateTime": graph_datetime(g.created),
            "securityEnabled": true,
            "mailEnabled": false,
            "groupTypes": [],
            // Groups that refuse guests stand for on-premises-synced ones, whose members
            // Graph cannot change.
            "onPremisesSyncEnabled": if g.refuses_guests { json!(true) } else { Value::Null },
        }),
    ))
}

pub(super) fn list_members(
    shared: &Shared,
    req: &ApiRequest,
    id: &str,
) -> GraphResult<ApiResponse> {
    let top = parse_top(&req.query)?;
    let select = select_or_403(shared, req)?;
    let start = req
        .query
        .get("$skiptoken")
        .map(|t| decode_skiptoken(t, &format!("members:{id}")))
        .transpose()?
        .unwrap_or(0) as usize;
    let dir = shared.dir();
    let g = dir
        .groups
        .get(id)
        .ok_or_else(|| GraphError::not_found(id))?;
    let mut value = Vec::new();
    let mut next = None;
    // Members are paged by position; soft-deleted users are skipped, as
    // Entra hides them from memberships until they are restored.
    for (i, uid) in g.members.iter().enumerate().skip(start) {
        let Some(u) = dir.user(uid) else { continue };
        if value.len() == top {
            next = Some(i);
            break;
        }
        let mut m = Map::new();
        m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
        m.extend(u.render(&select));
        value.push(Value::Object(m));
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#directoryObjects", req.graph_base())),
    );
    if let Some(i) = next {
        let token = encode_skiptoken(&format!("members:{id}"), i as u64);
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
    body.insert("value".into(), Value::Array(value));
    Ok(ApiResponse::json(200, Value::Object(body)))
}

/// The object id at the end of an `@odata.id` reference URL.
fn referenced_id(body: &Value) -> GraphResult<String> {
    let reference = body
        .get("@odata.id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GraphError::bad_request("The '@odata.id' property is required in the request body.")
        })?;
    let url = url::Url::parse(reference)
        .map_err(|_| GraphError::bad_request(format!("Invalid object reference '{reference}'.")))?;
    let segs: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    match segs.as_slice() {
        [.., coll, id]
            if ["directoryobjects", "users"].contains(&coll.to_ascii_lowercase().as_str())
                && !id.is_empty() =>
        {
            Ok((*id).to_string())
        }
        _ => Err(GraphError::bad_request(format!(
            "Invalid object reference '{reference}'."
        ))),
    }
}

pub(super) fn add_member(
    shared: &Shared,
    req: &ApiRequest,
    group_id: &str,
) -> GraphResult<ApiResponse> {
    let body = req.json_body()?;
    let user_id = referenced_id(&body)?;
    let mut dir = shared.dir();
    if !dir.groups.contains_key(group_id) {
        return Err(GraphError::not_found(group_id));
    }
    let (uid, is_guest) = match dir.user(&user_id) {
        Some(u) => (u.id.clone(), u.user_type == "Guest"),
        None => return Err(GraphError::not_found(&user_id)),
    };
    let g = dir.groups.get_mut(group_id).expect("checked");
    if g.refuses_guests && is_guest {
        return Err(GraphError::denied());
    }
    if !g.member_set.insert(uid.clone()) {
        return Err(GraphError::directory_bad_request(
            "One or more added object references already exist for the following modified properties: 'members'.",
        ));
    }
    g.members.push(uid);
    Ok(ApiResponse::no_content())
}

pub(super) fn remove_member(
    shared: &Shared,
    group_id: &str,
    user_id: &str,
) -> GraphResult<ApiResponse> {
    let mut dir = shared.dir();
    let g = dir
        .groups
        .get_mut(group_id)
        .ok_or_else(|| GraphError::not_found(group_id))?;
    if !g.member_set.remove(user_id) {
        return Err(GraphError::not_found(user_id));
    }
    g.members.retain(|m| m != user_id);
    Ok(ApiResponse::no_content())
}
