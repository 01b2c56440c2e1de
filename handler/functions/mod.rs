//! The three Azure Functions and what they share.
//!
//! [`Portal`] holds the settings and the adapters. It is built after the port is bound and
//! does no I/O when built: tables are created, tokens fetched and SMTP connections opened on
//! first use, so the host's readiness probe is answered within milliseconds of start.

pub mod access;
pub mod approvals;
pub mod approve;
pub mod cleanup;
pub mod outbox;
pub mod review;
pub mod reviews;
pub mod sign_in;
pub mod signup;
pub mod web;

use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::adapters::graph::GraphClient;
use crate::adapters::mail::Mailer;
use crate::adapters::tables::{StoreError, TableStore};
use crate::core::policy::Policy;
use crate::settings::{Settings, StorageAuth};

pub struct Portal {
    pub settings: Settings,
    pub store: TableStore,
    pub graph: GraphClient,
    pub mailer: Mailer,
    /// The identity platform partners sign in with; `None` when `SIGN_IN_CLIENT_ID` is unset.
    pub sign_in: Option<crate::adapters::sign_in::SignInClient>,
    /// Every mail goes through it: recorded with its cause, sent after the answer.
    pub outbox: outbox::Outbox,
    policy_cache: Mutex<Option<(Instant, Arc<Vec<Policy>>)>>,
}

/// The portal as the server holds it: settings checked at start, adapters built on first use
/// (or by the warm-up once the first readiness probe is answered), so nothing delays the
/// host's readiness probe — not even TLS configuration.
pub struct LazyPortal {
    settings: Settings,
    portal: tokio::sync::OnceCell<Arc<Portal>>,
    probed: tokio::sync::Notify,
}

impl LazyPortal {
    pub fn new(settings: Settings) -> Self {
        LazyPortal {
            settings,
            portal: tokio::sync::OnceCell::new(),
            probed: tokio::sync::Notify::new(),
        }
    }

    /// The host's readiness probe was answered (see [`LazyPortal::warm`]).
    pub fn probed(&self) {
        self.probed.notify_one();
    }

    /// Builds the adapters once the host's first readiness probe has its answer, so that the
    /// first invocation finds them ready but the probe never waits for them: building them
    /// takes a core for a while, and the machine may have only two.
    pub async fn warm(&self) -> Result<Arc<Portal>, String> {
        self.probed.notified().await;
        self.get().await
    }

    pub async fn get(&self) -> Result<Arc<Portal>, String> {
        self.portal
            .get_or_try_init(|| async { Portal::new(self.settings.clone()).map(Arc::new) })
            .await
            .cloned()
    }
}

impl Portal {
    pub fn new(settings: Settings) -> Result<Self, String> {
        let http = crate::adapters::http_client();
        let credential = crate::adapters::identity::credential(&settings.graph.credential)?;
        let table_token = matches!(settings.storage.auth, StorageAuth::ManagedIdentity)
            .then(|| credential.clone());
        let store = TableStore::new(&settings.storage, http.clone(), table_token)?;
        let sign_in = settings
            .sign_in
            .as_ref()
            .map(|s| {
                crate::adapters::sign_in::SignInClient::new(
                    http.clone(),
                    s,
                    &settings.portal.public_url,
                )
            })
            .transpose()?;
        let graph = GraphClient::new(
            http,
            &settings.graph.base_url,
            &settings.graph.scope,
            credential,
        );
        let mailer = Mailer::new(&settings.mail)?;
        let outbox = outbox::Outbox::new(
            store.clone(),
            mailer.clone(),
            settings.portal.signing_keys.clone(),
            &settings.portal.public_url,
            settings.mail.timeout,
        );
        Ok(Portal {
            settings,
            store,
            graph,
            mailer,
            sign_in,
            outbox,
            policy_cache: Mutex::new(None),
        })
    }

    /// The one clock of the portal's HTTP paths. (The timer takes its time from the host's
    /// invocation, so tests and a replayed invocation see a consistent "now".)
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// All policies, cached for `PORTAL_POLICY_CACHE_SECONDS` so a burst of sign-ups costs one
    /// table query, not one each. Changes by the CLI take effect within that time.
    pub async fn policies(&self) -> Result<Arc<Vec<Policy>>, StoreError> {
        let mut cache = self.policy_cache.lock().await;
        if let Some((at, policies)) = cache.as_ref() {
            if at.elapsed() < self.settings.portal.policy_cache {
                return Ok(policies.clone());
            }
        }
        let policies = Arc::new(crate::store::policies::all(&self.store).await?);
        *cache = Some((Instant::now(), policies.clone()));
        Ok(policies)
    }
}
