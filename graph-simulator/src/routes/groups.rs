//! `/groups/{id}`, its members and transitive members (paged), and adding/removing members
//! (users or nested groups) by `$ref`.

use serde_json::{json, Map, Value};

use super::users::select_or_403;
use super::ApiRequest;
use crate::errors::{ApiResponse, GraphError, GraphResult};
use crate::odata::{decode_skiptoken, encode_skiptoken, parse_top, wants_count};
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
    let members = {
        let dir = shared.dir();
        let g = dir
            .groups
            .get(id)
            .ok_or_else(|| GraphError::not_found(id))?;
        g.members.clone()
    };
    member_page(shared, req, &format!("members:{id}"), &members, None)
}

/// `GET /groups/{id}/transitiveMembers[/microsoft.graph.user|group]`: every member, nested
/// groups' members included, as one flat list paged like `/members`. The OData cast needs
/// the advanced query parameters (`ConsistencyLevel: eventual` and `$count=true`), as Graph
/// documents; without a cast every member type comes back, each with its `@odata.type`.
pub(super) fn list_transitive_members(
    shared: &Shared,
    req: &ApiRequest,
    id: &str,
    cast: Option<&str>,
) -> GraphResult<ApiResponse> {
    let only = match cast.map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some(c @ ("microsoft.graph.user" | "microsoft.graph.group")) => {
            if !(req.eventual() && wants_count(&req.query)) {
                return Err(GraphError::unsupported_query(
                    "The OData cast on transitiveMembers needs the ConsistencyLevel: eventual header and $count=true.",
                ));
            }
            Some(if c.ends_with("user") { "user" } else { "group" })
        }
        Some(_) => {
            return Err(GraphError::unsupported_query(
                "The requested OData cast is not a supported member type.",
            ))
        }
    };
    let members = {
        let dir = shared.dir();
        if !dir.groups.contains_key(id) {
            return Err(GraphError::not_found(id));
        }
        dir.transitive_members(id)
    };
    member_page(
        shared,
        req,
        &format!("transitiveMembers:{id}"),
        &members,
        only,
    )
}

/// One page of a member list, by position: users and groups, each with its `@odata.type`
/// (`only`: just `"user"` or `"group"`). Soft-deleted users are skipped, as Entra hides them
/// from memberships until they are restored.
fn member_page(
    shared: &Shared,
    req: &ApiRequest,
    collection: &str,
    members: &[String],
    only: Option<&str>,
) -> GraphResult<ApiResponse> {
    let top = parse_top(&req.query)?;
    let select = select_or_403(shared, req)?;
    let start = req
        .query
        .get("$skiptoken")
        .map(|t| decode_skiptoken(t, collection))
        .transpose()?
        .unwrap_or(0) as usize;
    let dir = shared.dir();
    let mut value = Vec::new();
    let mut next = None;
    for (i, mid) in members.iter().enumerate().skip(start) {
        let item = if let Some(u) = dir.user(mid).filter(|_| only != Some("group")) {
            let mut m = Map::new();
            m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            m.extend(u.render(&select));
            m
        } else if let Some(g) = dir.groups.get(mid).filter(|_| only != Some("user")) {
            let mut m = Map::new();
            m.insert("@odata.type".into(), json!("#microsoft.graph.group"));
            m.insert("id".into(), json!(g.id));
            if select.contains(&"displayName") {
                m.insert("displayName".into(), json!(g.display_name));
            }
            m
        } else {
            continue;
        };
        if value.len() == top {
            next = Some(i);
            break;
        }
        value.push(Value::Object(item));
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#directoryObjects", req.graph_base())),
    );
    if let Some(i) = next {
        let token = encode_skiptoken(collection, i as u64);
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
pub(super) fn referenced_id(body: &Value) -> GraphResult<String> {
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
            if ["directoryobjects", "users", "groups"]
                .contains(&coll.to_ascii_lowercase().as_str())
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
    // A member is a user or, nested, another group (never the group itself).
    let (uid, is_guest) = match dir.user(&user_id) {
        Some(u) => (u.id.clone(), u.user_type == "Guest"),
        None if user_id == group_id => {
            return Err(GraphError::directory_bad_request(
                "A group cannot be added as a member of itself.",
            ))
        }
        None if dir.groups.contains_key(&user_id) => (user_id.clone(), false),
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
