//! Sign-ins in flight: what the form held when the partner chose to sign in, the values that
//! bind the answer to that browser (`state`, the cookie's hash, `nonce`, the PKCE verifier),
//! and the authorization codes already redeemed.
//!
//! A started sign-in is one row keyed by its random `state`, written when the partner leaves
//! for the sign-in page and *taken* when they come back: deleted by an ETag-conditional
//! delete in a transaction, which fails for the second of two callbacks with the same `state`
//! (a replay, or a double click), so each sign-in completes at most once. The row is sealed
//! with the portal's key: someone who can write the table cannot plant a sign-in (a nonce, a
//! verifier, an address) the portal would act on. Each code is also recorded by insert before
//! it is redeemed, so a code that comes back is refused here even before the identity
//! platform refuses it. Rows carry `ExpiresAt`; the timer's purge deletes those past it.

use time::{Duration, OffsetDateTime};

use super::requests::{applicant, set_applicant};
use super::{key_hash, Row, StoreError, TableName, TableStore};
use crate::adapters::tables::{format_time, odata_cmp, Write};
use crate::core::request::Applicant;
use crate::core::token::SigningKeys;

const PENDING_ROW: &str = "pending";
const USED_ROW: &str = "used";
const SEAL_CONTEXT: &str = "sign-in";
/// How long a partner may take on the sign-in page.
pub const SIGN_IN_MINUTES: i64 = 15;
/// How long a redeemed code is remembered (the identity platform's codes live 10 minutes).
const CODE_MEMORY: Duration = Duration::hours(1);

/// A sign-in between the form and the callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSignIn {
    pub state: String,
    /// SHA-256 (hex) of the value in the browser's cookie; the cookie itself is never stored.
    pub binding_hash: String,
    pub nonce: String,
    pub code_verifier: String,
    pub applicant: Applicant,
    /// The job title typed, where the form asks for one.
    pub job_title: Option<String>,
    pub expires_at: OffsetDateTime,
}

fn signed_content(p: &PendingSignIn) -> String {
    let a = &p.applicant;
    let mut content = vec![
        p.state.as_str(),
        &p.binding_hash,
        &p.nonce,
        &p.code_verifier,
        a.email.as_str(),
        &a.first_name,
        &a.last_name,
        &a.organisation,
        a.justification.as_deref().unwrap_or(""),
        a.language.as_str(),
    ];
    let expires = format_time(p.expires_at);
    content.push(&expires);
    // Only when there is one: what a seal from before the job title covers is unchanged.
    if let Some(title) = &p.job_title {
        content.push(title);
    }
    serde_json::to_string(&content).expect("strings serialize")
}

fn seal(keys: &SigningKeys, p: &PendingSignIn) -> String {
    keys.sign_record(SEAL_CONTEXT, &signed_content(p))
}

fn to_row(keys: &SigningKeys, p: &PendingSignIn) -> Row {
    let mut row = Row::new(&p.state, PENDING_ROW);
    set_applicant(&mut row, &p.applicant);
    row.set("Binding", p.binding_hash.clone())
        .set("Nonce", p.nonce.clone())
        .set("CodeVerifier", p.code_verifier.clone())
        .set("ExpiresAt", format_time(p.expires_at))
        .set_opt("JobTitle", p.job_title.clone())
        .set("Seal", seal(keys, p));
    row
}

fn from_row(row: &Row) -> Result<PendingSignIn, String> {
    Ok(PendingSignIn {
        state: row.partition_key.clone(),
        binding_hash: row.str("Binding")?.to_string(),
        nonce: row.str("Nonce")?.to_string(),
        code_verifier: row.str("CodeVerifier")?.to_string(),
        applicant: applicant(row)?,
        job_title: row.opt_str("JobTitle")?.map(str::to_string),
        expires_at: row
            .time("ExpiresAt")?
            .ok_or("property ExpiresAt is missing")?,
    })
}

/// Records a sign-in the partner is leaving for.
pub async fn begin(
    store: &TableStore,
    keys: &SigningKeys,
    pending: &PendingSignIn,
) -> Result<(), StoreError> {
    store
        .insert(TableName::SignIns, &to_row(keys, pending))
        .await
        .map(|_| ())
}

/// Takes the sign-in started with `state`, once: `None` when there is none (never started,
/// already taken, or a row whose seal does not verify, which is also deleted).
pub async fn take(
    store: &TableStore,
    keys: &SigningKeys,
    state: &str,
) -> Result<Option<PendingSignIn>, StoreError> {
    let Some(row) = store.get(TableName::SignIns, state, PENDING_ROW).await? else {
        return Ok(None);
    };
    let etag = row.etag.clone().unwrap_or_default();
    let taken = store
        .transact(
            TableName::SignIns,
            state,
            vec![Write::Delete {
                row_key: PENDING_ROW.into(),
                etag,
            }],
        )
        .await;
    match taken {
        Ok(_) => {}
        // Another callback with this state took it first.
        Err(StoreError::Changed) => return Ok(None),
        Err(e) => return Err(e),
    }
    let Ok(pending) = from_row(&row) else {
        tracing::warn!("a started sign-in's row does not parse; refused");
        return Ok(None);
    };
    if let Err(why) = keys.verify_record(
        SEAL_CONTEXT,
        &signed_content(&pending),
        row.opt_str("Seal").ok().flatten(),
    ) {
        tracing::warn!(problem = %why, "a started sign-in's row is not sealed by this portal; refused");
        return Ok(None);
    }
    Ok(Some(pending))
}

/// Records that `code` is being redeemed: `true` the first time, `false` for a code seen
/// before.
pub async fn first_use_of_code(
    store: &TableStore,
    code: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let mut row = Row::new(format!("code-{}", key_hash(code)), USED_ROW);
    row.set("ExpiresAt", format_time(now + CODE_MEMORY));
    match store.insert(TableName::SignIns, &row).await {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes sign-ins nobody came back for and codes past remembering. Returns how many went.
pub async fn purge(store: &TableStore, now: OffsetDateTime) -> Result<u32, StoreError> {
    let rows = store
        .query(
            TableName::SignIns,
            Some(odata_cmp("ExpiresAt", "lt", &format_time(now))),
        )
        .await?;
    store.delete_rows(TableName::SignIns, &rows).await
}
