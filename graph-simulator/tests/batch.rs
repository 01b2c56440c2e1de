//! `POST /$batch`: limits, per-sub-request routing, throttling and dependsOn.

mod common;

use std::time::Duration;

use common::{code, message, sub, Env};
use graph_simulator::{SeedGuest, SimulatorConfig};
use reqwest::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;

fn deletes(ids: &[String]) -> Value {
    Value::Array(
        ids.iter()
            .enumerate()
            .map(|(i, id)| json!({"id": (i + 1).to_string(), "method": "DELETE", "url": format!("/users/{id}")}))
            .collect(),
    )
}

#[tokio::test]
async fn a_batch_of_20_runs_each_request_and_21_is_refused() {
    let env = Env::start().await;
    env.sim.seed_guests(21, OffsetDateTime::now_utc());
    let ids: Vec<String> = env.sim.users().into_iter().map(|u| u.id).collect();

    let (status, v) = env.batch(deletes(&ids[..21])).await;
    assert_eq!(status, 400);
    assert_eq!(code(&v), "BadRequest");
    assert!(message(&v).contains("20"));
    assert!(env.sim.deleted_users().is_empty(), "nothing ran");

    let (status, v) = env.batch(deletes(&ids[..20])).await;
    assert_eq!(status, 200);
    let responses = v["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 20);
    for i in 1..=20 {
        assert_eq!(sub(&v, &i.to_string())["status"], 204);
    }
    assert_eq!(env.sim.deleted_users().len(), 20);
    let calls = env.sim.calls();
    assert_eq!(
        (calls.batch, calls.batch_subrequests, calls.delete_user),
        (2, 20, 20)
    );
}

#[tokio::test]
async fn sub_requests_answer_like_direct_calls() {
    let env = Env::start().await;
    let guest = env.sim.add_guest(SeedGuest::new("g@x.example"));
    let group = env.sim.add_group("G");
    env.sim.seed_guests(3, OffsetDateTime::now_utc());
    let member_ref =
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{guest}")});
    let (status, v) = env
        .batch(json!([
            {"id": "get", "method": "GET", "url": format!("/users/{guest}?$select=userType")},
            {"id": "missing", "method": "GET", "url": "/users/00000000-0000-0000-0000-000000000001"},
            {"id": "add", "method": "POST", "url": format!("/groups/{group}/members/$ref"),
             "headers": {"Content-Type": "application/json"}, "body": member_ref},
            {"id": "list", "method": "GET", "url": "users?$top=2&$count=true",
             "headers": {"ConsistencyLevel": "eventual"}},
        ]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(sub(&v, "get")["status"], 200);
    assert_eq!(sub(&v, "get")["body"]["userType"], "Guest");
    assert_eq!(sub(&v, "missing")["status"], 404);
    assert_eq!(
        code(&sub(&v, "missing")["body"]),
        "Request_ResourceNotFound"
    );
    assert_eq!(sub(&v, "add")["status"], 204);
    assert!(sub(&v, "add").get("body").is_none());
    let list = &sub(&v, "list")["body"];
    assert_eq!(list["@odata.count"], 4);
    assert!(list["@odata.nextLink"]
        .as_str()
        .unwrap()
        .starts_with(&env.sim.base_url()));
    assert_eq!(env.sim.group_members(&group), vec![guest]);
}

#[tokio::test]
async fn malformed_batches_are_400() {
    let env = Env::start().await;
    let (status, v) = env
        .batch(json!([
            {"id": "1", "method": "GET", "url": "/users"},
            {"id": "1", "method": "GET", "url": "/users"},
        ]))
        .await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("unique"));

    let (status, v) = env
        .batch(json!([{"id": "1", "method": "PATCH", "url": "/users/x", "body": {"accountEnabled": false}}]))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        message(&v),
        "Write request id : 1 does not contain Content-Type header or body."
    );

    let (status, _) =
        common::send(env.req(Method::POST, "/$batch").json(&json!({"nope": []}))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn write_throttle_answers_429_inside_the_batch_with_retry_after() {
    let env = Env::with(SimulatorConfig {
        write_throttle: Some((3, Duration::from_secs(60))),
        ..Default::default()
    })
    .await;
    env.sim.seed_guests(5, OffsetDateTime::now_utc());
    let ids: Vec<String> = env.sim.users().into_iter().map(|u| u.id).collect();

    let (status, v) = env.batch(deletes(&ids)).await;
    assert_eq!(status, 200, "the envelope succeeds");
    let statuses: Vec<u64> = (1..=5)
        .map(|i| sub(&v, &i.to_string())["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 204).count(), 3);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2);
    for i in 1..=5 {
        let r = sub(&v, &i.to_string());
        if r["status"] == 429 {
            let retry: u32 = r["headers"]["Retry-After"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry));
            assert_eq!(code(&r["body"]), "TooManyRequests");
        }
    }
    assert_eq!(env.sim.deleted_users().len(), 3);
    assert_eq!(env.sim.calls().throttled_429, 2);

    // Reads are not writes.
    assert_eq!(env.get("/users").await.0, 200);
    // And a direct write is throttled too.
    let (status, _) = common::send(env.req(Method::DELETE, &format!("/users/{}", ids[4]))).await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn depends_on_runs_in_order_and_fails_dependents_with_424() {
    let env = Env::start().await;
    let guest = env.sim.add_guest(SeedGuest::new("g@x.example"));
    let (status, v) = env
        .batch(json!([
            {"id": "1", "method": "GET", "url": "/users/00000000-0000-0000-0000-0000000000aa"},
            {"id": "2", "method": "DELETE", "url": format!("/users/{guest}"), "dependsOn": ["1"]},
            {"id": "3", "method": "GET", "url": format!("/users/{guest}")},
            {"id": "4", "method": "PATCH", "url": format!("/users/{guest}"), "dependsOn": ["3"],
             "headers": {"Content-Type": "application/json"}, "body": {"accountEnabled": false}},
        ]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(sub(&v, "1")["status"], 404);
    assert_eq!(sub(&v, "2")["status"], 424);
    assert_eq!(sub(&v, "3")["status"], 200);
    assert_eq!(sub(&v, "4")["status"], 204);
    let u = env.sim.user(&guest).unwrap();
    assert!(!u.deleted, "the dependent delete never ran");
    assert!(!u.account_enabled);

    let (status, _) = env
        .batch(json!([{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]))
        .await;
    assert_eq!(status, 400);
}
