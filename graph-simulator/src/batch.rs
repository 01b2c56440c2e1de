//! `POST /$batch` (JSON batching).
//!
//! Each sub-request runs through the same router as a direct call, so its own
//! faults, throttles and counters apply; the envelope is 200 even when every
//! answer inside failed. Independent sub-requests run concurrently and the
//! answers come back in no particular order, as Graph documents, so a client
//! that correlates by position instead of `id` fails here too.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures::future::join_all;
use rand::seq::SliceRandom;
use serde_json::{json, Map, Value};
use warp::http::Method;

use crate::errors::{ApiResponse, GraphError, GraphResult};
use crate::odata::QueryParams;
use crate::routes::{execute_single, sub_request_id, ApiRequest};
use crate::shared::Shared;

const MAX_REQUESTS: usize = 20;

#[derive(Debug)]
struct SubRequest {
    id: String,
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
    depends_on: Vec<String>,
}

fn parse(body: &Value) -> GraphResult<Vec<SubRequest>> {
    let invalid = || GraphError::bad_request("Invalid batch payload format.");
    let items = body
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(invalid)?;
    if items.is_empty() {
        return Err(invalid());
    }
    if items.len() > MAX_REQUESTS {
        return Err(GraphError::bad_request(format!(
            "Number of requests in the batch exceeds the limit of {MAX_REQUESTS}."
        )));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let id = item.get("id").and_then(Value::as_str).ok_or_else(invalid)?;
        let method = item
            .get("method")
            .and_then(Value::as_str)
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .ok_or_else(invalid)?;
        let url = item
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        let mut headers = Vec::new();
        match item.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (k, v) in h {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    headers.push((k.to_ascii_lowercase(), v));
                }
            }
            Some(_) => return Err(invalid()),
        }
        let body = match item.get("body") {
            None | Some(Value::Null) => None,
            // A string body is base64 (binary content); JSON bodies are objects.
            Some(Value::String(s)) => Some(Bytes::from(
                crate::util::b64url_decode(s.trim_end_matches('='))
                    .unwrap_or_else(|| s.as_bytes().to_vec()),
            )),
            Some(v) => Some(Bytes::from(v.to_string())),
        };
        let depends_on = match item.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|d| d.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(invalid)?,
            Some(_) => return Err(invalid()),
        };
        let is_write = matches!(method, Method::POST | Method::PATCH | Method::PUT);
        let has_content_type = headers.iter().any(|(k, _)| k == "content-type");
        if is_write && (body.is_none() || !has_content_type) {
            return Err(GraphError::bad_request(format!(
                "Write request id : {id} does not contain Content-Type header or body."
            )));
        }
        out.push(SubRequest {
            id: id.to_string(),
            method,
            url: url.to_string(),
            headers,
            body,
            depends_on,
        });
    }
    let mut seen = HashSet::new();
    for r in &out {
        if !seen.insert(r.id.to_lowercase()) {
            return Err(GraphError::bad_request(format!(
                "Request id '{}' is used more than once in the batch; ids must be unique.",
                r.id
            )));
        }
    }
    for r in &out {
        for d in &r.depends_on {
            if !seen.contains(&d.to_lowercase()) || d.eq_ignore_ascii_case(&r.id) {
                return Err(GraphError::bad_request(format!(
                    "Request id '{}' depends on '{d}', which is not a valid request id in the batch.",
                    r.id
                )));
            }
        }
    }
    Ok(out)
}

fn sub_api_request(outer: &ApiRequest, r: &SubRequest) -> Result<ApiRequest, GraphError> {
    if r.url.contains("://") {
        return Err(GraphError::bad_request(
            "Invalid request URL: a batch request's url must be relative, like '/users'.",
        ));
    }
    let (path, query) = r.url.split_once('?').unwrap_or((&r.url, ""));
    let path = format!(
        "/{}",
        crate::util::percent_decode_path(path.trim_start_matches('/'))
    );
    let client_request_id = r
        .headers
        .iter()
        .find(|(k, _)| k == "client-request-id")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| outer.client_request_id.clone());
    Ok(ApiRequest {
        method: r.method.clone(),
        path,
        query: QueryParams::parse(query),
        headers: r.headers.clone(),
        body: r.body.clone().unwrap_or_default(),
        origin: outer.origin.clone(),
        request_id: sub_request_id(),
        client_request_id,
        in_batch: true,
        caller: outer.caller.clone(),
    })
}

fn failed_dependency(outer: &ApiRequest, id: &str, dep: &str) -> ApiResponse {
    GraphError::new(
        424,
        "FailedDependency",
        format!("Request '{id}' was not run because request '{dep}', which it depends on, failed."),
    )
    .into_response(&sub_request_id(), &outer.client_request_id)
}

pub(crate) async fn handle(shared: &Shared, outer: &ApiRequest) -> GraphResult<ApiResponse> {
    let body: Value = serde_json::from_slice(&outer.body)
        .map_err(|_| GraphError::bad_request("Invalid batch payload format."))?;
    let subs = parse(&body)?;
    if subs.iter().all(|r| r.method == Method::GET) {
        shared.count(|c| c.batch_reads_only += 1);
    }

    let mut done: HashMap<String, ApiResponse> = HashMap::new();
    let mut pending: Vec<&SubRequest> = subs.iter().collect();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<&SubRequest>, Vec<&SubRequest>) =
            pending.into_iter().partition(|r| {
                r.depends_on
                    .iter()
                    .all(|d| done.contains_key(&d.to_lowercase()))
            });
        if ready.is_empty() {
            return Err(GraphError::bad_request(
                "The dependsOn references in the batch form a cycle.",
            ));
        }
        let mut runnable = Vec::new();
        for r in ready {
            let failed = r.depends_on.iter().find(|d| {
                done.get(&d.to_lowercase())
                    .is_some_and(|resp| resp.status >= 400 || resp.status == 0)
            });
            if let Some(dep) = failed {
                done.insert(r.id.to_lowercase(), failed_dependency(outer, &r.id, dep));
                continue;
            }
            match sub_api_request(outer, r) {
                Ok(req) => runnable.push((r, req)),
                Err(e) => {
                    done.insert(
                        r.id.to_lowercase(),
                        e.into_response(&sub_request_id(), &outer.client_request_id),
                    );
                }
            }
        }
        let results = join_all(
            runnable
                .into_iter()
                .map(|(r, req)| async move { (r, execute_single(shared, req).await) }),
        )
        .await;
        for (r, resp) in results {
            done.insert(r.id.to_lowercase(), resp);
        }
        pending = waiting;
    }

    // A sub-request whose fault drops the connection takes the batch's connection with it.
    if done.values().any(|r| r.drop_connection) {
        return Ok(ApiResponse::dropped());
    }

    let mut responses: Vec<Value> = subs
        .iter()
        .map(|r| {
            let resp = done
                .remove(&r.id.to_lowercase())
                .expect("every id answered");
            let mut headers = Map::new();
            headers.insert("Cache-Control".into(), json!("no-cache"));
            for (k, v) in &resp.headers {
                headers.insert(k.clone(), json!(v));
            }
            let mut item = Map::new();
            item.insert("id".into(), json!(r.id));
            item.insert("status".into(), json!(resp.status));
            item.insert("headers".into(), Value::Object(headers));
            if let Some(b) = resp.body {
                item.insert("body".into(), b);
            }
            Value::Object(item)
        })
        .collect();
    responses.shuffle(&mut rand::thread_rng());
    Ok(ApiResponse::json(200, json!({ "responses": responses })))
}
