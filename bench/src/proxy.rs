//! A counting proxy in front of Azurite: every Table Storage call the handler makes passes
//! through it and is tallied by operation, table and outcome. Used only in the counting phase
//! (a proxy hop would distort the timed runs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use warp::http::{HeaderMap, Method, Response, StatusCode};
use warp::Filter;

/// Tallies keyed `"<operation> <table>"`, plus `"... -> <status>"` for refusals (404, 409, 412).
pub type Tally = BTreeMap<String, u64>;

#[derive(Clone)]
pub struct CountingProxy {
    pub port: u16,
    tally: Arc<Mutex<Tally>>,
}

impl CountingProxy {
    pub async fn start(upstream_port: u16) -> Result<CountingProxy, String> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let tally = Arc::new(Mutex::new(Tally::new()));
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let upstream = format!("http://127.0.0.1:{upstream_port}");
        let t = tally.clone();
        let routes = warp::any()
            .and(warp::method())
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .and_then(
                move |method: Method,
                      path: warp::path::FullPath,
                      query: String,
                      headers: HeaderMap,
                      body: Bytes| {
                    let http = http.clone();
                    let upstream = upstream.clone();
                    let tally = t.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            forward(
                                &http,
                                &upstream,
                                &tally,
                                method,
                                path.as_str(),
                                &query,
                                headers,
                                body,
                            )
                            .await,
                        )
                    }
                },
            );
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        Ok(CountingProxy { port, tally })
    }

    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().expect("the tally lock"))
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    tally: &Mutex<Tally>,
    method: Method,
    path: &str,
    query: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Bytes> {
    let op = classify(&method, path, &headers);
    let url = if query.is_empty() {
        format!("{upstream}{path}")
    } else {
        format!("{upstream}{path}?{query}")
    };
    let mut req = http.request(method, url).body(body);
    for (name, value) in headers.iter() {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            req = req.header(name, value);
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Bytes::from(e.to_string()))
                .expect("a static response builds")
        }
    };
    let status = resp.status();
    {
        let mut tally = tally.lock().expect("the tally lock");
        *tally.entry(op.clone()).or_default() += 1;
        if matches!(status.as_u16(), 404 | 409 | 412) {
            *tally
                .entry(format!("{op} -> {}", status.as_u16()))
                .or_default() += 1;
        }
    }
    let mut out = Response::builder().status(status);
    for (name, value) in resp.headers().iter() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            out = out.header(name, value);
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    out.body(bytes).expect("copied headers are valid")
}

/// `"<operation> <table>"` for a Table Storage REST call.
fn classify(method: &Method, path: &str, headers: &HeaderMap) -> String {
    let resource = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, r)| r)
        .unwrap_or("");
    if resource == "Tables" || resource.starts_with("Tables(") {
        return format!(
            "{} table",
            if method == Method::POST {
                "create"
            } else {
                "list/delete"
            }
        );
    }
    let (name, key) = match resource.find('(') {
        Some(i) => (&resource[..i], &resource[i..]),
        None => (resource, ""),
    };
    let table = ["Policies", "Requests", "Guests", "Audit", "Limits", "Jobs"]
        .into_iter()
        .find(|s| name.ends_with(s))
        .unwrap_or(name);
    let is_entity = key.contains("PartitionKey");
    let op = match (method.as_str(), is_entity) {
        ("GET", true) => "get",
        ("GET", false) => "query",
        ("POST", false) => "insert",
        ("PUT", true) if headers.contains_key("if-match") => "replace",
        ("PUT", true) => "upsert",
        ("MERGE" | "PATCH", true) => "merge",
        ("DELETE", true) => "delete",
        (m, _) => return format!("{m} {table}"),
    };
    format!("{op} {table}")
}
