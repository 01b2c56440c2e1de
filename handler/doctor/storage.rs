//! Table Storage: reachable, the portal's tables there or creatable, and the credential allowed
//! to write, read and delete rows (a probe row, removed again). Then the policies are read, for
//! the checks of what they name.

use super::{Doctor, Finding};
use crate::adapters::tables::{Row, StoreError, TableName, TableStore};
use crate::settings::{GraphCredential, StorageAuth, StorageSettings};

const CHECK: &str = "table-storage";

pub async fn tables(d: &mut Doctor) -> Vec<Finding> {
    let Some(settings) = d.storage.clone() else {
        return vec![Finding::not_checked(
            CHECK,
            "the storage settings do not parse (see settings)",
        )];
    };
    let token = match settings.auth {
        StorageAuth::SharedKey(_) => None,
        StorageAuth::ManagedIdentity => {
            let Some(graph) = &d.graph_settings else {
                return vec![Finding::not_checked(
                    CHECK,
                    "keyless table access uses the Graph credential, whose settings do not parse (see settings)",
                )];
            };
            match crate::adapters::identity::credential(&graph.credential) {
                Ok(c) => Some(c),
                Err(e) => {
                    return vec![Finding::fail(
                        CHECK,
                        format!("no credential for keyless table access: {e}"),
                        "check GRAPH_CREDENTIAL and its settings (docs/settings.md)",
                    )]
                }
            }
        }
    };
    let store = match TableStore::new(&settings, crate::adapters::http_client(), token) {
        Ok(s) => s,
        Err(e) => return vec![Finding::fail(CHECK, e, "check the storage settings")],
    };
    let endpoint = settings
        .table_endpoint
        .as_str()
        .trim_end_matches('/')
        .to_string();
    if let Err((table, e)) = store.create_tables().await {
        return vec![refused(
            d,
            &settings,
            &endpoint,
            &format!("creating table {table}"),
            &e,
        )];
    }
    if let Err((step, e)) = probe_row(&store).await {
        return vec![refused(d, &settings, &endpoint, step, &e)];
    }
    let mut findings = vec![Finding::ok(
        CHECK,
        format!(
            "{endpoint}: the portal's tables ({}*) exist and rows can be written, read and deleted",
            settings.table_prefix
        ),
    )];
    match crate::store::policies::all(&store).await {
        Ok(policies) => {
            if policies.is_empty() {
                findings.push(Finding::warn(
                    CHECK,
                    "no domain policy yet: every sign-up gets the same polite answer and nobody is invited",
                    "add one: handler policy add --domain partner.example --action auto (docs/deploy.md, the first policy)",
                ));
            }
            d.policies = Some(policies);
        }
        Err(e) => findings.push(Finding::fail(
            CHECK,
            format!("the policies cannot be read: {e}"),
            "fix or remove that row (handler policy export, edit, handler policy import --prune)",
        )),
    }
    d.store = Some(store);
    findings
}

/// Writes, reads back and deletes one row in the jobs table, which holds only the portal's own
/// bookkeeping; a unique key keeps concurrent doctors apart.
async fn probe_row(store: &TableStore) -> Result<(), (&'static str, StoreError)> {
    let key = format!("probe-{}", uuid::Uuid::new_v4().simple());
    let mut row = Row::new("doctor", key.as_str());
    row.set("Purpose", "handler doctor checks that rows can be written");
    store
        .insert(TableName::Jobs, &row)
        .await
        .map_err(|e| ("writing a row", e))?;
    match store.get(TableName::Jobs, "doctor", &key).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(("reading the row back", StoreError::NotFound)),
        Err(e) => return Err(("reading a row", e)),
    }
    store
        .delete(TableName::Jobs, "doctor", &key, None)
        .await
        .map_err(|e| ("deleting a row", e))
}

/// What a storage failure means, and whose role or which setting fixes it.
fn refused(
    d: &Doctor,
    settings: &StorageSettings,
    endpoint: &str,
    step: &str,
    e: &StoreError,
) -> Finding {
    let text = e.to_string();
    let who = match d.graph_settings.as_ref().map(|g| &g.credential) {
        Some(GraphCredential::AzureCli) => "your own sign-in (az login)",
        Some(GraphCredential::ClientSecret { .. }) => "the app registration of GRAPH_CLIENT_ID",
        _ => "the Function App's managed identity",
    };
    let (message, fix) = match (e, &settings.auth) {
        (StoreError::Unavailable(_), _) => (
            format!("{endpoint} cannot be reached ({step}): {text}"),
            "check PORTAL_TABLE_ENDPOINT (or the connection string) and that this machine's network reaches the storage account".to_string(),
        ),
        (StoreError::Rejected(why), StorageAuth::ManagedIdentity) if why.starts_with("403") => (
            format!("{endpoint} refused {step} to {who}: {text}"),
            format!(
                "give {who} the Storage Table Data Contributor role on the storage account (az role assignment create --role \"Storage Table Data Contributor\" --assignee <object id> --scope <account id>); new roles take a few minutes"
            ),
        ),
        (StoreError::Rejected(why), StorageAuth::SharedKey(_)) if why.starts_with("403") => (
            format!("{endpoint} refused the account key ({step}): {text}"),
            "check AccountName and AccountKey in PORTAL_STORAGE (or AzureWebJobsStorage); in Azure use PORTAL_TABLE_ENDPOINT with the managed identity".to_string(),
        ),
        _ => (
            format!("{endpoint} failed {step}: {text}"),
            "check the storage settings and the account (docs/deploy.md)".to_string(),
        ),
    };
    Finding::fail(CHECK, message, fix)
}
