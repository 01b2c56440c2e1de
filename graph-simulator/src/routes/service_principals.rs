//! `/servicePrincipals/{id}` and its `appRoleAssignedTo` collection.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::ApiRequest;
use crate::errors::{ApiResponse, GraphError, GraphResult};
use crate::shared::Shared;
use crate::state::{Assignment, Directory};

/// The app role id that means "default access" (no specific role).
const DEFAULT_ACCESS: &str = "00000000-0000-0000-0000-000000000000";

pub(super) fn get(shared: &Shared, req: &ApiRequest, id: &str) -> GraphResult<ApiResponse> {
    let dir = shared.dir();
    let sp = dir
        .service_principals
        .get(id)
        .ok_or_else(|| GraphError::not_found(id))?;
    let roles: Vec<Value> = sp
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
    Ok(ApiResponse::json(
        200,
        json!({
            "@odata.context": format!("{}/$metadata#servicePrincipals/$entity", req.graph_base()),
            "id": sp.id,
            "appId": sp.app_id,
            "displayName": sp.display_name,
            "appRoles": roles,
        }),
    ))
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
    if app_role_id != DEFAULT_ACCESS && !sp.app_role_ids.contains(&app_role_id) {
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
