//! Sending what the outbox holds (see `core::outbox` for the why).
//!
//! - [`record`]: a state change and the mails it causes, as one entity-group transaction.
//! - [`Outbox::send_soon`]: the instance that made the change sends right after it answered
//!   (a spawned task: the answer never waits for SMTP); [`Outbox::send_now`] for the timer and
//!   the command line, which wait for their mail before they end.
//! - [`Outbox::sweep`]: the timer's pass over mail that is due: pending after a failure, or
//!   left "sending" by an instance that died. Each mail is taken by compare-and-swap on its
//!   row, so two sweeps (or a sweep and the original sender) never both send it.
//!
//! Nothing the outbox logs names a person: mail id, kind, state and attempts only; error
//! texts from the mail server have their addresses masked before they are logged or stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use time::OffsetDateTime;

use crate::adapters::mail::{Mailer, OutgoingMail};
use crate::adapters::tables::{StoreError, TableName, TableStore, Write};
use crate::core::outbox::{sending_lease, Attempt, Delivery, Letter, MailState};
use crate::core::token::{new_nonce, SigningKeys, TokenPurpose};
use crate::store::outbox::{self as rows, StoredMail};

/// How many mails one sweep sends at once: enough to drain a backlog quickly, few enough
/// not to look like a flood to the relay.
const SWEEP_CONCURRENCY: usize = 8;

/// Mails just recorded, ready for their first attempt.
#[derive(Debug, Clone)]
pub struct Recorded(Vec<StoredMail>);

impl Recorded {
    pub fn none() -> Self {
        Recorded(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: Recorded) {
        self.0.extend(other.0);
    }
}

/// Writes `writes` (a state change in one partition) and `letters` as one transaction.
/// Returns the new ETags of `writes`, in order, and the mails to send. Nothing is written if
/// any write fails (a lost compare-and-swap answers [`StoreError::Changed`]).
pub async fn record(
    outbox: &Outbox,
    table: TableName,
    partition_key: &str,
    mut writes: Vec<Write>,
    letters: Vec<Letter>,
    now: OffsetDateTime,
) -> Result<(Vec<String>, Recorded), StoreError> {
    let changes = writes.len();
    // Owned by this instance, which sends at once; the sweep takes it only if this instance
    // dies first.
    let delivery = Delivery::new(now, OffsetDateTime::now_utc(), outbox.lease);
    writes.extend(
        letters
            .iter()
            .map(|l| rows::insert(table, partition_key, l, &delivery, &outbox.keys)),
    );
    let mut etags = outbox.store.transact(table, partition_key, writes).await?;
    let mail_etags = etags.split_off(changes);
    let recorded = letters
        .into_iter()
        .zip(mail_etags)
        .map(|(letter, etag)| StoredMail {
            table,
            partition_key: partition_key.to_string(),
            letter,
            delivery: delivery.clone(),
            etag,
            sealed: true,
            seal_problem: None,
        })
        .collect();
    Ok((etags, Recorded(recorded)))
}

/// What one sweep did, for the timer's summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub due: u32,
    pub delivered: u32,
    pub deferred: u32,
    pub dead: u32,
    /// Taken by another sender between reading and taking.
    pub taken_elsewhere: u32,
    /// Rows that were not mails of ours (unreadable, or their seal does not verify).
    pub refused: u32,
}

impl SweepReport {
    pub fn summary(&self, dry_run: bool) -> String {
        if dry_run {
            return format!("mail due {}", self.due);
        }
        let mut s = format!(
            "mail due {}: delivered {}, deferred {}, dead {}",
            self.due, self.delivered, self.deferred, self.dead
        );
        if self.taken_elsewhere > 0 {
            s.push_str(&format!(
                ", sent by another instance {}",
                self.taken_elsewhere
            ));
        }
        if self.refused > 0 {
            s.push_str(&format!(", not ours and refused {}", self.refused));
        }
        s
    }
}

/// The portal's sender: owns the mail server connection and writes each mail's delivery.
#[derive(Clone)]
pub struct Outbox {
    store: TableStore,
    mailer: Mailer,
    keys: SigningKeys,
    public_url: String,
    /// The right-hand side of Message-IDs: the portal's own host name.
    message_domain: String,
    /// How long a sender owns a mail it is sending (real time).
    lease: time::Duration,
    in_flight: Arc<InFlight>,
}

#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Outbox {
    pub fn new(
        store: TableStore,
        mailer: Mailer,
        keys: SigningKeys,
        public_url: &url::Url,
        smtp_timeout: std::time::Duration,
    ) -> Self {
        Outbox {
            store,
            mailer,
            keys,
            public_url: public_url.as_str().trim_end_matches('/').to_string(),
            message_domain: public_url
                .host_str()
                .unwrap_or("b2b-signup.invalid")
                .to_string(),
            lease: sending_lease(smtp_timeout),
            in_flight: Arc::default(),
        }
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// Sends in the background, after the caller has answered. A failure here loses nothing:
    /// the mail stays in the outbox for the sweep.
    pub fn send_soon(&self, recorded: Recorded) {
        if recorded.is_empty() {
            return;
        }
        self.in_flight.count.fetch_add(1, Ordering::SeqCst);
        let outbox = self.clone();
        tokio::spawn(async move {
            outbox.send_now(recorded).await;
            if outbox.in_flight.count.fetch_sub(1, Ordering::SeqCst) == 1 {
                outbox.in_flight.idle.notify_waiters();
            }
        });
    }

    /// Sends and waits. Returns how many were delivered.
    pub async fn send_now(&self, recorded: Recorded) -> usize {
        let mut delivered = 0;
        for mail in recorded.0 {
            // On the clock of the change that recorded it (the timer's run acts on the host's
            // time): a receipt then starts the cause's next clock on the same one.
            let now = mail.delivery.created_at;
            if let Ok(MailState::Delivered) = self.deliver(mail, now).await {
                delivered += 1;
            }
        }
        delivered
    }

    /// Waits until every background send has finished (the command line, before it exits).
    pub async fn idle(&self) {
        loop {
            let notified = self.in_flight.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The link a mail carries, signed now.
    fn link(&self, mail: &StoredMail) -> Option<String> {
        let recipe = mail.letter.link.as_ref()?;
        let token = self.keys.sign(&recipe.claims(new_nonce()));
        let path = match recipe.purpose {
            TokenPurpose::Verify => "/api/signup/verify",
            TokenPurpose::Decide => "/api/approve",
            TokenPurpose::Review => "/api/approve/review",
        };
        let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        Some(format!("{}{path}?token={token}", self.public_url))
    }

    /// One attempt at one mail the caller holds (just recorded, or taken by a sweep), and its
    /// result written back with compare-and-swap.
    async fn deliver(
        &self,
        mut mail: StoredMail,
        now: OffsetDateTime,
    ) -> Result<MailState, StoreError> {
        let id = mail.letter.id.clone();
        let kind = mail.letter.kind.as_str();
        if !mail.sealed {
            let why = mail.seal_problem.clone().unwrap_or_default();
            tracing::warn!(mail_id = %id, kind, problem = %why, "mail refused: the portal did not write it (its seal does not verify)");
            mail.delivery.reject(
                &format!("not sent: the row's seal does not verify ({why}): it was not written by this portal, or was changed"),
                now,
            );
            rows::save_delivery(&self.store, &mail).await?;
            return Ok(MailState::Dead);
        }
        let link = self.link(&mail);
        let (subject, text, html) = mail.letter.filled(link.as_deref());
        let sent = self
            .mailer
            .send(&OutgoingMail {
                to: mail.letter.to.clone(),
                subject,
                text,
                html,
                message_id: Some(format!("<{}@{}>", mail.letter.id, self.message_domain)),
            })
            .await;
        let attempt = match sent {
            Ok(()) => Attempt::Accepted,
            // The error's text has its addresses masked already (see `MailError`).
            Err(e) if e.is_retryable() => Attempt::Deferred(e.to_string()),
            Err(e) => Attempt::Refused(e.to_string()),
        };
        if attempt == Attempt::Accepted {
            // The receipt first: should it fail, the mail stays "sending", and the sweep sends
            // it again (the same Message-ID) and writes the receipt then. A cause that never
            // learns of its mail would wait for ever.
            if let Some(row_key) = &mail.letter.receipt {
                let mut row = crate::adapters::tables::Row::new(&mail.partition_key, row_key);
                row.set(rows::RECEIPT_ID, mail.letter.id.clone())
                    .set(rows::RECEIPT_AT, crate::adapters::tables::format_time(now));
                match self.store.merge(mail.table, &row, "*").await {
                    Ok(_) | Err(StoreError::Changed | StoreError::NotFound) => {}
                    Err(e) => {
                        tracing::warn!(mail_id = %id, kind, error = %e, "could not write the mail's receipt; it is sent again");
                        return Err(e);
                    }
                }
            }
        }
        mail.delivery.record(attempt, now);
        let state = mail.delivery.state;
        let attempts = mail.delivery.attempts;
        match state {
            MailState::Delivered => tracing::info!(mail_id = %id, kind, attempts, "mail delivered"),
            MailState::Pending => tracing::warn!(
                mail_id = %id, kind, attempts,
                error = mail.delivery.last_error.as_deref().unwrap_or(""),
                "mail deferred; the timer's sweep tries again"
            ),
            _ => tracing::warn!(
                mail_id = %id, kind, attempts,
                error = mail.delivery.last_error.as_deref().unwrap_or(""),
                "mail dead: see `handler mail list --failed`"
            ),
        }
        match rows::save_delivery(&self.store, &mail).await {
            Ok(_) => Ok(state),
            // Our lease ran out and another sender took it over; what it writes stands.
            Err(StoreError::Changed) => {
                tracing::warn!(mail_id = %id, kind, "mail's row changed while it was sent");
                Ok(state)
            }
            Err(e) => {
                tracing::warn!(mail_id = %id, kind, error = %e, "could not record the mail's delivery");
                Err(e)
            }
        }
    }

    /// The timer's pass over due mail in `tables`. `dry_run` only counts.
    pub async fn sweep(
        &self,
        tables: &[TableName],
        now: OffsetDateTime,
        dry_run: bool,
    ) -> Result<SweepReport, StoreError> {
        let (due, unreadable) = rows::due(
            &self.store,
            &self.keys,
            tables,
            now,
            OffsetDateTime::now_utc(),
        )
        .await?;
        let mut report = SweepReport {
            due: (due.len() + unreadable.len()) as u32,
            ..SweepReport::default()
        };
        if dry_run {
            return Ok(report);
        }
        for u in &unreadable {
            tracing::warn!(table = ?u.table, row_key = %u.row_key, problem = %u.problem, "mail row refused: not a readable mail");
            rows::bury(&self.store, u, now)
                .await
                .or_else(ignore_changed)?;
            report.refused += 1;
        }
        let results: Vec<Result<Taken, StoreError>> = futures::stream::iter(due)
            .map(|mail| self.take_and_deliver(mail, now))
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        for r in results {
            match r? {
                Taken::Elsewhere => report.taken_elsewhere += 1,
                Taken::NotOurs => report.refused += 1,
                Taken::Sent(MailState::Delivered) => report.delivered += 1,
                Taken::Sent(MailState::Pending | MailState::Sending) => report.deferred += 1,
                Taken::Sent(MailState::Dead) => report.dead += 1,
            }
        }
        Ok(report)
    }

    async fn take_and_deliver(
        &self,
        mut mail: StoredMail,
        now: OffsetDateTime,
    ) -> Result<Taken, StoreError> {
        if !mail.sealed {
            self.deliver(mail, now).await.or_else(|e| match e {
                StoreError::Changed => Ok(MailState::Dead),
                e => Err(e),
            })?;
            return Ok(Taken::NotOurs);
        }
        mail.delivery.take(OffsetDateTime::now_utc(), self.lease);
        match rows::save_delivery(&self.store, &mail).await {
            Ok(etag) => mail.etag = etag,
            Err(StoreError::Changed) => return Ok(Taken::Elsewhere),
            Err(e) => return Err(e),
        }
        Ok(Taken::Sent(self.deliver(mail, now).await?))
    }

    /// Dead mail again, by an admin's hand: due now with a fresh set of attempts, sent at once.
    pub async fn retry(
        &self,
        mut mail: StoredMail,
        now: OffsetDateTime,
    ) -> Result<MailState, StoreError> {
        if !mail.sealed {
            return Ok(MailState::Dead);
        }
        if !mail.delivery.retry(now) {
            return Ok(mail.delivery.state);
        }
        mail.delivery.take(OffsetDateTime::now_utc(), self.lease);
        mail.etag = rows::save_delivery(&self.store, &mail).await?;
        self.deliver(mail, now).await
    }
}

enum Taken {
    Elsewhere,
    NotOurs,
    Sent(MailState),
}

fn ignore_changed(e: StoreError) -> Result<(), StoreError> {
    match e {
        StoreError::Changed => Ok(()),
        e => Err(e),
    }
}
