//! Logging: JSON lines in Azure (what Application Insights and Log Analytics index), readable
//! lines on a terminal. Every line inside an invocation carries its `invocation_id`, the
//! host's `X-Azure-Functions-InvocationId`, so one search finds everything a call did.
//! Personal data stays out: addresses are logged as `EmailAddress::masked()`, names and tokens
//! never.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::settings::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // The SDKs are chatty at info; the portal's own lines are what an admin reads.
        EnvFilter::new("info,azure_core=warn,azure_core_legacy=warn,azure_identity=warn,azure_storage=warn,azure_data_tables=warn,hyper=warn,reqwest=warn,warp=warn,lettre=warn")
    });
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .compact()
                    .with_target(false)
                    // Colours only on a terminal: a log file gets plain lines.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
