//! b2b-signup: a self-service sign-up portal for Microsoft Entra ID B2B collaboration, run as
//! an Azure Functions custom handler.
//!
//! How the code is laid out, from the inside out:
//! - [`core`]: the rules, pure and exhaustively tested: email addresses and domains, policies,
//!   the request state machine, signed link tokens, rate-limit windows.
//! - [`views`]: pages and mails in Swedish and English, rendered from templates
//!   (`views/templates/`) that escape every value by construction.
//! - [`adapters`]: the outside world behind small interfaces: Table Storage, Microsoft Graph,
//!   SMTP, credentials.
//! - [`store`]: the portal's records as table rows, keys chosen for the portal's queries.
//! - [`functions`]: the three Azure Functions (`signup`, `approve`, `cleanup`), each a page of
//!   orchestration over the above.
//! - [`host`]: the custom-handler protocol the Functions host speaks.
//! - [`cli`]: the admin's command line over the same code.
//! - [`doctor`]: `handler doctor`, the checklist of everything the portal depends on.

pub mod adapters;
pub mod cli;
pub mod core;
pub mod doctor;
pub mod functions;
pub mod host;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod views;
