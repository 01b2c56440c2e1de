//! Group membership by `$ref` (nested groups too), transitive members, `checkMemberGroups`,
//! and app role assignments.

mod common;

use common::{code, message, Env};
use graph_simulator::SeedGuest;
use reqwest::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;

fn member_ref(id: &str) -> Value {
    json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")})
}

#[tokio::test]
async fn add_member_then_duplicate_is_the_documented_400() {
    let env = Env::start().await;
    let guest = env.sim.add_guest(SeedGuest::new("g@x.example"));
    let group = env.sim.add_group("Partners");
    let path = format!("/groups/{group}/members/$ref");

    let (status, body) = env.post(&path, member_ref(&guest)).await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(env.sim.group_members(&group), vec![guest.clone()]);

    let (status, v) = env.post(&path, member_ref(&guest)).await;
    assert_eq!(status, 400);
    assert_eq!(code(&v), "Request_BadRequest");
    assert_eq!(
        message(&v),
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    assert_eq!(env.sim.group_members(&group).len(), 1);
    assert_eq!(env.sim.calls().add_member, 2);
}

#[tokio::test]
async fn unknown_group_or_user_is_404_and_guest_refusing_group_is_403() {
    let env = Env::start().await;
    let guest = env.sim.add_guest(SeedGuest::new("g@x.example"));
    let member = env.sim.add_member("m@simtenant.example", "M");
    let group = env.sim.add_group("Partners");
    let synced = env.sim.add_group_refusing_guests("On-prem synced");

    let (status, v) = env
        .post(
            "/groups/00000000-0000-0000-0000-000000000000/members/$ref",
            member_ref(&guest),
        )
        .await;
    assert_eq!((status, code(&v)), (404, "Request_ResourceNotFound"));
    let (status, _) = env
        .post(
            &format!("/groups/{group}/members/$ref"),
            member_ref("11111111-2222-3333-4444-555555555555"),
        )
        .await;
    assert_eq!(status, 404);

    let (status, v) = env
        .post(
            &format!("/groups/{synced}/members/$ref"),
            member_ref(&guest),
        )
        .await;
    assert_eq!((status, code(&v)), (403, "Authorization_RequestDenied"));
    let (status, _) = env
        .post(
            &format!("/groups/{synced}/members/$ref"),
            member_ref(&member),
        )
        .await;
    assert_eq!(status, 204, "members are still accepted");
    assert_eq!(env.sim.group_members(&synced), vec![member]);
}

#[tokio::test]
async fn check_member_groups_and_paged_members() {
    let env = Env::start().await;
    let exclusion = env.sim.add_group("Excluded");
    let other = env.sim.add_group("Other");
    let guest = env.sim.add_guest(SeedGuest::new("g@x.example"));
    env.post(
        &format!("/groups/{exclusion}/members/$ref"),
        member_ref(&guest),
    )
    .await;

    let (status, v) = env
        .post(
            &format!("/users/{guest}/checkMemberGroups"),
            json!({"groupIds": [exclusion, other]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["value"], json!([exclusion]));

    env.sim.seed_guests(5, OffsetDateTime::now_utc());
    for u in env.sim.users().iter().filter(|u| u.id != guest) {
        env.post(&format!("/groups/{other}/members/$ref"), member_ref(&u.id))
            .await;
    }
    let mut url = env.url(&format!("/groups/{other}/members?$top=2&$select=id,mail"));
    let mut seen = Vec::new();
    loop {
        let (_, v) = common::send(env.http.get(&url).bearer_auth(&env.token)).await;
        for m in v["value"].as_array().unwrap() {
            assert_eq!(m["@odata.type"], "#microsoft.graph.user");
            seen.push(m["id"].as_str().unwrap().to_string());
        }
        match v["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, env.sim.group_members(&other));
    assert_eq!(seen.len(), 5);
}

#[tokio::test]
async fn app_role_assignment_created_then_duplicate_refused() {
    let env = Env::start().await;
    let role = uuid::Uuid::parse_str("6b9b3e1a-1c8e-4b8f-9d8a-2f0f5d2f7a11").unwrap();
    let sp = env.sim.add_service_principal("Partner portal", &[role]);
    let guest = env.sim.add_guest(SeedGuest::new("g@x.example"));
    let path = format!("/servicePrincipals/{sp}/appRoleAssignedTo");
    let body = json!({"principalId": guest, "resourceId": sp, "appRoleId": role.to_string()});

    let (status, v) = env.post(&path, body.clone()).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["principalId"], guest.as_str());
    assert_eq!(v["resourceId"], sp.as_str());
    assert_eq!(v["appRoleId"], role.to_string());
    assert_eq!(v["principalType"], "User");
    assert!(v["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(v["createdDateTime"].is_string());
    assert_eq!(
        env.sim.app_role_assignments(&sp),
        vec![(guest.clone(), role.to_string())]
    );

    // Graph answers a repeated assignment with 400 Request_BadRequest.
    let (status, v) = env.post(&path, body).await;
    assert_eq!(status, 400);
    assert_eq!(code(&v), "Request_BadRequest");
    assert_eq!(
        message(&v),
        "Permission being assigned already exists on the object."
    );
    assert_eq!(env.sim.app_role_assignments(&sp).len(), 1);

    // The default-access role needs no declaration.
    let (status, _) = env
        .post(
            &path,
            json!({"principalId": guest, "resourceId": sp, "appRoleId": "00000000-0000-0000-0000-000000000000"}),
        )
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn app_role_assignment_validation() {
    let env = Env::start().await;
    let role = uuid::Uuid::new_v4();
    let sp = env.sim.add_service_principal("Partner portal", &[role]);
    let other_sp = env.sim.add_service_principal("Other", &[]);
    let guest = env.sim.add_guest(SeedGuest::new("g@x.example"));
    let path = format!("/servicePrincipals/{sp}/appRoleAssignedTo");

    let (status, v) = env
        .post(
            &path,
            json!({"principalId": guest, "resourceId": sp, "appRoleId": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("not found"));
    let (status, _) = env
        .post(
            &path,
            json!({"principalId": guest, "resourceId": other_sp, "appRoleId": role}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = env
        .post(
            &path,
            json!({"principalId": uuid::Uuid::new_v4(), "resourceId": sp, "appRoleId": role}),
        )
        .await;
    assert_eq!(status, 404);
    assert!(env.sim.app_role_assignments(&sp).is_empty());
}

/// A group nested in another: `/members` lists the nested group itself, `/transitiveMembers`
/// flattens it (paged like any list), `checkMemberGroups` counts the nested membership, and
/// the OData cast asks for the advanced query parameters, as Graph documents.
#[tokio::test]
async fn nested_groups_and_paged_transitive_members() {
    let env = Env::start().await;
    let outer = env.sim.add_group("Never clean up");
    let inner = env.sim.add_group("Partners we keep");
    let direct = env.sim.add_guest(SeedGuest::new("direct@x.example"));
    let nested = env.sim.add_guest(SeedGuest::new("nested@x.example"));
    let (status, _) = env
        .post(
            &format!("/groups/{outer}/members/$ref"),
            member_ref(&direct),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = env
        .post(&format!("/groups/{outer}/members/$ref"), member_ref(&inner))
        .await;
    assert_eq!(status, 204, "a group can be a member");
    let (status, v) = env
        .post(&format!("/groups/{outer}/members/$ref"), member_ref(&outer))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(env.sim.add_group_member(&inner, &nested));
    env.sim.seed_guests(4, OffsetDateTime::now_utc());
    for u in env
        .sim
        .users()
        .iter()
        .filter(|u| u.mail.starts_with("seed-"))
    {
        assert!(env.sim.add_group_member(&inner, &u.id));
    }

    let (_, v) = env
        .get(&format!("/groups/{outer}/members?$select=id"))
        .await;
    let direct_members: Vec<(&str, &str)> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["@odata.type"].as_str().unwrap(),
                m["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        direct_members,
        vec![
            ("#microsoft.graph.user", direct.as_str()),
            ("#microsoft.graph.group", inner.as_str())
        ]
    );

    let mut url = env.url(&format!(
        "/groups/{outer}/transitiveMembers?$select=id&$top=3"
    ));
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut pages = 0;
    loop {
        let (status, v) = common::send(env.http.get(&url).bearer_auth(&env.token)).await;
        assert_eq!(status, 200, "{v}");
        pages += 1;
        for m in v["value"].as_array().unwrap() {
            let id = m["id"].as_str().unwrap().to_string();
            match m["@odata.type"].as_str().unwrap() {
                "#microsoft.graph.user" => users.push(id),
                "#microsoft.graph.group" => groups.push(id),
                other => panic!("unexpected member type {other}"),
            }
        }
        match v["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3, "7 members, 3 a page");
    assert_eq!(groups, vec![inner.clone()]);
    assert_eq!(users.len(), 6);
    assert!(users.contains(&direct) && users.contains(&nested));

    // The cast is an advanced query.
    let (status, v) = env
        .get(&format!(
            "/groups/{outer}/transitiveMembers/microsoft.graph.user"
        ))
        .await;
    assert_eq!((status, code(&v)), (400, "Request_UnsupportedQuery"));
    let (status, v) = common::send(
        env.req(
            Method::GET,
            &format!(
                "/groups/{outer}/transitiveMembers/microsoft.graph.user?$count=true&$select=id"
            ),
        )
        .header("ConsistencyLevel", "eventual"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 6, "users only");

    let (_, v) = env
        .post(
            &format!("/users/{nested}/checkMemberGroups"),
            json!({"groupIds": [outer, inner]}),
        )
        .await;
    assert_eq!(v["value"], json!([outer, inner]), "transitive");
    let (status, _) = env
        .get("/groups/00000000-0000-0000-0000-000000000000/transitiveMembers")
        .await;
    assert_eq!(status, 404);
}
