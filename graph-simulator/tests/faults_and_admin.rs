//! Fault injection (status, count, Retry-After, delay, dropped connection),
//! latency, and the `/_sim` admin API.

mod common;

use std::time::{Duration, Instant};

use common::{code, sub, Env};
use graph_simulator::{Fault, FaultRoute, SeedGuest};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn status_fault_hits_the_next_n_matching_calls_only() {
    let env = Env::start().await;
    let id = env.sim.add_guest(SeedGuest::new("g@x.example"));
    env.sim
        .inject_fault(Fault::new(FaultRoute::GetUser, 503).times(2).retry_after(7));

    // Other routes are untouched.
    assert_eq!(env.get("/users").await.0, 200);
    for _ in 0..2 {
        let resp = env
            .req(Method::GET, &format!("/users/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "7");
        let (_, v) = common::status_json(resp).await;
        assert_eq!(code(&v), "serviceNotAvailable");
    }
    assert_eq!(env.get(&format!("/users/{id}")).await.0, 200);
    assert_eq!(env.sim.calls().get_user, 3);
}

#[tokio::test]
async fn injected_429_is_counted_as_throttled() {
    let env = Env::start().await;
    env.sim
        .inject_fault(Fault::new(FaultRoute::Invitations, 429).retry_after(1));
    let (status, v) = env.invite("a@b.example").await;
    assert_eq!((status, code(&v)), (429, "TooManyRequests"));
    assert_eq!(env.sim.calls().throttled_429, 1);
    assert!(env.sim.user_by_mail("a@b.example").is_none());
    assert_eq!(env.invite("a@b.example").await.0, 201);
}

#[tokio::test]
async fn delay_fault_makes_a_client_timeout_fire() {
    let env = Env::start().await;
    env.sim
        .inject_fault(Fault::new(FaultRoute::ListUsers, 504).delay(Duration::from_millis(800)));
    let err = env
        .req(Method::GET, "/users")
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .expect_err("client gives up first");
    assert!(err.is_timeout(), "{err}");

    env.sim.inject_fault(Fault::slow(
        FaultRoute::ListUsers,
        Duration::from_millis(300),
    ));
    let t = Instant::now();
    assert_eq!(env.get("/users").await.0, 200, "a slow fault still answers");
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn dropped_connection_gives_no_answer() {
    let env = Env::start().await;
    env.sim
        .inject_fault(Fault::drop_connection(FaultRoute::Invitations));
    let err = env
        .req(Method::POST, "/invitations")
        .json(&json!({"invitedUserEmailAddress": "a@b.example", "inviteRedirectUrl": "https://p.example"}))
        .send()
        .await
        .expect_err("no HTTP answer");
    assert!(!err.is_status());
    assert!(err.status().is_none());
    assert_eq!(env.invite("a@b.example").await.0, 201);
}

#[tokio::test]
async fn faults_apply_to_batch_sub_requests_by_their_own_route() {
    let env = Env::start().await;
    let a = env.sim.add_guest(SeedGuest::new("a@x.example"));
    let b = env.sim.add_guest(SeedGuest::new("b@x.example"));
    env.sim
        .inject_fault(Fault::new(FaultRoute::DeleteUser, 500).times(1));
    let (status, v) = env
        .batch(json!([
            {"id": "a", "method": "DELETE", "url": format!("/users/{a}")},
            {"id": "b", "method": "DELETE", "url": format!("/users/{b}"), "dependsOn": ["a"]},
        ]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(sub(&v, "a")["status"], 500);
    assert_eq!(sub(&v, "b")["status"], 424);

    env.sim.inject_fault(Fault::new(FaultRoute::Batch, 503));
    let (status, _) = env
        .batch(json!([{"id": "1", "method": "GET", "url": "/users"}]))
        .await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn latency_is_added_per_outer_call() {
    let env = Env::start().await;
    env.sim.set_latency(Duration::from_millis(150));
    let t = Instant::now();
    let (status, _) = env
        .batch(json!([
            {"id": "1", "method": "GET", "url": "/users"},
            {"id": "2", "method": "GET", "url": "/users"},
            {"id": "3", "method": "GET", "url": "/users"},
        ]))
        .await;
    let took = t.elapsed();
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(
        took < Duration::from_millis(450),
        "not per sub-request: {took:?}"
    );
}

#[tokio::test]
async fn admin_api_seeds_inspects_and_injects() {
    let env = Env::start().await;
    let admin = |p: &str| format!("{}/_sim{p}", env.sim.authority_host());
    let http = &env.http;

    let cfg: Value = http
        .get(admin("/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["baseUrl"], env.sim.base_url());
    assert_eq!(cfg["clientSecret"], env.sim.client_secret());

    let seeded: Value = http
        .post(admin("/guests"))
        .json(&json!({"count": 25, "createdDaysAgo": 200}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seeded["seeded"], 25);
    let one: Value = http
        .post(admin("/guests"))
        .json(&json!({"mail": "old@x.example", "lastSignIn": "2023-01-01T00:00:00Z", "externalUserState": "Accepted"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = one["id"].as_str().unwrap().to_string();
    assert_eq!(
        env.sim.user(&id).unwrap().external_user_state.as_deref(),
        Some("Accepted")
    );

    let group: Value = http
        .post(admin("/groups"))
        .json(&json!({"displayName": "Synced", "refusesGuests": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gid = group["id"].as_str().unwrap();
    let (status, _) = env
        .post(
            &format!("/groups/{gid}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")}),
        )
        .await;
    assert_eq!(status, 403);

    let resp = http
        .post(admin("/faults"))
        .json(&json!({"route": "ListUsers", "status": 502, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(env.get("/users").await.0, 502);
    assert_eq!(env.get("/users").await.0, 200);

    let pending = env.sim.add_guest(SeedGuest::new("p@x.example"));
    let resp = http
        .post(admin(&format!("/users/{pending}/redeem")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        env.sim
            .user(&pending)
            .unwrap()
            .external_user_state
            .as_deref(),
        Some("Accepted")
    );

    let calls: Value = http
        .get(admin("/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["list_users_pages"], 2);
    http.delete(admin("/calls")).send().await.unwrap();
    assert_eq!(env.sim.calls().total, 0);

    let state: Value = http
        .get(admin("/state?users=false"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["counts"]["users"], 27);
    assert!(state.get("users").is_none());
}

#[test]
fn detached_simulator_answers_without_a_caller_runtime() {
    use std::io::{Read, Write};
    let sim = graph_simulator::Simulator::start_detached(Default::default()).unwrap();
    let addr = sim
        .authority_host()
        .trim_start_matches("http://")
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /_sim/config HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains(&sim.base_url()));
}
