//! Helpers shared by the integration tests: a started simulator plus an HTTP
//! client holding a Graph token obtained the way the portal does.
#![allow(dead_code)]

use graph_simulator::{Simulator, SimulatorConfig};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;

pub struct Env {
    pub sim: Simulator,
    pub http: Client,
    pub token: String,
}

impl Env {
    pub async fn start() -> Env {
        Self::with(SimulatorConfig::default()).await
    }

    pub async fn with(config: SimulatorConfig) -> Env {
        let sim = Simulator::start(config).await.expect("simulator starts");
        let http = Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let token = client_credentials_token(&http, &sim).await;
        Env { sim, http, token }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.base_url(), path)
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.req(Method::POST, path).json(&body)).await
    }

    pub async fn invite(&self, email: &str) -> (u16, Value) {
        self.post(
            "/invitations",
            serde_json::json!({
                "invitedUserEmailAddress": email,
                "inviteRedirectUrl": "https://portal.example/welcome",
            }),
        )
        .await
    }

    pub async fn batch(&self, requests: Value) -> (u16, Value) {
        self.post("/$batch", serde_json::json!({ "requests": requests }))
            .await
    }
}

pub async fn client_credentials_token(http: &Client, sim: &Simulator) -> String {
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
        .expect("token call");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("token json");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

pub async fn send(rb: RequestBuilder) -> (u16, Value) {
    let resp = rb.send().await.expect("request sent");
    status_json(resp).await
}

pub async fn status_json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// The error code of a Graph error body.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no code>")
}

pub fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("<no message>")
}

/// The answer with this id in a `$batch` response.
pub fn sub<'a>(batch: &'a Value, id: &str) -> &'a Value {
    batch["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no response with id {id}"))
}
