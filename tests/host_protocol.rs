//! The handler speaks the custom-handler protocol as the Functions host expects: it answers
//! readiness at once, takes forwarded HTTP at `/api/<route>`, takes chunked timer invocations
//! at `/<function>` and answers them in the host's shape, and refuses to start on bad settings
//! with one clear line.

mod common;

use common::Platform;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread")]
async fn answers_the_readiness_probe_and_forwarded_requests() {
    let platform = Platform::start().await;
    let handler = platform.start_handler().await;

    let ready = handler.http.get(handler.url("/")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let form = handler
        .forward(Method::GET, "/api/signup")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert_eq!(form.headers()["content-type"], "text/html; charset=utf-8");
    assert!(form.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let body = form.text().await.unwrap();
    assert!(body.contains("name=\"email\""), "{body}");

    // The host forwards HEAD too; it answers like GET without a body.
    let head = handler
        .forward(Method::HEAD, "/api/signup")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.text().await.unwrap().is_empty());

    let unknown = handler
        .forward(Method::GET, "/api/nothing-here")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let wrong = handler
        .forward(Method::DELETE, "/api/signup")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert!(wrong.headers()["allow"].to_str().unwrap().contains("POST"));

    // Every line logged inside a call carries the host's invocation id.
    let id = "3f2a9c1e-0000-4000-8000-00000000abcd";
    let resp = handler
        .http
        .get(handler.url("/api/signup"))
        .header("X-Azure-Functions-InvocationId", id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let logs = handler.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("\"handled\"") && l.contains(id));
    assert!(
        line.is_some(),
        "no log line with the invocation id:\n{logs}"
    );
    let parsed: serde_json::Value = serde_json::from_str(line.unwrap()).expect("JSON log lines");
    assert_eq!(parsed["span"]["invocation_id"], id);
}

#[tokio::test(flavor = "multi_thread")]
async fn takes_a_chunked_timer_invocation_and_answers_in_the_host_shape() {
    let platform = Platform::start().await;
    let handler = platform.start_handler().await;
    let (status, body) = handler.invoke_cleanup("2026-11-28T10:00:00Z").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["Outputs"].is_object(), "{body}");
    assert!(body["ReturnValue"].is_null(), "{body}");
    let logs = body["Logs"].as_array().expect("Logs is a list");
    assert!(
        logs.iter()
            .any(|l| l.as_str().unwrap().starts_with("cleanup")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_timer_invocations_are_refused_without_effect() {
    let platform = Platform::start().await;
    let handler = platform.start_handler().await;
    for bad in ["not json", "{\"Data\":{}}", "{\"Data\":{\"timer\":42}}"] {
        let resp = handler
            .http
            .post(handler.url("/function-cleanup"))
            .header("Content-Type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
    let get = handler
        .http
        .get(handler.url("/function-cleanup"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    // An endless chunked body is cut off at the limit instead of being buffered.
    let big = futures::stream::iter((0..200).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let resp = handler
        .http
        .post(handler.url("/function-cleanup"))
        .body(reqwest::Body::wrap_stream(big))
        .send()
        .await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), 413);
    }
}

/// The adapters (HTTP clients, TLS, the Graph credential) are built after the host's first
/// readiness probe has its answer, never before it; one that cannot be built still ends the
/// process with one line, as a bad setting does, instead of failing every invocation.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_adapter_ends_the_process_right_after_the_first_probe() {
    let mut platform = Platform::start().await;
    for (name, value) in [
        ("GRAPH_CREDENTIAL", "client_secret"),
        ("GRAPH_TENANT_ID", "00000000-0000-0000-0000-000000000001"),
        ("GRAPH_CLIENT_ID", "00000000-0000-0000-0000-000000000002"),
        ("GRAPH_CLIENT_SECRET", "not-a-real-secret"),
        // The credential refuses an authority without TLS: settings accept it, the adapter not.
        ("GRAPH_AUTHORITY_HOST", "http://127.0.0.1:9"),
    ] {
        platform.set(name, value);
    }
    // `start_handler` returns once `GET /` was answered: the broken adapter did not stop that.
    let mut handler = platform.start_handler().await;
    let code = handler
        .exit_code_within(std::time::Duration::from_secs(10))
        .await;
    assert_eq!(code, Some(2), "the process ends after the probe");
    let logs = handler.logs();
    let fatal: Vec<&str> = logs
        .lines()
        .filter(|l| l.starts_with("handler: "))
        .collect();
    assert_eq!(fatal.len(), 1, "{logs}");
    assert!(
        fatal[0].starts_with("handler: client secret credential:"),
        "{logs}"
    );
    assert!(!logs.contains("panicked"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_stop_start_up_with_one_line_naming_the_setting() {
    let mut platform = Platform::start().await;
    platform.set(
        "FUNCTIONS_CUSTOMHANDLER_PORT",
        &common::free_port().to_string(),
    );
    for (name, value, expect) in [
        (
            "PORTAL_SIGNING_KEYS",
            "",
            "setting PORTAL_SIGNING_KEYS: expected",
        ),
        (
            "PORTAL_PUBLIC_URL",
            "not a url",
            "setting PORTAL_PUBLIC_URL: expected",
        ),
        ("SMTP_URL", "mail.example.com", "setting SMTP_URL: expected"),
        (
            "GRAPH_CREDENTIAL",
            "password",
            "setting GRAPH_CREDENTIAL: expected",
        ),
        (
            "PORTAL_STORAGE",
            "AccountName=x",
            "setting PORTAL_STORAGE: expected",
        ),
    ] {
        let saved = platform.env.get(name).cloned();
        platform.set(name, value);
        let out = platform.cli(&["serve"]);
        let stderr = out.stderr.trim();
        assert_eq!(out.code, 2, "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("handler: {expect}")),
            "{name}: {stderr}"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "one line, no backtrace: {stderr}"
        );
        assert!(!stderr.contains("panicked"));
        match saved {
            Some(v) => platform.set(name, &v),
            None => {
                platform.env.remove(name);
            }
        }
    }
    // A Key Vault reference the platform could not resolve reaches the handler as its literal
    // text: start-up names the setting, says what it is, and which role and secret to check.
    let saved = platform.env.get("PORTAL_SIGNING_KEYS").cloned().unwrap();
    platform.set(
        "PORTAL_SIGNING_KEYS",
        "@Microsoft.KeyVault(SecretUri=https://kv-signup-k3y.vault.azure.net/secrets/portal-signing-keys/)",
    );
    let out = platform.cli(&["serve"]);
    let stderr = out.stderr.trim();
    assert_eq!(out.code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("handler: setting PORTAL_SIGNING_KEYS:"),
        "{stderr}"
    );
    for needle in [
        "unresolved Key Vault reference",
        "secret portal-signing-keys in vault kv-signup-k3y",
        "Key Vault Secrets User",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing: {stderr}");
    }
    platform.set("PORTAL_SIGNING_KEYS", &saved);

    // The port comes from the host; without it the handler says which setting is missing.
    platform.env.remove("FUNCTIONS_CUSTOMHANDLER_PORT");
    let out = platform.cli(&["serve"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("FUNCTIONS_CUSTOMHANDLER_PORT"),
        "{}",
        out.stderr
    );
}
