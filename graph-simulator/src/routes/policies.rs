//! `/policies/authorizationPolicy`: the tenant's authorization settings, a singleton in v1.0
//! (`allowInvitesFrom` says who may invite guests; `guestUserRoleId` what guests may see).

use serde_json::Value;

use super::ApiRequest;
use crate::errors::{ApiResponse, GraphResult};
use crate::shared::Shared;

pub(super) fn authorization_policy(shared: &Shared, req: &ApiRequest) -> GraphResult<ApiResponse> {
    let mut body = shared.dir().authorization_policy.clone();
    body.insert(
        "@odata.context".into(),
        Value::String(format!(
            "{}/$metadata#policies/authorizationPolicy/$entity",
            req.graph_base()
        )),
    );
    Ok(ApiResponse::json(200, Value::Object(body)))
}
