//! Binding, reading and dispatching: the part of the protocol that is the same for every
//! function.
//!
//! One catch-all warp filter hands every call to [`dispatch`], so routing, size limits and the
//! mapping of protocol errors to statuses live in one readable match instead of in a chain of
//! warp rejections.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tracing::Instrument;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::Filter;

use super::request::{self, HttpRequest, Response};
use crate::functions::{LazyPortal, Portal};

/// Forms and JSON sign-ups are small; anything larger is a mistake or an attack.
pub const MAX_FORM_BODY: usize = 16 * 1024;
/// Timer invocations carry schedule metadata only.
pub const MAX_INVOCATION_BODY: usize = 64 * 1024;
/// The host forwards whole requests at loopback speed; a body that trickles in for longer is
/// a stuck or hostile client, and holding its task open helps nobody.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds the port first (the host polls it from the moment it starts us) and serves until the
/// process ends. Everything slow is behind [`LazyPortal`].
pub async fn serve(port: u16, portal: Arc<LazyPortal>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    tracing::info!(port, "handler listening");
    serve_on(listener, portal).await;
    Ok(())
}

pub async fn serve_on(listener: tokio::net::TcpListener, portal: Arc<LazyPortal>) {
    let routes = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(
            warp::query::raw()
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and_then(
            move |method, path: warp::path::FullPath, query, headers, body| {
                let portal = portal.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        receive(
                            portal,
                            method,
                            path.as_str().to_string(),
                            query,
                            headers,
                            body,
                        )
                        .await,
                    )
                }
            },
        );
    warp::serve(routes).incoming(listener).run().await;
}

async fn receive<S, B>(
    portal: Arc<LazyPortal>,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: warp::Buf,
{
    // The host's readiness probe: answer at once, log nothing (it polls every 25 ms).
    if path == "/" {
        portal.probed();
        return request::plain(StatusCode::OK, "ready");
    }
    let invocation_id = headers
        .get("x-azure-functions-invocationid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("invocation", invocation_id = %invocation_id);
    async move {
        let limit = if path.starts_with("/api/") {
            MAX_FORM_BODY
        } else {
            MAX_INVOCATION_BODY
        };
        let body = match tokio::time::timeout(BODY_TIMEOUT, read_limited(body, limit)).await {
            Err(_) => {
                tracing::info!(%path, "body not received in time");
                return request::plain(
                    StatusCode::REQUEST_TIMEOUT,
                    "The request body did not arrive in time.",
                );
            }
            Ok(Ok(b)) => b,
            Ok(Err(BodyError::TooLarge)) => {
                tracing::info!(%path, limit, "body over the limit");
                return request::plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request is larger than this address accepts.",
                );
            }
            Ok(Err(BodyError::Broken)) => {
                return request::plain(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read.",
                );
            }
        };
        let req = HttpRequest {
            method,
            path,
            query,
            headers,
            body,
            invocation_id,
        };
        let started = std::time::Instant::now();
        let res = match portal.get().await {
            Ok(portal) => dispatch(&portal, req.clone()).await,
            Err(e) => {
                tracing::error!(error = %e, "the portal could not start");
                request::plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is starting or misconfigured; try again shortly.",
                )
            }
        };
        tracing::info!(
            method = %req.method,
            path = %req.path,
            status = res.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "handled"
        );
        res
    }
    .instrument(span)
    .await
}

/// Where each path goes. Function routes follow `function.json`: `signup/{*rest}` and
/// `approve/{*rest}` under the default `api` prefix, and the timer by function name.
async fn dispatch(portal: &Arc<Portal>, req: HttpRequest) -> Response {
    let path = req.path.clone();
    match path.as_str() {
        p if p == "/api/signup" || p.starts_with("/api/signup/") => {
            crate::functions::signup::handle(portal, req).await
        }
        p if p == "/api/approve" || p.starts_with("/api/approve/") => {
            crate::functions::approve::handle(portal, req).await
        }
        "/function-cleanup" => {
            if req.method != Method::POST {
                return request::method_not_allowed("POST");
            }
            crate::functions::cleanup::invoke(portal, req).await
        }
        _ => request::not_found(),
    }
}

enum BodyError {
    TooLarge,
    Broken,
}

/// Reads a body of any framing (Content-Length or chunked, which the host uses) and stops as
/// soon as it passes `limit`, so an endless body costs at most `limit` bytes of memory.
async fn read_limited<S, B>(mut body: S, limit: usize) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: warp::Buf,
{
    let mut collected = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| BodyError::Broken)?;
        if collected.len() + chunk.remaining() > limit {
            return Err(BodyError::TooLarge);
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let n = piece.len();
            collected.extend_from_slice(piece);
            chunk.advance(n);
        }
    }
    Ok(collected.freeze())
}
