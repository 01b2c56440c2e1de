//! Checking the SMTP relay without sending mail, for `handler doctor`: connect, secure the
//! connection as `SMTP_URL` says, authenticate with `SMTP_USERNAME`/`SMTP_PASSWORD`, and offer
//! `MAIL_FROM` as the sender; then `RSET` and `QUIT`, so no message is ever started.
//!
//! It reads `SMTP_URL` the way the mailer (lettre's `from_url`) does: `smtps://` is TLS from the
//! first byte (port 465 by default), `smtp://...?tls=required` demands STARTTLS (587),
//! `?tls=opportunistic` uses it when offered (587), and plain `smtp://` speaks unencrypted (25).

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Mail, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension};

use crate::settings::MailSettings;

/// How the connection is to be secured, from `SMTP_URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the start.
    ImplicitTls,
    /// `?tls=required`: STARTTLS or nothing.
    StartTlsRequired,
    /// `?tls=opportunistic`: STARTTLS when the server offers it.
    StartTlsOpportunistic,
    /// Plain `smtp://`: never encrypted.
    None,
}

/// Where and how the probe connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
}

impl SmtpTarget {
    pub fn from_url(smtp_url: &str) -> Result<SmtpTarget, String> {
        let url = url::Url::parse(smtp_url).map_err(|e| format!("SMTP_URL: {e}"))?;
        let host = url.host_str().ok_or("SMTP_URL has no host")?.to_string();
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtps", _) => (SmtpSecurity::ImplicitTls, 465),
            ("smtp", Some("required")) => (SmtpSecurity::StartTlsRequired, 587),
            ("smtp", Some("opportunistic")) => (SmtpSecurity::StartTlsOpportunistic, 587),
            ("smtp", None) => (SmtpSecurity::None, 25),
            (scheme, tls) => {
                return Err(format!(
                    "SMTP_URL: unknown scheme {scheme:?} or tls={:?}",
                    tls.unwrap_or("")
                ))
            }
        };
        Ok(SmtpTarget {
            host: host.trim_matches(['[', ']']).to_string(),
            port: url.port().unwrap_or(default_port),
            security,
        })
    }

    pub fn is_loopback(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
    }
}

/// The step the probe stopped at, and what the server (or the network) said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    pub step: ProbeStep,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    Connect,
    StartTls,
    Authenticate,
    Sender,
}

/// What a successful probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub target: SmtpTarget,
    pub encrypted: bool,
    pub authenticated: bool,
}

/// Connects, secures, authenticates and offers the sender; sends no message.
pub async fn probe(
    settings: &MailSettings,
    timeout: Duration,
) -> Result<ProbeReport, ProbeFailure> {
    let fail = |step: ProbeStep| move |detail: String| ProbeFailure { step, detail };
    let target = SmtpTarget::from_url(&settings.smtp_url).map_err(fail(ProbeStep::Connect))?;
    let sender: Mailbox = settings
        .from
        .parse()
        .map_err(|e| fail(ProbeStep::Sender)(format!("MAIL_FROM is not a mailbox: {e}")))?;
    let tls = TlsParameters::new(target.host.clone())
        .map_err(|e| fail(ProbeStep::Connect)(e.to_string()))?;
    let hello = ClientId::default();
    let wrapper = (target.security == SmtpSecurity::ImplicitTls).then(|| tls.clone());
    let connect = AsyncSmtpConnection::connect_tokio1(
        (target.host.as_str(), target.port),
        Some(timeout),
        &hello,
        wrapper,
        None,
    );
    let mut conn = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| fail(ProbeStep::Connect)("timed out".into()))?
        .map_err(|e| fail(ProbeStep::Connect)(e.to_string()))?;
    let offers_starttls = conn.server_info().supports_feature(Extension::StartTls);
    let starttls = match target.security {
        SmtpSecurity::StartTlsRequired => true,
        SmtpSecurity::StartTlsOpportunistic => offers_starttls,
        SmtpSecurity::ImplicitTls | SmtpSecurity::None => false,
    };
    let outcome = async {
        if starttls {
            if !offers_starttls {
                return Err(fail(ProbeStep::StartTls)(
                    "the server does not offer STARTTLS".into(),
                ));
            }
            conn.starttls(tls, &hello)
                .await
                .map_err(|e| fail(ProbeStep::StartTls)(e.to_string()))?;
        }
        let authenticated = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => {
                if conn
                    .server_info()
                    .get_auth_mechanism(DEFAULT_MECHANISMS)
                    .is_none()
                {
                    return Err(fail(ProbeStep::Authenticate)(
                        "the server offers no authentication (AUTH PLAIN or LOGIN) on this connection"
                            .into(),
                    ));
                }
                let credentials = Credentials::new(user.clone(), password.clone());
                conn.auth(DEFAULT_MECHANISMS, &credentials)
                    .await
                    .map_err(|e| fail(ProbeStep::Authenticate)(e.to_string()))?;
                true
            }
            _ => false,
        };
        conn.command(Mail::new(Some(sender.email.clone()), vec![]))
            .await
            .map_err(|e| fail(ProbeStep::Sender)(e.to_string()))?;
        Ok(authenticated)
    };
    let result = tokio::time::timeout(timeout, outcome).await;
    let encrypted = conn.is_encrypted();
    // Leave no half-started transaction behind, whatever happened.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = conn.command(Rset).await;
        let _ = conn.quit().await;
    })
    .await;
    let authenticated = match result {
        Err(_) => {
            return Err(fail(ProbeStep::Sender)(
                "the server stopped answering".into(),
            ))
        }
        Ok(outcome) => outcome?,
    };
    Ok(ProbeReport {
        target,
        encrypted,
        authenticated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_the_url_as_the_mailer_does() {
        for (url, host, port, security) in [
            (
                "smtps://mail.contoso.com",
                "mail.contoso.com",
                465,
                SmtpSecurity::ImplicitTls,
            ),
            (
                "smtp://mail.contoso.com:2587?tls=required",
                "mail.contoso.com",
                2587,
                SmtpSecurity::StartTlsRequired,
            ),
            (
                "smtp://relay.example?tls=opportunistic",
                "relay.example",
                587,
                SmtpSecurity::StartTlsOpportunistic,
            ),
            (
                "smtp://127.0.0.1:2525",
                "127.0.0.1",
                2525,
                SmtpSecurity::None,
            ),
        ] {
            let t = SmtpTarget::from_url(url).unwrap();
            assert_eq!(
                (t.host.as_str(), t.port, t.security),
                (host, port, security),
                "{url}"
            );
        }
        assert!(SmtpTarget::from_url("smtp://x?tls=sometimes").is_err());
        assert!(SmtpTarget::from_url("http://x").is_err());
    }
}
