//! Policies as rows. Columns are flat and lists are comma-separated so an admin can read and
//! even fix a policy in Storage Explorer; a row that no longer validates is reported with its
//! key rather than silently ignored (an ignored deny policy would admit people).

use uuid::Uuid;

use super::{Row, StoreError, TableName, TableStore};
use crate::core::policy::{AppRoleGrantDraft, Policy, PolicyDraft};

const PARTITION: &str = "policy";

pub fn to_row(policy: &Policy) -> Row {
    let draft = PolicyDraft::from(policy);
    let mut row = Row::new(PARTITION, policy.key());
    row.set("Domain", draft.domain.clone())
        .set("IncludeSubdomains", draft.include_subdomains)
        .set("Tenants", draft.tenants.join(","))
        .set_opt("Proof", draft.proof.clone())
        .set("RequireMfa", draft.require_mfa)
        .set("Action", draft.action.clone())
        .set("Approvers", draft.approvers.join(","))
        .set(
            "SecondStageApprovers",
            draft.second_stage_approvers.join(","),
        )
        .set("FallbackApprovers", draft.fallback_approvers.join(","))
        .set("Groups", draft.groups.join(","))
        .set(
            "AppRoles",
            draft
                .app_roles
                .iter()
                .map(|g| match &g.app_role_id {
                    Some(role) => format!("{}:{}", g.resource_id, role),
                    None => g.resource_id.clone(),
                })
                .collect::<Vec<_>>()
                .join(","),
        )
        .set_opt("RedirectUrl", draft.redirect_url.clone())
        .set_opt("Language", draft.language.clone())
        .set_opt("AccessDays", draft.access_days)
        .set_opt("ApprovalWindowDays", draft.approval_window_days)
        .set_opt("ReminderAfterDays", draft.reminder_after_days)
        .set_opt("EscalateAfterDays", draft.escalate_after_days)
        .set_opt("Note", draft.note.clone())
        .set_opt(
            "Sponsors",
            (!draft.sponsors.is_empty()).then(|| draft.sponsors.join(",")),
        )
        .set_opt("ReviewDays", draft.review_days)
        .set_opt("OnNoAnswer", draft.on_no_answer.clone())
        .set_opt(
            "AllowConsumerDomain",
            draft.allow_consumer_domain.then_some(true),
        );
    row
}

fn list(row: &Row, name: &str) -> Result<Vec<String>, String> {
    Ok(row
        .opt_str(name)?
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

fn opt_u32(row: &Row, name: &str) -> Result<Option<u32>, String> {
    if row.props.contains_key(name) {
        row.u32(name).map(Some)
    } else {
        Ok(None)
    }
}

pub fn from_row(row: &Row) -> Result<Policy, String> {
    let draft = PolicyDraft {
        domain: row.opt_str("Domain")?.unwrap_or("").to_string(),
        include_subdomains: row.bool("IncludeSubdomains")?,
        tenants: list(row, "Tenants")?,
        proof: row.opt_str("Proof")?.map(str::to_string),
        require_mfa: row.props.contains_key("RequireMfa") && row.bool("RequireMfa")?,
        action: row.str("Action")?.to_string(),
        approvers: list(row, "Approvers")?,
        second_stage_approvers: list(row, "SecondStageApprovers")?,
        fallback_approvers: list(row, "FallbackApprovers")?,
        groups: list(row, "Groups")?,
        app_roles: list(row, "AppRoles")?
            .into_iter()
            .map(|g| match g.split_once(':') {
                Some((resource, role)) => AppRoleGrantDraft {
                    resource_id: resource.to_string(),
                    app_role_id: Some(role.to_string()),
                },
                None => AppRoleGrantDraft {
                    resource_id: g,
                    app_role_id: None,
                },
            })
            .collect(),
        redirect_url: row.opt_str("RedirectUrl")?.map(str::to_string),
        language: row.opt_str("Language")?.map(str::to_string),
        access_days: opt_u32(row, "AccessDays")?,
        approval_window_days: opt_u32(row, "ApprovalWindowDays")?,
        reminder_after_days: opt_u32(row, "ReminderAfterDays")?,
        escalate_after_days: opt_u32(row, "EscalateAfterDays")?,
        note: row.opt_str("Note")?.map(str::to_string),
        sponsors: list(row, "Sponsors")?,
        review_days: opt_u32(row, "ReviewDays")?,
        on_no_answer: row.opt_str("OnNoAnswer")?.map(str::to_string),
        allow_consumer_domain: row.bool("AllowConsumerDomain")?,
    };
    // A policy stored before public mail providers needed the explicit flag: an admin made an
    // `auto` policy for one then, and it stays as they made it (and says so when exported)
    // rather than making every policy unreadable, which would stop all sign-ups.
    let draft = if row.props.contains_key("AllowConsumerDomain") {
        draft
    } else {
        let needs = draft.action == "auto"
            && crate::core::email::Domain::parse(&draft.domain)
                .ok()
                .and_then(|d| {
                    crate::core::consumer_domains::covered_consumer_domain(
                        &d,
                        draft.include_subdomains,
                    )
                })
                .is_some();
        PolicyDraft {
            allow_consumer_domain: needs,
            ..draft
        }
    };
    let policy = draft.validate().map_err(|problems| {
        problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    if policy.key() != row.row_key {
        return Err(format!(
            "the RowKey should be {:?} for this domain, subdomain and tenant setting",
            policy.key()
        ));
    }
    Ok(policy)
}

/// Every policy. Fails when any row is invalid: matching against a partial set could admit
/// an address that a broken deny policy was meant to stop.
pub async fn all(store: &TableStore) -> Result<Vec<Policy>, StoreError> {
    let rows = store.partition(TableName::Policies, PARTITION).await?;
    rows.iter()
        .map(|row| store.decode(TableName::Policies, row, from_row))
        .collect()
}

pub async fn get(store: &TableStore, key: &str) -> Result<Option<Policy>, StoreError> {
    match store.get(TableName::Policies, PARTITION, key).await? {
        Some(row) => store.decode(TableName::Policies, &row, from_row).map(Some),
        None => Ok(None),
    }
}

/// Adds a policy; [`StoreError::AlreadyExists`] if one exists for the same key.
pub async fn add(store: &TableStore, policy: &Policy) -> Result<(), StoreError> {
    store
        .insert(TableName::Policies, &to_row(policy))
        .await
        .map(|_| ())
}

pub async fn put(store: &TableStore, policy: &Policy) -> Result<(), StoreError> {
    store
        .upsert(TableName::Policies, &to_row(policy))
        .await
        .map(|_| ())
}

pub async fn remove(store: &TableStore, key: &str) -> Result<bool, StoreError> {
    if store
        .get(TableName::Policies, PARTITION, key)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    store
        .delete(TableName::Policies, PARTITION, key, None)
        .await?;
    Ok(true)
}

/// Ids in a policy that Graph will need, for display.
pub fn group_ids(policy: &Policy) -> Vec<String> {
    policy.groups.iter().map(Uuid::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(domain: &str, action: &str) -> Row {
        let mut row = Row::new(PARTITION, domain);
        row.set("Domain", domain).set("Action", action);
        row
    }

    #[test]
    fn an_auto_policy_for_a_public_provider_stored_before_the_rule_still_reads() {
        let legacy = from_row(&stored("gmail.com", "auto")).expect("readable");
        assert!(legacy.allow_consumer_domain, "grandfathered, and says so");
        let ordinary = from_row(&stored("partner.example", "auto")).unwrap();
        assert!(!ordinary.allow_consumer_domain);
        // Written since the rule: the flag is what it says.
        let mut row = stored("gmail.com", "auto");
        row.set("AllowConsumerDomain", false);
        assert!(from_row(&row).is_err());
    }
}
