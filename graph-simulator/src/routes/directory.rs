//! `/directory/deletedItems`: soft-deleted users, restore and purge.

use std::ops::Bound;

use serde_json::{json, Map, Value};

use super::users::{select_or_403, user_filter};
use super::ApiRequest;
use crate::errors::{ApiResponse, GraphError, GraphResult};
use crate::odata::{decode_skiptoken, encode_skiptoken, parse_top, wants_count};
use crate::shared::Shared;
use crate::state::User;

fn render_deleted(u: &User, select: &[&'static str]) -> Value {
    let mut m = Map::new();
    m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
    m.extend(u.render(select));
    m.insert("deletedDateTime".into(), u.property("deletedDateTime"));
    Value::Object(m)
}

/// `GET /directory/deletedItems/microsoft.graph.user`, with the query parameters the user
/// resource takes (a `$filter` such as `mail eq '...'` is one).
pub(super) fn list_deleted(shared: &Shared, req: &ApiRequest) -> GraphResult<ApiResponse> {
    let top = parse_top(&req.query)?;
    let select = select_or_403(shared, req)?;
    let filter = user_filter(req, wants_count(&req.query) && req.eventual())?;
    let after = req
        .query
        .get("$skiptoken")
        .map(|t| decode_skiptoken(t, "deleted"))
        .transpose()?;
    let dir = shared.dir();
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut iter = dir
        .deleted
        .range((lower, Bound::Unbounded))
        .map(|(_, u)| u)
        .filter(|u| filter.as_ref().is_none_or(|f| f.matches(u)));
    let page: Vec<&User> = iter.by_ref().take(top).collect();
    let has_more = iter.next().is_some();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#directory/deletedItems/microsoft.graph.user",
            req.graph_base()
        )),
    );
    if has_more {
        let token = encode_skiptoken("deleted", page.last().map_or(0, |u| u.seq));
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
    body.insert(
        "value".into(),
        Value::Array(page.iter().map(|u| render_deleted(u, &select)).collect()),
    );
    Ok(ApiResponse::json(200, Value::Object(body)))
}

pub(super) fn get_deleted(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let select = select_or_403(shared, req)?;
    let dir = shared.dir();
    let u = dir
        .deleted_user(id)
        .ok_or_else(|| GraphError::not_found(id))?;
    let mut v = render_deleted(u, &select);
    v["@odata.context"] = json!(format!(
        "{}/$metadata#directoryObjects/$entity",
        req.graph_base()
    ));
    Ok(ApiResponse::json(200, v))
}

pub(super) fn purge(shared: &Shared, id: &str) -> GraphResult<ApiResponse> {
    if shared.dir().purge(id) {
        Ok(ApiResponse::no_content())
    } else {
        Err(GraphError::not_found(id))
    }
}

pub(super) fn restore(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let mut dir = shared.dir();
    match dir.restore(id) {
        Ok(u) => {
            let mut m = Map::new();
            m.insert(
                "@odata.context".into(),
                json!(format!(
                    "{}/$metadata#directoryObjects/$entity",
                    req.graph_base()
                )),
            );
            m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            m.extend(u.render(crate::state::DEFAULT_USER_PROPERTIES));
            m.insert("deletedDateTime".into(), Value::Null);
            Ok(ApiResponse::json(200, Value::Object(m)))
        }
        Err(true) => Err(GraphError::not_found(id)),
        Err(false) => Err(GraphError::directory_bad_request(
            "Another object with the same value for property userPrincipalName already exists.",
        )),
    }
}
