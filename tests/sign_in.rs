//! Partners who prove who they are by signing in with their work account: the whole flow
//! through the binary as the host drives it, the Graph simulator playing the Microsoft
//! identity platform (discovery, keys, the sign-in page, the token endpoint).

mod common;

use b2b_signup::core::request::RequestStatus;
use common::*;
use graph_simulator::{IdTokenForgery, SignInUser};
use reqwest::Method;

const PARTNER_TENANT: &str = "3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6";
const OTHER_TENANT: &str = "8a7b6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d";

/// A platform whose portal offers sign-in against the simulator.
async fn platform_with_sign_in() -> Platform {
    let mut platform = Platform::start().await;
    let (client_id, authority) = (
        platform.sim.sign_in_client_id(),
        platform.sim.sign_in_authority(),
    );
    platform.set("SIGN_IN_CLIENT_ID", &client_id);
    platform.set("SIGN_IN_AUTHORITY", &authority);
    // Several sign-ins per address in one test; the limits are tested elsewhere.
    platform.set("PORTAL_RATE_LIMIT_ADDRESS", "50");
    platform
}

/// The portal with one policy: anyone who signs in from the partner tenant is invited.
async fn portal_for_partner_tenant() -> (Platform, Handler) {
    let platform = platform_with_sign_in().await;
    add_policy(
        &platform,
        &["--tenant", PARTNER_TENANT, "--proof", "sign_in"],
    );
    let handler = platform.start_handler().await;
    (platform, handler)
}

/// `policy add --action auto` with `args`, which must succeed.
fn add_policy(platform: &Platform, args: &[&str]) {
    let out = platform.cli(&[&["policy", "add", "--action", "auto"], args].concat());
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A person in `tenant` whose account's address is `address`.
fn person(platform: &Platform, tenant: &str, address: &str, mfa: bool) {
    personal("Ada Lovelace");
    let user = SignInUser::new(tenant, address, "Ada Lovelace");
    platform
        .sim
        .add_sign_in_user(if mfa { user.with_mfa() } else { user });
}

/// The browser's state between the portal and the sign-in page.
struct Started {
    /// The authorize URL the portal sent the browser to.
    location: String,
    /// `name=value` of the portal's binding cookie.
    cookie: String,
}

/// Fills the form for `email` and presses "Continue with your work account".
async fn start(handler: &Handler, email: &str) -> Started {
    let resp = post_form(
        handler,
        "/api/signup/sign-in",
        &partner_fields(email, "Ada"),
    )
    .await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("signin="), "{cookie}");
    Started { location, cookie }
}

fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Signs in on the simulator's page as `username` (or cancels); the path and query the
/// identity platform sends the browser back to.
async fn sign_in_page(started: &Started, username: &str, action: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(&started.location).send().await.unwrap();
    assert_eq!(page.status(), 200, "the sign-in page");
    let mut form = query_of(&started.location);
    form.push(("username".into(), username.into()));
    form.push(("action".into(), action.into()));
    let authorize = started.location.split('?').next().unwrap().to_string();
    let resp = http.post(&authorize).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        back.starts_with("http://localhost:7071/api/signup/signed-in?"),
        "{back}"
    );
    path_of(&back)
}

/// The browser comes back to the portal (with its cookie, or `cookie` instead).
async fn come_back(handler: &Handler, path: &str, cookie: &str) -> (u16, String) {
    let resp = handler
        .forward(Method::GET, path)
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The whole round: form, sign-in page, back; the portal's answer.
async fn sign_in_as(handler: &Handler, email: &str, username: &str) -> (u16, String) {
    let started = start(handler, email).await;
    let back = sign_in_page(&started, username, "sign_in").await;
    come_back(handler, &back, &started.cookie).await
}

/// Nothing about `email` was recorded: no request, no invitation, no mail, no audit entry.
async fn nothing_recorded(platform: &Platform, email: &str) {
    assert!(requests_for(platform, email).await.is_empty(), "no request");
    assert!(
        platform.sim.invitations().iter().all(|i| i.email != email),
        "no invitation"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(platform.mails_to(email).is_empty(), "no mail");
    // Every audit entry belongs to a request that exists: a refused sign-in wrote none.
    let audit = b2b_signup::store::audit::since(
        &platform.store(),
        time::OffsetDateTime::now_utc() - time::Duration::hours(1),
    )
    .await
    .unwrap();
    let ids: Vec<String> = b2b_signup::store::requests::list(&platform.store(), None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(
        audit
            .iter()
            .all(|e| e.request_id.as_ref().is_none_or(|id| ids.contains(id))),
        "no audit entry of a refused sign-in: {audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_signs_in_and_is_invited_without_a_mail_round_trip() {
    let platform = platform_with_sign_in().await;
    let group = platform.sim.add_group("Partners");
    let tenant_policy = ["--tenant", PARTNER_TENANT, "--proof", "sign_in"];
    add_policy(
        &platform,
        &[&tenant_policy[..], &["--group", &group]].concat(),
    );
    let handler = platform.start_handler().await;
    let email = platform.address("ada");
    person(&platform, PARTNER_TENANT, &email, true);

    // The form offers the sign-in, and its page lets the form go to the identity platform.
    let form = handler
        .forward(Method::GET, "/api/signup")
        .send()
        .await
        .unwrap();
    let csp = form.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains(&format!(
            "form-action 'self' {}",
            platform.sim.authority_host()
        )),
        "{csp}"
    );
    let html = form.text().await.unwrap();
    assert!(
        html.contains("formaction=\"/api/signup/sign-in\""),
        "{html}"
    );

    let started = start(&handler, &email).await;
    let authorize = query_of(&started.location);
    let get = |k: &str| {
        authorize
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(started.location.starts_with(&format!(
        "{}/organizations/oauth2/v2.0/authorize?",
        platform.sim.authority_host()
    )));
    assert_eq!(get("client_id"), platform.sim.sign_in_client_id());
    assert_eq!(get("response_type"), "code");
    assert_eq!(get("code_challenge_method"), "S256");
    assert_eq!(get("code_challenge").len(), 43);
    assert_eq!(get("login_hint"), email);
    assert!(!get("nonce").is_empty() && !get("state").is_empty());
    assert_ne!(get("state"), get("nonce"));
    personal(&get("state"));

    let back = sign_in_page(&started, &email, "sign_in").await;
    let (status, page) = come_back(&handler, &back, &started.cookie).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("login.microsoftonline.com/redeem"), "{page}");

    let invitations = platform.sim.invitations();
    assert_eq!(invitations.len(), 1);
    assert_eq!(invitations[0].email, email);
    assert_eq!(
        platform.sim.group_members(&group),
        vec![invitations[0].user_id.clone()]
    );
    let request = &requests_for(&platform, &email).await[0];
    assert_eq!(request.status, RequestStatus::Invited);
    let proof = request.signed_in.as_ref().expect("the sign-in is recorded");
    assert_eq!(proof.tenant_id.to_string(), PARTNER_TENANT);
    assert_eq!(proof.name, "Ada Lovelace");
    assert_eq!(proof.address.as_str(), email);
    assert!(proof.mfa);
    let oid = platform
        .sim
        .sign_in_users()
        .into_iter()
        .find(|u| u.username == email)
        .unwrap()
        .object_id;
    assert_eq!(proof.object_id.to_string(), oid);
    // One mail: the invitation. No verification link was ever sent.
    let mails = platform.wait_for_mails(&email, 1).await;
    assert_eq!(mails.len(), 1);
    assert!(
        !mails[0].text.contains("/api/signup/verify"),
        "{}",
        mails[0].text
    );
    assert!(mails[0].text.contains("redeem"), "{}", mails[0].text);

    // The same answer again (a replayed state): refused, nothing more happens.
    let (status, page) = come_back(&handler, &back, &started.cookie).await;
    assert_eq!(status, 400);
    assert!(page.contains("Start again"), "{page}");
    // The code again, under a fresh sign-in of the same browser: refused before it is redeemed.
    let second = start(&handler, &email).await;
    let fresh_state = query_of(&second.location)
        .into_iter()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1;
    let code = query_of(&format!("http://x{back}"))
        .into_iter()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1;
    let replay = format!(
        "/api/signup/signed-in?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &fresh_state)
            .finish()
    );
    let (status, page) = come_back(&handler, &replay, &second.cookie).await;
    assert_eq!(status, 400);
    assert!(page.contains("Start again"), "{page}");
    assert_eq!(platform.sim.invitations().len(), 1);
    assert_eq!(requests_for(&platform, &email).await.len(), 1);
    let logs = handler.logs();
    assert!(!logs.contains(&code), "the code is not logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_unsigned_and_foreign_tokens_are_refused_and_nothing_is_recorded() {
    let (platform, handler) = portal_for_partner_tenant().await;
    let email = platform.address("mallory");
    person(&platform, PARTNER_TENANT, &email, true);
    let forgeries = [
        IdTokenForgery::AlgNone,
        IdTokenForgery::WrongKey,
        IdTokenForgery::Hs256WithPublicKey,
        IdTokenForgery::Audience {
            value: "00000000-1111-4222-8333-444444444444".into(),
        },
        IdTokenForgery::Expired,
        IdTokenForgery::IssuerTenant {
            tenant_id: OTHER_TENANT.into(),
        },
        IdTokenForgery::Nonce {
            value: "a-nonce-from-another-sign-in".into(),
        },
    ];
    for forgery in forgeries {
        platform.sim.forge_next_id_token(forgery.clone());
        let (status, page) = sign_in_as(&handler, &email, &email).await;
        assert_eq!(status, 400, "{forgery:?}: {page}");
        assert!(
            page.contains("Your sign-in could not be verified"),
            "{forgery:?}: {page}"
        );
    }
    nothing_recorded(&platform, &email).await;
    // The same person, honestly signed in, gets through: the refusals were the forgeries.
    let (status, page) = sign_in_as(&handler, &email, &email).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(platform.sim.invitations().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_roll_over_and_a_withdrawn_key_no_longer_verifies() {
    let (platform, handler) = portal_for_partner_tenant().await;
    let first = platform.address("first");
    let second = platform.address("second");
    let third = platform.address("third");
    for a in [&first, &second, &third] {
        person(&platform, PARTNER_TENANT, a, false);
    }
    let old_kid = platform.sim.active_signing_kid();
    assert_eq!(sign_in_as(&handler, &first, &first).await.0, 200);

    // Rollover: a new key signs, the old one is withdrawn. The portal has the old set cached,
    // meets an unknown kid, reads the keys again, and accepts.
    let new_kid = platform.sim.roll_signing_keys(true);
    assert_ne!(new_kid, old_kid);
    let (status, page) = sign_in_as(&handler, &second, &second).await;
    assert_eq!(status, 200, "{page}");

    // A token signed with the withdrawn key: not in the set any more, refused.
    platform
        .sim
        .forge_next_id_token(IdTokenForgery::SignedWith { kid: old_kid });
    let (status, page) = sign_in_as(&handler, &third, &third).await;
    assert_eq!(status, 400, "{page}");
    nothing_recorded(&platform, &third).await;
    assert_eq!(platform.sim.invitations().len(), 2);
    let logs = handler.logs();
    assert!(
        logs.matches("read the identity platform's signing keys")
            .count()
            >= 2,
        "the keys were read again on the unknown kid"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_tenant_wrong_address_missing_mfa_and_unverified_domains_are_refused() {
    let platform = platform_with_sign_in().await;
    // Both: the address in the domain AND the token from the named tenant, with MFA.
    add_policy(
        &platform,
        &[
            "--domain",
            &platform.partner_domain,
            "--tenant",
            PARTNER_TENANT,
            "--proof",
            "sign_in",
            "--require-mfa",
        ],
    );
    let handler = platform.start_handler().await;

    // The domain, from another tenant: no policy admits this person.
    let elsewhere = platform.address("elsewhere");
    person(&platform, OTHER_TENANT, &elsewhere, true);
    let (status, page) = sign_in_as(&handler, &elsewhere, &elsewhere).await;
    assert_eq!(status, 403, "{page}");
    nothing_recorded(&platform, &elsewhere).await;

    // Signed in as someone else than the form asked for.
    let ada = platform.address("ada");
    let bob = platform.address("bob");
    person(&platform, PARTNER_TENANT, &ada, true);
    person(&platform, PARTNER_TENANT, &bob, true);
    let (status, page) = sign_in_as(&handler, &ada, &bob).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("That is another address"), "{page}");
    assert!(page.contains(&bob) && page.contains(&ada), "{page}");
    nothing_recorded(&platform, &ada).await;
    nothing_recorded(&platform, &bob).await;

    // No second factor under a policy that requires one.
    let carol = platform.address("carol");
    person(&platform, PARTNER_TENANT, &carol, false);
    let (status, page) = sign_in_as(&handler, &carol, &carol).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("multi-factor authentication"), "{page}");
    nothing_recorded(&platform, &carol).await;

    // An email whose domain the tenant has not verified: no address to believe.
    let dave = platform.address("dave");
    platform.sim.add_sign_in_user(SignInUser {
        email_domain_verified: false,
        ..SignInUser::new(PARTNER_TENANT, &dave, "Dave").with_mfa()
    });
    let (status, page) = sign_in_as(&handler, &dave, &dave).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("no verified address"), "{page}");
    nothing_recorded(&platform, &dave).await;

    // Cancelled on the sign-in page; and an answer arriving in another browser.
    let started = start(&handler, &ada).await;
    let back = sign_in_page(&started, &ada, "cancel").await;
    let (status, page) = come_back(&handler, &back, &started.cookie).await;
    assert_eq!(status, 400);
    assert!(page.contains("Sign-in cancelled"), "{page}");
    let started = start(&handler, &ada).await;
    let back = sign_in_page(&started, &ada, "sign_in").await;
    let (status, page) = come_back(
        &handler,
        &back,
        "signin=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("Start again"), "{page}");
    nothing_recorded(&platform, &ada).await;

    // A sign-in started from another site's page is refused before anything.
    let resp = handler
        .forward(Method::POST, "/api/signup/sign-in")
        .header("Origin", "https://evil.example")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!(
            "email={}&first_name=A&last_name=B&organisation=C",
            ada
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // Only now, the right person with a second factor: admitted, invited.
    let (status, page) = sign_in_as(&handler, &ada, &ada).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(platform.sim.invitations().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn either_falls_back_to_the_mailbox_link_and_sign_in_policies_ask_for_a_sign_in() {
    let platform = platform_with_sign_in().await;
    let out = platform.add_partner_policy(&["--proof", "either", "--action", "auto"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let strict_domain = format!("strict-{}", platform.partner_domain);
    add_policy(
        &platform,
        &["--domain", &strict_domain, "--proof", "sign_in"],
    );
    let handler = platform.start_handler().await;

    // `either`: the mailed link still works for whoever does not sign in.
    let ada = platform.address("ada");
    let (status, page) = sign_up_and_verify(&platform, &handler, &ada, "Ada").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("login.microsoftonline.com/redeem"), "{page}");
    assert!(requests_for(&platform, &ada).await[0].signed_in.is_none());
    // ... and a sign-in works under it too.
    let bob = platform.address("bob");
    person(&platform, PARTNER_TENANT, &bob, false);
    let (status, page) = sign_in_as(&handler, &bob, &bob).await;
    assert_eq!(status, 200, "{page}");
    assert!(requests_for(&platform, &bob).await[0].signed_in.is_some());

    // `sign_in`: the form's answer is the usual one, and the mail asks for a sign-in, with
    // no link that proves anything.
    let carol = format!("carol@{strict_domain}");
    personal(&carol);
    let resp = submit_form(&handler, &partner_fields(&carol, "Carol")).await;
    assert_eq!(resp.status(), 200);
    let mail = platform
        .wait_for_mail(&carol, |m| m.subject.contains("Sign in"))
        .await;
    assert!(!mail.text.contains("token="), "{}", mail.text);
    assert!(
        mail.text.contains("http://localhost:7071/api/signup"),
        "{}",
        mail.text
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(requests_for(&platform, &carol).await.is_empty());
    assert_eq!(platform.mails_to(&carol).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_nobody_finished_are_purged_once_expired() {
    let (platform, handler) = portal_for_partner_tenant().await;
    let email = platform.address("abandoned");
    person(&platform, PARTNER_TENANT, &email, false);
    let started = start(&handler, &email).await;
    let store = platform.store();
    let now = time::OffsetDateTime::now_utc();
    // Still in flight: kept.
    assert_eq!(
        b2b_signup::store::sign_ins::purge(&store, now)
            .await
            .unwrap(),
        0
    );
    // Past its 15 minutes: the row, and the address in it, go.
    assert_eq!(
        b2b_signup::store::sign_ins::purge(&store, now + time::Duration::minutes(16))
            .await
            .unwrap(),
        1
    );
    // The browser coming back now finds nothing to complete.
    let back = sign_in_page(&started, &email, "sign_in").await;
    let (status, page) = come_back(&handler, &back, &started.cookie).await;
    assert_eq!(status, 400);
    assert!(page.contains("Start again"), "{page}");
    nothing_recorded(&platform, &email).await;
}
