//! The mail floor: the least one verification mail costs — one SMTP transaction (MAIL, RCPT,
//! DATA, the message and its terminator in one write) on a pooled connection with
//! `TCP_NODELAY`, carrying the same message the portal sends (rendered once by the portal's
//! own view and formatted as the portal formats it). Added to the storage floor, it shows how
//! much of the gap between the portal and the storage floor is the mail the design requires.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use b2b_signup::core::policy::Language;
use b2b_signup::core::token::{new_nonce, SigningKeys, TokenClaims, TokenPurpose};
use b2b_signup::settings::{Environment, PortalSettings};

const FROM: &str = "no-reply@contoso.example";

struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn open(port: u16) -> Result<Conn, String> {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut conn = Conn {
            stream: BufReader::new(tcp),
        };
        conn.expect(220).await?;
        conn.command(b"EHLO bench.example\r\n", 250).await?;
        Ok(conn)
    }

    /// Reads one (possibly multi-line) reply and checks its code.
    async fn expect(&mut self, code: u16) -> Result<(), String> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stream
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the SMTP server closed the connection".into());
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        if line.starts_with(&code.to_string()) {
            Ok(())
        } else {
            Err(format!("SMTP: expected {code}, got {}", line.trim_end()))
        }
    }

    async fn command(&mut self, bytes: &[u8], code: u16) -> Result<(), String> {
        self.stream
            .get_mut()
            .write_all(bytes)
            .await
            .map_err(|e| e.to_string())?;
        self.expect(code).await
    }
}

/// Sends the verification mail's bytes to any address, over a small connection pool.
#[derive(Clone)]
pub struct MailFloor {
    port: u16,
    /// The formatted message, dot-stuffed, with the terminator appended.
    data: Arc<Vec<u8>>,
    pool: Arc<Mutex<Vec<Conn>>>,
}

impl MailFloor {
    /// Renders the verification mail the portal sends (same view, same settings, a link
    /// with a real token) and formats it as the portal's mail adapter does.
    pub fn new(port: u16, env: &[(String, String)]) -> Result<MailFloor, String> {
        let env = Environment::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let settings = PortalSettings::from_env(&env).map_err(|e| e.to_string())?;
        let keys: &SigningKeys = &settings.signing_keys;
        let token = keys.sign(&TokenClaims {
            purpose: TokenPurpose::Verify,
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            subject: "p123.c8r0abcdef@d17.signup.bench.example".into(),
            stage: 0,
            expires_at: time::OffsetDateTime::now_utc().unix_timestamp() + 86_400,
            nonce: new_nonce(),
        });
        let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        let link = format!(
            "{}/api/signup/verify?token={token}",
            settings.public_url.as_str().trim_end_matches('/')
        );
        let brand = b2b_signup::views::Brand {
            branding: &settings.branding,
            has_logo: false,
        };
        let mail = b2b_signup::views::verification_mail(
            &brand,
            Language::En,
            "Ada",
            &link,
            settings.verification_hours,
        );
        let message = lettre::Message::builder()
            .from(
                "Contoso Partner Access <no-reply@contoso.example>"
                    .parse()
                    .map_err(|e| format!("{e}"))?,
            )
            .to("p123.c8r0abcdef@d17.signup.bench.example"
                .parse()
                .map_err(|e| format!("{e}"))?)
            .subject(mail.subject)
            .multipart(
                lettre::message::MultiPart::alternative()
                    .singlepart(
                        lettre::message::SinglePart::builder()
                            .header(lettre::message::header::ContentType::TEXT_PLAIN)
                            .body(mail.text),
                    )
                    .singlepart(
                        lettre::message::SinglePart::builder()
                            .header(lettre::message::header::ContentType::TEXT_HTML)
                            .body(mail.html),
                    ),
            )
            .map_err(|e| e.to_string())?;
        let mut data = Vec::new();
        for line in message.formatted().split_inclusive(|b| *b == b'\n') {
            if line.first() == Some(&b'.') {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        Ok(MailFloor {
            port,
            data: Arc::new(data),
            pool: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Bytes of one message on the wire.
    pub fn message_bytes(&self) -> usize {
        self.data.len()
    }

    pub async fn send(&self, to: &str) -> Result<(), String> {
        let pooled = self.pool.lock().expect("the pool lock").pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => Conn::open(self.port).await?,
        };
        conn.command(format!("MAIL FROM:<{FROM}>\r\n").as_bytes(), 250)
            .await?;
        conn.command(format!("RCPT TO:<{to}>\r\n").as_bytes(), 250)
            .await?;
        conn.command(b"DATA\r\n", 354).await?;
        conn.command(&self.data, 250).await?;
        self.pool.lock().expect("the pool lock").push(conn);
        Ok(())
    }
}
