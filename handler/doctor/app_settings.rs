//! The Function App's settings, brought to the admin's machine: `--app-settings FILE` takes the
//! JSON that `az functionapp config appsettings list` prints (a list of `{name, value}`), or a
//! `local.settings.json` (`{"Values": {...}}`), and lays it over the process environment.
//!
//! Two kinds of value cannot be used as the app has them, so the process environment supplies
//! them: a Key Vault reference (the platform resolves it for the app; on the admin's machine the
//! secret comes from the environment, where azd keeps it), and the credential settings (the
//! doctor signs in as whoever runs it, e.g. `GRAPH_CREDENTIAL=azure_cli`).

use serde_json::Value;

use crate::settings::{Environment, KeyVaultReference};

/// Settings that say who the doctor is: always the runner's own.
const RUNNER_OWN: &[&str] = &[
    "GRAPH_CREDENTIAL",
    "GRAPH_MANAGED_IDENTITY_CLIENT_ID",
    "GRAPH_TENANT_ID",
    "GRAPH_CLIENT_ID",
    "GRAPH_CLIENT_SECRET",
    "GRAPH_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
];

/// The app's settings over the process environment (see the module documentation).
pub fn with_app_settings(process: &Environment, json: &str) -> Result<Environment, String> {
    let parsed: Value =
        serde_json::from_str(json).map_err(|e| format!("--app-settings is not JSON: {e}"))?;
    let pairs: Vec<(String, String)> = match &parsed {
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let name = item["name"].as_str().ok_or(
                    "--app-settings: each entry needs a \"name\" (the output of az functionapp config appsettings list)",
                )?;
                Ok((name.to_string(), text(&item["value"])))
            })
            .collect::<Result<_, &str>>()?,
        Value::Object(map) => {
            let values = map.get("Values").and_then(Value::as_object).unwrap_or(map);
            values.iter().map(|(k, v)| (k.clone(), text(v))).collect()
        }
        _ => return Err("--app-settings: expected a list of {name, value} or an object".into()),
    };
    let chosen: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(name, value)| {
            if RUNNER_OWN.contains(&name.as_str()) {
                return false;
            }
            // A secret the app reads from Key Vault comes from here when it is here.
            let here = process
                .raw(name)
                .filter(|v| KeyVaultReference::parse(v).is_none());
            !(KeyVaultReference::parse(value).is_some() && here.is_some())
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(process.overlay(chosen))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str =
        "@Microsoft.KeyVault(SecretUri=https://kv-a.vault.azure.net/secrets/smtp-password/)";

    #[test]
    fn the_apps_values_win_but_secrets_and_the_credential_come_from_here() {
        let process = Environment::from_pairs([
            ("SMTP_PASSWORD", "from-azd"),
            ("GRAPH_CREDENTIAL", "azure_cli"),
            ("SMTP_URL", "smtp://stale.example"),
            ("ONLY_HERE", "kept"),
        ]);
        let app = serde_json::json!([
            {"name": "SMTP_PASSWORD", "slotSetting": false, "value": REFERENCE},
            {"name": "SMTP_URL", "slotSetting": false, "value": "smtp://mail.contoso.com:587?tls=required"},
            {"name": "GRAPH_CREDENTIAL", "slotSetting": false, "value": "managed_identity"},
            {"name": "PORTAL_SIGNING_KEYS", "slotSetting": false, "value": REFERENCE},
        ])
        .to_string();
        let env = with_app_settings(&process, &app).unwrap();
        assert_eq!(env.raw("SMTP_PASSWORD"), Some("from-azd"));
        assert_eq!(
            env.raw("SMTP_URL"),
            Some("smtp://mail.contoso.com:587?tls=required")
        );
        assert_eq!(env.raw("GRAPH_CREDENTIAL"), Some("azure_cli"));
        assert_eq!(env.raw("ONLY_HERE"), Some("kept"));
        // Nothing here for it: the reference stays, and the settings check will say so.
        assert_eq!(env.raw("PORTAL_SIGNING_KEYS"), Some(REFERENCE));
    }

    #[test]
    fn local_settings_files_are_read_too() {
        let env = with_app_settings(
            &Environment::default(),
            r#"{"IsEncrypted": false, "Values": {"MAIL_FROM": "a@b.example", "PORTAL_RATE_LIMIT_IP": 5}}"#,
        )
        .unwrap();
        assert_eq!(env.raw("MAIL_FROM"), Some("a@b.example"));
        assert_eq!(env.raw("PORTAL_RATE_LIMIT_IP"), Some("5"));
        assert!(with_app_settings(&Environment::default(), "[{\"value\": 1}]").is_err());
        assert!(with_app_settings(&Environment::default(), "not json").is_err());
    }
}
