//! Thin adapters between the pure core and the outside world: Table Storage, Microsoft Graph,
//! SMTP, the identity platform partners sign in with, and the credentials they need. Each one translates the outside's errors into the
//! portal's own ([`tables::StoreError`], [`graph::GraphError`], [`mail::MailError`]) so the
//! functions decide what is retryable without knowing an SDK.

pub mod graph;
pub mod identity;
pub mod mail;
pub mod sign_in;
pub mod smtp_probe;
pub mod tables;

/// The one HTTP client the portal uses (Graph, Table Storage): connection pooling across
/// invocations, and timeouts that fail a dead endpoint in seconds, not minutes.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("b2b-signup/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds with static options")
}
