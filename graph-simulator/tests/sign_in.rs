//! The OpenID Connect side: discovery, keys, the sign-in page, the code grant with PKCE and a
//! managed identity's token as client assertion, single-use codes, forgeries, key rollover.

mod common;

use base64::Engine;
use graph_simulator::{
    IdTokenForgery, SignInUser, Simulator, SimulatorConfig, DEFAULT_REDIRECT_URI,
};
use serde_json::Value;
use sha2::Digest;

const PARTNER_TENANT: &str = "11111111-2222-4333-8444-555555555555";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn claims_of(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    let decode = |s: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    (decode(parts[0]), decode(parts[1]))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn started() -> Simulator {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    sim.add_sign_in_user(
        SignInUser::new(PARTNER_TENANT, "ada@fabrikam.example", "Ada Lovelace").with_mfa(),
    );
    sim.add_sign_in_user(SignInUser::new(
        PARTNER_TENANT,
        "bob@fabrikam.example",
        "Bob",
    ));
    sim
}

/// The managed identity's token for `api://AzureADTokenExchange`, as the portal gets it.
async fn assertion(sim: &Simulator) -> String {
    let v: Value = client()
        .get(sim.identity_endpoint())
        .query(&[
            ("api-version", "2019-08-01"),
            ("resource", "api://AzureADTokenExchange"),
        ])
        .header("X-IDENTITY-HEADER", sim.identity_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Signs in as `username` through the page; the redirect's query as pairs.
async fn sign_in(sim: &Simulator, username: &str, challenge: &str) -> Vec<(String, String)> {
    let authorize = format!(
        "{}/oauth2/v2.0/authorize",
        sim.authority_host() + "/organizations"
    );
    let params = [
        ("client_id", sim.sign_in_client_id()),
        ("redirect_uri", DEFAULT_REDIRECT_URI.to_string()),
        ("response_type", "code".into()),
        ("response_mode", "query".into()),
        ("scope", "openid profile email".into()),
        ("state", "st-1".into()),
        ("nonce", "n-1".into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ];
    let page = client()
        .get(&authorize)
        .query(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    assert!(text.contains("<label for=\"username\">"), "{text}");
    let mut form: Vec<(&str, String)> = params.to_vec();
    form.push(("username", username.into()));
    form.push(("action", "sign_in".into()));
    let resp = client().post(&authorize).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(DEFAULT_REDIRECT_URI), "{location}");
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn redeem(sim: &Simulator, code: &str, verifier: &str, assertion: &str) -> (u16, Value) {
    let resp = client()
        .post(format!(
            "{}/oauth2/v2.0/token",
            sim.sign_in_authority().trim_end_matches("/v2.0")
        ))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", sim.sign_in_client_id().as_str()),
            ("code", code),
            ("redirect_uri", DEFAULT_REDIRECT_URI),
            ("code_verifier", verifier),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn code_of(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.clone())
        .expect("a code")
}

#[tokio::test]
async fn discovery_and_keys_have_the_documented_shape() {
    let sim = started().await;
    let v: Value = client()
        .get(format!(
            "{}/.well-known/openid-configuration",
            sim.sign_in_authority()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["issuer"],
        format!("{}/{{tenantid}}/v2.0", sim.authority_host())
    );
    assert_eq!(v["id_token_signing_alg_values_supported"][0], "RS256");
    let jwks: Value = client()
        .get(v["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["use"], "sig");
    assert_eq!(keys[0]["e"], "AQAB");
    assert_eq!(keys[0]["kid"], sim.active_signing_kid());
    // A tenant's own discovery names that tenant as issuer; an unknown tenant is AADSTS90002.
    let own: Value = client()
        .get(format!(
            "{}/{PARTNER_TENANT}/v2.0/.well-known/openid-configuration",
            sim.authority_host()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        own["issuer"],
        format!("{}/{PARTNER_TENANT}/v2.0", sim.authority_host())
    );
    let unknown = client()
        .get(format!(
            "{}/99999999-2222-4333-8444-555555555555/v2.0/.well-known/openid-configuration",
            sim.authority_host()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error_codes"][0],
        90002
    );
}

#[tokio::test]
async fn a_code_is_redeemed_once_with_its_verifier_and_the_identity_assertion() {
    let sim = started().await;
    let verifier = "a-verifier-of-enough-length-0123456789-abcdefgh";
    let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    let pairs = sign_in(&sim, "ADA@fabrikam.example", &challenge).await;
    assert!(pairs.contains(&("state".into(), "st-1".into())));
    let code = code_of(&pairs);
    let assertion = assertion(&sim).await;

    // Wrong verifier: refused, and the code is still good.
    let (status, v) = redeem(
        &sim,
        &code,
        "another-verifier-0123456789-abcdefghijkl",
        &assertion,
    )
    .await;
    assert_eq!((status, v["error_codes"][0].as_u64()), (400, Some(501481)));
    // No client assertion: invalid_client.
    let (status, v) = redeem(&sim, &code, verifier, "not-a-token").await;
    assert_eq!((status, v["error"].as_str()), (401, Some("invalid_client")));

    let (status, v) = redeem(&sim, &code, verifier, &assertion).await;
    assert_eq!(status, 200, "{v}");
    let (header, claims) = claims_of(v["id_token"].as_str().unwrap());
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], sim.active_signing_kid());
    assert_eq!(claims["aud"], sim.sign_in_client_id());
    assert_eq!(claims["tid"], PARTNER_TENANT);
    assert_eq!(
        claims["iss"],
        format!("{}/{PARTNER_TENANT}/v2.0", sim.authority_host())
    );
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email"], "ada@fabrikam.example");
    assert_eq!(claims["xms_edov"], true);
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "mfa"]));
    assert_eq!(claims["ver"], "2.0");

    // Single use.
    let (status, v) = redeem(&sim, &code, verifier, &assertion).await;
    assert_eq!((status, v["error_codes"][0].as_u64()), (400, Some(54005)));

    // Without the federated credential the identity's token is no credential at all.
    let pairs = sign_in(&sim, "bob@fabrikam.example", &challenge).await;
    sim.set_federated_credential(false);
    let (status, v) = redeem(&sim, &code_of(&pairs), verifier, &assertion).await;
    assert_eq!((status, v["error_codes"][0].as_u64()), (401, Some(70021)));
}

#[tokio::test]
async fn the_page_refuses_unregistered_redirects_unknown_users_and_cancels_to_the_app() {
    let sim = started().await;
    let authorize = format!(
        "{}/organizations/oauth2/v2.0/authorize",
        sim.authority_host()
    );
    let base = vec![
        ("client_id", sim.sign_in_client_id()),
        ("response_type", "code".to_string()),
        ("scope", "openid".to_string()),
        ("state", "s".to_string()),
    ];
    let mut elsewhere = base.clone();
    elsewhere.push(("redirect_uri", "https://evil.example/cb".into()));
    let page = client()
        .get(&authorize)
        .query(&elsewhere)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    assert!(page.text().await.unwrap().contains("AADSTS50011"));

    let mut ours = base.clone();
    ours.push(("redirect_uri", DEFAULT_REDIRECT_URI.into()));
    let mut unknown = ours.clone();
    unknown.push(("username", "nobody@fabrikam.example".into()));
    unknown.push(("action", "sign_in".into()));
    let resp = client()
        .post(&authorize)
        .form(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("AADSTS50034"));

    let mut cancel = ours.clone();
    cancel.push(("action", "cancel".into()));
    let resp = client()
        .post(&authorize)
        .form(&cancel)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(
        location.contains("error=access_denied") && location.contains("state=s"),
        "{location}"
    );
}

#[tokio::test]
async fn forgeries_and_rollover_change_the_next_token_only() {
    let sim = started().await;
    let verifier = "a-verifier-of-enough-length-0123456789-abcdefgh";
    let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    let assertion = assertion(&sim).await;
    let token = |_: ()| async {
        let pairs = sign_in(&sim, "bob@fabrikam.example", &challenge).await;
        let (status, v) = redeem(&sim, &code_of(&pairs), verifier, &assertion).await;
        assert_eq!(status, 200, "{v}");
        let t = v["id_token"].as_str().unwrap().to_string();
        t
    };
    let first_kid = sim.active_signing_kid();
    sim.forge_next_id_token(IdTokenForgery::AlgNone);
    let t = token(()).await;
    assert_eq!(claims_of(&t).0["alg"], "none");
    assert!(t.ends_with('.'));
    let t = token(()).await;
    assert_eq!(claims_of(&t).0["alg"], "RS256", "one token only");
    assert!(claims_of(&t).1.get("amr").unwrap() == &serde_json::json!(["pwd"]));

    sim.forge_next_id_token(IdTokenForgery::Hs256WithPublicKey);
    assert_eq!(claims_of(&token(()).await).0["alg"], "HS256");
    sim.forge_next_id_token(IdTokenForgery::IssuerTenant {
        tenant_id: "22222222-2222-4333-8444-555555555555".into(),
    });
    let (_, c) = claims_of(&token(()).await);
    assert!(!c["iss"].as_str().unwrap().contains(PARTNER_TENANT));
    assert_eq!(c["tid"], PARTNER_TENANT);

    let new_kid = sim.roll_signing_keys(true);
    assert_ne!(new_kid, first_kid);
    assert_eq!(sim.published_kids(), vec![new_kid.clone()]);
    assert_eq!(claims_of(&token(()).await).0["kid"], new_kid);
    sim.forge_next_id_token(IdTokenForgery::SignedWith {
        kid: first_kid.clone(),
    });
    assert_eq!(claims_of(&token(()).await).0["kid"], first_kid);

    sim.set_id_token_amr(false);
    assert!(claims_of(&token(()).await).1.get("amr").is_none());
}
