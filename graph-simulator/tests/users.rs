//! `/users`: paging, `$select`, `$filter`, `$top`, `$count`, signInActivity,
//! get/patch/delete, deleted items and restore.

mod common;

use std::collections::HashSet;
use std::time::Instant;

use common::{code, message, Env};
use graph_simulator::{SeedGuest, SimulatorConfig};
use reqwest::Method;
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;

#[tokio::test]
async fn pages_2500_guests_by_following_next_links_verbatim() {
    let env = Env::start().await;
    env.sim.seed_guests(2500, OffsetDateTime::now_utc());
    env.sim.add_member("member@simtenant.example", "Member");

    let mut url = env.url("/users?$filter=userType eq 'Guest'&$select=id,mail&$top=999");
    let mut sizes = Vec::new();
    let mut ids = HashSet::new();
    loop {
        let (status, v) = common::send(env.http.get(&url).bearer_auth(&env.token)).await;
        assert_eq!(status, 200, "{v}");
        let page = v["value"].as_array().unwrap();
        sizes.push(page.len());
        for u in page {
            assert!(
                ids.insert(u["id"].as_str().unwrap().to_string()),
                "duplicate"
            );
            assert!(u.get("userType").is_none(), "only selected properties");
            assert!(u["mail"].as_str().unwrap().ends_with("@seed.example"));
        }
        match v.get("@odata.nextLink").and_then(Value::as_str) {
            Some(next) => {
                assert!(next.starts_with(&env.sim.base_url()), "absolute: {next}");
                assert!(next.contains("$skiptoken="));
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(sizes, vec![999, 999, 502]);
    assert_eq!(ids.len(), 2500);
    assert_eq!(env.sim.calls().list_users_pages, 3);
}

#[tokio::test]
async fn default_properties_leave_out_user_type_and_select_adds_them() {
    let env = Env::start().await;
    let id = env.sim.add_guest(SeedGuest::new("g@x.example"));
    let (_, v) = env.get(&format!("/users/{id}")).await;
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["mail"], "g@x.example");
    assert!(v.get("userType").is_none());
    assert!(v.get("signInActivity").is_none());
    assert!(v["businessPhones"].is_array());

    let (_, v) = env
        .get(&format!("/users/{id}?$select=userType,accountEnabled"))
        .await;
    assert_eq!(v["userType"], "Guest");
    assert_eq!(v["accountEnabled"], true);
    assert!(v.get("mail").is_none());
    assert_eq!(v["id"], id.as_str(), "id always comes back");

    let (status, v) = env.get(&format!("/users/{id}?$select=nonsense")).await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("nonsense"));
}

#[tokio::test]
async fn filters_on_type_mail_and_state() {
    let env = Env::start().await;
    let pending = env.sim.add_guest(SeedGuest::new("pending@x.example"));
    let accepted = env
        .sim
        .add_guest(SeedGuest::new("accepted@x.example").accepted(OffsetDateTime::now_utc()));
    let member = env.sim.add_member("m@simtenant.example", "M");

    let ids = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, v) = env.get("/users?$filter=userType eq 'Member'").await;
    assert_eq!(ids(&v), vec![member.clone()]);
    let (_, v) = env
        .get("/users?$filter=userType eq 'Guest' and externalUserState eq 'Accepted'")
        .await;
    assert_eq!(ids(&v), vec![accepted.clone()]);
    let (_, v) = env.get("/users?$filter=mail eq 'PENDING@x.example'").await;
    assert_eq!(ids(&v), vec![pending.clone()]);
    let (_, v) = env
        .get("/users?$filter=mail eq 'pending@x.example' and userType eq 'Member'")
        .await;
    assert!(ids(&v).is_empty());

    // `ne` needs an advanced query.
    let (status, v) = env.get("/users?$filter=userType ne 'Member'").await;
    assert_eq!((status, code(&v)), (400, "Request_UnsupportedQuery"));
    let (status, v) = common::send(
        env.req(
            Method::GET,
            "/users?$filter=userType ne 'Member'&$count=true",
        )
        .header("ConsistencyLevel", "eventual"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["@odata.count"], 2);
    assert_eq!(ids(&v).len(), 2);

    let (status, _) = env.get("/users?$filter=userType eq").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn top_is_bounded_and_count_needs_eventual_consistency() {
    let env = Env::start().await;
    env.sim.seed_guests(5, OffsetDateTime::now_utc());
    let (status, v) = env.get("/users?$top=1000").await;
    assert_eq!(status, 400);
    assert_eq!(code(&v), "Request_UnsupportedQuery");
    assert_eq!(
        message(&v),
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    );
    let (status, v) = env.get("/users?$top=2").await;
    assert_eq!(status, 200);
    assert_eq!(v["value"].as_array().unwrap().len(), 2);
    assert!(v["@odata.nextLink"].is_string());

    let (status, _) = env.get("/users?$count=true").await;
    assert_eq!(status, 400);
    let (status, v) = common::send(
        env.req(Method::GET, "/users?$count=true&$top=1")
            .header("ConsistencyLevel", "eventual"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["@odata.count"], 5);

    let (status, v) = env.get("/users?$skiptoken=not-a-token").await;
    assert_eq!((status, code(&v)), (400, "Directory_ExpiredPageToken"));
}

#[tokio::test]
async fn sign_in_activity_only_when_selected_and_filterable_alone() {
    let env = Env::start().await;
    let old = env
        .sim
        .add_guest(SeedGuest::new("old@x.example").last_sign_in(datetime!(2024-01-10 08:00 UTC)));
    let _recent = env
        .sim
        .add_guest(SeedGuest::new("recent@x.example").last_sign_in(OffsetDateTime::now_utc()));
    let never = env.sim.add_guest(SeedGuest::new("never@x.example"));
    let sentinel = env
        .sim
        .add_guest(SeedGuest::new("sentinel@x.example").sign_in_sentinel());

    // Graph does not return signInActivity for a user who never signed in (no object of
    // nulls): on a page, that user simply has no such property.
    let (_, v) = env
        .get(&format!("/users/{never}?$select=id,signInActivity"))
        .await;
    assert_eq!(v["id"], never.as_str());
    assert!(v.get("signInActivity").is_none(), "{v}");
    let (_, v) = env.get("/users?$select=id,signInActivity&$top=999").await;
    let listed = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == never.as_str())
        .unwrap();
    assert!(listed.get("signInActivity").is_none(), "{listed}");
    let (_, v) = env
        .get(&format!("/users/{sentinel}?$select=signInActivity"))
        .await;
    assert_eq!(
        v["signInActivity"]["lastSignInDateTime"],
        "0001-01-01T00:00:00Z"
    );

    let (status, v) = env
        .get("/users?$filter=signInActivity/lastSignInDateTime le 2024-06-01T00:00:00Z&$select=id,signInActivity")
        .await;
    assert_eq!(status, 200, "{v}");
    let got: HashSet<String> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    // Null never matches a range; the 0001 sentinel does.
    assert_eq!(got, HashSet::from([old.clone(), sentinel.clone()]));

    let (status, v) = env
        .get("/users?$filter=signInActivity/lastSignInDateTime le 2024-06-01T00:00:00Z and userType eq 'Guest'")
        .await;
    assert_eq!(status, 400);
    assert_eq!(code(&v), "Request_UnsupportedQuery");
}

#[tokio::test]
async fn a_failed_sign_in_counts_as_an_attempt_not_as_a_success() {
    let env = Env::start().await;
    let success = datetime!(2025-03-01 09:00 UTC);
    let id = env
        .sim
        .add_guest(SeedGuest::new("sprayed@x.example").last_sign_in(success));
    let spray = datetime!(2026-11-20 03:00 UTC);
    assert!(env.sim.record_failed_sign_in(&id, spray));
    let (_, v) = env
        .get(&format!("/users/{id}?$select=signInActivity"))
        .await;
    let s = &v["signInActivity"];
    assert_eq!(s["lastSignInDateTime"], "2026-11-20T03:00:00Z");
    assert_eq!(s["lastSuccessfulSignInDateTime"], "2025-03-01T09:00:00Z");

    // Only failed attempts on record: the object is there, its successful sign-in is null.
    let tried = env.sim.add_guest(SeedGuest::new("tried@x.example"));
    let status = env
        .http
        .post(format!(
            "{}/_sim/users/{tried}/signIn",
            env.sim.authority_host()
        ))
        .json(&json!({"at": "2026-11-21T03:00:00Z", "failed": true}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let (_, v) = env
        .get(&format!("/users/{tried}?$select=signInActivity"))
        .await;
    assert_eq!(
        v["signInActivity"]["lastSignInDateTime"],
        "2026-11-21T03:00:00Z"
    );
    assert!(v["signInActivity"]["lastSuccessfulSignInDateTime"].is_null());
}

#[tokio::test]
async fn sign_in_activity_without_p1_is_403() {
    let env = Env::with(SimulatorConfig {
        p1_license: false,
        ..Default::default()
    })
    .await;
    env.sim.seed_guests(3, OffsetDateTime::now_utc());
    let (status, v) = env.get("/users?$select=id,signInActivity").await;
    assert_eq!(status, 403);
    assert_eq!(
        code(&v),
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
    );
    assert_eq!(
        message(&v),
        "Neither tenant is B2C or tenant doesn't have premium license"
    );
    let (status, _) = env
        .get("/users?$filter=signInActivity/lastSignInDateTime le 2024-01-01T00:00:00Z")
        .await;
    assert_eq!(status, 403);
    // Everything else still works.
    assert_eq!(env.get("/users?$select=id,mail").await.0, 200);
}

#[tokio::test]
async fn unknown_user_is_404_request_resource_not_found() {
    let env = Env::start().await;
    let (status, v) = env.get("/users/00000000-1111-2222-3333-444444444444").await;
    assert_eq!(status, 404);
    assert_eq!(code(&v), "Request_ResourceNotFound");
    assert!(message(&v).contains("00000000-1111-2222-3333-444444444444"));
}

#[tokio::test]
async fn patch_disables_and_validates() {
    let env = Env::start().await;
    let id = env.sim.add_guest(SeedGuest::new("p@x.example"));
    let (status, _) = common::send(
        env.req(Method::PATCH, &format!("/users/{id}"))
            .json(&json!({"accountEnabled": false, "jobTitle": "Partner"})),
    )
    .await;
    assert_eq!(status, 204);
    assert!(!env.sim.user(&id).unwrap().account_enabled);
    let (_, v) = env
        .get(&format!("/users/{id}?$select=jobTitle,accountEnabled"))
        .await;
    assert_eq!(v["jobTitle"], "Partner");
    assert_eq!(v["accountEnabled"], false);

    let (status, v) = common::send(
        env.req(Method::PATCH, &format!("/users/{id}"))
            .json(&json!({"accountEnabled": "no"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("accountEnabled"));
    let (status, _) = common::send(
        env.req(Method::PATCH, &format!("/users/{id}"))
            .json(&json!({"favouriteColour": "blue"})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = common::send(
        env.req(Method::PATCH, "/users/00000000-0000-0000-0000-00000000dead")
            .json(&json!({"accountEnabled": false})),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn delete_is_soft_and_restore_brings_the_user_back() {
    let env = Env::start().await;
    let id = env.sim.add_guest(SeedGuest::new("d@x.example"));
    let group = env.sim.add_group("Partners");
    let (status, _) = env
        .post(
            &format!("/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")}),
        )
        .await;
    assert_eq!(status, 204);

    let (status, _) = common::send(env.req(Method::DELETE, &format!("/users/{id}"))).await;
    assert_eq!(status, 204);
    assert_eq!(env.get(&format!("/users/{id}")).await.0, 404);
    let (_, v) = env.get("/users").await;
    assert!(v["value"].as_array().unwrap().is_empty(), "not listed");
    assert_eq!(env.sim.deleted_users(), vec![id.clone()]);
    assert!(env.sim.user(&id).unwrap().deleted);
    let (status, _) = common::send(env.req(Method::DELETE, &format!("/users/{id}"))).await;
    assert_eq!(status, 404, "already deleted");

    let (_, v) = env
        .get("/directory/deletedItems/microsoft.graph.user")
        .await;
    let listed = v["value"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0]["deletedDateTime"].is_string());
    let (_, v) = env.get(&format!("/groups/{group}/members")).await;
    assert!(
        v["value"].as_array().unwrap().is_empty(),
        "hidden while deleted"
    );

    let (status, v) = env
        .post(&format!("/directory/deletedItems/{id}/restore"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["@odata.type"], "#microsoft.graph.user");
    assert_eq!(env.get(&format!("/users/{id}")).await.0, 200);
    assert!(env.sim.deleted_users().is_empty());
    let (_, v) = env.get(&format!("/groups/{group}/members")).await;
    assert_eq!(v["value"][0]["id"], id.as_str(), "membership restored");
    let (status, _) = env
        .post(&format!("/directory/deletedItems/{id}/restore"), json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn unknown_segment_and_wrong_method() {
    let env = Env::start().await;
    let (status, v) = env.get("/widgets").await;
    assert_eq!(status, 400);
    assert_eq!(message(&v), "Resource not found for the segment 'widgets'.");
    let (status, v) = common::send(env.req(Method::PUT, "/users")).await;
    assert_eq!(status, 405);
    assert_eq!(code(&v), "Request_BadRequest");
}

#[tokio::test]
async fn seeding_and_paging_100k_guests_is_fast() {
    let env = Env::start().await;
    let t0 = Instant::now();
    env.sim.seed_guests(100_000, OffsetDateTime::now_utc());
    let seeded = t0.elapsed();
    assert_eq!(env.sim.users().len(), 100_000);

    // A page deep into the collection costs the same as the first one.
    let mut url = env.url("/users?$filter=userType eq 'Guest'&$select=id&$top=999");
    let mut pages = 0;
    let mut total = 0;
    let mut slowest = std::time::Duration::ZERO;
    loop {
        let t = Instant::now();
        let (status, v) = common::send(env.http.get(&url).bearer_auth(&env.token)).await;
        slowest = slowest.max(t.elapsed());
        assert_eq!(status, 200);
        pages += 1;
        total += v["value"].as_array().unwrap().len();
        match v["@odata.nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!((pages, total), (101, 100_000));
    // Generous bounds (debug build, shared cores): O(N) per page would blow them.
    assert!(seeded.as_secs_f64() < 5.0, "seeding took {seeded:?}");
    assert!(slowest.as_millis() < 1500, "slowest page {slowest:?}");
}

/// Known users re-read by id, 15 to a query (Graph's limit on an `in` list), which is what a
/// `$batch` of such queries is built from.
#[tokio::test]
async fn users_by_id_in_lists_of_at_most_fifteen() {
    let env = Env::start().await;
    env.sim.seed_guests(20, OffsetDateTime::now_utc());
    let all: Vec<String> = env.sim.users().into_iter().map(|u| u.id).collect();
    let quoted = |ids: &[String]| {
        ids.iter()
            .map(|i| format!("'{i}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (status, v) = env
        .get(&format!(
            "/users?$filter=id in ({})&$select=id,userType,accountEnabled",
            quoted(&all[3..18])
        ))
        .await;
    assert_eq!(status, 200, "{v}");
    let got: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        all[3..18].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(v["value"][0]["userType"], "Guest");

    // A deleted user is simply not in the answer.
    let (status, _) = env
        .req(Method::DELETE, &format!("/users/{}", all[4]))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 204);
    let (_, v) = env
        .get(&format!(
            "/users?$filter=id in ({})&$select=id",
            quoted(&all[3..6])
        ))
        .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 2);

    let (status, v) = env
        .get(&format!("/users?$filter=id in ({})", quoted(&all[0..16])))
        .await;
    assert_eq!((status, code(&v)), (400, "Request_UnsupportedQuery"));
    assert!(message(&v).contains("Max allowed: 15"), "{v}");

    // In a $batch (URL-encoded as any relative URL), counted apart from listing pages.
    env.sim.reset_calls();
    let query = |ids: &[String]| {
        format!(
            "/users?$filter={}&$select=id",
            url::form_urlencoded::byte_serialize(format!("id in ({})", quoted(ids)).as_bytes())
                .collect::<String>()
        )
    };
    let (status, v) = env
        .batch(json!([
            {"id": "1", "method": "GET", "url": query(&all[0..3])},
            {"id": "2", "method": "GET", "url": query(&all[5..20])},
        ]))
        .await;
    assert_eq!(status, 200, "{v}");
    let sizes: HashSet<usize> = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"]["value"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, HashSet::from([3, 15]));
    let calls = env.sim.calls();
    assert_eq!(
        (
            calls.batch,
            calls.batch_reads_only,
            calls.list_users_pages,
            calls.list_users_in_batch
        ),
        (1, 1, 2, 2)
    );
}

#[tokio::test]
async fn deleted_items_filter_by_mail_and_a_restored_guest_is_invited_as_itself() {
    let env = Env::start().await;
    let gone = env
        .sim
        .add_guest(SeedGuest::new("Back@X.example").disabled());
    let other = env.sim.add_guest(SeedGuest::new("other@x.example"));
    for id in [&gone, &other] {
        let (status, _) = common::send(env.req(Method::DELETE, &format!("/users/{id}"))).await;
        assert_eq!(status, 204);
    }
    let (status, v) = env
        .get("/directory/deletedItems/microsoft.graph.user?$filter=mail eq 'back@x.example'&$select=id,mail")
        .await;
    assert_eq!(status, 200, "{v}");
    let listed: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![gone.as_str()], "by mail, case-insensitively");
    let (status, v) = env
        .get("/directory/deletedItems/microsoft.graph.user?$filter=endsWith(mail,'x.example')")
        .await;
    assert_eq!(status, 400, "an advanced query, as for users: {v}");

    let (status, _) = env
        .post(
            &format!("/directory/deletedItems/{gone}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, v) = env.invite("back@x.example").await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["invitedUser"]["id"], gone.as_str(), "the same object");
    assert!(
        !env.sim.user(&gone).unwrap().account_enabled,
        "a restored user is as it was deleted: disabled"
    );
    let (status, _) = env
        .post(
            &format!("/directory/deletedItems/{gone}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "not in deleted items any more");
}

#[tokio::test]
async fn the_profile_properties_a_portal_sets_round_trip() {
    let env = Env::start().await;
    let id = env.sim.add_guest(SeedGuest::new("p@x.example"));
    let (status, v) = common::send(
        env.req(Method::PATCH, &format!("/users/{id}"))
            .json(&json!({
                "givenName": "Ada",
                "surname": "Lovelace",
                "companyName": "Partner AB",
                "jobTitle": "Engineer",
                "accountEnabled": true,
            })),
    )
    .await;
    assert_eq!(status, 204, "{v}");
    let (_, v) = env
        .get(&format!(
            "/users/{id}?$select=givenName,surname,companyName,jobTitle"
        ))
        .await;
    assert_eq!(v["givenName"], "Ada");
    assert_eq!(v["surname"], "Lovelace");
    assert_eq!(v["companyName"], "Partner AB");
    assert_eq!(v["jobTitle"], "Engineer");
    let snapshot = env.sim.user(&id).unwrap();
    assert_eq!(snapshot.company_name.as_deref(), Some("Partner AB"));
    let (status, v) = common::send(
        env.req(Method::PATCH, &format!("/users/{id}"))
            .json(&json!({"jobTitle": 5})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn sponsors_come_with_the_invitation_and_are_added_and_removed_by_reference() {
    let env = Env::start().await;
    let boss = env.sim.add_member("boss@simtenant.example", "Boss");
    let kim = env.sim.add_member("kim@simtenant.example", "Kim");
    let (status, v) = env
        .post(
            "/invitations",
            json!({
                "invitedUserEmailAddress": "s@x.example",
                "inviteRedirectUrl": "https://portal.example/",
                "invitedUserSponsors": [{"id": boss}],
            }),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let guest = v["invitedUser"]["id"].as_str().unwrap().to_string();
    let sponsors = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, v) = env.get(&format!("/users/{guest}/sponsors")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(sponsors(&v), vec![boss.clone()]);
    assert_eq!(v["value"][0]["@odata.type"], "#microsoft.graph.user");

    let add =
        |who: &str| json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{who}")});
    let (status, _) = env
        .post(&format!("/users/{guest}/sponsors/$ref"), add(&kim))
        .await;
    assert_eq!(status, 204);
    let (status, v) = env
        .post(&format!("/users/{guest}/sponsors/$ref"), add(&kim))
        .await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("already exist"), "{v}");
    let (status, _) = env
        .post(
            &format!("/users/{guest}/sponsors/$ref"),
            add("00000000-0000-0000-0000-00000000dead"),
        )
        .await;
    assert_eq!(status, 404);
    let (_, v) = env.get(&format!("/users/{guest}/sponsors")).await;
    assert_eq!(sponsors(&v), vec![boss.clone(), kim.clone()]);

    let (status, _) = common::send(env.req(
        Method::DELETE,
        &format!("/users/{guest}/sponsors/{boss}/$ref"),
    ))
    .await;
    assert_eq!(status, 204);
    let (status, _) = common::send(env.req(
        Method::DELETE,
        &format!("/users/{guest}/sponsors/{boss}/$ref"),
    ))
    .await;
    assert_eq!(status, 404);
    assert_eq!(env.sim.user(&guest).unwrap().sponsors, vec![kim]);
}

#[tokio::test]
async fn sponsors_need_user_permissions() {
    let env = Env::with(SimulatorConfig {
        app_permissions: vec!["User.Invite.All".into()],
        ..SimulatorConfig::default()
    })
    .await;
    let guest = env.sim.add_guest(SeedGuest::new("n@x.example"));
    let boss = env.sim.add_member("boss@simtenant.example", "Boss");
    let (status, v) = env.get(&format!("/users/{guest}/sponsors")).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(code(&v), "Authorization_RequestDenied");
    let (status, _) = env
        .post(
            &format!("/users/{guest}/sponsors/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/users/{boss}")}),
        )
        .await;
    assert_eq!(status, 403);
}
