//! `handler invite FILE.csv [--policy DOMAIN]`: bulk invitations for operators.
//!
//! Each row goes through the same path as a partner's sign-up after approval (the same policy
//! checks, deny wins; the same request record, guest record, mails and audit), paced under
//! Graph's invitation throttle (150 per 5 s per tenant, shared with every other app). Progress
//! is appended to `FILE.csv.progress` after each row, so an interrupted run resumes where it
//! stopped, and never invites a finished row again.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CliError;
use crate::core::email::EmailAddress;
use crate::core::policy::{admit, Admission, Language};
use crate::core::request::{Applicant, RequestStatus, SignupRequest};
use crate::functions::access::{self, SetupOutcome};
use crate::functions::Portal;
use crate::store::audit::{self, AuditEntry};
use crate::store::requests::{self, Claim};

/// At most this many invitations per second from this tool: 125 per 5 s, leaving room under
/// the tenant-wide 150 for the portal itself and other apps.
const INVITES_PER_SECOND: f64 = 25.0;

#[derive(Debug, serde::Deserialize)]
struct CsvRow {
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    language: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Progress {
    row: usize,
    email: String,
    outcome: String,
    request_id: Option<String>,
}

impl Progress {
    /// Rows that need no further work on a rerun.
    fn is_final(&self) -> bool {
        self.outcome == "invited" || self.outcome.starts_with("skipped")
    }
}

fn progress_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".progress");
    PathBuf::from(p)
}

pub async fn run(
    portal: &Portal,
    file: &Path,
    policy_domain: Option<String>,
) -> Result<(), CliError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
    let rows: Vec<Result<CsvRow, String>> = reader
        .deserialize::<CsvRow>()
        .map(|r| r.map_err(|e| format!("not a valid row: {e}")))
        .collect();
    let progress_file = progress_path(file);
    let mut done: HashMap<usize, Progress> = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(&progress_file) {
        for line in text.lines() {
            if let Ok(p) = serde_json::from_str::<Progress>(line) {
                done.insert(p.row, p);
            }
        }
    }
    let resumed = done.values().filter(|p| p.is_final()).count();
    if resumed > 0 {
        eprintln!("resuming: {resumed} rows were finished by an earlier run");
    }
    let policies = portal.policies().await?;
    let forced = match &policy_domain {
        None => None,
        Some(d) => Some(
            policies
                .iter()
                .find(|p| {
                    p.key() == d.to_ascii_lowercase()
                        || p.domain
                            .as_ref()
                            .is_some_and(|pd| pd.as_str() == d.to_ascii_lowercase())
                })
                .cloned()
                .ok_or_else(|| {
                    CliError::usage(format!("--policy: no policy with key or domain {d:?}"))
                })?,
        ),
    };
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&progress_file)
        .map_err(|e| CliError::failed(format!("cannot write {}: {e}", progress_file.display())))?;
    let graph = portal.graph.with_patience(Duration::from_secs(120));
    let total = rows.len();
    let mut report: Vec<Progress> = Vec::new();
    let pace = Duration::from_secs_f64(1.0 / INVITES_PER_SECOND);
    let mut last_invite = Instant::now() - pace;
    for (i, row) in rows.into_iter().enumerate() {
        let n = i + 1;
        show_progress(n, total);
        if let Some(p) = done.get(&n).filter(|p| p.is_final()) {
            report.push(p.clone());
            continue;
        }
        let outcome = match row {
            Err(e) => (format!("skipped: {e}"), None),
            Ok(row) => {
                let wait = pace.saturating_sub(last_invite.elapsed());
                tokio::time::sleep(wait).await;
                last_invite = Instant::now();
                invite_row(portal, &graph, &policies, forced.as_ref(), row).await?
            }
        };
        let p = Progress {
            row: n,
            email: String::new(),
            outcome: outcome.0,
            request_id: outcome.1,
        };
        writeln!(
            log,
            "{}",
            serde_json::to_string(&p).expect("progress serializes")
        )
        .map_err(|e| CliError::failed(format!("cannot write progress: {e}")))?;
        report.push(p);
    }
    eprintln!();
    let mut counts: HashMap<String, usize> = HashMap::new();
    println!("{:<5} {:<34} OUTCOME", "ROW", "REQUEST");
    for p in &report {
        println!(
            "{:<5} {:<34} {}",
            p.row,
            p.request_id.as_deref().unwrap_or("-"),
            p.outcome
        );
        let kind = p.outcome.split(':').next().unwrap_or("").to_string();
        *counts.entry(kind).or_default() += 1;
    }
    let mut summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    summary.sort();
    println!("{} rows: {}", total, summary.join(", "));
    Ok(())
}

fn show_progress(n: usize, total: usize) {
    let width = 30;
    let filled = (n * width).checked_div(total).unwrap_or(width);
    if std::io::stderr().is_terminal() {
        eprint!(
            "\r[{}{}] {n}/{total}",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
    } else if total > 0 && (n == total || n.is_multiple_of((total / 10).max(1))) {
        eprintln!("{n}/{total}");
    }
}

async fn invite_row(
    portal: &Portal,
    graph: &crate::adapters::graph::GraphClient,
    policies: &[crate::core::policy::Policy],
    forced: Option<&crate::core::policy::Policy>,
    row: CsvRow,
) -> Result<(String, Option<String>), CliError> {
    let email = match EmailAddress::parse(&row.email) {
        Ok(e) => e,
        Err(e) => return Ok((format!("skipped: {e}"), None)),
    };
    if row.first_name.chars().any(char::is_control) || row.last_name.chars().any(char::is_control) {
        return Ok(("skipped: control characters in a name".into(), None));
    }
    // Deny wins even over --policy: an operator's file cannot override a deny.
    let policy = match (admit(policies, &email), forced) {
        (Admission::Denied(p), _) => {
            return Ok((format!("skipped: denied by policy {}", p.key()), None))
        }
        (_, Some(f)) if !f.matches(&email) => {
            return Ok((
                format!("skipped: policy {} does not cover this address", f.key()),
                None,
            ))
        }
        (_, Some(f)) if f.action == crate::core::policy::PolicyAction::Deny => {
            return Ok(("skipped: the policy denies".into(), None))
        }
        (_, Some(f)) => f.clone(),
        (Admission::Admitted(p), None) => p.clone(),
        (Admission::NoMatch, None) => {
            return Ok(("skipped: no policy admits this address".into(), None))
        }
    };
    let now = portal.now();
    let applicant = Applicant {
        email: email.clone(),
        first_name: if row.first_name.is_empty() {
            email.local_part().to_string()
        } else {
            row.first_name
        },
        last_name: row.last_name,
        organisation: row.organisation,
        justification: Some("bulk invitation by an operator".into()),
        language: row.language.parse().unwrap_or(Language::En),
    };
    // One open request per address: resume an unfinished one rather than start another.
    let id = requests::new_id();
    let request_id = match requests::claim_address(&portal.store, &email, &id).await? {
        Claim::Held {
            request_id: existing,
            etag,
        } => match requests::get(&portal.store, &existing).await? {
            Some(s) if s.request.needs_setup() => existing,
            Some(s) if !s.request.status.is_closed() => {
                return Ok((
                    format!(
                        "skipped: an open request {} ({}) exists",
                        existing, s.request.status
                    ),
                    Some(existing),
                ));
            }
            _ => {
                if !requests::take_over_claim(&portal.store, &email, &id, &etag).await? {
                    return Ok((
                        "will retry: another sign-up for this address is being set up".into(),
                        None,
                    ));
                }
                create(portal, &id, applicant, &policy.key(), now).await?;
                id
            }
        },
        Claim::Ours => {
            create(portal, &id, applicant, &policy.key(), now).await?;
            id
        }
    };
    let outcome = access::set_up(portal, graph, &request_id, now).await?;
    let text = match outcome {
        SetupOutcome::Ready { .. } => "invited".to_string(),
        SetupOutcome::WillRetry => {
            let last = requests::get(&portal.store, &request_id)
                .await?
                .and_then(|s| s.request.last_error);
            format!("will retry: {}", last.unwrap_or_default())
        }
        SetupOutcome::Failed => {
            let last = requests::get(&portal.store, &request_id)
                .await?
                .and_then(|s| s.request.last_error);
            format!("failed: {}", last.unwrap_or_default())
        }
        SetupOutcome::TakenOver => "will retry: another run is working on it".into(),
        SetupOutcome::NotApproved => "failed: the request is not approved".into(),
    };
    Ok((text, Some(request_id)))
}

async fn create(
    portal: &Portal,
    id: &str,
    applicant: Applicant,
    policy_key: &str,
    now: time::OffsetDateTime,
) -> Result<(), CliError> {
    let mut request = SignupRequest::new(id.to_string(), applicant, now);
    request
        .approve_by_operator(policy_key, "operator", now)
        .map_err(|e| CliError::failed(e.to_string()))?;
    debug_assert_eq!(request.status, RequestStatus::Approved);
    requests::insert(&portal.store, &request).await?;
    audit::record(
        &portal.store,
        AuditEntry::new(now, "operator", "request.bulk_invited")
            .request(id)
            .detail(format!(
                "{} via policy {policy_key}",
                request.applicant.email.masked()
            )),
    )
    .await?;
    Ok(())
}
