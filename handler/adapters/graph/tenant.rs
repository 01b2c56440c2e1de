//! Reading how the tenant is set up, for `handler doctor`: what the portal's own token carries,
//! who may invite guests, and whether the groups, applications and people the policies name
//! exist. Nothing here changes the directory.

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{urlencode, DirectoryUser, GraphClient, GraphError};

/// Microsoft Graph's application id, the same in every tenant.
pub const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// What a Graph access token says about who holds it (its claims, read without verifying: the
/// token came straight from the credential, and Graph checks it on every call).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenClaims {
    /// Application permissions of an app-only token.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Delegated scopes of a user's token (`az login`), space-separated.
    #[serde(default)]
    pub scp: Option<String>,
    /// The object id of the caller: the service principal of an app, or the user.
    #[serde(default)]
    pub oid: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
    #[serde(default)]
    pub tid: Option<String>,
    /// `app` for app-only tokens, `user` for delegated ones (absent in older tokens).
    #[serde(default)]
    pub idtyp: Option<String>,
}

impl TokenClaims {
    /// An app-only token: its `roles` are the app's permissions.
    pub fn is_app_only(&self) -> bool {
        match self.idtyp.as_deref() {
            Some(kind) => kind == "app",
            None => self.scp.is_none(),
        }
    }

    fn from_token(token: &str) -> Result<TokenClaims, String> {
        use base64::Engine;
        let payload = token
            .split('.')
            .nth(1)
            .ok_or("the token is not a JWT (no payload)")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| "the token's payload is not base64url".to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("the token's claims do not parse: {e}"))
    }
}

/// The tenant's authorization policy, as far as guests are concerned.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    /// `none`, `adminsAndGuestInviters`, `adminsGuestInvitersAndAllMembers` or `everyone`.
    #[serde(default)]
    pub allow_invites_from: Option<String>,
    /// The directory role template guests get: how much of the directory they can see.
    #[serde(default)]
    pub guest_user_role_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInfo {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
    #[serde(default)]
    pub mail_enabled: Option<bool>,
    #[serde(default)]
    pub group_types: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleInfo {
    pub id: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub allowed_member_types: Vec<String>,
    #[serde(default = "enabled")]
    pub is_enabled: bool,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipalInfo {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub app_roles: Vec<AppRoleInfo>,
}

impl GraphClient {
    /// The claims of the token this client calls Graph with.
    pub async fn token_claims(&self) -> Result<TokenClaims, GraphError> {
        let token = self.token().await?;
        TokenClaims::from_token(&token).map_err(GraphError::Unavailable)
    }

    /// `GET /policies/authorizationPolicy` (needs Policy.Read.All, which the portal itself
    /// does not hold: an admin's sign-in reads it).
    pub async fn authorization_policy(&self) -> Result<AuthorizationPolicy, GraphError> {
        let (_, value) = self
            .call(Method::GET, "/policies/authorizationPolicy", None, &[])
            .await?;
        parse(value, "authorization policy")
    }

    /// A group by object id; `None` when there is none.
    pub async fn group(&self, id: &str) -> Result<Option<GroupInfo>, GraphError> {
        let url = format!(
            "/groups/{id}?$select=id,displayName,onPremisesSyncEnabled,mailEnabled,groupTypes"
        );
        found(self.call(Method::GET, &url, None, &[]).await, "group")
    }

    /// A service principal (an application in this tenant) by object id, with its app roles.
    pub async fn service_principal(
        &self,
        id: &str,
    ) -> Result<Option<ServicePrincipalInfo>, GraphError> {
        let url = format!("/servicePrincipals/{id}?$select=id,displayName,appRoles");
        found(
            self.call(Method::GET, &url, None, &[]).await,
            "service principal",
        )
    }

    /// The user whose mail or user principal name is `address`, with what decides whether
    /// they can act as an approver (member or guest, enabled or not).
    pub async fn find_person(&self, address: &str) -> Result<Option<DirectoryUser>, GraphError> {
        let quoted = address.replace('\'', "''");
        for filter in [
            format!("mail eq '{quoted}'"),
            format!("userPrincipalName eq '{quoted}'"),
        ] {
            let url = format!(
                "/users?$filter={}&$select=id,mail,userType,accountEnabled&$top=1",
                urlencode(&filter)
            );
            let (_, value) = self.call(Method::GET, &url, None, &[]).await?;
            if let Some(first) = value["value"].get(0) {
                return parse(first.clone(), "user").map(Some);
            }
        }
        Ok(None)
    }

    /// The Microsoft Graph application permissions granted to a service principal (by their
    /// values, e.g. `User.Invite.All`), read from its app role assignments: what an admin sees
    /// for the Function App's identity. `None` when there is no such service principal.
    pub async fn graph_permissions_of(
        &self,
        principal_id: &str,
    ) -> Result<Option<Vec<String>>, GraphError> {
        let url = format!("/servicePrincipals/{principal_id}/appRoleAssignments?$top=999");
        let Some(held) = found::<Value>(
            self.call(Method::GET, &url, None, &[]).await,
            "service principal",
        )?
        else {
            return Ok(None);
        };
        let graph_url =
            format!("/servicePrincipals(appId='{MICROSOFT_GRAPH_APP_ID}')?$select=id,appRoles");
        let (_, graph) = self.call(Method::GET, &graph_url, None, &[]).await?;
        let graph: ServicePrincipalInfo = parse(graph, "Microsoft Graph service principal")?;
        let mut values: Vec<String> = held["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["resourceId"].as_str() == Some(graph.id.as_str()))
            .filter_map(|a| {
                let role = a["appRoleId"].as_str()?;
                graph
                    .app_roles
                    .iter()
                    .find(|r| r.id.eq_ignore_ascii_case(role))
                    .and_then(|r| r.value.clone())
            })
            .collect();
        values.sort();
        values.dedup();
        Ok(Some(values))
    }

    /// Whether sign-in activity can be read (AuditLog.Read.All and Entra ID P1): one user's.
    pub async fn probe_sign_in_activity(&self) -> Result<(), GraphError> {
        self.call(
            Method::GET,
            "/users?$select=id,signInActivity&$top=1",
            None,
            &[],
        )
        .await
        .map(|_| ())
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, GraphError> {
    serde_json::from_value(value)
        .map_err(|e| GraphError::Unavailable(format!("unexpected {what} from Graph: {e}")))
}

fn found<T: serde::de::DeserializeOwned>(
    answer: Result<(u16, Value), GraphError>,
    what: &str,
) -> Result<Option<T>, GraphError> {
    match answer {
        Ok((_, value)) => parse(value, what).map(Some),
        // 400 Request_ResourceNotFound answers an object id of the wrong kind.
        Err(GraphError::NotFound(_)) => Ok(None),
        Err(GraphError::Refused { code, .. }) if code == "Request_ResourceNotFound" => Ok(None),
        Err(e) => Err(e),
    }
}
