//! The Azure Functions custom-handler protocol: the one doorway into the portal.
//!
//! The Functions host starts `handler`, polls `GET /` until anything answers, then forwards
//! HTTP-triggered calls as they are (`/api/<route>`, with `enableForwardingHttpRequest`) and
//! posts timer invocations as JSON to `/<functionName>`. Everything the host sends arrives here,
//! is given its correlation id, size-limited while streaming, and dispatched to a function; every
//! answer goes back through here. Nothing slow happens before the port answers: the adapters
//! behind the functions are built lazily on first use.

pub mod invocation;
pub mod request;
pub mod server;

pub use request::{HttpRequest, Response};
