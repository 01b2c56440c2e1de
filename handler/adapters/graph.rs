//! Microsoft Graph, as the portal uses it: invitations, group and app-role grants, reading and
//! removing guests, and `$batch`.
//!
//! Graph throttles (429) and sometimes fails (5xx), per call and, inside a `$batch`, per
//! sub-request. This client honours `Retry-After` and backs off with jitter, but only up to a
//! caller-chosen patience: a partner waiting on a form should get "we are setting up your
//! access" within seconds and leave the rest to the timer, while the timer itself can wait.
//! Errors come back as [`GraphError`], which says whether retrying can help.

mod tenant;
pub use tenant::{
    AppRoleInfo, AuthorizationPolicy, GroupInfo, ServicePrincipalInfo, TokenClaims,
    MICROSOFT_GRAPH_APP_ID,
};

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use rand::Rng;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Graph's limit on sub-requests in one `$batch`.
pub const BATCH_LIMIT: usize = 20;
/// Graph's largest page of users.
pub const PAGE_LIMIT: usize = 999;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// 429 (or 503 with Retry-After) outlasted our patience; try again after this long.
    Throttled {
        retry_after: Duration,
    },
    /// 5xx, a timeout, a dropped connection, or no token: nothing was decided, retry later.
    Unavailable(String),
    /// A refusal that retrying will not change (403 guest invitations restricted, 400 bad
    /// request, a group that refuses guests). `code` is Graph's error code.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    NotFound(String),
    /// A link (a stored or returned `@odata.nextLink`) to somewhere other than the origin of
    /// `GRAPH_BASE_URL`: never followed, so the Graph token goes nowhere else.
    OffOrigin(String),
}

impl GraphError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            GraphError::Throttled { .. } | GraphError::Unavailable(_)
        )
    }
}

/// Graph's messages can quote the address they are about ("Invited user bob@... already
/// exists"); everything shown, logged or stored of an error has its addresses masked.
impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.unmasked();
        f.write_str(&crate::core::email::mask_addresses(&text))
    }
}

impl GraphError {
    fn unmasked(&self) -> String {
        match self {
            GraphError::Throttled { retry_after } => format!(
                "Graph is throttling; retry after {} s",
                retry_after.as_secs()
            ),
            GraphError::Unavailable(why) => format!("Graph is unavailable: {why}"),
            GraphError::Refused {
                status,
                code,
                message,
            } => format!("Graph refused ({status} {code}): {message}"),
            GraphError::NotFound(what) => format!("Graph has no {what}"),
            GraphError::OffOrigin(origin) => format!(
                "a link to {origin}, which is not the origin of GRAPH_BASE_URL, was not followed"
            ),
        }
    }
}

impl std::error::Error for GraphError {}

/// What `POST /invitations` gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub user_id: String,
    pub redeem_url: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationRequest {
    pub invited_user_email_address: String,
    pub invited_user_display_name: String,
    pub invite_redirect_url: String,
    /// Always false: Graph drops custom text when an app invites, so the portal sends its own
    /// localized mail carrying the redeem URL.
    pub send_invitation_message: bool,
    pub invited_user_type: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invited_user_sponsors: Vec<Value>,
}

impl InvitationRequest {
    pub fn new(email: &str, display_name: &str, redirect_url: &str, sponsors: &[String]) -> Self {
        InvitationRequest {
            invited_user_email_address: email.to_string(),
            invited_user_display_name: display_name.to_string(),
            invite_redirect_url: redirect_url.to_string(),
            send_invitation_message: false,
            invited_user_type: "Guest",
            invited_user_sponsors: sponsors
                .iter()
                .take(5)
                .map(|id| json!({ "id": id }))
                .collect(),
        }
    }
}

/// One sub-request of a `$batch`, and its answer.
#[derive(Debug, Clone)]
pub struct BatchCall {
    pub method: Method,
    /// Relative to the version root, e.g. `/users/{id}`.
    pub url: String,
    pub body: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct BatchAnswer {
    pub status: u16,
    pub body: Value,
}

impl BatchAnswer {
    pub fn error(&self) -> Option<GraphError> {
        if (200..300).contains(&self.status) {
            return None;
        }
        Some(error_from(self.status, None, &self.body))
    }
}

/// A guest as the cleanup sees it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    pub id: String,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub user_type: Option<String>,
    #[serde(default)]
    pub account_enabled: Option<bool>,
    #[serde(default)]
    pub created_date_time: Option<String>,
    #[serde(default)]
    pub external_user_state: Option<String>,
    #[serde(default)]
    pub external_user_state_change_date_time: Option<String>,
    #[serde(default)]
    pub sign_in_activity: Option<SignInActivity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignInActivity {
    #[serde(default)]
    pub last_sign_in_date_time: Option<String>,
    #[serde(default)]
    pub last_non_interactive_sign_in_date_time: Option<String>,
    /// `Some(value)` when Graph returned the property at all (the value may be null), `None`
    /// when it did not: the two mean different things to the inactivity rule.
    #[serde(default, deserialize_with = "present")]
    pub last_successful_sign_in_date_time: Option<Option<String>>,
}

/// A property that is there, null or not (absent ones get the field's default, `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub struct UserPage {
    pub users: Vec<DirectoryUser>,
    /// `@odata.nextLink`, to be followed verbatim.
    pub next_link: Option<String>,
}

#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    /// `GRAPH_BASE_URL`'s origin: the only one an absolute link is followed to.
    origin: url::Origin,
    scope: String,
    credential: Arc<dyn TokenCredential>,
    /// How long one call may spend waiting out throttling and transient failures.
    patience: Duration,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

impl GraphClient {
    pub fn new(
        http: reqwest::Client,
        base_url: &url::Url,
        scope: &str,
        credential: Arc<dyn TokenCredential>,
    ) -> Self {
        GraphClient {
            http,
            base: base_url.as_str().trim_end_matches('/').to_string(),
            origin: base_url.origin(),
            scope: scope.to_string(),
            credential,
            patience: Duration::from_secs(8),
            calls: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// The same client, willing to wait longer (the timer) or shorter (a form).
    pub fn with_patience(&self, patience: Duration) -> Self {
        GraphClient {
            patience,
            ..self.clone()
        }
    }

    /// HTTP calls made so far (benchmarks compare this with the floor).
    pub fn calls_made(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn token(&self) -> Result<String, GraphError> {
        // The credential caches tokens; a fetch that hangs must not outlast the caller.
        let scopes = [self.scope.as_str()];
        let fetch = self.credential.get_token(&scopes, None);
        let token = tokio::time::timeout(self.patience, fetch)
            .await
            .map_err(|_| GraphError::Unavailable("no token for Graph: timed out".into()))?
            .map_err(|e| GraphError::Unavailable(format!("no token for Graph: {e}")))?;
        Ok(token.token.secret().to_string())
    }

    /// One call with retries: 429/503 honour Retry-After, 5xx and connection errors back off
    /// exponentially with jitter, all within `patience`.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), GraphError> {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let outcome = self.call_once(method.clone(), url, body, headers).await;
            let wait = match &outcome {
                Ok((status, _, _)) if *status < 400 => return outcome.map(|(s, _, v)| (s, v)),
                Ok((status, retry_after, value)) => {
                    let retryable = *status == 429
                        || *status == 503
                        || *status == 502
                        || *status == 504
                        || *status == 500;
                    if !retryable {
                        return Err(error_from(*status, None, value));
                    }
                    retry_after.unwrap_or_else(|| backoff(attempt))
                }
                Err(_) => backoff(attempt),
            };
            if started.elapsed() + wait > self.patience {
                return match outcome {
                    Ok((429, retry_after, _)) | Ok((503, retry_after, _)) => {
                        Err(GraphError::Throttled {
                            retry_after: retry_after.unwrap_or(wait),
                        })
                    }
                    Ok((status, _, value)) => Err(error_from(status, None, &value)),
                    Err(e) => Err(e),
                };
            }
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "graph call will be retried"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether `link` (an absolute `@odata.nextLink`) is on the origin of `GRAPH_BASE_URL`.
    pub fn is_own_link(&self, link: &str) -> bool {
        on_origin(&self.origin, link)
    }

    async fn call_once(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Option<Duration>, Value), GraphError> {
        let full = if url.starts_with("http://") || url.starts_with("https://") {
            // Paging links come from answers and from stored checkpoints: followed with the
            // bearer token only where Graph itself is.
            if !self.is_own_link(url) {
                let origin = url::Url::parse(url)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_else(|_| "an unreadable address".into());
                return Err(GraphError::OffOrigin(origin));
            }
            url.to_string()
        } else {
            format!("{}{}", self.base, url)
        };
        let token = self.token().await?;
        // One call never outlasts the caller's patience: a hung Graph must not hold a partner's
        // form for the client's full 30 s.
        let mut req = self.http.request(method, &full).bearer_auth(token).timeout(
            self.patience
                .clamp(Duration::from_secs(2), Duration::from_secs(30)),
        );
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = req
            .send()
            .await
            .map_err(|e| GraphError::Unavailable(describe(&e)))?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let text = resp
            .text()
            .await
            .map_err(|e| GraphError::Unavailable(describe(&e)))?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, retry_after, value))
    }

    pub async fn invite(&self, request: &InvitationRequest) -> Result<Invitation, GraphError> {
        let body = serde_json::to_value(request).expect("invitation serializes");
        let (_, value) = self
            .call(Method::POST, "/invitations", Some(&body), &[])
            .await?;
        let user_id = value["invitedUser"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let redeem_url = value["inviteRedeemUrl"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if user_id.is_empty() || redeem_url.is_empty() {
            return Err(GraphError::Unavailable(
                "the invitation answer has no invitedUser.id or inviteRedeemUrl".into(),
            ));
        }
        Ok(Invitation {
            user_id,
            redeem_url,
            status: value["status"]
                .as_str()
                .unwrap_or("PendingAcceptance")
                .to_string(),
        })
    }

    /// The object id of the user whose mail (or UPN) is `address`, for sponsors.
    pub async fn find_user_by_mail(&self, address: &str) -> Result<Option<String>, GraphError> {
        let quoted = address.replace('\'', "''");
        let url = format!(
            "/users?$filter={}&$select=id&$top=1",
            urlencode(&format!(
                "mail eq '{quoted}' or userPrincipalName eq '{quoted}'"
            ))
        );
        let (_, value) = match self.call(Method::GET, &url, None, &[]).await {
            // Some tenants (and the simulator) do not take `or` here; fall back to mail alone.
            Err(GraphError::Refused { status: 400, .. }) => {
                let url = format!(
                    "/users?$filter={}&$select=id&$top=1",
                    urlencode(&format!("mail eq '{quoted}'"))
                );
                self.call(Method::GET, &url, None, &[]).await?
            }
            other => other?,
        };
        Ok(value["value"]
            .get(0)
            .and_then(|u| u["id"].as_str())
            .map(str::to_string))
    }

    /// `POST /$batch` with at most 20 calls; sub-requests answered 429/5xx are sent again (in a
    /// smaller batch) after their own Retry-After, within this client's patience. The answers
    /// come back in the order of `calls`.
    pub async fn batch(&self, calls: &[BatchCall]) -> Result<Vec<BatchAnswer>, GraphError> {
        assert!(
            calls.len() <= BATCH_LIMIT,
            "a Graph batch holds at most {BATCH_LIMIT} calls"
        );
        let started = Instant::now();
        let mut answers: Vec<Option<BatchAnswer>> = vec![None; calls.len()];
        let mut pending: Vec<usize> = (0..calls.len()).collect();
        let mut round = 0;
        while !pending.is_empty() {
            round += 1;
            let requests: Vec<Value> = pending
                .iter()
                .map(|&i| {
                    let c = &calls[i];
                    let mut r =
                        json!({ "id": i.to_string(), "method": c.method.as_str(), "url": c.url });
                    if let Some(body) = &c.body {
                        r["body"] = body.clone();
                        r["headers"] = json!({ "Content-Type": "application/json" });
                    }
                    r
                })
                .collect();
            let (_, value) = self
                .call(
                    Method::POST,
                    "/$batch",
                    Some(&json!({ "requests": requests })),
                    &[],
                )
                .await?;
            let mut wait = Duration::ZERO;
            let mut again = Vec::new();
            for resp in value["responses"].as_array().cloned().unwrap_or_default() {
                let Some(i) = resp["id"]
                    .as_str()
                    .and_then(|s| s.parse::<usize>().ok())
                    .filter(|i| *i < calls.len())
                else {
                    continue;
                };
                let status = resp["status"].as_u64().unwrap_or(500) as u16;
                if matches!(status, 429 | 500 | 502 | 503 | 504) {
                    let ra = resp["headers"]
                        .as_object()
                        .and_then(|h| {
                            h.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                        })
                        .and_then(|(_, v)| {
                            v.as_str()
                                .and_then(|s| s.parse::<u64>().ok())
                                .or(v.as_u64())
                        })
                        .map(Duration::from_secs)
                        .unwrap_or_else(|| backoff(round));
                    wait = wait.max(ra);
                    again.push(i);
                }
                answers[i] = Some(BatchAnswer {
                    status,
                    body: resp["body"].clone(),
                });
            }
            // A sub-request the batch did not answer at all is treated as failed transiently.
            for &i in &pending {
                if answers[i].is_none() {
                    again.push(i);
                }
            }
            again.sort_unstable();
            again.dedup();
            if again.is_empty() || started.elapsed() + wait > self.patience {
                break;
            }
            tracing::debug!(
                retrying = again.len(),
                wait_ms = wait.as_millis() as u64,
                "batch sub-requests will be retried"
            );
            tokio::time::sleep(wait).await;
            pending = again;
        }
        Ok(answers
            .into_iter()
            .map(|a| {
                a.unwrap_or(BatchAnswer {
                    status: 503,
                    body: json!({"error":{"code":"serviceNotAvailable","message":"no answer in the batch"}}),
                })
            })
            .collect())
    }

    /// Sets a guest up after the invitation, in as few calls as Graph allows (one `$batch` of up
    /// to 20): its profile (`PATCH /users/{id}`), the sponsors a returning guest does not have
    /// yet, its groups and its app roles. "Already a member", "already assigned" and "already
    /// a sponsor" count as done: the setup is retried, never doubled.
    pub async fn set_up_guest(
        &self,
        user_id: &str,
        setup: &GuestSetup<'_>,
    ) -> Result<Vec<GrantOutcome>, GraphError> {
        let mut calls = Vec::new();
        let mut targets = Vec::new();
        if let Some(profile) = &setup.profile {
            calls.push(BatchCall {
                method: Method::PATCH,
                url: format!("/users/{user_id}"),
                body: Some(profile.to_value()),
            });
            targets.push("profile".to_string());
        }
        for sponsor in setup.sponsors {
            calls.push(BatchCall {
                method: Method::POST,
                url: format!("/users/{user_id}/sponsors/$ref"),
                body: Some(json!({ "@odata.id": format!("https://graph.microsoft.com/v1.0/users/{sponsor}") })),
            });
            targets.push(format!("sponsor {sponsor}"));
        }
        for g in setup.groups {
            calls.push(BatchCall {
                method: Method::POST,
                url: format!("/groups/{g}/members/$ref"),
                body: Some(json!({ "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user_id}") })),
            });
            targets.push(format!("group {g}"));
        }
        for (resource, role) in setup.app_roles {
            calls.push(BatchCall {
                method: Method::POST,
                url: format!("/servicePrincipals/{resource}/appRoleAssignedTo"),
                body: Some(
                    json!({ "principalId": user_id, "resourceId": resource, "appRoleId": role }),
                ),
            });
            targets.push(format!("app role {role} of {resource}"));
        }
        let mut outcomes = Vec::new();
        for (chunk, names) in calls.chunks(BATCH_LIMIT).zip(targets.chunks(BATCH_LIMIT)) {
            let answers = self.batch(chunk).await?;
            for (answer, target) in answers.into_iter().zip(names) {
                let result = match answer.error() {
                    None => Ok(()),
                    Some(GraphError::Refused {
                        status: 400,
                        message,
                        ..
                    }) if message.contains("already exist") => Ok(()),
                    Some(GraphError::Refused { status: 409, .. }) => Ok(()),
                    Some(e) => Err(e),
                };
                outcomes.push(GrantOutcome {
                    target: target.clone(),
                    result,
                });
            }
        }
        Ok(outcomes)
    }

    /// Restores a soft-deleted user (`POST /directory/deletedItems/{id}/restore`): the same
    /// object, with its group memberships and app roles. [`GraphError::NotFound`] when it is
    /// not in deleted items (restored already, or purged).
    pub async fn restore_deleted(&self, user_id: &str) -> Result<(), GraphError> {
        self.call(
            Method::POST,
            &format!("/directory/deletedItems/{user_id}/restore"),
            None,
            &[],
        )
        .await
        .map(|_| ())
    }

    /// One page of users. `url` is either a first-page query or a previous `@odata.nextLink`.
    pub async fn users_page(&self, url: &str) -> Result<UserPage, GraphError> {
        let (_, value) = self.call(Method::GET, url, None, &[]).await?;
        let users = serde_json::from_value(value["value"].clone())
            .map_err(|e| GraphError::Unavailable(format!("unexpected users page: {e}")))?;
        Ok(UserPage {
            users,
            next_link: value["@odata.nextLink"].as_str().map(str::to_string),
        })
    }

    pub async fn get_user(
        &self,
        id: &str,
        select: &str,
    ) -> Result<Option<DirectoryUser>, GraphError> {
        match self
            .call(
                Method::GET,
                &format!("/users/{id}?$select={select}"),
                None,
                &[],
            )
            .await
        {
            Ok((_, value)) => {
                Ok(Some(serde_json::from_value(value).map_err(|e| {
                    GraphError::Unavailable(format!("unexpected user: {e}"))
                })?))
            }
            Err(GraphError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Which of `groups` the user is a (transitive) member of.
    pub async fn member_groups(
        &self,
        user_id: &str,
        groups: &[String],
    ) -> Result<Vec<String>, GraphError> {
        let (_, value) = self
            .call(
                Method::POST,
                &format!("/users/{user_id}/checkMemberGroups"),
                Some(&json!({ "groupIds": groups })),
                &[],
            )
            .await?;
        Ok(value["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn set_account_enabled(
        &self,
        user_id: &str,
        enabled: bool,
    ) -> Result<(), GraphError> {
        self.call(
            Method::PATCH,
            &format!("/users/{user_id}"),
            Some(&json!({ "accountEnabled": enabled })),
            &[],
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_user(&self, user_id: &str) -> Result<(), GraphError> {
        match self
            .call(Method::DELETE, &format!("/users/{user_id}"), None, &[])
            .await
        {
            Ok(_) | Err(GraphError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// What the cleanup does to a guest in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// `PATCH /users/{id}` `{"accountEnabled": false}`.
    Disable,
    /// `DELETE /users/{id}`: a soft delete, restorable for 30 days.
    Delete,
}

/// The properties the cleanup reads, and no more (`$select` also halves the cost of a page
/// in Graph's resource units). `mail` is there for guests outside the portal's records (scope
/// `all_guests`), who are mailed at that address.
const CLEANUP_SELECT: &str =
    "id,userType,accountEnabled,createdDateTime,externalUserState,externalUserStateChangeDateTime,mail";

/// `signInActivity` is selected only when asked for: it needs AuditLog.Read.All and Entra ID
/// P1, and Graph answers 403 without.
fn cleanup_select(with_sign_in: bool) -> String {
    if with_sign_in {
        format!("{CLEANUP_SELECT},signInActivity")
    } else {
        CLEANUP_SELECT.to_string()
    }
}

/// Graph's limit on the values of an `in` list in a `$filter`.
pub const IN_LIMIT: usize = 15;

/// How many users one [`GraphClient::recheck`] call reads: 15 to a sub-request, 20
/// sub-requests to a `$batch`, one of them for the exclusion group if there is one.
pub fn recheck_capacity(with_exclusion_group: bool) -> usize {
    IN_LIMIT * (BATCH_LIMIT - usize::from(with_exclusion_group))
}

/// What [`GraphClient::recheck`] read. A user it asked for and did not get back (and whose
/// sub-request did not fail) is no longer in the directory.
#[derive(Debug, Default)]
pub struct Recheck {
    pub users: std::collections::HashMap<String, DirectoryUser>,
    /// Users whose sub-request failed: not known either way.
    pub unread: std::collections::HashMap<String, GraphError>,
    /// The exclusion group's members now, if one was asked for.
    pub excluded: Option<Result<std::collections::HashSet<String>, GraphError>>,
}

/// Adds the ids of a page of directory objects to `ids`; the page's nextLink, if any.
fn collect_ids(page: &Value, ids: &mut std::collections::HashSet<String>) -> Option<String> {
    for member in page["value"].as_array().into_iter().flatten() {
        if let Some(id) = member["id"].as_str() {
            ids.insert(id.to_string());
        }
    }
    page["@odata.nextLink"].as_str().map(str::to_string)
}

impl GraphClient {
    /// The first page of every guest, in pages of 999. (Filtering on signInActivity cannot be
    /// combined with userType, so inactivity is judged on our side.)
    pub fn guests_url(with_sign_in: bool) -> String {
        format!(
            "/users?$filter={}&$select={}&$top={PAGE_LIMIT}",
            urlencode("userType eq 'Guest'"),
            cleanup_select(with_sign_in)
        )
    }

    /// Object ids of every member of a group, nested groups' members included
    /// (`transitiveMembers`), every page. No OData cast: that would need an advanced query,
    /// whose index may lag, and an exclusion must be read as it is now.
    pub async fn group_member_ids(
        &self,
        group_id: &str,
    ) -> Result<std::collections::HashSet<String>, GraphError> {
        let mut ids = std::collections::HashSet::new();
        let mut url = Self::transitive_members_url(group_id);
        loop {
            let (_, value) = self.call(Method::GET, &url, None, &[]).await?;
            match collect_ids(&value, &mut ids) {
                Some(next) => url = next,
                None => return Ok(ids),
            }
        }
    }

    fn transitive_members_url(group_id: &str) -> String {
        format!("/groups/{group_id}/transitiveMembers?$select=id&$top={PAGE_LIMIT}")
    }

    /// Reads known users again, as they are now, and (with `exclusion_group`) who is in that
    /// group now: one `$batch` of `GET /users?$filter=id in (...)` (15 ids each, Graph's limit
    /// on `in`) and the group's first page of transitive members; further pages of a large
    /// group follow. At most [`recheck_capacity`] ids a call.
    pub async fn recheck(
        &self,
        ids: &[String],
        with_sign_in: bool,
        exclusion_group: Option<&str>,
    ) -> Result<Recheck, GraphError> {
        assert!(
            ids.len() <= recheck_capacity(exclusion_group.is_some()),
            "a recheck holds at most {} users",
            recheck_capacity(exclusion_group.is_some())
        );
        let select = cleanup_select(with_sign_in);
        let chunks: Vec<&[String]> = ids.chunks(IN_LIMIT).collect();
        let mut calls: Vec<BatchCall> = chunks
            .iter()
            .map(|chunk| {
                let list = chunk
                    .iter()
                    .map(|id| format!("'{}'", id.replace('\'', "''")))
                    .collect::<Vec<_>>()
                    .join(",");
                BatchCall {
                    method: Method::GET,
                    url: format!(
                        "/users?$filter={}&$select={select}&$top={IN_LIMIT}",
                        urlencode(&format!("id in ({list})"))
                    ),
                    body: None,
                }
            })
            .collect();
        if let Some(group) = exclusion_group {
            calls.push(BatchCall {
                method: Method::GET,
                url: Self::transitive_members_url(group),
                body: None,
            });
        }
        let answers = self.batch(&calls).await?;
        let mut found = Recheck::default();
        for (chunk, answer) in chunks.iter().zip(&answers) {
            match answer.error() {
                Some(e) => {
                    for id in chunk.iter() {
                        found.unread.insert(id.clone(), e.clone());
                    }
                }
                None => {
                    let users: Vec<DirectoryUser> =
                        serde_json::from_value(answer.body["value"].clone()).map_err(|e| {
                            GraphError::Unavailable(format!("unexpected users page: {e}"))
                        })?;
                    for u in users {
                        found.users.insert(u.id.clone(), u);
                    }
                }
            }
        }
        if exclusion_group.is_some() {
            let answer = answers.last().expect("the group's answer is the last");
            found.excluded = Some(match answer.error() {
                Some(e) => Err(e),
                None => {
                    let mut ids = std::collections::HashSet::new();
                    let mut next = collect_ids(&answer.body, &mut ids);
                    let mut failed = None;
                    while let Some(url) = next {
                        match self.call(Method::GET, &url, None, &[]).await {
                            Ok((_, value)) => next = collect_ids(&value, &mut ids),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    match failed {
                        Some(e) => Err(e),
                        None => Ok(ids),
                    }
                }
            });
        }
        Ok(found)
    }

    /// Disables or deletes up to 20 users in one `$batch`. Each answer is the user's: a user
    /// already gone counts as deleted; disabling a user that is gone is [`GraphError::NotFound`].
    pub async fn remove(
        &self,
        items: &[(String, Removal)],
    ) -> Result<Vec<Result<(), GraphError>>, GraphError> {
        let calls: Vec<BatchCall> = items
            .iter()
            .map(|(id, removal)| match removal {
                Removal::Disable => BatchCall {
                    method: Method::PATCH,
                    url: format!("/users/{id}"),
                    body: Some(json!({ "accountEnabled": false })),
                },
                Removal::Delete => BatchCall {
                    method: Method::DELETE,
                    url: format!("/users/{id}"),
                    body: None,
                },
            })
            .collect();
        let answers = self.batch(&calls).await?;
        Ok(answers
            .iter()
            .zip(items)
            .map(|(answer, (_, removal))| match (answer.error(), removal) {
                (None, _) => Ok(()),
                (Some(GraphError::NotFound(_)), Removal::Delete) => Ok(()),
                (Some(e), _) => Err(e),
            })
            .collect())
    }
}

/// What the directory learns about a guest when it is set up (`PATCH /users/{id}`): who it is,
/// as the partner typed it, and for a returning guest the cleanup had disabled, that it may
/// sign in again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestProfile {
    pub display_name: String,
    pub given_name: String,
    pub surname: String,
    pub company_name: String,
    pub job_title: Option<String>,
    /// `Some(true)` re-enables the account.
    pub account_enabled: Option<bool>,
}

/// Graph's lengths for these properties: a longer value would make the whole PATCH fail.
const NAME_MAX: usize = 64;
const DISPLAY_NAME_MAX: usize = 256;
const JOB_TITLE_MAX: usize = 128;

fn at_most(text: &str, max: usize) -> String {
    text.trim()
        .chars()
        .take(max)
        .collect::<String>()
        .trim()
        .to_string()
}

impl GuestProfile {
    /// The PATCH body: empty values are left out (Graph refuses an empty string for some).
    pub fn to_value(&self) -> Value {
        let mut body = serde_json::Map::new();
        for (name, value, max) in [
            ("displayName", Some(&self.display_name), DISPLAY_NAME_MAX),
            ("givenName", Some(&self.given_name), NAME_MAX),
            ("surname", Some(&self.surname), NAME_MAX),
            ("companyName", Some(&self.company_name), NAME_MAX),
            ("jobTitle", self.job_title.as_ref(), JOB_TITLE_MAX),
        ] {
            if let Some(value) = value.map(|v| at_most(v, max)).filter(|v| !v.is_empty()) {
                body.insert(name.into(), Value::String(value));
            }
        }
        if let Some(enabled) = self.account_enabled {
            body.insert("accountEnabled".into(), Value::Bool(enabled));
        }
        Value::Object(body)
    }
}

/// Everything [`GraphClient::set_up_guest`] does for one guest.
#[derive(Debug, Clone, Default)]
pub struct GuestSetup<'a> {
    pub profile: Option<GuestProfile>,
    /// Object ids of sponsors to add (a returning guest; a new one gets them with its
    /// invitation).
    pub sponsors: &'a [String],
    pub groups: &'a [String],
    pub app_roles: &'a [(String, String)],
}

#[derive(Debug, Clone)]
pub struct GrantOutcome {
    pub target: String,
    pub result: Result<(), GraphError>,
}

fn error_from(status: u16, retry_after: Option<Duration>, body: &Value) -> GraphError {
    let code = body["error"]["code"].as_str().unwrap_or("").to_string();
    let message = body["error"]["message"].as_str().unwrap_or("").to_string();
    match status {
        404 => GraphError::NotFound(if message.is_empty() { code } else { message }),
        429 => GraphError::Throttled {
            retry_after: retry_after.unwrap_or(Duration::from_secs(5)),
        },
        408 | 500..=599 => {
            GraphError::Unavailable(format!("{status} {code} {message}").trim().to_string())
        }
        _ => GraphError::Refused {
            status,
            code,
            message,
        },
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Whether `link` is an absolute URL on `origin` (scheme, host and port alike).
fn on_origin(origin: &url::Origin, link: &str) -> bool {
    url::Url::parse(link).is_ok_and(|u| u.origin() == *origin)
}

/// 0.5 s, 1 s, 2 s, ... capped at 16 s, with up to 30 % jitter so instances do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << attempt.saturating_sub(1).min(5));
    let jitter = rand::thread_rng().gen_range(0..=base * 3 / 10);
    Duration::from_millis(base.min(16_000) + jitter)
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "the connection failed".into()
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_whether_to_retry() {
        let body = json!({"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}});
        assert!(!error_from(403, None, &body).is_retryable());
        assert!(error_from(503, None, &body).is_retryable());
        assert!(error_from(429, Some(Duration::from_secs(3)), &body).is_retryable());
        assert!(matches!(
            error_from(404, None, &body),
            GraphError::NotFound(_)
        ));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(
            backoff(1) >= Duration::from_millis(500) && backoff(1) <= Duration::from_millis(650)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(30) <= Duration::from_millis(16_000 + 4_800));
    }

    #[test]
    fn links_are_followed_only_on_the_origin_of_the_base_url() {
        let origin = url::Url::parse("https://graph.microsoft.com/v1.0")
            .unwrap()
            .origin();
        let own = |link: &str| on_origin(&origin, link);
        assert!(own("https://graph.microsoft.com/v1.0/users?$skiptoken=abc"));
        assert!(own("https://graph.microsoft.com:443/beta/users"));
        for foreign in [
            "https://graph.microsoft.com.evil.example/v1.0/users",
            "http://graph.microsoft.com/v1.0/users",
            "https://graph.microsoft.com:8443/v1.0/users",
            "https://evil.example/v1.0/users?x=https://graph.microsoft.com",
            "https://user@evil.example/",
            "not a url",
        ] {
            assert!(!own(foreign), "{foreign}");
        }
    }

    #[test]
    fn a_missing_successful_sign_in_is_told_from_a_null_one() {
        let s: SignInActivity =
            serde_json::from_value(json!({"lastSignInDateTime": "2026-01-01T00:00:00Z"})).unwrap();
        assert_eq!(s.last_successful_sign_in_date_time, None);
        let s: SignInActivity =
            serde_json::from_value(json!({"lastSuccessfulSignInDateTime": null})).unwrap();
        assert_eq!(s.last_successful_sign_in_date_time, Some(None));
        let s: SignInActivity =
            serde_json::from_value(json!({"lastSuccessfulSignInDateTime": "2026-01-01T00:00:00Z"}))
                .unwrap();
        assert_eq!(
            s.last_successful_sign_in_date_time,
            Some(Some("2026-01-01T00:00:00Z".into()))
        );
    }

    #[test]
    fn a_recheck_fills_one_batch() {
        assert_eq!(recheck_capacity(false), 300);
        assert_eq!(recheck_capacity(true), 285);
    }

    #[test]
    fn the_profile_fits_graph_and_leaves_out_what_is_empty() {
        let p = GuestProfile {
            display_name: "Ada Lovelace".into(),
            given_name: "Ada".into(),
            surname: "L".repeat(100),
            company_name: " Partner AB ".into(),
            job_title: Some(String::new()),
            account_enabled: None,
        };
        let v = p.to_value();
        assert_eq!(v["givenName"], "Ada");
        assert_eq!(v["surname"].as_str().unwrap().chars().count(), 64);
        assert_eq!(v["companyName"], "Partner AB");
        assert!(v.get("jobTitle").is_none(), "empty values are left out");
        assert!(v.get("accountEnabled").is_none());
        let v = GuestProfile {
            job_title: Some("Engineer".into()),
            account_enabled: Some(true),
            ..p
        }
        .to_value();
        assert_eq!(v["jobTitle"], "Engineer");
        assert_eq!(v["accountEnabled"], true);
    }

    #[test]
    fn invitations_never_ask_graph_to_mail() {
        let r = InvitationRequest::new(
            "a@b.example",
            "A B",
            "https://myapps.microsoft.com",
            &vec!["s1".to_string(); 7],
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["sendInvitationMessage"], false);
        assert_eq!(v["invitedUserType"], "Guest");
        assert_eq!(v["invitedUserSponsors"].as_array().unwrap().len(), 5);
    }
}
