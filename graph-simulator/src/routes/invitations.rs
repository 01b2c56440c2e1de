//! `POST /invitations`: creates (or resolves to) a B2B guest.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::ApiRequest;
use crate::errors::{ApiResponse, GraphError, GraphResult};
use crate::shared::Shared;
use crate::state::{NewUser, SignIn};
use crate::types::InvitationRecord;
use crate::util::{encode_query_value, new_guid, random_token};

const MAX_SPONSORS: usize = 5;

fn required(body: &Value, name: &str) -> GraphResult<String> {
    match body.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(GraphError::bad_request(format!(
            "Required property '{name}' is missing or empty."
        ))),
        Some(_) => Err(GraphError::bad_request(format!(
            "Invalid value for property '{name}'."
        ))),
    }
}

fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
}

fn optional_bool(body: &Value, name: &str) -> GraphResult<bool> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(GraphError::bad_request(format!(
            "Invalid value for property '{name}'."
        ))),
    }
}

pub(super) fn invite(shared: &Shared, req: &ApiRequest) -> GraphResult<ApiResponse> {
    let body = req.json_body()?;
    if !body.is_object() {
        return Err(GraphError::invalid_json());
    }
    let email = required(&body, "invitedUserEmailAddress")?;
    let redirect = required(&body, "inviteRedirectUrl")?;
    if !plausible_email(&email) {
        return Err(GraphError::bad_request(format!(
            "The email address '{email}' of the invited user is not valid."
        )));
    }
    if url::Url::parse(&redirect).is_err() {
        return Err(GraphError::bad_request(format!(
            "The value '{redirect}' of property 'inviteRedirectUrl' is not a valid absolute URL."
        )));
    }
    let display_name = match body.get("invitedUserDisplayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };
    let send_message = optional_bool(&body, "sendInvitationMessage")?;
    let reset = optional_bool(&body, "resetRedemption")?;
    let user_type = match body.get("invitedUserType").and_then(Value::as_str) {
        None => "Guest",
        Some(t) if t.eq_ignore_ascii_case("guest") => "Guest",
        Some(t) if t.eq_ignore_ascii_case("member") => "Member",
        Some(t) => {
            return Err(GraphError::bad_request(format!(
                "Invalid value '{t}' for property 'invitedUserType'."
            )))
        }
    };
    let message_info = body
        .get("invitedUserMessageInfo")
        .cloned()
        .filter(|v| !v.is_null());
    if let Some(info) = &message_info {
        let cc = info
            .get("ccRecipients")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if cc > 1 {
            return Err(GraphError::bad_request(
                "Only one recipient is supported in 'ccRecipients' of 'invitedUserMessageInfo'.",
            ));
        }
    }
    let sponsors: Vec<String> = match body.get("invitedUserSponsors") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.get("id").and_then(Value::as_str).map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                GraphError::bad_request(
                    "Each of 'invitedUserSponsors' must be a directoryObject with an 'id'.",
                )
            })?,
        Some(_) => {
            return Err(GraphError::bad_request(
                "Invalid value for property 'invitedUserSponsors'.",
            ))
        }
    };
    if sponsors.len() > MAX_SPONSORS {
        return Err(GraphError::bad_request(format!(
            "A maximum of {MAX_SPONSORS} sponsors can be specified in 'invitedUserSponsors'."
        )));
    }

    let now = OffsetDateTime::now_utc();
    let mut dir = shared.dir();
    let existing = dir.users_by_mail(&email);
    if existing.iter().any(|u| u.user_type == "Member") {
        return Err(GraphError::bad_request(format!(
            "The invited user already exists in the directory as a member: '{email}'. Members can't be invited."
        )));
    }
    let existing_id = existing.first().map(|u| u.id.clone());
    let reused = existing_id.is_some();
    let user_id = match existing_id {
        Some(id) => {
            if reset {
                let u = dir.user_mut(&id).expect("just found");
                u.external_user_state = Some("PendingAcceptance".into());
                u.external_user_state_changed = Some(now);
            }
            id
        }
        None => {
            let id = dir.insert_user(NewUser {
                display_name: display_name
                    .clone()
                    .unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_string()),
                mail: email.clone(),
                user_type,
                created: now,
                creation_type: Some("Invitation".into()),
                external_user_state: Some("PendingAcceptance".into()),
                external_user_state_changed: Some(now),
                account_enabled: true,
                sign_in: SignIn::default(),
            });
            // The invited user's sponsors; without any, Graph makes the inviter one (here the
            // app, which is no user: none are recorded).
            dir.user_mut(&id).expect("just made").sponsors = sponsors.clone();
            id
        }
    };
    let user = dir.user(&user_id).expect("present");
    // Re-inviting a guest who already redeemed reports the invitation as done.
    let status = match user.external_user_state.as_deref() {
        Some("Accepted") => "Completed",
        _ => "PendingAcceptance",
    };
    let invited_type = user.user_type.clone();
    let invitation_id = new_guid();
    let inner = format!(
        "https://invitations.microsoft.com/redeem/?tenant={}&user={}&ticket={}&ver=2.0",
        shared.tenant_id,
        invitation_id,
        random_token(24)
    );
    let redeem_url = format!(
        "https://login.microsoftonline.com/redeem?rd={}",
        encode_query_value(&inner)
    );
    let info_out = message_info.clone().unwrap_or_else(|| {
        json!({
            "messageLanguage": null,
            "customizedMessageBody": null,
            "ccRecipients": [{"emailAddress": {"name": null, "address": null}}],
        })
    });
    dir.invitations.push(InvitationRecord {
        invitation_id: invitation_id.clone(),
        email: email.clone(),
        user_id: user_id.clone(),
        display_name: display_name.clone(),
        sponsors: sponsors.clone(),
        redirect_url: redirect.clone(),
        send_invitation_message: send_message,
        invited_user_message_info: message_info,
        reset_redemption: reset,
        existing_user: reused,
        at: now,
    });
    Ok(ApiResponse::json(
        201,
        json!({
            "@odata.context": format!("{}/$metadata#invitations/$entity", req.graph_base()),
            "id": invitation_id,
            "inviteRedeemUrl": redeem_url,
            "invitedUserDisplayName": display_name,
            "invitedUserType": invited_type,
            "invitedUserEmailAddress": email,
            "sendInvitationMessage": send_message,
            "resetRedemption": reset,
            "inviteRedirectUrl": redirect,
            "status": status,
            "invitedUserMessageInfo": info_out,
            "invitedUser": {"id": user_id},
            "invitedUserSponsors": sponsors.iter().map(|s| json!({"id": s})).collect::<Vec<_>>(),
        }),
    ))
}
