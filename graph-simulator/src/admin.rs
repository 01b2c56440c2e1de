//! The `/_sim/...` admin API: the Rust API's seeding, inspection and fault
//! injection over HTTP, for the binary driven by scripts and the dev loop.
//! It needs no token and is never delayed, counted or faulted.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use warp::http::Method;

use crate::errors::ApiResponse;
use crate::odata::QueryParams;
use crate::types::{Fault, SeedGuest, SIGN_IN_SENTINEL};
use crate::util::parse_datetime;
use crate::Simulator;

fn ok(v: Value) -> ApiResponse {
    ApiResponse::json(200, v)
}

fn err(status: u16, msg: &str) -> ApiResponse {
    ApiResponse::json(status, json!({"error": msg}))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiResponse> {
    serde_json::from_slice(body).map_err(|e| err(400, &format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GuestSeed {
    mail: Option<String>,
    display_name: Option<String>,
    created: Option<String>,
    created_days_ago: Option<i64>,
    external_user_state: Option<String>,
    state_changed: Option<String>,
    last_sign_in: Option<String>,
    #[serde(default)]
    sign_in_sentinel: bool,
    account_enabled: Option<bool>,
    /// Bulk seeding: this many generated guests.
    count: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberSeed {
    mail: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupSeed {
    display_name: String,
    #[serde(default)]
    refuses_guests: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpSeed {
    display_name: String,
    #[serde(default)]
    app_role_ids: Vec<uuid::Uuid>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInBody {
    at: Option<String>,
    #[serde(default)]
    sentinel: bool,
    /// A failed attempt: recorded as the last sign-in, not as the last successful one.
    #[serde(default)]
    failed: bool,
}

#[derive(Deserialize)]
struct PermissionsBody {
    permissions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TenantBody {
    tenant_id: String,
    name: String,
}

#[derive(Deserialize)]
struct UrisBody {
    uris: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RollBody {
    #[serde(default)]
    withdraw_old: bool,
}

#[derive(Deserialize)]
struct PresentBody {
    present: bool,
}

#[derive(Deserialize)]
struct OnBody {
    on: bool,
}

#[derive(Deserialize)]
struct LatencyBody {
    ms: u64,
}

fn time_field(v: &Option<String>, name: &str) -> Result<Option<OffsetDateTime>, ApiResponse> {
    match v {
        None => Ok(None),
        Some(s) => parse_datetime(s)
            .map(Some)
            .ok_or_else(|| err(400, &format!("'{name}' must be an RFC 3339 date-time"))),
    }
}

pub(crate) fn handle(
    sim: &Simulator,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> ApiResponse {
    let segs: Vec<&str> = path
        .trim_start_matches("/_sim")
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let q = QueryParams::parse(query);
    let result = route(sim, method, &segs, &q, body);
    result.unwrap_or_else(|e| e)
}

fn route(
    sim: &Simulator,
    method: &Method,
    segs: &[&str],
    q: &QueryParams,
    body: &[u8],
) -> Result<ApiResponse, ApiResponse> {
    let m = method.clone();
    Ok(match (m, segs) {
        (Method::GET, ["signIn", "users"]) => ok(json!({ "value": sim.sign_in_users() })),
        (Method::POST, ["signIn", "users"]) => {
            let user: crate::SignInUser = parse(body)?;
            let id = sim.add_sign_in_user(user);
            ApiResponse::json(201, json!({ "objectId": id }))
        }
        (Method::POST, ["signIn", "tenants"]) => {
            let b: TenantBody = parse(body)?;
            sim.add_sign_in_tenant(&b.tenant_id, &b.name);
            ApiResponse::no_content()
        }
        (Method::PUT, ["signIn", "redirectUris"]) => {
            let b: UrisBody = parse(body)?;
            let uris: Vec<&str> = b.uris.iter().map(String::as_str).collect();
            sim.set_redirect_uris(&uris);
            ApiResponse::no_content()
        }
        (Method::POST, ["signIn", "forgery"]) => {
            let f: crate::IdTokenForgery = parse(body)?;
            sim.forge_next_id_token(f);
            ApiResponse::no_content()
        }
        (Method::POST, ["signIn", "rollKeys"]) => {
            let b: RollBody = parse(body)?;
            ok(json!({ "kid": sim.roll_signing_keys(b.withdraw_old) }))
        }
        (Method::PUT, ["signIn", "federatedCredential"]) => {
            let b: PresentBody = parse(body)?;
            sim.set_federated_credential(b.present);
            ApiResponse::no_content()
        }
        (Method::PUT, ["signIn", "amr"]) => {
            let b: OnBody = parse(body)?;
            sim.set_id_token_amr(b.on);
            ApiResponse::no_content()
        }
        (Method::GET, ["config"]) => ok(json!({
            "baseUrl": sim.base_url(),
            "authorityHost": sim.authority_host(),
            "tenantId": sim.tenant_id(),
            "tokenEndpoint": format!("{}/{}/oauth2/v2.0/token", sim.authority_host(), sim.tenant_id()),
            "identityEndpoint": sim.identity_endpoint(),
            "identityHeader": sim.identity_header(),
            "clientId": sim.client_id(),
            "clientSecret": sim.client_secret(),
            "signInAuthority": sim.sign_in_authority(),
            "signInClientId": sim.sign_in_client_id(),
        })),
        (Method::GET, ["state"]) => {
            let with_users = q.get("users").is_none_or(|v| v != "false");
            let dir = sim.shared.dir();
            let groups: Vec<Value> = dir
                .groups
                .values()
                .map(|g| json!({"id": g.id, "displayName": g.display_name, "refusesGuests": g.refuses_guests, "members": g.members}))
                .collect();
            let sps: Vec<Value> = dir
                .service_principals
                .values()
                .map(|sp| json!({
                    "id": sp.id,
                    "displayName": sp.display_name,
                    "appRoleIds": sp.app_role_ids,
                    "assignments": sp.assignments.iter().map(|a| json!({"principalId": a.principal_id, "appRoleId": a.app_role_id})).collect::<Vec<_>>(),
                }))
                .collect();
            let active = dir.users.len();
            let deleted = dir.deleted.len();
            let invitations = dir.invitations.len();
            drop(dir);
            let mut v = json!({
                "counts": {"users": active, "deletedUsers": deleted, "invitations": invitations},
                "groups": groups,
                "servicePrincipals": sps,
                "calls": sim.calls(),
                "faults": sim.shared.faults(),
                "latencyMs": sim.shared.latency().as_millis() as u64,
            });
            if with_users {
                v["users"] = json!(sim.users());
            }
            ok(v)
        }
        (Method::GET, ["users"]) => match q.get("mail") {
            Some(mail) => match sim.user_by_mail(mail) {
                Some(u) => ok(json!(u)),
                None => err(404, "no such user"),
            },
            None => ok(json!(sim.users())),
        },
        (Method::GET, ["users", id]) => match sim.user(id) {
            Some(u) => ok(json!(u)),
            None => err(404, "no such user"),
        },
        (Method::POST, ["users", id, "redeem"]) => {
            if sim.redeem(id) {
                ApiResponse::no_content()
            } else {
                err(404, "no such user")
            }
        }
        (Method::POST, ["users", id, "signIn"]) => {
            let b: SignInBody = parse(body)?;
            if b.failed {
                let at = time_field(&b.at, "at")?.ok_or_else(|| err(400, "'at' is required"))?;
                return Ok(if sim.record_failed_sign_in(id, at) {
                    ApiResponse::no_content()
                } else {
                    err(404, "no such user")
                });
            }
            let at = if b.sentinel {
                Some(SIGN_IN_SENTINEL)
            } else {
                time_field(&b.at, "at")?
            };
            if sim.set_last_sign_in(id, at) {
                ApiResponse::no_content()
            } else {
                err(404, "no such user")
            }
        }
        (Method::POST, ["members"]) => {
            let b: MemberSeed = parse(body)?;
            let name = b.display_name.unwrap_or_else(|| b.mail.clone());
            ok(json!({"id": sim.add_member(&b.mail, &name)}))
        }
        (Method::POST, ["guests"]) => {
            let b: GuestSeed = parse(body)?;
            let created = match (time_field(&b.created, "created")?, b.created_days_ago) {
                (Some(t), _) => t,
                (None, Some(days)) => OffsetDateTime::now_utc() - time::Duration::days(days),
                (None, None) => OffsetDateTime::now_utc(),
            };
            if let Some(n) = b.count {
                sim.seed_guests(n, created);
                return Ok(ok(json!({"seeded": n})));
            }
            let Some(mail) = b.mail else {
                return Err(err(400, "'mail' or 'count' is required"));
            };
            let mut g = SeedGuest::new(&mail).created(created);
            if let Some(n) = b.display_name {
                g.display_name = n;
            }
            if b.external_user_state.is_some() {
                g.external_user_state = b.external_user_state;
            }
            g.state_changed = time_field(&b.state_changed, "stateChanged")?;
            g.last_sign_in = if b.sign_in_sentinel {
                Some(SIGN_IN_SENTINEL)
            } else {
                time_field(&b.last_sign_in, "lastSignIn")?
            };
            g.account_enabled = b.account_enabled.unwrap_or(true);
            ok(json!({"id": sim.add_guest(g)}))
        }
        (Method::POST, ["groups"]) => {
            let b: GroupSeed = parse(body)?;
            let id = if b.refuses_guests {
                sim.add_group_refusing_guests(&b.display_name)
            } else {
                sim.add_group(&b.display_name)
            };
            ok(json!({"id": id}))
        }
        (Method::GET, ["groups", id, "members"]) => ok(json!(sim.group_members(id))),
        (Method::POST, ["servicePrincipals"]) => {
            let b: SpSeed = parse(body)?;
            ok(json!({"id": sim.add_service_principal(&b.display_name, &b.app_role_ids)}))
        }
        (Method::GET, ["servicePrincipals", id, "assignments"]) => ok(json!(sim
            .app_role_assignments(id)
            .into_iter()
            .map(|(p, r)| json!({"principalId": p, "appRoleId": r}))
            .collect::<Vec<_>>())),
        (Method::GET, ["invitations"]) => ok(json!(sim.invitations())),
        (Method::GET, ["deleted"]) => ok(json!(sim.deleted_users())),
        (Method::GET, ["calls"]) => ok(json!(sim.calls())),
        (Method::DELETE, ["calls"]) => {
            sim.reset_calls();
            ApiResponse::no_content()
        }
        (Method::GET, ["faults"]) => ok(json!(sim.shared.faults())),
        (Method::POST, ["faults"]) => {
            let f: Fault = parse(body)?;
            sim.inject_fault(f);
            ApiResponse::no_content()
        }
        (Method::DELETE, ["faults"]) => {
            sim.clear_faults();
            ApiResponse::no_content()
        }
        (Method::PUT, ["latency"]) => {
            let b: LatencyBody = parse(body)?;
            sim.set_latency(Duration::from_millis(b.ms));
            ApiResponse::no_content()
        }
        (Method::GET, ["permissions"]) => ok(json!(sim.app_permissions())),
        (Method::PUT, ["permissions"]) => {
            let b: PermissionsBody = parse(body)?;
            let values: Vec<&str> = b.permissions.iter().map(String::as_str).collect();
            sim.set_app_permissions(&values);
            ok(json!(sim.app_permissions()))
        }
        (Method::PATCH, ["authorizationPolicy"]) => {
            let changes: Value = parse(body)?;
            if !changes.is_object() {
                return Err(err(400, "the body must be a JSON object of properties"));
            }
            sim.set_authorization_policy(changes);
            ok(Value::Object(sim.shared.dir().authorization_policy.clone()))
        }
        (Method::POST, ["tokens", "admin"]) => {
            let (token, expires_on) = sim.admin_token();
            ok(json!({"accessToken": token, "expires_on": expires_on, "tokenType": "Bearer"}))
        }
        (Method::POST, ["tokens", "expire"]) => {
            sim.expire_tokens();
            ApiResponse::no_content()
        }
        _ => err(
            404,
            "unknown admin route; see the crate docs for /_sim routes",
        ),
    })
}
