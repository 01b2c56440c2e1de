//! `handler guests list`, `handler guests review ID --keep|--end` and `handler cleanup run
//! [--dry-run]`.

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
    /// Answer a guest's access review by hand, as its sponsors would (whether or not a review
    /// is open): keep it for another review interval (or --days), or end its access (the
    /// cleanup then warns the guest and disables it at its next directory pass).
    Review {
        /// The guest's directory object id (the USER ID of `handler guests list`).
        user_id: String,
        #[arg(long, conflicts_with = "end", required_unless_present = "end")]
        keep: bool,
        #[arg(long)]
        end: bool,
        /// Keep for this many days instead of the policy's review interval.
        #[arg(long, requires = "keep")]
        days: Option<u32>,
        /// Who answers, for the audit trail (default: operator).
        #[arg(long = "as", default_value = "operator")]
        by: String,
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

/// `handler guests review`: the same answer a sponsor's link records, by an admin.
pub async fn review(
    portal: &Portal,
    user_id: &str,
    keep: bool,
    days: Option<u32>,
    by: &str,
) -> Result<(), CliError> {
    use crate::functions::reviews::Answered;
    if days == Some(0) || days.is_some_and(|d| d > 3650) {
        return Err(CliError::usage("--days takes 1 to 3650"));
    }
    if by.trim().is_empty() || by.chars().any(char::is_control) {
        return Err(CliError::usage("--as takes a name or an address"));
    }
    let outcome = crate::functions::reviews::answer(
        portal,
        user_id,
        crate::core::review::Decider::Operator(by.trim().to_string()),
        None,
        keep,
        days,
        "operator",
        portal.now(),
    )
    .await?;
    let day = |t| crate::adapters::tables::format_time(t)[..10].to_string();
    match outcome {
        Answered::Recorded {
            next_due: Some(due),
            guest,
            ..
        } => {
            println!(
                "kept guest {user_id} until {} (access ends {})",
                day(due),
                guest.access_ends_at.map(day).unwrap_or_else(|| "-".into())
            );
            Ok(())
        }
        Answered::Recorded { .. } => {
            println!("ended the access of guest {user_id}: the cleanup warns it and disables it at its next directory pass");
            Ok(())
        }
        Answered::NotFound => Err(CliError::failed(format!(
            "no guest {user_id:?} in the portal's records"
        ))),
        Answered::NoInterval => Err(CliError::usage(
            "the guest's policy has no review interval: give --days",
        )),
        Answered::Already(_) | Answered::NotASponsor => Err(CliError::failed(
            "the guest's record changed meanwhile; try again",
        )),
    }
}

/// `handler guests list`.
pub async fn list(
    store: &crate::adapters::tables::TableStore,
    state: Option<String>,
    json: bool,
) -> Result<(), CliError> {
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
                    "sponsors": g.sponsors,
                    "next_review": crate::functions::reviews::next_review(&g.reviews).map(crate::adapters::tables::format_time),
                    "review_open": g.reviews.open.is_some(),
                    "last_review": crate::functions::reviews::last_answer(&g.reviews),
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
        "{:<38} {:<9} {:<11} {:<14} {:<11} {:<11} {:<12} {:<20} {:<24} ADDRESS",
        "USER ID",
        "STATE",
        "SINCE",
        "WHY",
        "INVITED",
        "ACCESS END",
        "NEXT REVIEW",
        "LAST REVIEW",
        "POLICY"
    );
    for (g, _) in &all {
        let next = match (
            &g.reviews.open,
            crate::functions::reviews::next_review(&g.reviews),
        ) {
            (Some(_), Some(t)) => format!("{}!", day(t)),
            (None, Some(t)) => day(t),
            (_, None) => "-".into(),
        };
        let last = g
            .reviews
            .last
            .as_ref()
            .map(|d| format!("{} {}", if d.keep { "kept" } else { "ended" }, day(d.at)))
            .unwrap_or("-".into());
        println!(
            "{:<38} {:<9} {:<11} {:<14} {:<11} {:<11} {:<12} {:<20} {:<24} {}",
            g.user_id,
            g.state.as_str(),
            day(g.state_changed_at),
            g.removal_reason.as_deref().unwrap_or("-"),
            day(g.invited_at),
            g.access_ends_at.map(day).unwrap_or("-".into()),
            next,
            last,
            g.policy_key.as_deref().unwrap_or("-"),
            g.email
        );
    }
    println!("(NEXT REVIEW: when the next access review is due; with !, the deadline of one waiting for its sponsors)");
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
