//! `handler requests list|show|approve|deny` and `handler audit`: what happened, and the
//! operator's way to decide without the mailed link (same checks, same audit trail).

use clap::Subcommand;
use time::{Duration, OffsetDateTime};

use super::CliError;
use crate::core::email::EmailAddress;
use crate::core::request::RequestStatus;
use crate::functions::approvals::{self, DecideOutcome};
use crate::functions::Portal;
use crate::store::{audit, requests};

#[derive(Subcommand, Debug)]
pub enum RequestsCommand {
    /// List requests, newest last.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one request and its audit trail.
    Show { id: String },
    /// Approve a request as one of its approvers.
    Approve {
        id: String,
        #[arg(long = "as")]
        approver: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a request as one of its approvers.
    Deny {
        id: String,
        #[arg(long = "as")]
        approver: String,
        #[arg(long)]
        reason: Option<String>,
        /// Include the reason in the mail to the requester.
        #[arg(long)]
        share_reason: bool,
    },
}

pub async fn list(
    store: &crate::adapters::tables::TableStore,
    status: Option<String>,
    domain: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let status = match status {
        Some(s) => Some(s.parse::<RequestStatus>().map_err(CliError::usage)?),
        None => None,
    };
    let domain = match domain {
        Some(d) => Some(
            crate::core::email::Domain::parse(&d)
                .map_err(|e| CliError::usage(format!("--domain: {e}")))?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let all = requests::list(store, status, domain.as_deref()).await?;
    if json {
        let v: Vec<serde_json::Value> = all.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    if all.is_empty() {
        println!("no requests");
        return Ok(());
    }
    println!(
        "{:<32} {:<20} {:<17} {:<28} ADDRESS",
        "ID", "STATUS", "CREATED", "POLICY"
    );
    for r in &all {
        println!(
            "{:<32} {:<20} {:<17} {:<28} {}",
            r.id,
            r.status.as_str(),
            approvals::format_date(r.created_at).trim_end_matches(" UTC"),
            r.policy_key.as_deref().unwrap_or("-"),
            r.applicant.email
        );
    }
    Ok(())
}

fn to_json(r: &crate::core::request::SignupRequest) -> serde_json::Value {
    serde_json::json!({
        "id": r.id,
        "status": r.status.as_str(),
        "email": r.applicant.email.as_str(),
        "first_name": r.applicant.first_name,
        "last_name": r.applicant.last_name,
        "organisation": r.applicant.organisation,
        "justification": r.applicant.justification,
        "language": r.applicant.language.as_str(),
        "created_at": crate::adapters::tables::format_time(r.created_at),
        "updated_at": crate::adapters::tables::format_time(r.updated_at),
        "verified_at": r.verified_at.map(crate::adapters::tables::format_time),
        "policy": r.policy_key,
        "stage": r.stage,
        "decision": r.decision.as_ref().map(|d| serde_json::json!({
            "approved": d.approve, "by": d.by, "at": crate::adapters::tables::format_time(d.at), "reason": d.reason
        })),
        "invited_user_id": r.invited_user_id,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "grant_problems": r.grant_problems,
    })
}

pub async fn show(store: &crate::adapters::tables::TableStore, id: &str) -> Result<(), CliError> {
    let Some(stored) = requests::get(store, id).await? else {
        return Err(CliError::failed(format!("no request with id {id:?}")));
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&to_json(&stored.request)).expect("json")
    );
    println!("\naudit trail:");
    for e in audit::for_request(store, id).await? {
        println!(
            "  {}  {:<24} {:<28} {}",
            approvals::format_date(e.at),
            e.action,
            e.actor,
            e.detail
        );
    }
    Ok(())
}

pub async fn decide(
    portal: &Portal,
    id: &str,
    approver: &str,
    approve: bool,
    reason: Option<String>,
    share: bool,
) -> Result<(), CliError> {
    let approver =
        EmailAddress::parse(approver).map_err(|e| CliError::usage(format!("--as: {e}")))?;
    let now = portal.now();
    let graph = portal
        .graph
        .with_patience(std::time::Duration::from_secs(60));
    let actor = format!("operator as {}", approver.as_str());
    let outcome = approvals::decide(
        portal, &graph, id, &approver, None, approve, reason, share, &actor, now,
    )
    .await?;
    match outcome {
        DecideOutcome::Recorded {
            approved,
            final_decision,
            setup,
            ..
        } => {
            let what = if approved { "approved" } else { "denied" };
            if !final_decision {
                println!("{what} stage 1 of request {id}; the second-stage approvers were mailed");
            } else {
                println!("{what} request {id}");
            }
            if let Some(setup) = setup {
                println!("access: {setup:?}");
            }
            Ok(())
        }
        DecideOutcome::AlreadyDecided { approved, by, at } => Err(CliError::failed(format!(
            "request {id} was already {} by {by} at {}",
            if approved {
                "approved"
            } else {
                "denied/closed"
            },
            approvals::format_date(at)
        ))),
        DecideOutcome::OwnRequest => Err(CliError::failed(
            "an approver cannot decide their own request",
        )),
        DecideOutcome::NotAnApprover => Err(CliError::failed(format!(
            "{} is not an approver of this request's current stage",
            approver.as_str()
        ))),
        DecideOutcome::StageMoved(_) => Err(CliError::failed(
            "the request moved to another stage; look again",
        )),
        DecideOutcome::NotFound => Err(CliError::failed(format!("no request with id {id:?}"))),
    }
}

/// `--since` takes a date (2026-11-01), a UTC time, or a span back from now (`7d`, `12h`).
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, CliError> {
    let t = text.trim();
    if let Some(n) = t.strip_suffix('d').and_then(|n| n.parse::<i64>().ok()) {
        return Ok(now - Duration::days(n));
    }
    if let Some(n) = t.strip_suffix('h').and_then(|n| n.parse::<i64>().ok()) {
        return Ok(now - Duration::hours(n));
    }
    if let Ok(at) = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        return Ok(at);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(t, &date_format) {
        return Ok(d.midnight().assume_utc());
    }
    Err(CliError::usage(format!(
        "--since: expected a date like 2026-11-01, a UTC time, or a span like 7d or 12h; got {t:?}"
    )))
}

pub async fn audit_since(
    store: &crate::adapters::tables::TableStore,
    since: Option<String>,
) -> Result<(), CliError> {
    let now = OffsetDateTime::now_utc();
    let since = match since {
        Some(s) => parse_since(&s, now)?,
        None => now - Duration::days(7),
    };
    let entries = audit::since(store, since).await?;
    if entries.is_empty() {
        println!("no audit entries since {}", approvals::format_date(since));
    }
    for e in entries {
        println!(
            "{}  {:<24} {:<28} {:<32} {}",
            approvals::format_date(e.at),
            e.action,
            e.actor,
            e.request_id
                .as_deref()
                .or(e.user_id.as_deref())
                .unwrap_or("-"),
            e.detail
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn since_takes_dates_times_and_spans() {
        let now = datetime!(2026-11-28 12:00 UTC);
        assert_eq!(
            parse_since("7d", now).ok(),
            Some(datetime!(2026-11-21 12:00 UTC))
        );
        assert_eq!(
            parse_since("12h", now).ok(),
            Some(datetime!(2026-11-28 00:00 UTC))
        );
        assert_eq!(
            parse_since("2026-11-01", now).ok(),
            Some(datetime!(2026-11-01 00:00 UTC))
        );
        assert_eq!(
            parse_since("2026-11-01T08:30:00Z", now).ok(),
            Some(datetime!(2026-11-01 08:30 UTC))
        );
        assert!(parse_since("last tuesday", now).is_err());
    }
}
