//! The pure core of the portal: the rules, with no I/O.
//!
//! Everything here is plain data and functions — no clock, no network, no storage — so that
//! the decisions that matter for security (who may become a guest, which policy applies, whether
//! a link is genuine) are unit-tested exhaustively and the adapters around them stay thin.
//!
//! - [`email`]: email addresses and domains, parsed once into canonical values.
//! - [`policy`]: per-domain admission policies, their validation and matching.
//! - [`outbox`]: mails as records: what is sent to whom, its link, and its delivery's retries.
//! - [`request`]: a sign-up request and the state machine of its only allowed changes.
//! - [`token`]: signed, expiring, purpose-bound link tokens with key rotation, and signatures
//!   for records the portal acts on later.
//! - [`sign_in`]: the checks a partner's ID token must pass, and PKCE.
//! - [`cleanup`]: the guest lifecycle the cleanup timer follows, and its per-run cap.
//! - [`review`]: when sponsors are asked whether a guest keeps access, and what their answer
//!   (or its absence) does.
//! - [`consumer_domains`]: the public mail providers an `auto` policy may not admit by default.
//! - [`permissions`]: which Microsoft Graph permissions the enabled features need.

pub mod cleanup;
pub mod consumer_domains;
pub mod email;
pub mod outbox;
pub mod permissions;
pub mod policy;
pub mod request;
pub mod review;
pub mod sign_in;
pub mod token;
