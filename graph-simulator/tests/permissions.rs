//! Application permissions: the app's grants appear as the `roles` claim of the tokens issued to
//! it, fixed at issue time; a call whose documented permissions the token lacks answers 403
//! `Authorization_RequestDenied`; the grants are readable as Graph shows them (the app's
//! `appRoleAssignments` on Microsoft Graph's service principal). And the tenant's authorization
//! policy, a singleton under `/policies`.

mod common;

use base64::Engine;
use common::{client_credentials_token, code, send, Env};
use graph_simulator::{SimulatorConfig, DEFAULT_APP_PERMISSIONS, GRAPH_APP_ID, IDENTITY_OBJECT_ID};
use reqwest::Method;
use serde_json::{json, Value};

/// The claims of a JWT-shaped token (the payload, base64url).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn roles(token: &str) -> Vec<String> {
    claims(token)["roles"]
        .as_array()
        .map(|a| a.iter().map(|r| r.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn tokens_carry_the_app_permissions_held_when_they_were_issued() {
    let env = Env::start().await;
    let mut held = roles(&env.token);
    held.sort();
    let mut default: Vec<String> = DEFAULT_APP_PERMISSIONS
        .iter()
        .map(|p| p.to_string())
        .collect();
    default.sort();
    assert_eq!(held, default);
    let c = claims(&env.token);
    assert_eq!(c["oid"], IDENTITY_OBJECT_ID);
    assert_eq!(c["idtyp"], "app");

    env.sim
        .set_app_permissions(&["User.Invite.All", "Policy.Read.All"]);
    let fresh = client_credentials_token(&env.http, &env.sim).await;
    assert_eq!(roles(&fresh), ["User.Invite.All", "Policy.Read.All"]);
    // The earlier token keeps what it was issued with.
    assert!(roles(&env.token).contains(&"GroupMember.ReadWrite.All".to_string()));

    // None at all: Entra leaves the claim out.
    env.sim.set_app_permissions(&[]);
    let bare = client_credentials_token(&env.http, &env.sim).await;
    assert!(claims(&bare).get("roles").is_none(), "{}", claims(&bare));
}

#[tokio::test]
async fn a_call_without_its_permission_is_denied() {
    let env = Env::with(SimulatorConfig {
        app_permissions: vec!["User.Read.All".into()],
        ..Default::default()
    })
    .await;
    let (status, v) = env.invite("ada@partner.example").await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(code(&v), "Authorization_RequestDenied");
    assert!(env.sim.invitations().is_empty());
    // Reading users is what it holds.
    let (status, _) = env.get("/users?$top=1").await;
    assert_eq!(status, 200);
    // Sign-in activity needs AuditLog.Read.All on top.
    let (status, v) = env.get("/users?$select=id,signInActivity&$top=1").await;
    assert_eq!(status, 403, "{v}");
    // A batch checks each sub-request with the batch's token.
    let (status, v) = env
        .batch(json!([{"id": "1", "method": "GET", "url": "/groups/00000000-0000-0000-0000-000000000001"}]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(common::sub(&v, "1")["status"], 403);
}

#[tokio::test]
async fn the_app_grants_are_readable_on_microsoft_graphs_service_principal() {
    let env = Env::start().await;
    let (status, graph) = env
        .get(&format!("/servicePrincipals(appId='{GRAPH_APP_ID}')"))
        .await;
    assert_eq!(status, 200, "{graph}");
    assert_eq!(graph["id"], env.sim.graph_service_principal_id());
    let invite = graph["appRoles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["value"] == "User.Invite.All")
        .expect("User.Invite.All is an app role of Microsoft Graph");
    assert_eq!(invite["id"], "09850681-111b-4a89-9bed-3f2cae46d706");
    assert_eq!(invite["allowedMemberTypes"], json!(["Application"]));

    let (status, by_filter) = env
        .get(&format!(
            "/servicePrincipals?$filter=appId eq '{GRAPH_APP_ID}'"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(by_filter["value"][0]["id"], graph["id"]);

    let (status, held) = env
        .get(&format!(
            "/servicePrincipals/{IDENTITY_OBJECT_ID}/appRoleAssignments"
        ))
        .await;
    assert_eq!(status, 200, "{held}");
    let held = held["value"].as_array().unwrap();
    assert_eq!(held.len(), DEFAULT_APP_PERMISSIONS.len());
    assert!(held.iter().all(|a| a["resourceId"] == graph["id"]
        && a["principalId"] == IDENTITY_OBJECT_ID
        && a["principalType"] == "ServicePrincipal"));
    assert!(held.iter().any(|a| a["appRoleId"] == invite["id"]));
}

#[tokio::test]
async fn the_authorization_policy_needs_policy_read_all_and_shows_the_tenant_settings() {
    let env = Env::start().await;
    let (status, v) = env.get("/policies/authorizationPolicy").await;
    assert_eq!(
        status, 403,
        "the portal's default grants do not include Policy.Read.All: {v}"
    );
    assert_eq!(code(&v), "Authorization_RequestDenied");

    // An administrator's delegated token (what az gives) may read it.
    let (admin, _) = env.sim.admin_token();
    assert!(claims(&admin)["scp"].is_string());
    let read = |token: String| {
        let rb = env
            .http
            .request(Method::GET, env.url("/policies/authorizationPolicy"))
            .bearer_auth(token);
        send(rb)
    };
    let (status, policy) = read(admin.clone()).await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["id"], "authorizationPolicy");
    assert_eq!(policy["allowInvitesFrom"], "everyone");
    assert_eq!(
        policy["guestUserRoleId"],
        "10dae51f-b6af-4016-8d66-8c2a99b929b3"
    );
    assert!(policy["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#policies/authorizationPolicy/$entity"));

    env.sim
        .set_authorization_policy(json!({"allowInvitesFrom": "adminsAndGuestInviters"}));
    env.sim.set_app_permissions(&["Policy.Read.All"]);
    let app = client_credentials_token(&env.http, &env.sim).await;
    let (status, policy) = read(app).await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["allowInvitesFrom"], "adminsAndGuestInviters");
}
