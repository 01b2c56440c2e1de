//! Token endpoints and the bearer check in front of Graph.

mod common;

use common::{code, message, status_json, Env};
use graph_simulator::{Fault, FaultRoute, Simulator, SimulatorConfig};
use serde_json::Value;

async fn token_call(sim: &Simulator, secret: &str, scope: &str) -> (u16, Value) {
    let http = reqwest::Client::new();
    let resp = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.authority_host(),
            sim.tenant_id()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sim.client_id().as_str()),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    status_json(resp).await
}

#[tokio::test]
async fn client_credentials_answers_the_documented_shape() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let (status, v) = token_call(
        &sim,
        &sim.client_secret(),
        "https://graph.microsoft.com/.default",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["ext_expires_in"], 3599);
    assert!(v["access_token"].as_str().unwrap().len() > 40);
    assert_eq!(sim.calls().token, 1);
}

#[tokio::test]
async fn bad_secret_is_invalid_client_with_aadsts_7000215() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let (status, v) = token_call(&sim, "wrong", "https://graph.microsoft.com/.default").await;
    assert_eq!(status, 401);
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"][0], 7000215);
    assert!(v["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215: Invalid client secret provided"));
}

#[tokio::test]
async fn scope_without_default_suffix_is_invalid_scope() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let (status, v) = token_call(&sim, &sim.client_secret(), "User.Read").await;
    assert_eq!(status, 400);
    assert_eq!(v["error"], "invalid_scope");
}

#[tokio::test]
async fn app_service_managed_identity_matches_azure_identity() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!(
        "{}?api-version=2019-08-01&resource=https://graph.microsoft.com",
        sim.identity_endpoint()
    );
    let resp = http
        .get(&url)
        .header("X-IDENTITY-HEADER", sim.identity_header())
        .header("metadata", "true")
        .send()
        .await
        .unwrap();
    let (status, v) = status_json(resp).await;
    assert_eq!(status, 200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["resource"], "https://graph.microsoft.com");
    assert_eq!(v["client_id"], sim.client_id());
    // azure_identity parses expires_on as a string of Unix seconds.
    let exp: i64 = v["expires_on"].as_str().unwrap().parse().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(exp > now + 3600, "expires_on {exp} not in the future");

    // The token it hands out works against Graph.
    let token = v["access_token"].as_str().unwrap();
    let resp = http
        .get(format!("{}/users", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn managed_identity_refuses_missing_or_wrong_header() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!(
        "{}?api-version=2019-08-01&resource=https://graph.microsoft.com",
        sim.identity_endpoint()
    );
    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    let wrong = http
        .get(&url)
        .header("X-IDENTITY-HEADER", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let other_identity = http
        .get(format!(
            "{url}&client_id=11111111-1111-1111-1111-111111111111"
        ))
        .header("X-IDENTITY-HEADER", sim.identity_header())
        .send()
        .await
        .unwrap();
    assert_eq!(other_identity.status(), 400);
}

#[tokio::test]
async fn imds_needs_the_metadata_header() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://graph.microsoft.com",
        sim.authority_host()
    );
    assert_eq!(http.get(&url).send().await.unwrap().status(), 400);
    let (status, v) = status_json(
        http.get(&url)
            .header("Metadata", "true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(v["expires_on"].as_str().unwrap().parse::<i64>().is_ok());
}

#[tokio::test]
async fn graph_without_token_is_401_with_graph_error_and_ids() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{}/users", sim.base_url()))
        .header("client-request-id", "my-correlation-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let request_id = resp.headers()["request-id"].to_str().unwrap().to_string();
    assert_eq!(resp.headers()["client-request-id"], "my-correlation-1");
    let (_, v) = status_json(resp).await;
    assert_eq!(code(&v), "InvalidAuthenticationToken");
    assert_eq!(message(&v), "Access token is empty.");
    assert_eq!(v["error"]["innerError"]["request-id"], request_id.as_str());
    assert_eq!(
        v["error"]["innerError"]["client-request-id"],
        "my-correlation-1"
    );
    assert!(v["error"]["innerError"]["date"].as_str().unwrap().len() == 19);
}

#[tokio::test]
async fn unknown_expired_and_foreign_audience_tokens_are_refused() {
    let env = Env::start().await;
    let (status, v) = common::send(env.http.get(env.url("/users")).bearer_auth("made-up")).await;
    assert_eq!((status, code(&v)), (401, "InvalidAuthenticationToken"));

    // A token for another resource is not a Graph token.
    let (_, t) = token_call(
        &env.sim,
        &env.sim.client_secret(),
        "https://storage.azure.com/.default",
    )
    .await;
    let (status, v) = common::send(
        env.http
            .get(env.url("/users"))
            .bearer_auth(t["access_token"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 401);
    assert!(message(&v).contains("Invalid audience"));

    assert_eq!(env.get("/users").await.0, 200);
    env.sim.expire_tokens();
    let (status, v) = env.get("/users").await;
    assert_eq!(status, 401);
    assert!(message(&v).contains("expired"));
}

#[tokio::test]
async fn token_route_faults_use_the_sts_error_shape() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    sim.inject_fault(Fault::new(FaultRoute::Token, 503).retry_after(2));
    let http = reqwest::Client::new();
    let resp = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            sim.authority_host(),
            sim.tenant_id()
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sim.client_id().as_str()),
            ("client_secret", sim.client_secret().as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "2");
    let (_, v) = status_json(resp).await;
    assert_eq!(v["error"], "temporarily_unavailable");
    // Only once: the next call gets a token.
    let t = common::client_credentials_token(&http, &sim).await;
    assert!(!t.is_empty());
}
