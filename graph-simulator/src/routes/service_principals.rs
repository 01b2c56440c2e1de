//! `/servicePrincipals/{id}` and its `appRoleAssignedTo` collection.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::ApiRequest;
use crate::errors::{ApiResponse, GraphError, GraphResult};
use crate::shared::Shared;
use crate::state::{Assignment, Directory, ServicePrincipal};

/// The app role id that means "default access" (no specific role).
const DEFAULT_ACCESS: &str = "00000000-0000-0000-0000-000000000000";

pub(super) fn get(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let dir = shared.dir();
    let sp = dir
        .service_principals
        .get(id)
        .ok_or_else(|| GraphError::not_found(id))?;
    let mut body = render(sp);
    body["@odata.context"] = json!(format!(
        "{}/$metadata#servicePrincipals/$entity",
        req.graph_base()
    ));
    Ok(ApiResponse::json(200, body))
}

/// `GET /servicePrincipals(appId='...')`: the service principal of an application, by its
/// application id (how Microsoft Graph's own is found in any tenant).
pub(super) fn get_by_app_id(
    shared: &Shared,
    req: &ApiRequest,
    app_id: &str,
) -> GraphResult<ApiResponse> {
    let dir = shared.dir();
    let sp = dir
        .service_principals
        .values()
        .find(|sp| sp.app_id.eq_ignore_ascii_case(app_id))
        .ok_or_else(|| GraphError::not_found(app_id))?;
    let mut body = render(sp);
    body["@odata.context"] = json!(format!(
        "{}/$metadata#servicePrincipals/$entity",
        req.graph_base()
    ));
    Ok(ApiResponse::json(200, body))
}

/// `GET /servicePrincipals?$filter=appId eq '...'` (the one filter the portal's tools use).
pub(super) fn list_all(shared: &Shared, req: &ApiRequest) -> GraphResult<ApiResponse> {
    let wanted = match req.query.get("$filter") {
        None => None,
        Some(f) => {
            let f = f.trim();
            let value = f
                .strip_prefix("appId eq '")
                .and_then(|rest| rest.strip_suffix('\''))
                .ok_or_else(|| {
                    GraphError::bad_request(format!(
                        "Unsupported filter for servicePrincipals in the simulator: {f}"
                    ))
                })?;
            Some(value.to_string())
        }
    };
    let dir = shared.dir();
    let mut value: Vec<Value> = dir
        .service_principals
        .values()
        .filter(|sp| {
            wanted
                .as_deref()
                .is_none_or(|w| sp.app_id.eq_ignore_ascii_case(w))
        })
        .map(render)
        .collect();
    value.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Ok(ApiResponse::json(
        200,
        json!({
            "@odata.context": format!("{}/$metadata#servicePrincipals", req.graph_base()),
            "value": value,
        }),
    ))
}

/// `GET /servicePrincipals/{id}/appRoleAssignments`: the app roles this principal holds on
/// other resources (for the portal's app: its Microsoft Graph application permissions).
pub(super) fn held(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let dir = shared.dir();
    if !dir.service_principals.contains_key(id) {
        return Err(GraphError::not_found(id));
    }
    let value: Vec<Value> = dir
        .assignments_of(id)
        .into_iter()
        .map(|(resource, a)| resource.render_assignment(a))
        .collect();
    Ok(ApiResponse::json(
        200,
        json!({
            "@odata.context": format!(
                "{}/$metadata#servicePrincipals('{id}')/appRoleAssignments",
                req.graph_base()
            ),
            "value": value,
        }),
    ))
}

fn render(sp: &ServicePrincipal) -> Value {
    let mut roles: Vec<Value> = sp
        .app_role_ids
        .iter()
        .map(|r| {
            json!({
                "id": r,
                "allowedMemberTypes": ["User"],
                "isEnabled": true,
                "displayName": format!("Role {r}"),
                "value": null,
            })
        })
        .collect();
    roles.extend(sp.application_roles.iter().map(|(id, value)| {
        json!({
            "id": id,
            "allowedMemberTypes": ["Application"],
            "isEnabled": true,
            "displayName": value,
            "origin": "Application",
            "value": value,
        })
    }));
    json!({
        "id": sp.id,
        "appId": sp.app_id,
        "displayName": sp.display_name,
        "servicePrincipalType": "Application",
        "appRoles": roles,
    })
}

fn required_guid(body: &Value, name: &str) -> GraphResult<String> {
    let v = body.get(name).and_then(Value::as_str).ok_or_else(|| {
        GraphError::directory_bad_request(format!("Required property '{name}' is missing."))
    })?;
    uuid::Uuid::parse_str(v)
        .map(|u| u.to_string())
        .map_err(|_| {
            GraphError::directory_bad_request(format!(
                "Invalid value specified for property '{name}' of resource 'AppRoleAssignment'."
            ))
        })
}

pub(super) fn assign(shared: &Shared, req: &ApiRequest, sp_id: &str) -> GraphResult<ApiResponse> {
    let body = req.json_body()?;
    let principal_id = required_guid(&body, "principalId")?;
    let resource_id = required_guid(&body, "resourceId")?;
    let app_role_id = required_guid(&body, "appRoleId")?;
    let mut dir = shared.dir();
    let Some(sp) = dir.service_principals.get(sp_id) else {
        return Err(GraphError::not_found(sp_id));
    };
    if !resource_id.eq_ignore_ascii_case(&sp.id) {
        return Err(GraphError::directory_bad_request(format!(
            "The resourceId '{resource_id}' does not match the service principal '{sp_id}' in the request URL."
        )));
    }
    if app_role_id != DEFAULT_ACCESS
        && !sp.app_role_ids.contains(&app_role_id)
        && !sp
            .application_roles
            .iter()
            .any(|(id, _)| *id == app_role_id)
    {
        return Err(GraphError::directory_bad_request(format!(
            "Permission being assigned was not found on application '{}'.",
            sp.app_id
        )));
    }
    let (principal_type, principal_name) = principal(&dir, &principal_id)?;
    // Graph answers a duplicate with 400 Request_BadRequest, not 409: clients
    // that want idempotency must recognise this message.
    if sp
        .assignments
        .iter()
        .any(|a| a.principal_id == principal_id && a.app_role_id == app_role_id)
    {
        return Err(GraphError::directory_bad_request(
            "Permission being assigned already exists on the object.",
        ));
    }
    let a = Assignment {
        id: Directory::new_assignment_id(),
        principal_id,
        principal_type,
        principal_display_name: principal_name,
        app_role_id,
        created: OffsetDateTime::now_utc(),
    };
    let sp = dir.service_principals.get_mut(sp_id).expect("checked");
    let mut rendered = sp.render_assignment(&a);
    sp.assignments.push(a);
    rendered["@odata.context"] = json!(format!(
        "{}/$metadata#servicePrincipals('{sp_id}')/appRoleAssignedTo/$entity",
        req.graph_base()
    ));
    Ok(ApiResponse::json(201, rendered))
}

fn principal(dir: &Directory, id: &str) -> GraphResult<(String, String)> {
    if let Some(u) = dir.user(id) {
        return Ok(("User".into(), u.display_name.clone()));
    }
    if let Some(g) = dir.groups.get(id) {
        return Ok(("Group".into(), g.display_name.clone()));
    }
    if let Some(sp) = dir.service_principals.get(id) {
        return Ok(("ServicePrincipal".into(), sp.display_name.clone()));
    }
    Err(GraphError::not_found(id))
}

pub(super) fn list(shared: &Shared, req: &ApiRequest, sp_id: &str) -> GraphResult<ApiResponse> {
    let dir = shared.dir();
    let sp = dir
        .service_principals
        .get(sp_id)
        .ok_or_else(|| GraphError::not_found(sp_id))?;
    let value: Vec<Value> = sp
        .assignments
        .iter()
        .map(|a| sp.render_assignment(a))
        .collect();
    Ok(ApiResponse::json(
        200,
        json!({
            "@odata.context": format!(
                "{}/$metadata#servicePrincipals('{sp_id}')/appRoleAssignedTo",
                req.graph_base()
            ),
            "value": value,
        }),
    ))
}
