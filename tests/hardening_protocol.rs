//! Protocol abuse: oversized and endless bodies, slow clients, wrong methods and content types,
//! unknown routes, path tricks, hostile values in every field and query parameter. Each gets
//! its clear status, changes nothing, and every page carries the security headers.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn stored_requests(platform: &Platform) -> usize {
    b2b_signup::store::requests::list(&platform.store(), None, None)
        .await
        .map(|r| r.len())
        .unwrap_or(0)
}

fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    let h = resp.headers();
    let csp = h
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"))
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{what}: {csp}"
    );
    assert!(
        !csp.contains("script-src"),
        "{what}: no script allowed at all: {csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["referrer-policy"], "same-origin", "{what}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_are_too_large_endless_or_slow_are_cut_off() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;

    // Endless chunked bodies: the handler stops reading at its limit.
    for path in ["/api/signup", "/api/approve", "/function-cleanup"] {
        let endless =
            futures::stream::iter((0..10_000).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024])));
        let resp = handler
            .forward(Method::POST, path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(reqwest::Body::wrap_stream(endless))
            .send()
            .await;
        // The server may close the connection mid-upload; when it answers, it is 413.
        if let Ok(resp) = resp {
            assert_eq!(resp.status(), 413, "{path}");
        }
    }

    // A client that announces a body and never sends it: 408 after the body timeout.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", handler.port))
        .await
        .unwrap();
    stream
        .write_all(b"POST /api/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nemail=slow")
        .await
        .unwrap();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("answered in time")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");

    // The handler is still healthy, and nothing was stored.
    let email = platform.address("after");
    assert_eq!(
        submit_form(&handler, &partner_fields(&email, "After"))
            .await
            .status(),
        200
    );
    assert_eq!(stored_requests(&platform).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_methods_types_routes_and_path_tricks_get_clear_answers() {
    let platform = Platform::start().await;
    let handler = platform.start_handler().await;
    for (method, path, status) in [
        (Method::PUT, "/api/signup", 405),
        (Method::DELETE, "/api/signup/verify", 405),
        (Method::PATCH, "/api/approve", 405),
        (Method::POST, "/api/signup/logo", 405),
        (Method::GET, "/function-cleanup", 405),
        (Method::GET, "/api/unknown", 404),
        (Method::GET, "/api//signup", 404),
        (Method::GET, "/API/SIGNUP", 404),
        (Method::GET, "/api/signup/verify/extra", 404),
        (Method::GET, "/api/signup/logo", 404),
        (Method::GET, "/admin/functions/function-cleanup", 404),
        (Method::GET, "/function-signup", 404),
    ] {
        let resp = handler.forward(method.clone(), path).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        if status == 405 {
            assert!(
                resp.headers().contains_key("allow"),
                "{method} {path}: Allow header"
            );
        }
    }
    // Dot segments, sent raw (an HTTP client would normalise them away): the router takes paths
    // literally, so none of these reaches another function.
    for path in [
        "/api/signup/../approve",
        "/api/signup/%2e%2e/approve",
        "/api/signup/..%2fapprove",
        "/api/signup/./verify",
    ] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", handler.port))
            .await
            .unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let head = String::from_utf8_lossy(&answer);
        assert!(
            head.starts_with("HTTP/1.1 404"),
            "{path}: {}",
            head.lines().next().unwrap_or("")
        );
    }
    for (ctype, path) in [
        ("text/plain", "/api/signup"),
        ("multipart/form-data; boundary=x", "/api/signup"),
        ("application/xml", "/api/signup/verify"),
        ("application/json", "/api/approve"),
    ] {
        let resp = handler
            .forward(Method::POST, path)
            .header("Content-Type", ctype)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{ctype} to {path}");
    }
    let resp = handler
        .forward(Method::POST, "/api/signup")
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415, "no content type");
    // Invalid UTF-8 in a form body.
    let resp = handler
        .forward(Method::POST, "/api/signup")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(vec![b'e', b'm', b'a', b'i', b'l', b'=', 0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(stored_requests(&platform).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_timer_payloads_are_refused() {
    let platform = Platform::start().await;
    let handler = platform.start_handler().await;
    for bad in [
        "",
        "null",
        "[]",
        "{\"Data\":null}",
        "{\"Data\":{\"timer\":\"yes\"}}",
        "{\"Data\":{\"timer\":{\"IsPastDue\":\"maybe\"}}}",
        "{\"Data\":{\"other\":{}}}",
        "\u{feff}{}",
    ] {
        let resp = handler
            .http
            .post(handler.url("/function-cleanup"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad:?}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert!(v["error"].is_string(), "{bad:?}: {v}");
    }
    // A bad UtcNow is not fatal: the clock is used instead.
    let body = serde_json::json!({"Data": {"timer": {"IsPastDue": true, "ScheduleStatus": null}}, "Metadata": {"sys": {"UtcNow": "yesterday"}}});
    let resp = handler
        .http
        .post(handler.url("/function-cleanup"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "' onmouseover='alert(1)",
    "javascript:alert(1)",
    "a\r\nSet-Cookie: pwned=1",
    "a\r\n\r\n<html>",
    "%0d%0aLocation: https://evil.example",
    "\u{202e}gnp.exe",
    "{{7*7}}${7*7}",
];

#[tokio::test(flavor = "multi_thread")]
async fn hostile_values_in_every_field_and_parameter_are_escaped_and_never_in_a_header() {
    let platform = Platform::start().await;
    platform.add_partner_policy(&["--action", "auto"]);
    let handler = platform.start_handler().await;
    let fields = [
        "email",
        "first_name",
        "last_name",
        "organisation",
        "justification",
        "lang",
        "accept_terms",
    ];
    let mut pages = 0;
    for hostile in HOSTILE {
        for field in fields {
            let email = platform.address("hostile");
            let mut form: Vec<(&str, &str)> = partner_fields(&email, "Ada");
            form.retain(|(k, _)| *k != field);
            form.push((field, hostile));
            let resp = submit_form(&handler, &form).await;
            assert!(
                matches!(resp.status().as_u16(), 200 | 400 | 429),
                "{field}={hostile:?}: {}",
                resp.status()
            );
            assert_security_headers(&resp, field);
            for (name, value) in resp.headers() {
                let v = value.to_str().unwrap_or("");
                assert!(
                    !v.contains("pwned") && !v.contains("evil.example"),
                    "{field}: header {name} carries input"
                );
            }
            assert!(!resp.headers().contains_key("set-cookie"));
            let body = resp.text().await.unwrap();
            assert!(
                !body.contains("<script>alert(1)"),
                "{field}={hostile:?} unescaped"
            );
            assert!(
                !body.contains("<img src=x"),
                "{field}={hostile:?} unescaped"
            );
            assert!(
                !body.contains("onmouseover='alert"),
                "{field}={hostile:?} unescaped"
            );
            assert!(
                !body.contains("<html>\n<html>") && body.matches("<html").count() == 1,
                "{field}: one document"
            );
            pages += 1;
        }
        for (path, param) in [
            ("/api/signup", "lang"),
            ("/api/signup/verify", "token"),
            ("/api/approve", "token"),
            ("/api/signup", "token"),
        ] {
            let q: String = url::form_urlencoded::byte_serialize(hostile.as_bytes()).collect();
            let resp = handler
                .forward(Method::GET, &format!("{path}?{param}={q}&lang={q}"))
                .send()
                .await
                .unwrap();
            assert!(
                matches!(resp.status().as_u16(), 200 | 400),
                "{path}?{param}: {}",
                resp.status()
            );
            assert_security_headers(&resp, path);
            assert!(
                !resp.headers().contains_key("set-cookie")
                    && !resp.headers().contains_key("location")
            );
            let body = resp.text().await.unwrap();
            assert!(
                !body.contains("<script>alert(1)") && !body.contains("<img src=x"),
                "{path}?{param}={hostile:?}"
            );
            pages += 1;
        }
    }
    assert_eq!(pages, HOSTILE.len() * (fields.len() + 4));
    // Only submissions whose every field was valid were stored (a hostile justification or
    // organisation without line breaks is just text, escaped wherever it is shown).
    for r in b2b_signup::store::requests::list(&platform.store(), None, None)
        .await
        .unwrap()
    {
        for text in [
            &r.applicant.first_name,
            &r.applicant.last_name,
            &r.applicant.organisation,
        ] {
            assert!(
                !text.contains('\r') && !text.contains('\n'),
                "no line breaks stored in names: {text:?}"
            );
        }
    }
    // Mails sent for those submissions carry the values escaped too.
    for mail in platform.mails_to(&platform.address("hostile")) {
        assert!(!mail.html.contains("<script>alert(1)") && !mail.html.contains("<img src=x"));
        assert!(
            !mail.raw_headers.contains("pwned")
                && !mail.raw_headers.to_lowercase().contains("set-cookie")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_carries_the_security_headers() {
    let platform = Platform::start().await;
    let handler = platform.start_handler().await;
    for (method, path) in [
        (Method::GET, "/api/signup"),
        (Method::GET, "/api/signup?lang=sv"),
        (Method::GET, "/api/signup/verify?token=nope"),
        (Method::GET, "/api/signup/verify"),
        (Method::GET, "/api/approve?token=nope"),
        (Method::GET, "/api/approve"),
        (Method::GET, "/api/missing"),
        (Method::HEAD, "/api/signup"),
        (Method::PUT, "/api/signup"),
    ] {
        let resp = handler.forward(method.clone(), path).send().await.unwrap();
        assert_security_headers(&resp, &format!("{method} {path}"));
    }
}
