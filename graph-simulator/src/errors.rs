//! The Graph error shape and the answer type every route produces.
//!
//! Graph wraps every failure in `{"error":{"code","message","innerError":{...}}}`
//! and the portal's client parses exactly that, so every error here goes through
//! [`GraphError`] and nothing builds error JSON by hand.

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::util;

/// An answer from one (sub-)request, before it is turned into HTTP.
///
/// Batch sub-requests and direct calls share this type so that a sub-request is
/// answered exactly as the direct call would be.
#[derive(Debug, Clone)]
pub(crate) struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Close the TCP connection instead of answering (fault injection).
    pub drop_connection: bool,
}

impl ApiResponse {
    pub fn json(status: u16, body: Value) -> Self {
        ApiResponse {
            status,
            headers: vec![(
                "Content-Type".into(),
                "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8".into(),
            )],
            body: Some(body),
            drop_connection: false,
        }
    }

    pub fn no_content() -> Self {
        ApiResponse {
            status: 204,
            headers: Vec::new(),
            body: None,
            drop_connection: false,
        }
    }

    pub fn dropped() -> Self {
        ApiResponse {
            status: 0,
            headers: Vec::new(),
            body: None,
            drop_connection: true,
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A Graph-style failure. `innerError` is filled in when the answer is built,
/// because only then are the request ids known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u32>,
}

impl GraphError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// `BadRequest`: the code Graph's gateway and most workloads use for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// `Request_BadRequest`: the code the directory (Entra) workload uses.
    pub fn directory_bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "Request_BadRequest", message)
    }

    pub fn unsupported_query(message: impl Into<String>) -> Self {
        Self::new(400, "Request_UnsupportedQuery", message)
    }

    pub fn not_found(id: &str) -> Self {
        Self::new(
            404,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub fn unknown_segment(segment: &str) -> Self {
        Self::bad_request(format!("Resource not found for the segment '{segment}'."))
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    }

    pub fn denied() -> Self {
        Self::new(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub fn too_many_requests(retry_after: u32) -> Self {
        GraphError {
            status: 429,
            code: "TooManyRequests".into(),
            message: format!("Too many requests. Please retry after {retry_after} seconds."),
            retry_after: Some(retry_after),
        }
    }

    pub fn invalid_json() -> Self {
        Self::bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    }

    /// The code Graph uses for a given status when nothing more specific applies
    /// (used for injected faults).
    pub fn for_status(status: u16) -> Self {
        let (code, message) = match status {
            400 => ("BadRequest", "Bad request."),
            401 => (
                "InvalidAuthenticationToken",
                "Access token validation failure.",
            ),
            403 => (
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            404 => ("Request_ResourceNotFound", "Resource not found."),
            409 => ("Conflict", "Conflict."),
            429 => ("TooManyRequests", "Too many requests."),
            500 => ("generalException", "An internal server error occurred."),
            502 => ("badGateway", "Bad gateway."),
            503 => (
                "serviceNotAvailable",
                "The service is temporarily unavailable.",
            ),
            504 => ("gatewayTimeout", "The gateway timed out."),
            _ => ("UnknownError", ""),
        };
        Self::new(status, code, message)
    }

    pub fn into_response(self, request_id: &str, client_request_id: &str) -> ApiResponse {
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": util::inner_error_date(OffsetDateTime::now_utc()),
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }
            }
        });
        let mut resp = ApiResponse {
            status: self.status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(body),
            drop_connection: false,
        };
        if let Some(secs) = self.retry_after {
            resp.headers.push(("Retry-After".into(), secs.to_string()));
        }
        if self.status == 401 {
            // Graph tells a client where to get a token; some SDKs read it.
            resp.headers.push((
                "WWW-Authenticate".into(),
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"".into(),
            ));
        }
        resp
    }
}

pub(crate) type GraphResult<T> = Result<T, GraphError>;
