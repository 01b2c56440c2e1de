//! `handler mail list|retry` (the outbox as an admin sees it) and `handler demand` (domains
//! people tried to sign up from that no policy admits).

use clap::Subcommand;

use super::CliError;
use crate::adapters::tables::{format_time, TableStore};
use crate::core::email::EmailAddress;
use crate::core::outbox::MailState;
use crate::core::policy::{admit, Admission};
use crate::functions::Portal;
use crate::store::{demand, outbox, policies};

#[derive(Subcommand, Debug)]
pub enum MailCommand {
    /// List the mails in the outbox (sent ones are kept for MAIL_RETENTION_DAYS).
    List {
        /// Only mails that failed for good (dead letters).
        #[arg(long)]
        failed: bool,
        /// Only mails in this state: sending, pending, delivered or dead.
        #[arg(long, conflicts_with = "failed")]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Send failed mail again now, with a fresh set of attempts.
    Retry {
        /// The mail's id, as `mail list` shows it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every failed mail.
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(portal: &Portal, cmd: MailCommand) -> Result<(), CliError> {
    let keys = portal.outbox.keys();
    match cmd {
        MailCommand::List {
            failed,
            state,
            json,
        } => {
            let state = match (failed, state) {
                (true, _) => Some(MailState::Dead),
                (false, Some(s)) => Some(s.parse::<MailState>().map_err(|_| {
                    CliError::usage("--state takes sending, pending, delivered or dead")
                })?),
                (false, None) => None,
            };
            let mails = outbox::list(&portal.store, keys, state).await?;
            if json {
                let v: Vec<serde_json::Value> = mails
                    .iter()
                    .map(|m| {
                        serde_json::json!({
                            "id": m.id(), "state": m.delivery.state.as_str(),
                            "kind": m.letter.kind.as_str(), "to": m.letter.to,
                            "attempts": m.delivery.attempts,
                            "created_at": format_time(m.delivery.created_at),
                            "delivered_at": m.delivery.delivered_at.map(format_time),
                            "next_attempt_at": (m.delivery.state == MailState::Pending).then(|| format_time(m.delivery.due_at)),
                            "last_error": m.delivery.last_error, "sealed": m.sealed,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v).expect("json"));
                return Ok(());
            }
            if mails.is_empty() {
                println!(
                    "{}",
                    if state == Some(MailState::Dead) {
                        "no failed mail"
                    } else {
                        "no mail in the outbox"
                    }
                );
                return Ok(());
            }
            println!(
                "{:<52} {:<9} {:<19} {:>3} {:<20} {:<32} PROBLEM",
                "ID", "STATE", "KIND", "TRY", "CREATED", "TO"
            );
            for m in &mails {
                let problem = match (&m.delivery.last_error, m.sealed) {
                    (_, false) => "not written by this portal (seal does not verify)".into(),
                    (Some(e), _) => e.clone(),
                    (None, _) => String::new(),
                };
                println!(
                    "{:<52} {:<9} {:<19} {:>3} {:<20} {:<32} {}",
                    m.id(),
                    m.delivery.state.as_str(),
                    m.letter.kind.as_str(),
                    m.delivery.attempts,
                    format_time(m.delivery.created_at),
                    m.letter.to,
                    problem
                );
            }
            Ok(())
        }
        MailCommand::Retry { id, all } => {
            let targets = if all {
                outbox::list(&portal.store, keys, Some(MailState::Dead)).await?
            } else {
                let id = id.unwrap_or_default();
                match outbox::find(&portal.store, keys, &id).await? {
                    Some(m) => vec![m],
                    None => return Err(CliError::failed(format!("no mail with id {id}"))),
                }
            };
            let now = portal.now();
            let mut failures = 0;
            for m in targets {
                let id = m.id().to_string();
                if !m.sealed {
                    failures += 1;
                    println!("{id}: not sent: the row was not written by this portal");
                    continue;
                }
                if m.delivery.state != MailState::Dead {
                    println!(
                        "{id}: left alone: it is {} (only failed mail is retried)",
                        m.delivery.state.as_str()
                    );
                    continue;
                }
                match portal.outbox.retry(m, now).await {
                    Ok(MailState::Delivered) => println!("{id}: delivered"),
                    Ok(state) => {
                        failures += 1;
                        let why = outbox::find(&portal.store, keys, &id)
                            .await?
                            .and_then(|m| m.delivery.last_error)
                            .unwrap_or_default();
                        println!("{id}: {} ({why})", state.as_str());
                    }
                    Err(e) => {
                        failures += 1;
                        println!("{id}: not retried: {e}");
                    }
                }
            }
            if failures > 0 {
                return Err(CliError::failed(format!(
                    "{failures} mail(s) still not delivered"
                )));
            }
            Ok(())
        }
    }
}

/// `handler demand`: every domain people tried to sign up from without a policy admitting
/// them, with counts, first and last seen, and what the policies say about it now.
pub async fn demand(store: &TableStore, json: bool) -> Result<(), CliError> {
    let all = demand::all(store).await?;
    let policies = policies::all(store).await?;
    let now_says = |domain: &str| {
        // Any address of the domain stands for it: policies match on the domain alone.
        match EmailAddress::parse(&format!("x@{domain}"))
            .ok()
            .map(|a| match admit(&policies, &a) {
                Admission::Admitted(p) => format!("admitted by {}", p.key()),
                Admission::Denied(p) => format!("denied by {}", p.key()),
                Admission::NoMatch => "no policy".to_string(),
            }) {
            Some(s) => s,
            None => "no policy".to_string(),
        }
    };
    if json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|d| {
                serde_json::json!({
                    "domain": d.domain, "no_policy": d.no_policy, "denied": d.denied,
                    "first_seen": format_time(d.first_seen), "last_seen": format_time(d.last_seen),
                    "policy_now": now_says(&d.domain),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return Ok(());
    }
    if all.is_empty() {
        println!("no sign-ups from domains without a policy");
        return Ok(());
    }
    println!(
        "{:<40} {:>9} {:>7} {:<20} {:<20} NOW",
        "DOMAIN", "NO POLICY", "DENIED", "FIRST SEEN", "LAST SEEN"
    );
    for d in &all {
        println!(
            "{:<40} {:>9} {:>7} {:<20} {:<20} {}",
            d.domain,
            d.no_policy,
            d.denied,
            format_time(d.first_seen),
            format_time(d.last_seen),
            now_says(&d.domain)
        );
    }
    Ok(())
}
