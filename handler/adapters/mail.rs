//! Outgoing mail over SMTP (lettre). The portal sends four kinds of mail (verification,
//! approver request, invitation, outcome); all are rendered by `crate::views` and handed here
//! as text and HTML. Recipients are always canonical, validated addresses and subjects never
//! contain a requester's raw input with line breaks, so nothing from outside reaches a header.

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::settings::MailSettings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `<id@host>`: the same for every attempt at one mail, so a mail sent twice (a crash
    /// between the server's acceptance and our record of it) is recognisably one message.
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailError {
    /// Connection refused, timeout, 4xx: try again later.
    Unavailable(String),
    /// 5xx or an address the server will never take.
    Rejected(String),
}

impl MailError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, MailError::Unavailable(_))
    }
}

/// Mail servers quote the recipient they refuse (`550 5.1.1 <bob@...>: unknown user`):
/// addresses are masked in everything shown, logged or stored of an error.
impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            MailError::Unavailable(why) => format!("the mail server is unavailable: {why}"),
            MailError::Rejected(why) => format!("the mail server refused the message: {why}"),
        };
        f.write_str(&crate::core::email::mask_addresses(&text))
    }
}

impl std::error::Error for MailError {}

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> Result<Self, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url)
            .map_err(|e| format!("SMTP_URL: {e}"))?
            .timeout(Some(settings.timeout));
        if let (Some(user), Some(pass)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| format!("MAIL_FROM is not a mailbox: {e}"))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    pub async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| MailError::Rejected(format!("recipient: {e}")))?;
        let subject = mail.subject.replace(['\r', '\n'], " ");
        let message = Message::builder()
            .message_id(mail.message_id.clone())
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            // Marks the mail as sent by a machine, so auto-responders stay quiet.
            .header(AutoSubmitted)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(mail.text.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(mail.html.clone()),
                    ),
            )
            .map_err(|e| MailError::Rejected(e.to_string()))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            if e.is_permanent() {
                MailError::Rejected(e.to_string())
            } else {
                MailError::Unavailable(e.to_string())
            }
        })
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834).
#[derive(Clone)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-generated".to_string())
    }
}
