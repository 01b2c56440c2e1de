//! The warp front: one catch-all filter that hands every request to our own
//! dispatcher, because batch sub-requests must reach exactly the same router
//! as direct calls, which warp's per-route filters could not give us.

use std::sync::Arc;

use bytes::Bytes;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::path::FullPath;
use warp::{Filter, Reply};

use crate::errors::{ApiResponse, GraphError};
use crate::faults::{FaultOutcome, Kind};
use crate::odata::QueryParams;
use crate::routes::{self, ApiRequest};
use crate::shared::Shared;
use crate::util::{new_guid, percent_decode_path};
use crate::{admin, auth, Simulator};

pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let app = warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |method: Method,
                  path: FullPath,
                  query: String,
                  headers: HeaderMap,
                  body: Bytes| {
                let shared = shared.clone();
                async move { dispatch(shared, method, path.as_str(), query, headers, body).await }
            },
        );
    warp::serve(app).incoming(listener).run().await;
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn dispatch(
    shared: Arc<Shared>,
    method: Method,
    raw_path: &str,
    query: String,
    headers: HeaderMap,
    body: Bytes,
) -> warp::reply::Response {
    let path = percent_decode_path(raw_path);
    let request_id = new_guid();
    let client_request_id =
        header(&headers, "client-request-id").unwrap_or_else(|| request_id.clone());
    let origin = format!(
        "http://{}",
        header(&headers, "host").unwrap_or_else(|| shared.addr.to_string())
    );

    if path == "/_sim" || path.starts_with("/_sim/") {
        let sim = Simulator {
            shared: shared.clone(),
        };
        let resp = admin::handle(&sim, &method, &path, &query, &body);
        return to_http(resp, None);
    }

    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let Some(answer) = crate::sign_in::handle(&shared, &method, &segs, &query, &body) {
        return match answer {
            crate::sign_in::Answer::Api(resp) => to_http(resp, None),
            crate::sign_in::Answer::Plain(p) => plain(p),
        };
    }
    let token_route = path.eq_ignore_ascii_case("/msi/token")
        || path.eq_ignore_ascii_case("/metadata/identity/oauth2/token")
        || matches!(segs.as_slice(), [_, "oauth2", "v2.0", "token"]);
    if token_route {
        shared.count(|c| c.total += 1);
        shared.count_kind(Kind::Token, false);
        let resp = token(&shared, &method, &path, &segs, &query, &headers, &body).await;
        return to_http(resp, None);
    }

    if path == "/v1.0" || path.starts_with("/v1.0/") {
        let latency = shared.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        shared.count(|c| c.total += 1);
        let mut names: Vec<(String, String)> = Vec::with_capacity(headers.len());
        for (k, v) in &headers {
            if let Ok(v) = v.to_str() {
                names.push((k.as_str().to_ascii_lowercase(), v.to_string()));
            }
        }
        let caller = match auth::check_bearer(&shared, header(&headers, "authorization").as_deref())
        {
            Ok(caller) => caller,
            Err(e) => {
                let resp = e.into_response(&request_id, &client_request_id);
                return to_http(resp, Some((&request_id, &client_request_id)));
            }
        };
        let req = ApiRequest {
            method,
            path: path["/v1.0".len()..].to_string(),
            query: QueryParams::parse(&query),
            headers: names,
            body,
            origin,
            request_id: request_id.clone(),
            client_request_id: client_request_id.clone(),
            in_batch: false,
            caller,
        };
        let resp = routes::execute(&shared, req).await;
        return to_http(resp, Some((&request_id, &client_request_id)));
    }

    let first = segs.first().copied().unwrap_or_default();
    let resp = GraphError::new(
        404,
        "NotFound",
        format!(
            "Resource not found for the segment '{first}'. The simulator serves Graph under /v1.0."
        ),
    )
    .into_response(&request_id, &client_request_id);
    to_http(resp, Some((&request_id, &client_request_id)))
}

async fn token(
    shared: &Shared,
    method: &Method,
    path: &str,
    segs: &[&str],
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResponse {
    if let Some(action) = shared.take_fault(Kind::Token) {
        if let Some(d) = action.delay {
            tokio::time::sleep(d).await;
        }
        match action.outcome {
            FaultOutcome::Proceed => {}
            FaultOutcome::Drop => return ApiResponse::dropped(),
            FaultOutcome::Fail {
                status,
                retry_after,
                message,
            } => {
                if status == 429 {
                    shared.count(|c| c.throttled_429 += 1);
                }
                let mut resp = auth::sts_error(
                    status,
                    "temporarily_unavailable",
                    50196,
                    message
                        .as_deref()
                        .unwrap_or("The server encountered an unexpected error (injected fault)."),
                );
                if let Some(s) = retry_after {
                    resp = resp.with_header("Retry-After", s.to_string());
                }
                return resp;
            }
        }
    }
    let q = QueryParams::parse(query);
    let get_header = |name: &str| header(headers, name);
    if path.eq_ignore_ascii_case("/msi/token") {
        if *method != Method::GET {
            return ApiResponse::json(405, serde_json::json!({"message": "Use GET."}));
        }
        return auth::managed_identity(shared, &q, get_header, false);
    }
    if path.eq_ignore_ascii_case("/metadata/identity/oauth2/token") {
        if *method != Method::GET {
            return ApiResponse::json(405, serde_json::json!({"error": "invalid_request"}));
        }
        return auth::managed_identity(shared, &q, get_header, true);
    }
    if *method != Method::POST {
        return auth::sts_error(
            405,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
    }
    let form = QueryParams::parse(&String::from_utf8_lossy(body));
    if form
        .0
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "authorization_code")
    {
        return crate::sign_in::redeem_code(shared, &form);
    }
    auth::client_credentials(shared, segs[0], body)
}

fn plain(p: crate::sign_in::Plain) -> warp::reply::Response {
    let mut out = warp::reply::Response::new(p.body.into());
    *out.status_mut() = p.status;
    let h = out.headers_mut();
    h.insert("content-type", HeaderValue::from_static(p.content_type));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    if let Some(loc) = p.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert("location", loc);
    }
    out
}

/// Turns an answer into HTTP; a dropped connection becomes a body that fails
/// on its first poll, which makes hyper abort the connection before the
/// buffered head is ever written, so the client sees the socket close with
/// no answer at all.
fn to_http(resp: ApiResponse, ids: Option<(&str, &str)>) -> warp::reply::Response {
    if resp.drop_connection {
        let failing = futures::stream::iter(vec![Err::<warp::sse::Event, std::io::Error>(
            std::io::Error::other("simulated dropped connection"),
        )]);
        return warp::sse::reply(failing).into_response();
    }
    let bytes = resp
        .body
        .as_ref()
        .map(|b| Bytes::from(b.to_string()))
        .unwrap_or_default();
    let mut out = warp::reply::Response::new(bytes.into());
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = out.headers_mut();
    for (k, v) in &resp.headers {
        if let (Ok(name), Ok(value)) = (
            warp::http::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(name, value);
        }
    }
    if let Some((rid, crid)) = ids {
        if let Ok(v) = HeaderValue::from_str(rid) {
            h.insert("request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(crid) {
            h.insert("client-request-id", v);
        }
    }
    out
}
