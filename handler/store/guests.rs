//! Guests this portal created: the cleanup's scope by default, and the operator's view of
//! who came in through which policy and until when.

use time::OffsetDateTime;

use super::{Row, StoreError, TableName, TableStore};
use crate::adapters::tables::{format_time, odata_cmp};
use crate::core::review::{Decider, Decision, Open, Reviews};

/// Guests are spread over 256 partitions by the first two characters of their Graph user id
/// (a GUID, so evenly). A partition is Table Storage's unit of throughput (about 2,000
/// entities/s): one partition for all would queue every guest update of every instance on one
/// partition server. Within a partition, the cleanup's updates of guests with neighbouring ids
/// travel together as one entity-group transaction (it acts in id order).
pub fn partition_of(user_id: &str) -> String {
    user_id
        .chars()
        .take(2)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Where a guest is in its life after the invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestState {
    /// Invited; the invitation may or may not have been redeemed.
    Active,
    /// Told it will be removed (unredeemed reminder or removal warning).
    Warned,
    /// `accountEnabled=false`, waiting out the grace period.
    Disabled,
    /// Soft-deleted in the directory (restorable for 30 days).
    Deleted,
}

impl GuestState {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestState::Active => "active",
            GuestState::Warned => "warned",
            GuestState::Disabled => "disabled",
            GuestState::Deleted => "deleted",
        }
    }
}

impl std::str::FromStr for GuestState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(GuestState::Active),
            "warned" => Ok(GuestState::Warned),
            "disabled" => Ok(GuestState::Disabled),
            "deleted" => Ok(GuestState::Deleted),
            other => Err(format!("unknown guest state {other:?}")),
        }
    }
}

/// Who made the guest: only the portal's own invitations are in the cleanup's default scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestOrigin {
    /// The portal invited it (and, unless the cleanup finds the directory user older than
    /// [`Guest::invite_decided_at`], created it).
    Invited,
    /// The portal's invitation was answered with a user that existed before (an admin had
    /// invited it): recorded by the cleanup when it finds so.
    PreExisting,
    /// The cleanup made this record for a guest outside the portal's records, while
    /// `CLEANUP_SCOPE=all_guests` was on.
    Cleanup,
}

impl GuestOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            GuestOrigin::Invited => "invited",
            GuestOrigin::PreExisting => "pre_existing",
            GuestOrigin::Cleanup => "cleanup",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "invited" => Ok(GuestOrigin::Invited),
            "pre_existing" => Ok(GuestOrigin::PreExisting),
            "cleanup" => Ok(GuestOrigin::Cleanup),
            other => Err(format!("unknown guest origin {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub user_id: String,
    pub email: String,
    pub request_id: Option<String>,
    pub policy_key: Option<String>,
    pub invited_at: OffsetDateTime,
    pub access_ends_at: Option<OffsetDateTime>,
    pub redeem_url: Option<String>,
    pub language: String,
    pub first_name: String,
    /// The requester's last name and organisation as typed, for the sponsors' mails and
    /// pages ("keep Ada Lovelace from Partner AB?"). Empty on records older than these.
    pub last_name: String,
    pub organisation: String,
    pub state: GuestState,
    pub state_changed_at: OffsetDateTime,
    /// Why the cleanup warned or disabled it (`unredeemed`, `access_period`, `inactive`).
    pub removal_reason: Option<String>,
    pub reminder_sent_at: Option<OffsetDateTime>,
    pub origin: GuestOrigin,
    /// When the portal decided to invite (the request's approval): a directory user created
    /// before then was not created by the portal's invitation. `None` on records older than
    /// this property.
    pub invite_decided_at: Option<OffsetDateTime>,
    /// The mail that told the guest of its current stage (a redeem reminder or a removal
    /// warning), recorded with the stage in one transaction.
    pub notice_mail_id: Option<String>,
    /// The last of the guest's mails the mail server accepted, and when: written by the outbox
    /// when it delivers (its receipt). The stage's clock starts when its notice arrived.
    pub last_mail_delivered: Option<(String, OffsetDateTime)>,
    /// Who vouches for the guest (canonical addresses): the approvers who admitted it and the
    /// policy's named sponsors when it was admitted. They review it and hear before it is
    /// disabled, with whoever the policy names as sponsors now.
    pub sponsors: Vec<String>,
    /// Its access reviews (see `core::review`).
    pub reviews: Reviews,
}

impl Guest {
    /// Whether the notice of the current stage reached the guest, and when.
    pub fn notice(&self) -> crate::core::cleanup::Notice {
        use crate::core::cleanup::Notice;
        match (&self.notice_mail_id, &self.last_mail_delivered) {
            // Written before notices went through the outbox: the mail went out before the
            // row moved on.
            (None, _) => Notice::Legacy,
            (Some(id), Some((delivered, at))) if id == delivered => Notice::Delivered(*at),
            (Some(_), _) => Notice::Pending,
        }
    }
}

use super::outbox::{RECEIPT_AT, RECEIPT_ID};

pub fn to_row(g: &Guest) -> Row {
    let mut row = Row::new(partition_of(&g.user_id), &g.user_id);
    row.set("Email", g.email.clone())
        .set_opt("RequestId", g.request_id.clone())
        .set_opt("PolicyKey", g.policy_key.clone())
        .set("InvitedAt", format_time(g.invited_at))
        .set_time("AccessEndsAt", g.access_ends_at)
        .set_opt("RedeemUrl", g.redeem_url.clone())
        .set("Language", g.language.clone())
        .set("FirstName", g.first_name.clone())
        .set("State", g.state.as_str())
        .set("StateChangedAt", format_time(g.state_changed_at))
        .set_opt("RemovalReason", g.removal_reason.clone())
        .set_time("ReminderSentAt", g.reminder_sent_at)
        .set("Origin", g.origin.as_str())
        .set_time("InviteDecidedAt", g.invite_decided_at)
        .set_opt("NoticeMailId", g.notice_mail_id.clone())
        .set_opt(
            "LastName",
            Some(g.last_name.clone()).filter(|s| !s.is_empty()),
        )
        .set_opt(
            "Organisation",
            Some(g.organisation.clone()).filter(|s| !s.is_empty()),
        )
        .set_opt(
            "Sponsors",
            (!g.sponsors.is_empty()).then(|| g.sponsors.join(",")),
        );
    if let Some((id, at)) = &g.last_mail_delivered {
        row.set(RECEIPT_ID, id.clone())
            .set(RECEIPT_AT, format_time(*at));
    }
    set_reviews(&mut row, &g.reviews);
    row
}

/// The review columns: `ReviewRound`, `ReviewDueAt`, the open review's `ReviewOpenedAt`,
/// `ReviewDeadline` and `ReviewReminded`, and the last answer's `ReviewDecision` (`keep` or
/// `end`), `ReviewDecidedBy` and `ReviewDecidedAt`.
fn set_reviews(row: &mut Row, r: &Reviews) {
    row.set_opt("ReviewRound", (r.round > 0).then_some(r.round))
        .set_time("ReviewDueAt", r.due_at)
        .set_time("ReviewOpenedAt", r.open.map(|o| o.opened_at))
        .set_time("ReviewDeadline", r.open.map(|o| o.deadline))
        .set_opt("ReviewReminded", r.open.map(|o| o.reminded))
        .set_opt(
            "ReviewDecision",
            r.last.as_ref().map(|d| if d.keep { "keep" } else { "end" }),
        )
        .set_opt("ReviewDecidedBy", r.last.as_ref().map(|d| d.by.encode()))
        .set_time("ReviewDecidedAt", r.last.as_ref().map(|d| d.at));
}

fn reviews_of(row: &Row) -> Result<Reviews, String> {
    let open = match (row.time("ReviewOpenedAt")?, row.time("ReviewDeadline")?) {
        (Some(opened_at), Some(deadline)) => Some(Open {
            opened_at,
            deadline,
            reminded: row.bool("ReviewReminded")?,
        }),
        (None, None) => None,
        _ => return Err("ReviewOpenedAt and ReviewDeadline go together".into()),
    };
    let last = match row.opt_str("ReviewDecision")? {
        None => None,
        Some(decision) => Some(Decision {
            keep: match decision {
                "keep" => true,
                "end" => false,
                other => {
                    return Err(format!(
                        "property ReviewDecision should be keep or end, found {other:?}"
                    ))
                }
            },
            by: Decider::decode(row.str("ReviewDecidedBy")?)
                .ok_or("property ReviewDecidedBy is not sponsor:, operator: or default")?,
            at: row
                .time("ReviewDecidedAt")?
                .ok_or("property ReviewDecidedAt is missing")?,
        }),
    };
    Ok(Reviews {
        round: row.u32("ReviewRound")?,
        due_at: row.time("ReviewDueAt")?,
        open,
        last,
    })
}

pub fn from_row(row: &Row) -> Result<Guest, String> {
    let request_id = row.opt_str("RequestId")?.map(str::to_string);
    let origin = match row.opt_str("Origin")? {
        Some(o) => GuestOrigin::parse(o)?,
        // Records from before the property: the portal's own setup always named the request;
        // the cleanup's records for guests outside the portal's never did.
        None if request_id.is_some() => GuestOrigin::Invited,
        None => GuestOrigin::Cleanup,
    };
    Ok(Guest {
        user_id: row.row_key.clone(),
        email: row.str("Email")?.to_string(),
        request_id,
        policy_key: row.opt_str("PolicyKey")?.map(str::to_string),
        invited_at: row
            .time("InvitedAt")?
            .ok_or("property InvitedAt is missing")?,
        access_ends_at: row.time("AccessEndsAt")?,
        redeem_url: row.opt_str("RedeemUrl")?.map(str::to_string),
        language: row.opt_str("Language")?.unwrap_or("en").to_string(),
        first_name: row.opt_str("FirstName")?.unwrap_or("").to_string(),
        state: row.str("State")?.parse()?,
        state_changed_at: row
            .time("StateChangedAt")?
            .ok_or("property StateChangedAt is missing")?,
        removal_reason: row.opt_str("RemovalReason")?.map(str::to_string),
        reminder_sent_at: row.time("ReminderSentAt")?,
        origin,
        invite_decided_at: row.time("InviteDecidedAt")?,
        notice_mail_id: row.opt_str("NoticeMailId")?.map(str::to_string),
        last_mail_delivered: match (row.opt_str(RECEIPT_ID)?, row.time(RECEIPT_AT)?) {
            (Some(id), Some(at)) => Some((id.to_string(), at)),
            _ => None,
        },
        last_name: row.opt_str("LastName")?.unwrap_or("").to_string(),
        organisation: row.opt_str("Organisation")?.unwrap_or("").to_string(),
        sponsors: row
            .opt_str("Sponsors")?
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        reviews: reviews_of(row)?,
    })
}

impl Guest {
    /// First and last name, as typed.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
}

/// The compare-and-swap of a whole guest row (what a review writes), for a transaction with
/// the mails it causes.
pub fn replace_write(guest: &Guest, etag: &str) -> crate::adapters::tables::Write {
    crate::adapters::tables::Write::Replace(to_row(guest), etag.to_string())
}

/// Records (or refreshes) a guest: idempotent, keyed by the directory's user id.
pub async fn record(store: &TableStore, guest: &Guest) -> Result<(), StoreError> {
    store
        .upsert(TableName::Guests, &to_row(guest))
        .await
        .map(|_| ())
}

/// Records a guest unless a row for it exists already (kept as it is: the cleanup's state
/// of a returning guest is not reset). Returns whether this wrote it.
pub async fn record_new(store: &TableStore, guest: &Guest) -> Result<bool, StoreError> {
    match store.insert(TableName::Guests, &to_row(guest)).await {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists) => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn get(store: &TableStore, user_id: &str) -> Result<Option<(Guest, String)>, StoreError> {
    match store
        .get(TableName::Guests, &partition_of(user_id), user_id)
        .await?
    {
        None => Ok(None),
        Some(row) => Ok(Some((
            store.decode(TableName::Guests, &row, from_row)?,
            row.etag.unwrap_or_default(),
        ))),
    }
}

pub async fn save(store: &TableStore, guest: &Guest, etag: &str) -> Result<String, StoreError> {
    store.replace(TableName::Guests, &to_row(guest), etag).await
}

/// The cleanup's step forward for one guest: merges only the lifecycle properties, and only
/// if the row is unchanged since `etag` was read (so a resumed run sees what it already did,
/// and the rest of the row is never rewritten from a stale copy). Returns the new ETag.
pub async fn advance(
    store: &TableStore,
    user_id: &str,
    etag: &str,
    state: GuestState,
    at: OffsetDateTime,
    reason: &str,
    reminder_sent_at: Option<OffsetDateTime>,
) -> Result<String, StoreError> {
    let row = advance_row(user_id, state, at, reason, reminder_sent_at);
    store.merge(TableName::Guests, &row, etag).await
}

/// The properties [`advance`] merges, for writing many at once
/// ([`TableStore::merge_batch`]).
pub fn advance_row(
    user_id: &str,
    state: GuestState,
    at: OffsetDateTime,
    reason: &str,
    reminder_sent_at: Option<OffsetDateTime>,
) -> Row {
    let mut row = Row::new(partition_of(user_id), user_id);
    row.set("State", state.as_str())
        .set("StateChangedAt", format_time(at))
        .set("RemovalReason", reason)
        .set_time("ReminderSentAt", reminder_sent_at);
    row
}

/// Rows whose key is not a guest's (the guest's mails, kept in its partition).
pub fn is_guest_row(row_key: &str) -> bool {
    !row_key.starts_with("mail-")
}

/// Records that the guest existed before the portal invited it (compare-and-swap on `etag`):
/// from then on it is outside the portal's scope for good.
pub async fn record_pre_existing(
    store: &TableStore,
    user_id: &str,
    etag: &str,
) -> Result<String, StoreError> {
    let mut row = Row::new(partition_of(user_id), user_id);
    row.set("Origin", GuestOrigin::PreExisting.as_str());
    store.merge(TableName::Guests, &row, etag).await
}

// --- which guest an address became -------------------------------------------------------

/// The directory user the portal's invitation of an address resolved to, kept beside the
/// requests (Requests table, `guest-of-<address hash>` / `guest`) so a returning partner's
/// old guest is found with one point read, not a search of the directory's deleted items on
/// every invitation. Keyed by the identity key's hash: no address in the key.
fn address_key(email: &crate::core::email::EmailAddress) -> String {
    format!("guest-of-{}", super::key_hash(&email.identity_key()))
}

pub async fn remember_address(
    store: &TableStore,
    email: &crate::core::email::EmailAddress,
    user_id: &str,
) -> Result<(), StoreError> {
    let mut row = Row::new(address_key(email), "guest");
    row.set("UserId", user_id);
    store.upsert(TableName::Requests, &row).await.map(|_| ())
}

pub async fn user_of_address(
    store: &TableStore,
    email: &crate::core::email::EmailAddress,
) -> Result<Option<String>, StoreError> {
    let Some(row) = store
        .get(TableName::Requests, &address_key(email), "guest")
        .await?
    else {
        return Ok(None);
    };
    store
        .decode(TableName::Requests, &row, |r| {
            r.str("UserId").map(str::to_string)
        })
        .map(Some)
}

/// Every guest row. The table is read as 16 key ranges at once (the partitions' first hex
/// digit spreads them evenly): a scan of one range after another would cost one
/// round trip per 1,000 rows in sequence, and these pages do not depend on each other.
/// `[lower, upper)` PartitionKey ranges: contiguous, the first and last open, so every key
/// is in exactly one of them whatever it looks like.
fn key_ranges() -> Vec<(Option<&'static str>, Option<&'static str>)> {
    const BOUNDS: [&str; 15] = [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
    ];
    (0..=BOUNDS.len())
        .map(|i| (i.checked_sub(1).map(|j| BOUNDS[j]), BOUNDS.get(i).copied()))
        .collect()
}

pub async fn all(store: &TableStore) -> Result<Vec<(Guest, String)>, StoreError> {
    let ranges = key_ranges().into_iter().map(|(lower, upper)| {
        let filter = match (lower, upper) {
            (Some(l), Some(u)) => format!(
                "{} and {}",
                odata_cmp("PartitionKey", "ge", l),
                odata_cmp("PartitionKey", "lt", u)
            ),
            (Some(l), None) => odata_cmp("PartitionKey", "ge", l),
            (None, Some(u)) => odata_cmp("PartitionKey", "lt", u),
            (None, None) => unreachable!("every range has a bound"),
        };
        store.query(TableName::Guests, Some(filter))
    });
    let mut rows = Vec::new();
    for range in futures::future::try_join_all(ranges).await? {
        rows.extend(range.into_iter().filter(|r| is_guest_row(&r.row_key)));
    }
    rows.into_iter()
        .map(|row| {
            let g = store.decode(TableName::Guests, &row, from_row)?;
            Ok((g, row.etag.unwrap_or_default()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest() -> Guest {
        let t = time::macros::datetime!(2026-11-01 10:00 UTC);
        Guest {
            user_id: "e5d1c3b2-1111-2222-3333-444455556666".into(),
            email: "ada@partner.example".into(),
            request_id: Some("r1".into()),
            policy_key: Some("partner.example".into()),
            invited_at: t,
            access_ends_at: None,
            redeem_url: None,
            language: "en".into(),
            first_name: "Ada".into(),
            state: GuestState::Active,
            state_changed_at: t,
            removal_reason: None,
            reminder_sent_at: None,
            origin: GuestOrigin::Invited,
            invite_decided_at: Some(t),
            notice_mail_id: None,
            last_mail_delivered: None,
            last_name: "Lovelace".into(),
            organisation: "Partner AB".into(),
            sponsors: vec![],
            reviews: Reviews::default(),
        }
    }

    #[test]
    fn sponsors_and_reviews_round_trip() {
        let t = time::macros::datetime!(2026-11-02 10:00 UTC);
        let mut g = guest();
        g.sponsors = vec!["boss@contoso.example".into(), "kim@contoso.example".into()];
        g.reviews = Reviews {
            round: 3,
            due_at: Some(t),
            open: Some(Open {
                opened_at: t,
                deadline: t,
                reminded: true,
            }),
            last: Some(Decision {
                keep: true,
                by: Decider::Sponsor("boss@contoso.example".into()),
                at: t,
            }),
        };
        assert_eq!(from_row(&to_row(&g)).unwrap(), g);
        g.reviews.open = None;
        g.reviews.last = Some(Decision {
            keep: false,
            by: Decider::Default,
            at: t,
        });
        assert_eq!(from_row(&to_row(&g)).unwrap(), g);
        let mut row = to_row(&g);
        row.set("ReviewDecision", "maybe");
        assert!(from_row(&row).is_err());
        let mut row = to_row(&g);
        row.set("ReviewOpenedAt", format_time(t));
        assert!(from_row(&row).is_err(), "an open review needs its deadline");
    }

    #[test]
    fn a_notice_counts_once_its_own_mail_was_delivered() {
        use crate::core::cleanup::Notice;
        let t = time::macros::datetime!(2026-11-02 10:00 UTC);
        let mut g = guest();
        assert_eq!(g.notice(), Notice::Legacy);
        g.notice_mail_id = Some("removal_warning-2".into());
        assert_eq!(g.notice(), Notice::Pending);
        g.last_mail_delivered = Some(("redeem_reminder-1".into(), t));
        assert_eq!(g.notice(), Notice::Pending, "an earlier mail's receipt");
        g.last_mail_delivered = Some(("removal_warning-2".into(), t));
        assert_eq!(g.notice(), Notice::Delivered(t));
        assert_eq!(from_row(&to_row(&g)).unwrap(), g, "round trip");
    }

    #[test]
    fn a_record_round_trips_with_its_origin() {
        for origin in [
            GuestOrigin::Invited,
            GuestOrigin::PreExisting,
            GuestOrigin::Cleanup,
        ] {
            let g = Guest { origin, ..guest() };
            assert_eq!(from_row(&to_row(&g)).unwrap(), g);
        }
        let mut row = to_row(&guest());
        row.set("Origin", "alien");
        assert!(from_row(&row).is_err());
    }

    #[test]
    fn records_older_than_the_origin_are_read_by_who_wrote_them() {
        let mut row = to_row(&guest());
        row.props.remove("Origin");
        assert_eq!(from_row(&row).unwrap().origin, GuestOrigin::Invited);
        row.props.remove("RequestId");
        assert_eq!(
            from_row(&row).unwrap().origin,
            GuestOrigin::Cleanup,
            "only the cleanup wrote records without a request"
        );
    }

    #[test]
    fn a_guest_partition_is_the_first_two_characters_of_its_id() {
        assert_eq!(partition_of("e5d1c3b2-1111-2222-3333-444455556666"), "e5");
        assert_eq!(partition_of("AB12"), "ab");
        assert_eq!(partition_of("x"), "x");
        assert_eq!(partition_of("éü-1"), "éü");
    }

    #[test]
    fn every_key_is_in_exactly_one_range() {
        let ranges = key_ranges();
        assert_eq!(ranges.len(), 16);
        for key in [
            "",
            "0",
            "00000000-0000-0000-0000-000000000000",
            "0fffffff",
            "1",
            "9abc",
            "a",
            "e5d1c3b2-1111-2222-3333-444455556666",
            "f",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "F0000000",
            "zzz",
            "~",
        ] {
            let holding = ranges
                .iter()
                .filter(|(lower, upper)| {
                    lower.is_none_or(|l| key >= l) && upper.is_none_or(|u| key < u)
                })
                .count();
            assert_eq!(holding, 1, "{key:?} is in {holding} ranges");
        }
    }
}
