//! `handler doctor`: checks everything the portal depends on and prints a checklist.
//!
//! It runs with the same settings as the Function App, anywhere: in the app's own environment,
//! on an admin's machine with `GRAPH_CREDENTIAL=azure_cli` (what the azd postdeploy hook does,
//! with the app's settings from `--app-settings` and the app's identity from `--identity`), or
//! against the local stand-ins. Each line is `ok`, `warn` or `fail`, names the check, says what
//! was found and, when something is wrong, the fix. `fail` means the portal cannot work (sign-ups,
//! invitations, mail or the cleanup break); the command then exits non-zero. `warn` is worth
//! reading but does not block.
//!
//! The checks are a list ([`checks`]) run in order over one [`Doctor`], which carries what the
//! earlier checks established (the parsed settings, the table store and the policies in it, a
//! Graph client and its token's claims) so later checks build on it instead of redoing it, and
//! say "not checked" when what they build on failed. A new check is a function and a line in
//! that list.

mod app_settings;
mod directory;
mod mail;
mod settings;
mod sign_in;
mod storage;

use std::fmt;

use futures::future::BoxFuture;

use crate::adapters::graph::{GraphClient, TokenClaims};
use crate::adapters::tables::TableStore;
use crate::core::policy::Policy;
use crate::settings::{
    CleanupSettings, Environment, GraphSettings, MailSettings, PortalSettings, StorageSettings,
};

pub use app_settings::with_app_settings;

/// How a finding bears on the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    /// Worth fixing or knowing; the portal works.
    Warn,
    /// The portal (or a part of it) cannot work until this is fixed.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    /// The check's name, stable for scripts and tests (`graph-permissions`).
    pub check: &'static str,
    /// What was found, without a final period.
    pub message: String,
    /// What to do about it, when something is wrong.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            status: Status::Ok,
            check,
            message: message.into(),
            fix: None,
        }
    }

    pub fn warn(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Warn,
            check,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Fail,
            check,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    /// A check that could not run because one it builds on failed.
    pub fn not_checked(check: &'static str, because: &str) -> Finding {
        Finding::warn(
            check,
            format!("not checked: {because}"),
            "fix the failures above, then run the doctor again",
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4}  {:<18}  {}",
            self.status, self.check, self.message
        )?;
        if let Some(fix) = &self.fix {
            write!(f, ". Fix: {fix}")?;
        }
        Ok(())
    }
}

/// What the checks share: the settings and what earlier checks established.
pub struct Doctor {
    pub env: Environment,
    /// Object id of the Function App's managed identity (`--identity`): whose Graph
    /// permissions to check when the doctor's own token is a person's.
    pub identity: Option<String>,
    pub storage: Option<StorageSettings>,
    pub graph_settings: Option<GraphSettings>,
    pub mail: Option<MailSettings>,
    pub portal: Option<PortalSettings>,
    pub cleanup: Option<CleanupSettings>,
    /// The table store, once the storage check reached it.
    pub store: Option<TableStore>,
    /// The domain policies, once read from the store.
    pub policies: Option<Vec<Policy>>,
    /// A Graph client, once the settings allow one.
    pub graph: Option<GraphClient>,
    /// The claims of the Graph token, once one was obtained.
    pub claims: Option<TokenClaims>,
}

impl Doctor {
    pub fn new(env: Environment, identity: Option<String>) -> Doctor {
        Doctor {
            env,
            identity,
            storage: None,
            graph_settings: None,
            mail: None,
            portal: None,
            cleanup: None,
            store: None,
            policies: None,
            graph: None,
            claims: None,
        }
    }

    /// The Graph client and its token's claims, or why Graph checks cannot run.
    pub fn graph(&self) -> Result<(&GraphClient, &TokenClaims), &'static str> {
        match (&self.graph, &self.claims) {
            (Some(graph), Some(claims)) => Ok((graph, claims)),
            _ => Err("no Graph token (see graph-token)"),
        }
    }

    /// The policies, or why checks of what they name cannot run.
    pub fn policies(&self) -> Result<&[Policy], &'static str> {
        self.policies
            .as_deref()
            .ok_or("the policies could not be read (see table-storage)")
    }

    /// Whether this runs inside the Function App (the platform sets WEBSITE_SITE_NAME).
    pub fn in_azure(&self) -> bool {
        self.env.raw("WEBSITE_SITE_NAME").is_some()
    }

    /// The object id whose Graph permissions are meant: `--identity`, else the token's own
    /// when it is the app's.
    pub fn identity_object_id(&self) -> Option<String> {
        self.identity.clone().or_else(|| {
            self.claims
                .as_ref()
                .filter(|c| c.is_app_only())
                .and_then(|c| c.oid.clone())
        })
    }
}

type CheckFn = for<'a> fn(&'a mut Doctor) -> BoxFuture<'a, Vec<Finding>>;

/// One check: its name and what it does.
pub struct Check {
    pub name: &'static str,
    pub run: CheckFn,
}

/// Every check, in the order they run (later ones build on earlier ones).
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "settings",
            run: |d| Box::pin(settings::parse(d)),
        },
        Check {
            name: "signing-keys",
            run: |d| Box::pin(settings::signing_keys(d)),
        },
        Check {
            name: "public-url",
            run: |d| Box::pin(settings::public_url(d)),
        },
        Check {
            name: "table-storage",
            run: |d| Box::pin(storage::tables(d)),
        },
        Check {
            name: "graph-token",
            run: |d| Box::pin(directory::token(d)),
        },
        Check {
            name: "graph-permissions",
            run: |d| Box::pin(directory::permissions(d)),
        },
        Check {
            name: "sign-in-activity",
            run: |d| Box::pin(directory::sign_in_activity(d)),
        },
        Check {
            name: "guest-invitations",
            run: |d| Box::pin(directory::guest_settings(d)),
        },
        Check {
            name: "policy-groups",
            run: |d| Box::pin(directory::policy_groups(d)),
        },
        Check {
            name: "policy-app-roles",
            run: |d| Box::pin(directory::policy_app_roles(d)),
        },
        Check {
            name: "approvers",
            run: |d| Box::pin(directory::approvers(d)),
        },
        Check {
            name: "sponsors",
            run: |d| Box::pin(directory::sponsors(d)),
        },
        Check {
            name: "exclusion-group",
            run: |d| Box::pin(directory::exclusion_group(d)),
        },
        Check {
            name: "partner-sign-in",
            run: |d| Box::pin(sign_in::sign_in(d)),
        },
        Check {
            name: "smtp",
            run: |d| Box::pin(mail::smtp(d)),
        },
    ]
}

/// Runs every check and returns the checklist; `print` sees each finding as it is made.
pub async fn run(doctor: &mut Doctor, mut print: impl FnMut(&Finding)) -> Vec<Finding> {
    let mut all = Vec::new();
    for check in checks() {
        for finding in (check.run)(doctor).await {
            print(&finding);
            all.push(finding);
        }
    }
    all
}

/// The closing line: counts, and whether the portal can work.
pub fn summary(findings: &[Finding]) -> String {
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    let (ok, warn, fail) = (count(Status::Ok), count(Status::Warn), count(Status::Fail));
    let verdict = if fail > 0 {
        "the portal cannot work until every 'fail' is fixed"
    } else if warn > 0 {
        "nothing blocks the portal; read the warnings"
    } else {
        "everything the portal depends on is in place"
    };
    format!("doctor: {ok} ok, {warn} warn, {fail} fail: {verdict}")
}
