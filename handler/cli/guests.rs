//! `handler guests list` and `handler cleanup run [--dry-run]`.

use clap::Subcommand;

use super::CliError;
use crate::functions::Portal;
use crate::store::guests;

#[derive(Subcommand, Debug)]
pub enum GuestsCommand {
    /// List the guests this portal created and where each is in its lifecycle
    /// (active, warned, disabled, deleted), since when and why.
    List {
        /// Only guests in this state: active, warned, disabled or deleted.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CleanupCommand {
    /// Run every cleanup job once; with --dry-run, only report what would be done.
    Run {
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn guests(
    store: &crate::adapters::tables::TableStore,
    cmd: GuestsCommand,
) -> Result<(), CliError> {
    let GuestsCommand::List { state, json } = cmd;
    let state = match state.as_deref().map(str::parse::<guests::GuestState>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => {
            return Err(CliError::usage(
                "--state takes active, warned, disabled or deleted",
            ))
        }
    };
    let mut all = guests::all(store).await?;
    all.retain(|(g, _)| state.is_none_or(|s| g.state == s));
    all.sort_by_key(|(g, _)| g.invited_at);
    if json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|(g, _)| {
                serde_json::json!({
                    "user_id": g.user_id, "email": g.email, "policy": g.policy_key, "request_id": g.request_id,
                    "invited_at": crate::adapters::tables::format_time(g.invited_at),
                    "access_ends_at": g.access_ends_at.map(crate::adapters::tables::format_time),
                    "state": g.state.as_str(), "removal_reason": g.removal_reason,
                    "state_changed_at": crate::adapters::tables::format_time(g.state_changed_at),
                    "reminder_sent_at": g.reminder_sent_at.map(crate::adapters::tables::format_time),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    if all.is_empty() {
        println!("no guests created by this portal yet");
        return Ok(());
    }
    let day = |t| crate::adapters::tables::format_time(t)[..10].to_string();
    println!(
        "{:<38} {:<9} {:<11} {:<14} {:<11} {:<11} {:<24} ADDRESS",
        "USER ID", "STATE", "SINCE", "WHY", "INVITED", "ACCESS END", "POLICY"
    );
    for (g, _) in &all {
        println!(
            "{:<38} {:<9} {:<11} {:<14} {:<11} {:<11} {:<24} {}",
            g.user_id,
            g.state.as_str(),
            day(g.state_changed_at),
            g.removal_reason.as_deref().unwrap_or("-"),
            day(g.invited_at),
            g.access_ends_at.map(day).unwrap_or("-".into()),
            g.policy_key.as_deref().unwrap_or("-"),
            g.email
        );
    }
    Ok(())
}

pub async fn cleanup(portal: &Portal, cmd: CleanupCommand) -> Result<(), CliError> {
    let CleanupCommand::Run { dry_run } = cmd;
    let mut logs = Vec::new();
    let result = crate::functions::cleanup::run_as(
        portal,
        portal.now(),
        dry_run,
        "operator",
        crate::functions::cleanup::Cadence::Everything,
        &mut logs,
    )
    .await;
    for line in &logs {
        println!("{line}");
    }
    match result {
        Ok(summary) => {
            println!("{summary}");
            Ok(())
        }
        Err(e) => Err(CliError::failed(format!("cleanup stopped: {e}"))),
    }
}
