//! `POST /invitations`: the guest it creates, re-invites, refusals, throttle.

mod common;

use common::{code, message, Env};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn invite_creates_a_pending_guest_with_the_documented_answer() {
    let env = Env::start().await;
    let (status, v) = env
        .post(
            "/invitations",
            json!({
                "invitedUserEmailAddress": "Jane.Doe@Contoso.com",
                "inviteRedirectUrl": "https://portal.example/welcome",
                "invitedUserDisplayName": "Jane Doe",
                "sendInvitationMessage": false,
                "invitedUserSponsors": [{"id": "aaaaaaaa-0000-0000-0000-000000000001"}],
            }),
        )
        .await;
    assert_eq!(status, 201);
    assert!(v["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#invitations/$entity"));
    assert_eq!(v["status"], "PendingAcceptance");
    assert_eq!(v["invitedUserType"], "Guest");
    assert_eq!(v["invitedUserEmailAddress"], "Jane.Doe@Contoso.com");
    assert_eq!(v["inviteRedirectUrl"], "https://portal.example/welcome");
    assert_eq!(v["resetRedemption"], false);
    assert!(v["inviteRedeemUrl"]
        .as_str()
        .unwrap()
        .starts_with("https://login.microsoftonline.com/redeem?rd="));
    let user_id = v["invitedUser"]["id"].as_str().unwrap();
    assert_ne!(
        user_id,
        v["id"].as_str().unwrap(),
        "invitation id is not the user id"
    );

    let (status, u) = env
        .get(&format!(
            "/users/{user_id}?$select=id,mail,userType,externalUserState,externalUserStateChangeDateTime,createdDateTime,userPrincipalName,creationType,accountEnabled,displayName"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(u["userType"], "Guest");
    assert_eq!(u["externalUserState"], "PendingAcceptance");
    assert_eq!(u["creationType"], "Invitation");
    assert_eq!(u["accountEnabled"], true);
    assert_eq!(u["displayName"], "Jane Doe");
    assert_eq!(
        u["userPrincipalName"],
        "Jane.Doe_Contoso.com#EXT#@simtenant.onmicrosoft.com"
    );
    assert!(u["createdDateTime"].as_str().unwrap().ends_with('Z'));

    let rec = env.sim.invitations();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].user_id, user_id);
    assert_eq!(
        rec[0].sponsors,
        vec!["aaaaaaaa-0000-0000-0000-000000000001"]
    );
    assert!(!rec[0].send_invitation_message);
    assert_eq!(rec[0].redirect_url, "https://portal.example/welcome");
}

#[tokio::test]
async fn reinviting_the_same_email_resolves_to_the_same_guest() {
    let env = Env::start().await;
    let (_, first) = env.invite("sam@fabrikam.com").await;
    let (status, second) = env.invite("SAM@Fabrikam.COM").await;
    assert_eq!(status, 201);
    assert_eq!(first["invitedUser"]["id"], second["invitedUser"]["id"]);
    assert_ne!(first["id"], second["id"]);
    let guests: Vec<_> = env
        .sim
        .users()
        .into_iter()
        .filter(|u| u.mail.eq_ignore_ascii_case("sam@fabrikam.com"))
        .collect();
    assert_eq!(guests.len(), 1);
    assert!(env.sim.invitations()[1].existing_user);

    // After redemption a re-invite reports it as completed.
    assert!(env.sim.redeem(first["invitedUser"]["id"].as_str().unwrap()));
    let (_, third) = env.invite("sam@fabrikam.com").await;
    assert_eq!(third["status"], "Completed");
}

#[tokio::test]
async fn a_members_email_is_refused() {
    let env = Env::start().await;
    env.sim.add_member("boss@simtenant.example", "The Boss");
    let (status, v) = env.invite("Boss@simtenant.example").await;
    assert_eq!(status, 400);
    assert_eq!(code(&v), "BadRequest");
    assert_eq!(env.sim.invitations().len(), 0);
    assert_eq!(env.sim.users().len(), 1);
}

#[tokio::test]
async fn missing_required_properties_are_named() {
    let env = Env::start().await;
    let (status, v) = env
        .post(
            "/invitations",
            json!({"inviteRedirectUrl": "https://portal.example"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(code(&v), "BadRequest");
    assert!(message(&v).contains("invitedUserEmailAddress"));

    let (status, v) = env
        .post(
            "/invitations",
            json!({"invitedUserEmailAddress": "a@b.com"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("inviteRedirectUrl"));

    let (status, v) = common::send(
        env.req(Method::POST, "/invitations")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("Unable to read JSON request payload"));
}

#[tokio::test]
async fn more_than_five_sponsors_is_a_bad_request() {
    let env = Env::start().await;
    let sponsors: Vec<_> = (0..6)
        .map(|i| json!({"id": format!("aaaaaaaa-0000-0000-0000-00000000000{i}")}))
        .collect();
    let (status, v) = env
        .post(
            "/invitations",
            json!({
                "invitedUserEmailAddress": "x@y.com",
                "inviteRedirectUrl": "https://portal.example",
                "invitedUserSponsors": sponsors,
            }),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&v).contains("sponsors"));
    assert!(env.sim.users().is_empty());
}

#[tokio::test]
async fn the_151st_invitation_in_five_seconds_is_throttled() {
    let env = Env::start().await;
    for i in 0..150 {
        let (status, v) = env.invite(&format!("guest{i}@throttle.example")).await;
        assert_eq!(status, 201, "invitation {i}: {v}");
    }
    let resp = env
        .req(Method::POST, "/invitations")
        .json(&json!({
            "invitedUserEmailAddress": "one-too-many@throttle.example",
            "inviteRedirectUrl": "https://portal.example",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u32 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    let (_, v) = common::status_json(resp).await;
    assert_eq!(code(&v), "TooManyRequests");
    assert!(env
        .sim
        .user_by_mail("one-too-many@throttle.example")
        .is_none());
    let calls = env.sim.calls();
    assert_eq!(calls.invitations, 151);
    assert_eq!(calls.throttled_429, 1);
}

/// An admin invited the address long ago; inviting it again answers with that same user and
/// changes nothing about it: its creation time (how a caller can tell it existed before),
/// its name, its redemption and whether it is enabled.
#[tokio::test]
async fn reinviting_an_existing_guest_leaves_it_as_it_was() {
    let env = Env::start().await;
    let created = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    let id = env.sim.add_guest(
        graph_simulator::SeedGuest::new("old@fabrikam.com")
            .display_name("Old Friend")
            .created(created)
            .accepted(created + time::Duration::days(1))
            .disabled(),
    );
    let before = env.sim.user(&id).unwrap();
    let (status, v) = env
        .post(
            "/invitations",
            json!({
                "invitedUserEmailAddress": "old@fabrikam.com",
                "invitedUserDisplayName": "Someone Else",
                "inviteRedirectUrl": "https://portal.example/welcome",
            }),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["invitedUser"]["id"], id.as_str());
    assert_eq!(v["status"], "Completed", "already redeemed");
    assert_eq!(env.sim.user(&id).unwrap(), before, "the user is unchanged");
    let (_, u) = env
        .get(&format!("/users/{id}?$select=createdDateTime,displayName"))
        .await;
    assert_eq!(u["displayName"], "Old Friend");
    let listed = time::OffsetDateTime::parse(
        u["createdDateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((listed - created).abs() < time::Duration::seconds(1));
    assert!(env.sim.invitations()[0].existing_user);
}
