//! `function-cleanup`: the timer. The host posts the invocation as JSON; the answer carries the
//! run's summary in `Logs`, which the host writes to its log (Application Insights).
//!
//! The time the run acts on is the host's `Metadata.sys.UtcNow` (falling back to the clock):
//! one consistent "now" for the whole run.

use std::sync::Arc;

use time::OffsetDateTime;
use warp::http::StatusCode;

use super::Portal;
use crate::host::invocation::{InvocationRequest, InvocationResponse};
use crate::host::request::{self, HttpRequest, Response};

pub async fn invoke(portal: &Arc<Portal>, req: HttpRequest) -> Response {
    let invocation: InvocationRequest = match serde_json::from_slice(&req.body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "malformed timer invocation");
            return request::json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": format!("the invocation is not the host's JSON: {e}")}),
            );
        }
    };
    let timer = match invocation.timer("timer") {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!(%why, "malformed timer invocation");
            return request::json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": why }),
            );
        }
    };
    let now = invocation.utc_now().unwrap_or_else(OffsetDateTime::now_utc);
    let mut logs = Vec::new();
    if timer.is_past_due {
        logs.push("the timer is past due; running now".to_string());
    }
    let result = run(portal, now, false, &mut logs).await;
    let status = match result {
        Ok(summary) => {
            logs.push(summary);
            StatusCode::OK
        }
        Err(e) => {
            logs.push(format!("cleanup stopped: {e}"));
            tracing::error!(error = %e, "cleanup stopped");
            // A non-2xx fails the invocation in the host, which is what an admin's alert
            // should see; everything done so far is recorded and the next run resumes.
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    for line in &logs {
        tracing::info!(target: "cleanup", "{line}");
    }
    let body = InvocationResponse {
        logs,
        ..Default::default()
    };
    request::json(
        status,
        &serde_json::to_value(body).expect("the invocation answer serializes"),
    )
}

/// One pass of every job. Shared with `handler cleanup run`.
pub async fn run(
    portal: &Portal,
    now: OffsetDateTime,
    dry_run: bool,
    logs: &mut Vec<String>,
) -> Result<String, String> {
    let graph = portal
        .graph
        .with_patience(std::time::Duration::from_secs(60));
    let requests = super::approvals::sweep(portal, &graph, now, dry_run, logs)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "cleanup{}: requests expired {}, reminded {}, escalated {}, retried {} ({} completed, {} gave up), outcome mails re-sent {}",
        if dry_run { " (dry run)" } else { "" },
        requests.expired,
        requests.reminded,
        requests.escalated,
        requests.retried,
        requests.completed,
        requests.gave_up,
        requests.mails_resent,
    ))
}
