//! `handler policy add|list|show|remove|import|export`.
//!
//! Import and export use one TOML file (`[[policy]]` tables whose fields are the policy's), so
//! policies can live in source control and be reviewed like code: export, edit, import.
//! Import checks every entry before writing any, and `--prune` makes the file the whole truth.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::CliError;
use crate::adapters::tables::{StoreError, TableStore};
use crate::core::policy::{AppRoleGrantDraft, Policy, PolicyDraft};
use crate::store::policies;

// Parsed once per process: the size of the `Add` variant costs nothing worth boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Add a policy (or replace it with --replace).
    Add(AddArgs),
    /// List all policies.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one policy by key (the domain, *.domain for a policy with subdomains,
    /// tenant:<id>[+<id>] for tenants, domain+tenant:<id> for both).
    Show { key: String },
    /// Remove a policy by key.
    Remove { key: String },
    /// Add or update the policies in a TOML file; --prune also removes those not in it.
    Import {
        file: std::path::PathBuf,
        #[arg(long)]
        prune: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Write all policies as TOML (to a file, or to standard output).
    Export { file: Option<std::path::PathBuf> },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The email domain, e.g. partner.example (may be left out when --tenant is given).
    #[arg(long, default_value = "")]
    domain: String,
    /// Also admit subdomains (sales.partner.example).
    #[arg(long)]
    include_subdomains: bool,
    /// An Entra ID tenant id (the Directory ID) whose people the policy admits, repeatable;
    /// with --domain, both must hold. Needs --proof sign_in.
    #[arg(long = "tenant")]
    tenants: Vec<String>,
    /// How partners prove who they are: mailbox (a mailed link, the default), sign_in (their
    /// work account) or either.
    #[arg(long)]
    proof: Option<String>,
    /// Only a sign-in with multi-factor authentication counts (needs --proof sign_in).
    #[arg(long)]
    require_mfa: bool,
    /// auto (invite without a human), approve (named approvers decide) or deny.
    #[arg(long)]
    action: String,
    #[arg(long = "approver")]
    approvers: Vec<String>,
    #[arg(long = "second-stage-approver")]
    second_stage_approvers: Vec<String>,
    #[arg(long = "fallback-approver")]
    fallback_approvers: Vec<String>,
    /// Group object id to add the guest to (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// App role as RESOURCE_SP_ID[:APP_ROLE_ID] (default access without a role id).
    #[arg(long = "app-role")]
    app_roles: Vec<String>,
    #[arg(long)]
    redirect_url: Option<String>,
    /// Invitation language: en or sv (default: the requester's).
    #[arg(long)]
    language: Option<String>,
    /// Days of access before the cleanup removes the guest (0 = no expiry).
    #[arg(long)]
    access_days: Option<u32>,
    #[arg(long)]
    approval_window_days: Option<u32>,
    #[arg(long)]
    reminder_after_days: Option<u32>,
    #[arg(long)]
    escalate_after_days: Option<u32>,
    #[arg(long)]
    note: Option<String>,
    /// A sponsor, repeatable: reviews the guests (with the approvers who admitted them) and
    /// hears before one is disabled.
    #[arg(long = "sponsor")]
    sponsors: Vec<String>,
    /// Days between access reviews by the guests' sponsors (0 = no reviews).
    #[arg(long)]
    review_days: Option<u32>,
    /// What no answer to a review does: end (the default) or keep.
    #[arg(long)]
    on_no_answer: Option<String>,
    /// Allow an auto policy for a public mail provider's domain (gmail.com, outlook.com, ...),
    /// where anyone can get an address.
    #[arg(long)]
    allow_consumer_domain: bool,
    /// Replace an existing policy for the same key.
    #[arg(long)]
    replace: bool,
}

/// The file format: `[[policy]]` entries.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub policy: Vec<PolicyDraft>,
}

fn problems_text(problems: &[crate::core::policy::PolicyProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {}: {}", p.field, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn run(cmd: PolicyCommand, store: &TableStore) -> Result<(), CliError> {
    match cmd {
        PolicyCommand::Add(args) => {
            let replace = args.replace;
            let draft = PolicyDraft {
                domain: args.domain,
                include_subdomains: args.include_subdomains,
                tenants: args.tenants,
                proof: args.proof,
                require_mfa: args.require_mfa,
                action: args.action,
                approvers: args.approvers,
                second_stage_approvers: args.second_stage_approvers,
                fallback_approvers: args.fallback_approvers,
                groups: args.groups,
                app_roles: args
                    .app_roles
                    .into_iter()
                    .map(|r| match r.split_once(':') {
                        Some((res, role)) => AppRoleGrantDraft {
                            resource_id: res.to_string(),
                            app_role_id: Some(role.to_string()),
                        },
                        None => AppRoleGrantDraft {
                            resource_id: r,
                            app_role_id: None,
                        },
                    })
                    .collect(),
                redirect_url: args.redirect_url,
                language: args.language,
                access_days: args.access_days,
                approval_window_days: args.approval_window_days,
                reminder_after_days: args.reminder_after_days,
                escalate_after_days: args.escalate_after_days,
                note: args.note,
                sponsors: args.sponsors,
                review_days: args.review_days,
                on_no_answer: args.on_no_answer,
                allow_consumer_domain: args.allow_consumer_domain,
            };
            let policy = draft.validate().map_err(|p| {
                CliError::usage(format!("the policy is not valid:\n{}", problems_text(&p)))
            })?;
            let result = if replace {
                policies::put(store, &policy).await
            } else {
                policies::add(store, &policy).await
            };
            match result {
                Ok(()) => {
                    println!("added policy {}", policy.key());
                    Ok(())
                }
                Err(StoreError::AlreadyExists) => Err(CliError::failed(format!(
                    "a policy for {} exists already (use --replace to overwrite it)",
                    policy.key()
                ))),
                Err(e) => Err(e.into()),
            }
        }
        PolicyCommand::List { json } => {
            let all = policies::all(store).await?;
            if json {
                let drafts: Vec<PolicyDraft> = all.iter().map(PolicyDraft::from).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&drafts).expect("drafts serialize")
                );
                return Ok(());
            }
            if all.is_empty() {
                println!("no policies: nobody can sign up yet (add one with `handler policy add`)");
                return Ok(());
            }
            println!(
                "{:<32} {:<8} {:<8} {:<6} {:<7} {:<9} APPROVERS",
                "KEY", "ACTION", "PROOF", "GROUPS", "ACCESS", "REVIEW"
            );
            for p in &all {
                println!(
                    "{:<32} {:<8} {:<8} {:<6} {:<7} {:<9} {}",
                    p.key(),
                    p.action.as_str(),
                    if p.require_mfa {
                        format!("{}+mfa", p.proof)
                    } else {
                        p.proof.to_string()
                    },
                    p.groups.len(),
                    if p.access_days == 0 {
                        "-".to_string()
                    } else {
                        format!("{}d", p.access_days)
                    },
                    if p.review_days == 0 {
                        "-".to_string()
                    } else {
                        format!("{}d/{}", p.review_days, p.on_no_answer)
                    },
                    p.approvers
                        .iter()
                        .map(|a| a.as_str().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(())
        }
        PolicyCommand::Show { key } => match policies::get(store, &key).await? {
            Some(p) => {
                print!("{}", to_toml(std::slice::from_ref(&p)));
                Ok(())
            }
            None => Err(CliError::failed(format!("no policy with key {key:?}"))),
        },
        PolicyCommand::Remove { key } => {
            if policies::remove(store, &key).await? {
                println!("removed policy {key}");
                Ok(())
            } else {
                Err(CliError::failed(format!("no policy with key {key:?}")))
            }
        }
        PolicyCommand::Import {
            file,
            prune,
            dry_run,
        } => import(store, &file, prune, dry_run).await,
        PolicyCommand::Export { file } => {
            let all = policies::all(store).await?;
            let text = to_toml(&all);
            match file {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| {
                        CliError::failed(format!("cannot write {}: {e}", path.display()))
                    })?;
                    println!("exported {} policies to {}", all.len(), path.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
    }
}

pub fn to_toml(policies: &[Policy]) -> String {
    let file = PolicyFile {
        policy: policies.iter().map(PolicyDraft::from).collect(),
    };
    toml::to_string_pretty(&file).expect("policies serialize as TOML")
}

/// Parses and validates a whole file; every problem of every entry is reported at once.
pub fn parse_file(text: &str) -> Result<Vec<Policy>, String> {
    let file: PolicyFile = toml::from_str(text).map_err(|e| format!("not a policy file: {e}"))?;
    let mut valid = Vec::new();
    let mut report = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, draft) in file.policy.into_iter().enumerate() {
        let label = if draft.domain.is_empty() {
            format!("policy #{} (tenants {})", i + 1, draft.tenants.join(", "))
        } else {
            format!("policy #{} ({})", i + 1, draft.domain)
        };
        match draft.validate() {
            Ok(p) => {
                if let Some(first) = seen.insert(p.key(), i + 1) {
                    report.push(format!(
                        "{label}: the same key {} as policy #{first}",
                        p.key()
                    ));
                }
                valid.push(p);
            }
            Err(problems) => report.push(format!("{label}:\n{}", problems_text(&problems))),
        }
    }
    if report.is_empty() {
        Ok(valid)
    } else {
        Err(report.join("\n"))
    }
}

async fn import(
    store: &TableStore,
    path: &std::path::Path,
    prune: bool,
    dry_run: bool,
) -> Result<(), CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
    let wanted = parse_file(&text).map_err(|e| {
        CliError::usage(format!(
            "{} has problems; nothing was imported:\n{e}",
            path.display()
        ))
    })?;
    let existing = policies::all(store).await?;
    let existing: BTreeMap<String, Policy> = existing.into_iter().map(|p| (p.key(), p)).collect();
    let (mut added, mut changed, mut same, mut removed) = (0, 0, 0, 0);
    for p in &wanted {
        let verb = match existing.get(&p.key()) {
            None => {
                added += 1;
                "add"
            }
            Some(old) if old == p => {
                same += 1;
                continue;
            }
            Some(_) => {
                changed += 1;
                "update"
            }
        };
        println!("{verb} {}", p.key());
        if !dry_run {
            policies::put(store, p).await?;
        }
    }
    if prune {
        let keep: std::collections::BTreeSet<String> = wanted.iter().map(Policy::key).collect();
        for key in existing.keys().filter(|k| !keep.contains(*k)) {
            println!("remove {key}");
            removed += 1;
            if !dry_run {
                policies::remove(store, key).await?;
            }
        }
    }
    println!(
        "{}{added} added, {changed} updated, {same} unchanged, {removed} removed",
        if dry_run { "dry run: " } else { "" }
    );
    Ok(())
}
