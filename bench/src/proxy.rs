//! A counting proxy in front of Azurite: every Table Storage call the handler makes passes
//! through it and is tallied by operation, table and outcome, and noted with the moment it
//! arrived (so calls can be told apart by whether they came before or after an answer). Used
//! only in the counting phases (a proxy hop would distort the timed runs).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use warp::http::{HeaderMap, Method, Response, StatusCode};
use warp::Filter;

/// Tallies keyed `"<operation> <table>"`, plus `"... -> <status>"` for refusals (404, 409, 412).
pub type Tally = BTreeMap<String, u64>;

/// The calls a tally holds (its refusal lines, `... -> 404`, count calls already counted).
pub fn calls_in(tally: &Tally) -> u64 {
    tally
        .iter()
        .filter(|(k, _)| !k.contains("->"))
        .map(|(_, v)| v)
        .sum()
}

/// One call: when it arrived, what it was (`"<operation> <table>"`), the RowKey of the
/// entity an insert carried, and Azurite's status.
#[derive(Clone, Debug)]
pub struct Call {
    pub at: Instant,
    pub what: String,
    pub inserted: Option<String>,
    pub status: u16,
}

#[derive(Clone)]
pub struct CountingProxy {
    pub port: u16,
    tally: Arc<Mutex<Tally>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl CountingProxy {
    pub async fn start(upstream_port: u16) -> Result<CountingProxy, String> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let tally = Arc::new(Mutex::new(Tally::new()));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let upstream = format!("http://127.0.0.1:{upstream_port}");
        let t = tally.clone();
        let c = calls.clone();
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
                    let calls = c.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            forward(
                                &http,
                                &upstream,
                                &tally,
                                &calls,
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
        Ok(CountingProxy { port, tally, calls })
    }

    /// The tally since the last `take` or `take_calls`; both the tally and the record of calls
    /// start again from nothing.
    pub fn take(&self) -> Tally {
        self.calls.lock().expect("the calls lock").clear();
        std::mem::take(&mut *self.tally.lock().expect("the tally lock"))
    }

    /// The calls that arrived since the last `take` or `take_calls`, in order of arrival.
    pub fn take_calls(&self) -> Vec<Call> {
        self.tally.lock().expect("the tally lock").clear();
        std::mem::take(&mut *self.calls.lock().expect("the calls lock"))
    }

    /// The calls so far, without taking them.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("the calls lock").clone()
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    tally: &Mutex<Tally>,
    calls: &Mutex<Vec<Call>>,
    method: Method,
    path: &str,
    query: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Bytes> {
    let at = Instant::now();
    let op = classify(&method, path, &headers, &body);
    let inserted = op
        .starts_with("insert ")
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|v| v["RowKey"].as_str().map(str::to_string));
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
        calls.lock().expect("the calls lock").push(Call {
            at,
            what: op.clone(),
            inserted,
            status: status.as_u16(),
        });
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

const TABLES: [&str; 8] = [
    "Policies", "Requests", "Guests", "Audit", "Limits", "Jobs", "Demand", "SignIns",
];

/// `"<operation> <table>"` for a Table Storage REST call; an entity-group transaction
/// (`$batch`) is `"transaction <table>"`, the table read from its first operation.
fn classify(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> String {
    let resource = path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, r)| r)
        .unwrap_or("");
    if resource == "$batch" {
        let text = String::from_utf8_lossy(body);
        let table = text
            .lines()
            .find_map(|l| {
                let url = l.split_whitespace().nth(1)?;
                let last = url.rsplit('/').next()?;
                let name = last.split('(').next()?;
                TABLES.into_iter().find(|t| name.ends_with(t))
            })
            .unwrap_or("?");
        return format!("transaction {table}");
    }
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
    let table = TABLES
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

#[cfg(test)]
mod tests {
    use warp::http::{HeaderMap, Method};

    #[test]
    fn calls_are_named_by_operation_and_table() {
        let none = HeaderMap::new();
        let classify =
            |m: Method, path: &str, body: &str| super::classify(&m, path, &none, body.as_bytes());
        assert_eq!(
            classify(
                Method::GET,
                "/devstoreaccount1/xLimits(PartitionKey='a',RowKey='b')",
                ""
            ),
            "get Limits"
        );
        assert_eq!(
            classify(Method::POST, "/devstoreaccount1/xAudit", "{}"),
            "insert Audit"
        );
        let batch = "--batch_1\nContent-Type: multipart/mixed; boundary=changeset_2\n\n\
                     --changeset_2\nContent-Type: application/http\n\n\
                     PUT http://127.0.0.1:1/devstoreaccount1/xRequests(PartitionKey='a',RowKey='request') HTTP/1.1\n";
        assert_eq!(
            classify(Method::POST, "/devstoreaccount1/$batch", batch),
            "transaction Requests"
        );
    }
}
