//! The SMTP relay: it answers, secures the connection as `SMTP_URL` asks, takes the credentials
//! and accepts `MAIL_FROM` as the sender. No mail is sent (`MAIL FROM`, then `RSET`, `QUIT`).

use std::time::Duration;

use super::{Doctor, Finding};
use crate::adapters::smtp_probe::{self, ProbeStep, SmtpSecurity};

const CHECK: &str = "smtp";

pub async fn smtp(d: &mut Doctor) -> Vec<Finding> {
    let Some(mail) = &d.mail else {
        return vec![Finding::not_checked(
            CHECK,
            "the mail settings do not parse (see settings)",
        )];
    };
    let where_from = if d.in_azure() {
        ""
    } else {
        " (from this machine: a network that blocks outbound SMTP fails here though Azure would pass)"
    };
    match smtp_probe::probe(mail, Duration::from_secs(15)).await {
        Ok(report) => {
            let t = &report.target;
            let security = match (t.security, report.encrypted) {
                (SmtpSecurity::ImplicitTls, _) => "TLS",
                (_, true) => "STARTTLS",
                (_, false) => "no encryption",
            };
            let auth = if report.authenticated {
                "signed in as SMTP_USERNAME"
            } else {
                "without signing in"
            };
            let mut findings = vec![Finding::ok(
                CHECK,
                format!(
                    "{}:{} takes mail from {} over {security}, {auth}",
                    t.host, t.port, mail.from
                ),
            )];
            if !report.encrypted && !t.is_loopback() {
                findings.push(Finding::warn(
                    CHECK,
                    format!("mail to {} travels unencrypted", t.host),
                    "use smtp://host:587?tls=required (STARTTLS) or smtps://host:465",
                ));
            }
            if report.authenticated && !report.encrypted && !t.is_loopback() {
                findings.push(Finding::fail(
                    CHECK,
                    "the SMTP password is sent without encryption",
                    "use smtp://host:587?tls=required (STARTTLS) or smtps://host:465",
                ));
            }
            findings
        }
        Err(failure) => {
            let detail = failure.detail;
            let (message, fix) = match failure.step {
                ProbeStep::Connect => (
                    format!("cannot connect to the SMTP server{where_from}: {detail}"),
                    "check SMTP_URL's host and port (587 with ?tls=required, or smtps:// on 465)".to_string(),
                ),
                ProbeStep::StartTls => (
                    format!("STARTTLS failed: {detail}"),
                    "use a server that offers STARTTLS with a trusted certificate, or smtps:// if it speaks TLS from the start".to_string(),
                ),
                ProbeStep::Authenticate => (
                    format!("the server did not accept the credentials: {detail}"),
                    "check SMTP_USERNAME and SMTP_PASSWORD (in Azure the password is a Key Vault secret: azd env set SMTP_PASSWORD ... then azd provision)".to_string(),
                ),
                ProbeStep::Sender => {
                    let needs_auth = detail.contains("530") || detail.to_ascii_lowercase().contains("authentication");
                    let fix = if needs_auth && mail.username.is_none() {
                        "the server wants authentication: set SMTP_USERNAME and SMTP_PASSWORD".to_string()
                    } else {
                        format!(
                            "use a sender the relay lets this account send as, or allow {} on the relay (send-as rights, SPF)",
                            mail.from
                        )
                    };
                    (format!("the server refused the sender {}: {detail}", mail.from), fix)
                }
            };
            vec![Finding::fail(CHECK, message, fix)]
        }
    }
}
