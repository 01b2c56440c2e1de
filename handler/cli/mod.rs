//! The admin's command line. With no subcommand (as the Functions host starts it) `handler`
//! serves; every other subcommand works on the same tables, through the same code paths and
//! audit trail as the functions, using the same settings (environment variables, as in the
//! Function App).

pub mod guests;
pub mod invite;
pub mod mail;
pub mod policy;
pub mod requests;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::settings::{self, Environment, LogFormat, Settings, StorageSettings};

#[derive(Parser, Debug)]
#[command(
    name = "handler",
    version,
    about = "Self-service Entra ID B2B sign-up portal: the Functions handler and its admin command line"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

// Parsed once per process: the size of the policy command (its `add` arguments) costs nothing
// worth boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the functions on FUNCTIONS_CUSTOMHANDLER_PORT (what the Functions host runs).
    Serve,
    /// Manage the domain policies that decide who may sign up.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// See and decide sign-up requests.
    #[command(subcommand)]
    Requests(requests::RequestsCommand),
    /// What happened: the audit trail (default: the last 7 days).
    Audit {
        /// A date (2026-11-01), a UTC time, or a span back from now (7d, 12h).
        #[arg(long)]
        since: Option<String>,
    },
    /// Invite every row of a CSV file (email,first_name,last_name,organisation[,language]).
    Invite {
        file: std::path::PathBuf,
        /// Use this policy (its key or domain) for every row instead of matching each address.
        #[arg(long)]
        policy: Option<String>,
    },
    /// Guests this portal created and where they are in their lifecycle.
    #[command(subcommand)]
    Guests(guests::GuestsCommand),
    /// Run the cleanup now, as the timer would.
    #[command(subcommand)]
    Cleanup(guests::CleanupCommand),
    /// The outbox: every mail the portal sends, and the failed ones to retry.
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// Email domains people tried to sign up from that no policy admits.
    Demand {
        #[arg(long)]
        json: bool,
    },
    /// Check everything the portal depends on and print a checklist (exit 1 when something
    /// blocks): settings, Table Storage, Graph permissions, the tenant's guest settings, the
    /// groups, app roles and approvers the policies name, and the SMTP relay. Sends no mail.
    Doctor {
        /// Object id of the Function App's managed identity, whose Graph permissions to check
        /// when signed in as a person (GRAPH_CREDENTIAL=azure_cli).
        #[arg(long, value_name = "PRINCIPAL_ID")]
        identity: Option<String>,
        /// The app's settings as `az functionapp config appsettings list -o json` prints them
        /// (or a local.settings.json), laid over the environment; Key Vault references and the
        /// credential settings are taken from the environment.
        #[arg(long, value_name = "FILE")]
        app_settings: Option<std::path::PathBuf>,
    },
}

/// An error for the admin: one line, and the exit code says what kind.
pub struct CliError {
    pub message: String,
    pub code: u8,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 2,
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 1,
        }
    }
}

impl From<settings::SettingError> for CliError {
    fn from(e: settings::SettingError) -> Self {
        CliError::usage(e.to_string())
    }
}

impl From<crate::adapters::tables::StoreError> for CliError {
    fn from(e: crate::adapters::tables::StoreError) -> Self {
        CliError::failed(e.to_string())
    }
}

pub fn main() -> ExitCode {
    // Two TLS stacks are linked (ring for lettre, aws-lc for the SDKs); rustls needs to be
    // told which one serves the process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The host starts the handler without arguments, and serving needs no parser: building
    // the command tree of every subcommand would be part of every cold start.
    let cli = if std::env::args_os().len() <= 1 {
        Cli { command: None }
    } else {
        Cli::parse()
    };
    let env = Environment::from_process();
    let result = match LogFormat::from_env(&env) {
        Err(e) => Err(CliError::from(e)),
        Ok(format) => {
            crate::telemetry::init(format);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("the tokio runtime starts");
            runtime.block_on(run(cli, env))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("handler: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

async fn run(cli: Cli, env: Environment) -> Result<(), CliError> {
    match cli.command {
        None | Some(Command::Serve) => serve(env).await,
        Some(Command::Policy(cmd)) => policy::run(cmd, &store_only(&env)?).await,
        Some(Command::Requests(requests::RequestsCommand::List {
            status,
            domain,
            json,
        })) => requests::list(&store_only(&env)?, status, domain, json).await,
        Some(Command::Requests(requests::RequestsCommand::Show { id })) => {
            requests::show(&store_only(&env)?, &id).await
        }
        Some(Command::Requests(requests::RequestsCommand::Approve {
            id,
            approver,
            reason,
        })) => {
            let p = portal(&env)?;
            let done = requests::decide(&p, &id, &approver, true, reason, false).await;
            mail_sent(&p, done).await
        }
        Some(Command::Requests(requests::RequestsCommand::Deny {
            id,
            approver,
            reason,
            share_reason,
        })) => {
            let p = portal(&env)?;
            let done = requests::decide(&p, &id, &approver, false, reason, share_reason).await;
            mail_sent(&p, done).await
        }
        Some(Command::Audit { since }) => requests::audit_since(&store_only(&env)?, since).await,
        Some(Command::Invite { file, policy }) => {
            let p = portal(&env)?;
            let done = invite::run(&p, &file, policy).await;
            mail_sent(&p, done).await
        }
        Some(Command::Guests(guests::GuestsCommand::Review {
            user_id,
            keep,
            end: _,
            days,
            by,
        })) => {
            let p = portal(&env)?;
            let done = guests::review(&p, &user_id, keep, days, &by).await;
            mail_sent(&p, done).await
        }
        Some(Command::Guests(guests::GuestsCommand::List { state, json })) => {
            guests::list(&store_only(&env)?, state, json).await
        }
        Some(Command::Cleanup(cmd)) => {
            let p = portal(&env)?;
            let done = guests::cleanup(&p, cmd).await;
            mail_sent(&p, done).await
        }
        Some(Command::Mail(cmd)) => mail::run(&portal(&env)?, cmd).await,
        Some(Command::Demand { json }) => mail::demand(&store_only(&env)?, json).await,
        Some(Command::Doctor {
            identity,
            app_settings,
        }) => doctor(env, identity, app_settings).await,
    }
}

/// A command that changed something may have mail on its way: the process waits for it
/// (whatever is not sent by then stays in the outbox for the timer).
async fn mail_sent(
    portal: &crate::functions::Portal,
    done: Result<(), CliError>,
) -> Result<(), CliError> {
    portal.outbox.idle().await;
    done
}

async fn doctor(
    env: Environment,
    identity: Option<String>,
    app_settings: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    let env = match app_settings {
        None => env,
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CliError::usage(format!("--app-settings {}: {e}", path.display())))?;
            crate::doctor::with_app_settings(&env, &text).map_err(CliError::usage)?
        }
    };
    if let Some(id) = &identity {
        // It goes into a Graph URL path: only an object id (GUID) is accepted.
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(CliError::usage(format!(
                "--identity expects the identity's object id (a GUID), got {id:?}"
            )));
        }
    }
    let mut doctor = crate::doctor::Doctor::new(env, identity);
    let findings = crate::doctor::run(&mut doctor, |f| println!("{f}")).await;
    println!("{}", crate::doctor::summary(&findings));
    let blocking = findings
        .iter()
        .filter(|f| f.status == crate::doctor::Status::Fail)
        .count();
    if blocking > 0 {
        return Err(CliError::failed(format!(
            "doctor: {blocking} problem(s) block the portal"
        )));
    }
    Ok(())
}

async fn serve(env: Environment) -> Result<(), CliError> {
    // Settings are checked before the port is bound: a misconfigured app should fail at once
    // with one clear line, not answer the probe and fail every call.
    let port = settings::handler_port(&env)?;
    let settings = Settings::from_env(&env)?;
    let listener =
        tokio::net::TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .map_err(|e| CliError::failed(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let portal = Arc::new(crate::functions::LazyPortal::new(settings));
    // Build the adapters once the port has answered, not before: a broken adapter setting
    // still ends the process with one line, as a bad setting does.
    let warm = portal.clone();
    tokio::spawn(async move {
        if let Err(e) = warm.warm().await {
            eprintln!("handler: {e}");
            std::process::exit(2);
        }
    });
    tracing::info!(port, "handler listening");
    crate::host::server::serve_on(listener, portal).await;
    Ok(())
}

/// The whole portal, for subcommands that invite, mail or clean up.
fn portal(env: &Environment) -> Result<crate::functions::Portal, CliError> {
    let settings = Settings::from_env(env)?;
    crate::functions::Portal::new(settings).map_err(CliError::usage)
}

/// A table store for subcommands that need nothing else.
fn store_only(env: &Environment) -> Result<crate::adapters::tables::TableStore, CliError> {
    let storage = StorageSettings::from_env(env)?;
    let token = match storage.auth {
        settings::StorageAuth::ManagedIdentity => {
            let graph = settings::GraphSettings::from_env(env)?;
            Some(
                crate::adapters::identity::credential(&graph.credential)
                    .map_err(CliError::usage)?,
            )
        }
        settings::StorageAuth::SharedKey(_) => None,
    };
    crate::adapters::tables::TableStore::new(&storage, crate::adapters::http_client(), token)
        .map_err(CliError::usage)
}
