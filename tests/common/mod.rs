//! The test platform: real stand-ins, started the way production meets them.
//!
//! - Table Storage: Azurite (`tests/platform/node_modules/.bin/azurite-table`), one per test
//!   process unless `B2B_TEST_TABLE_PORT` names one the test script started; every test gets
//!   its own table prefix, so tests never see each other's rows.
//! - Mail: aiosmtpd, a real SMTP server on loopback writing a maildir (one per process unless
//!   `B2B_TEST_SMTP_PORT` + `B2B_TEST_MAILDIR` are set); tests read the mails sent to their
//!   own unique addresses.
//! - Microsoft Graph: the project's simulator, one per test, in-process.
//! - The portal: the real `handler` binary, started as the Functions host starts it
//!   (`FUNCTIONS_CUSTOMHANDLER_PORT`, readiness polled on `GET /`) and called as the host calls
//!   it (forwarded HTTP with the host's headers; timer invocations as chunked JSON).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use b2b_signup::adapters::tables::TableStore;
use b2b_signup::settings::{Environment, StorageSettings};
use graph_simulator::{Simulator, SimulatorConfig};

/// The signing key every test portal uses, so tests can mint expired or foreign tokens.
pub const TEST_SIGNING_KEYS: &str = "k2:dGVzdC1zaWduaW5nLWtleS0yLTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZA==,k1:dGVzdC1zaWduaW5nLWtleS0xLTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZA==";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Makes a child die with the test process, so no Azurite outlives a run.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before it listened ({status})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port} within 30 s");
}

struct Services {
    table_port: u16,
    smtp_port: u16,
    maildir: PathBuf,
    _children: Vec<Child>,
    _dirs: Vec<tempfile::TempDir>,
}

fn services() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    // PR_SET_PDEATHSIG fires when the spawning *thread* ends, and test threads end with their
    // test: the shared services are spawned from a thread that lives as long as the process.
    SERVICES.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tx.send(start_services()).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the services start")
    })
}

fn start_services() -> Services {
    {
        let mut children = Vec::new();
        let mut dirs = Vec::new();
        let table_port = match std::env::var("B2B_TEST_TABLE_PORT") {
            Ok(p) => p.parse().expect("B2B_TEST_TABLE_PORT is a port"),
            Err(_) => {
                let bin = repo_root().join("tests/platform/node_modules/.bin/azurite-table");
                assert!(
                    bin.exists(),
                    "Azurite is not installed: run `npm ci --prefix tests/platform` (./dev test does)"
                );
                let dir = tempfile::tempdir().unwrap();
                let port = free_port();
                let mut cmd = Command::new(bin);
                cmd.args(["--tableHost", "127.0.0.1", "--tablePort", &port.to_string()])
                    .args([
                        "--disableTelemetry",
                        "--skipApiVersionCheck",
                        "--inMemoryPersistence",
                    ])
                    .current_dir(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                die_with_parent(&mut cmd);
                let mut child = cmd.spawn().expect("Azurite starts");
                wait_for_port(port, "Azurite", &mut child);
                children.push(child);
                dirs.push(dir);
                port
            }
        };
        let (smtp_port, maildir) = match (
            std::env::var("B2B_TEST_SMTP_PORT"),
            std::env::var("B2B_TEST_MAILDIR"),
        ) {
            (Ok(p), Ok(d)) => (
                p.parse().expect("B2B_TEST_SMTP_PORT is a port"),
                PathBuf::from(d),
            ),
            _ => {
                let dir = tempfile::tempdir().unwrap();
                let maildir = dir.path().join("mail");
                let port = free_port();
                let mut cmd = Command::new("python3");
                cmd.args([
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    &format!("127.0.0.1:{port}"),
                    "-c",
                    "aiosmtpd.handlers.Mailbox",
                ])
                .arg(&maildir)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
                die_with_parent(&mut cmd);
                let mut child = cmd
                    .spawn()
                    .expect("python3 -m aiosmtpd starts (pip install aiosmtpd)");
                wait_for_port(port, "aiosmtpd (pip install aiosmtpd)", &mut child);
                children.push(child);
                dirs.push(dir);
                (port, maildir)
            }
        };
        Services {
            table_port,
            smtp_port,
            maildir,
            _children: children,
            _dirs: dirs,
        }
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// One test's world: its own tables, its own Graph, its own addresses.
pub struct Platform {
    pub sim: Simulator,
    pub env: HashMap<String, String>,
    pub table_prefix: String,
    /// A domain unique to this test, for partner addresses.
    pub partner_domain: String,
}

impl Platform {
    pub async fn start() -> Platform {
        Self::start_with(SimulatorConfig::default()).await
    }

    pub async fn start_with(config: SimulatorConfig) -> Platform {
        let services = services();
        let sim = Simulator::start_detached(config).expect("the Graph simulator starts");
        let table_prefix = unique("t");
        let partner_domain = format!("{}.example", unique("partner"));
        let mut env = HashMap::new();
        let pairs = [
            ("PORTAL_STORAGE".to_string(), format!(
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};TableEndpoint=http://127.0.0.1:{}/devstoreaccount1",
                b2b_signup::settings::DEV_ACCOUNT_KEY,
                services.table_port
            )),
            ("PORTAL_TABLE_PREFIX".into(), table_prefix.clone()),
            ("GRAPH_BASE_URL".into(), sim.base_url()),
            ("GRAPH_CREDENTIAL".into(), "managed_identity".into()),
            ("IDENTITY_ENDPOINT".into(), sim.identity_endpoint()),
            ("IDENTITY_HEADER".into(), sim.identity_header()),
            ("SMTP_URL".into(), format!("smtp://127.0.0.1:{}", services.smtp_port)),
            ("MAIL_FROM".into(), "Contoso Partner Access <no-reply@contoso.example>".into()),
            ("PORTAL_PUBLIC_URL".into(), "http://localhost:7071".into()),
            ("PORTAL_SIGNING_KEYS".into(), TEST_SIGNING_KEYS.into()),
            ("PORTAL_ORG_NAME".into(), "Contoso".into()),
            ("PORTAL_LOG_FORMAT".into(), "json".into()),
            ("PORTAL_POLICY_CACHE_SECONDS".into(), "0".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        env.extend(pairs);
        Platform {
            sim,
            env,
            table_prefix,
            partner_domain,
        }
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.env.insert(name.into(), value.into());
    }

    pub fn address(&self, local: &str) -> String {
        let address = format!("{local}@{}", self.partner_domain);
        personal(&address);
        address
    }

    /// The portal's tables, for inspecting what the handler wrote.
    pub fn store(&self) -> TableStore {
        let env = Environment::from_pairs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let settings = StorageSettings::from_env(&env).unwrap();
        TableStore::new(&settings, reqwest::Client::new(), None).unwrap()
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_handler"));
        cmd.env_clear();
        cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd.envs(&self.env);
        cmd
    }

    /// Runs an admin command (`handler policy list`, ...) against this test's tables.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let mut cmd = self.command();
        cmd.args(args);
        let out = tokio::task::block_in_place(|| cmd.output()).expect("the handler binary runs");
        CliOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `handler policy add --domain <this test's partner domain> ARGS`.
    pub fn add_partner_policy(&self, args: &[&str]) -> CliOutput {
        let mut all = vec!["policy", "add", "--domain", self.partner_domain.as_str()];
        all.extend_from_slice(args);
        self.cli(&all)
    }

    /// Where the test SMTP server writes mail.
    pub fn maildir(&self) -> PathBuf {
        services().maildir.clone()
    }

    /// Starts the handler as the Functions host does and waits for its readiness answer.
    pub async fn start_handler(&self) -> Handler {
        self.start_handler_on(free_port()).await
    }

    /// Starts the handler as the host does, for settings that may stop it: the running
    /// handler once it answers, or its exit code and what it wrote when it ends first.
    pub async fn start_handler_or_exit(&self) -> Result<Handler, (i32, String)> {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = self.command();
        cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap());
        die_with_parent(&mut cmd);
        let mut handler = Handler {
            child: cmd.spawn().expect("the handler starts"),
            port,
            http: reqwest::Client::new(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if handler.http.get(handler.url("/")).send().await.is_ok() {
                return Ok(handler);
            }
            if let Ok(Some(status)) = handler.child.try_wait() {
                return Err((status.code().unwrap_or(-1), handler.logs()));
            }
            assert!(Instant::now() < deadline, "neither served nor ended");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn start_handler_on(&self, port: u16) -> Handler {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = self.command();
        cmd.env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env(
                "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
                uuid::Uuid::new_v4().to_string(),
            )
            .env("FUNCTIONS_APP_ROOT_PATH", repo_root())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("the handler starts");
        let handler = Handler {
            child,
            port,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            log,
        };
        handler.wait_ready().await;
        handler
    }

    /// All mails delivered to `address` so far, oldest first.
    pub fn mails_to(&self, address: &str) -> Vec<Mail> {
        personal(address);
        read_mails(&services().maildir)
            .into_iter()
            .filter(|m| m.to.eq_ignore_ascii_case(address))
            .collect()
    }

    /// Every mail in the shared maildir (filter by your own addresses).
    pub fn mails_to_any(&self) -> Vec<Mail> {
        read_mails(&services().maildir)
    }

    /// Waits for the newest mail to `address` that `wanted` accepts: mail leaves after the
    /// answer (through the outbox), so a test looks until it arrives or 10 s pass.
    pub async fn wait_for_mail(&self, address: &str, wanted: impl Fn(&Mail) -> bool) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(m) = self.mails_to(address).into_iter().rev().find(&wanted) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no such mail to {address} within 10 s; it has {:?}",
                self.mails_to(address)
                    .iter()
                    .map(|m| &m.subject)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `address` has at least `n` mails.
    pub async fn wait_for_mails(&self, address: &str, n: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mails = self.mails_to(address);
            if mails.len() >= n || Instant::now() > deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub struct Handler {
    child: Child,
    pub port: u16,
    pub http: reqwest::Client,
    log: tempfile::NamedTempFile,
}

impl Handler {
    /// Waits up to `limit` for the process to end by itself; its exit code if it did.
    pub async fn exit_code_within(&mut self, limit: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Every test doubles as a check that no personal data reaches the logs: each address,
        // name and token the test used is looked for in everything the handler wrote.
        if !std::thread::panicking() {
            let logs = self.logs();
            let leaked: Vec<String> = PERSONAL
                .lock()
                .unwrap()
                .iter()
                .filter(|p| contains_whole(&logs, p))
                .cloned()
                .collect();
            assert!(
                leaked.is_empty(),
                "personal data in the handler's log: {leaked:?}\n{logs}"
            );
        }
    }
}

static PERSONAL: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Whether `needle` stands in `haystack` on its own, not as the tail of a longer word: the
/// masked form `sha256:…ba@partner.example` must not count as the address `a@partner.example`.
fn contains_whole(haystack: &str, needle: &str) -> bool {
    haystack.match_indices(needle).any(|(i, _)| {
        !haystack[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "._%+-'".contains(c))
    })
}

/// Registers a value that must never appear in a log (addresses, names, tokens).
pub fn personal(value: &str) {
    if value.len() >= 6 {
        let mut all = PERSONAL.lock().unwrap();
        if !all.iter().any(|v| v == value) {
            all.push(value.to_string());
        }
    }
}

impl Handler {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = self.http.get(self.url("/")).send().await {
                assert!(resp.status().is_success());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the handler did not answer GET / within 30 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// What the handler logged (stderr).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// A forwarded HTTP call as the host makes it: the caller's request at `/api/...`, plus the
    /// host's own headers.
    pub fn forward(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path_and_query))
            .header(
                "X-Azure-Functions-InvocationId",
                uuid::Uuid::new_v4().to_string(),
            )
            .header("X-Azure-Functions-HostVersion", "4.1040.300.25317")
            .header("User-Agent", "Azure-Functions-Host/4.1040.300.25317")
            .header("X-Forwarded-For", "203.0.113.10:50000")
    }

    /// The timer invocation exactly as the host posts it: chunked JSON, no Content-Length.
    pub async fn invoke_cleanup(&self, utc_now: &str) -> (u16, serde_json::Value) {
        let body = serde_json::json!({
            "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
            "Metadata": {"sys": {"MethodName": "function-cleanup", "UtcNow": utc_now, "RandGuid": uuid::Uuid::new_v4().to_string()}}
        })
        .to_string();
        let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(body.into_bytes())]);
        let resp = self
            .http
            .post(self.url("/function-cleanup"))
            .header("Content-Type", "application/json")
            .header(
                "X-Azure-Functions-InvocationId",
                uuid::Uuid::new_v4().to_string(),
            )
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .expect("the timer invocation is answered");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
}

/// A delivered mail, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub raw_headers: String,
    pub modified: std::time::SystemTime,
}

impl Mail {
    /// Every http(s) link in the text part.
    pub fn links(&self) -> Vec<String> {
        self.text
            .split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(|w| w.trim_end_matches(['.', ',', ')', '>']).to_string())
            .collect()
    }

    pub fn link_containing(&self, needle: &str) -> String {
        self.links()
            .into_iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| {
                panic!(
                    "no link with {needle:?} in mail {:?}:\n{}",
                    self.subject, self.text
                )
            })
    }
}

fn read_mails(maildir: &Path) -> Vec<Mail> {
    let mut mails = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(raw) = std::fs::read(entry.path()) else {
                continue;
            };
            let Ok(parsed) = mailparse::parse_mail(&raw) else {
                continue;
            };
            let header = |name: &str| {
                parsed
                    .headers
                    .iter()
                    .find(|h| h.get_key().eq_ignore_ascii_case(name))
                    .map(|h| h.get_value())
                    .unwrap_or_default()
            };
            let mut text = String::new();
            let mut html = String::new();
            for part in parsed.parts() {
                match part.ctype.mimetype.as_str() {
                    "text/plain" => text = part.get_body().unwrap_or_default(),
                    "text/html" => html = part.get_body().unwrap_or_default(),
                    _ => {}
                }
            }
            let to = header("To");
            let to = to
                .rsplit('<')
                .next()
                .unwrap_or(&to)
                .trim_end_matches('>')
                .trim()
                .to_string();
            let raw_headers = String::from_utf8_lossy(&raw)
                .split("\r\n\r\n")
                .next()
                .unwrap_or("")
                .to_string();
            mails.push(Mail {
                to,
                from: header("From"),
                subject: header("Subject"),
                text,
                html,
                raw_headers,
                modified: entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
            });
        }
    }
    mails.sort_by_key(|m| m.modified);
    mails
}

// --- verbs for the partner's and the approver's journeys --------------------------------

/// Submits the sign-up form as a browser does.
pub async fn submit_form(handler: &Handler, fields: &[(&str, &str)]) -> reqwest::Response {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    handler
        .forward(reqwest::Method::POST, "/api/signup")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

pub fn partner_fields<'a>(email: &'a str, first: &'a str) -> Vec<(&'a str, &'a str)> {
    personal(email);
    personal("Lovelace");
    vec![
        ("email", email),
        ("first_name", first),
        ("last_name", "Lovelace"),
        ("organisation", "Partner AB"),
        ("justification", "Working on the joint project"),
    ]
}

/// The `token` query value of a link.
pub fn token_of(link: &str) -> String {
    let token = url::Url::parse(link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("the link has a token");
    personal(&token);
    token
}

/// The path and query of a mailed link, to send to the handler as the host would forward it.
pub fn path_of(link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or(""))
}

/// Posts a token form (confirm, approve, deny) as the page's button does.
pub async fn post_form(
    handler: &Handler,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    handler
        .forward(reqwest::Method::POST, path)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Signs up and proves the mailbox with the link of this sign-up's mail (an address may have
/// had mail before); returns the page shown after confirming.
pub async fn sign_up_and_verify(
    platform: &Platform,
    handler: &Handler,
    email: &str,
    first: &str,
) -> (u16, String) {
    let before = platform.mails_to(email).len();
    let resp = submit_form(handler, &partner_fields(email, first)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let mails = platform.wait_for_mails(email, before + 1).await;
    let mail = mails
        .iter()
        .skip(before)
        .next_back()
        .unwrap_or_else(|| panic!("no verification mail to {email}"));
    let token = token_of(&mail.link_containing("/api/signup/verify"));
    let resp = post_form(handler, "/api/signup/verify", &[("token", &token)]).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The portal's request rows, for asserting on states.
pub async fn requests_for(
    platform: &Platform,
    email: &str,
) -> Vec<b2b_signup::core::request::SignupRequest> {
    b2b_signup::store::requests::list(&platform.store(), None, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.applicant.email.as_str() == email)
        .collect()
}

/// Every mail in this test's outbox (sent or not), oldest first.
pub async fn outbox(platform: &Platform) -> Vec<b2b_signup::store::outbox::StoredMail> {
    b2b_signup::store::outbox::list(&platform.store(), &signing_keys(), None)
        .await
        .unwrap()
}

/// Waits until the policies have looked at every submission for `email` (they do right after
/// the answer) and returns its requests.
pub async fn settled_requests(
    platform: &Platform,
    email: &str,
) -> Vec<b2b_signup::core::request::SignupRequest> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = requests_for(platform, email).await;
        if all
            .iter()
            .all(|r| r.status != b2b_signup::core::request::RequestStatus::Submitted)
            || Instant::now() > deadline
        {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn signing_keys() -> b2b_signup::core::token::SigningKeys {
    b2b_signup::core::token::SigningKeys::parse(TEST_SIGNING_KEYS).unwrap()
}

// --- stand-ins a test can break ---------------------------------------------------------

/// A TCP proxy in front of the test's Azurite that the test can cut: while cut, it resets
/// every open connection and refuses new ones, which is what an outage of Table Storage looks
/// like to the portal. (Killing Azurite itself would lose its unsaved data, which real Table
/// Storage never does with an acknowledged write.)
pub struct StorageOutage {
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl StorageOutage {
    pub fn start() -> StorageOutage {
        let target = services().table_port;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let (up, watch) = tokio::sync::watch::channel(true);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((mut client, _)) = listener.accept().await else { return };
                    if !*watch.borrow() {
                        drop(client);
                        continue;
                    }
                    let mut watch = watch.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = async { while watch.changed().await.is_ok() { if !*watch.borrow() { break; } } } => {
                                let _ = client.set_zero_linger();
                            }
                        }
                    });
                }
            });
        });
        StorageOutage { port, up }
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};TableEndpoint=http://127.0.0.1:{}/devstoreaccount1",
            b2b_signup::settings::DEV_ACCOUNT_KEY,
            self.port
        )
    }
}

/// A real SMTP server that fails: `TempFail` defers every message (451), `PermFail` refuses
/// every recipient (550).
pub struct FaultySmtp {
    pub port: u16,
    child: Child,
}

impl FaultySmtp {
    pub fn start(kind: &str) -> FaultySmtp {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            &format!("smtp_faults.{kind}"),
        ])
        .env("PYTHONPATH", repo_root().join("tests/platform"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("aiosmtpd starts");
        wait_for_port(port, "the faulty SMTP server", &mut child);
        FaultySmtp { port, child }
    }

    /// A real SMTP server that demands this user name and password (AUTH PLAIN or LOGIN,
    /// without TLS, on loopback) before it takes a sender.
    pub fn with_auth(user: &str, password: &str) -> FaultySmtp {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.arg(repo_root().join("tests/platform/smtp_auth.py"))
            .args([&port.to_string(), user, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("the authenticating SMTP server starts");
        wait_for_port(port, "the authenticating SMTP server", &mut child);
        FaultySmtp { port, child }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultySmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Platform {
    /// The same portal (same tables, same Graph) with some settings changed: a second
    /// instance, e.g. one whose SMTP server is down.
    pub fn with(&self, changes: &[(&str, &str)]) -> Platform {
        let mut env = self.env.clone();
        for (k, v) in changes {
            env.insert(k.to_string(), v.to_string());
        }
        Platform {
            sim: self.sim.clone(),
            env,
            table_prefix: self.table_prefix.clone(),
            partner_domain: self.partner_domain.clone(),
        }
    }
}

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

// --- the timer's verbs and what it leaves ------------------------------------------------

/// Invokes the timer at `at` (the host's UtcNow) and insists on 200.
pub async fn tick(handler: &Handler, at: time::OffsetDateTime) -> serde_json::Value {
    let (status, body) = handler.invoke_cleanup(&rfc3339(at)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The lines a timer run logged (its answer's `Logs`), the summary last.
pub fn run_logs(body: &serde_json::Value) -> Vec<String> {
    body["Logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no Logs in {body}"))
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// The portal's record of a guest, with its ETag.
pub async fn guest_record(
    platform: &Platform,
    user_id: &str,
) -> (b2b_signup::store::guests::Guest, String) {
    b2b_signup::store::guests::get(&platform.store(), user_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no guest row for {user_id}"))
}

/// The portal's record of a guest.
pub async fn guest_row(platform: &Platform, user_id: &str) -> b2b_signup::store::guests::Guest {
    guest_record(platform, user_id).await.0
}

/// The audit entries of one kind, oldest first.
pub async fn audit_of(
    platform: &Platform,
    action: &str,
) -> Vec<b2b_signup::store::audit::AuditEntry> {
    b2b_signup::store::audit::since(&platform.store(), time::OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

// --- the approver's verbs ----------------------------------------------------------------

/// The decision link in the newest mail to `approver` about `requester`, once it arrives.
pub async fn approver_link(platform: &Platform, approver: &str, requester: &str) -> String {
    platform
        .wait_for_mail(approver, |m| m.text.contains(requester))
        .await
        .link_containing("/api/approve")
}

/// Posts a decision from the link's page, as its buttons do.
pub async fn decide(
    handler: &Handler,
    link: &str,
    decision: &str,
    reason: &str,
    share: bool,
) -> (u16, String) {
    let token = token_of(link);
    let mut fields = vec![
        ("token", token.as_str()),
        ("decision", decision),
        ("reason", reason),
    ];
    if share {
        fields.push(("share_reason", "yes"));
    }
    let resp = post_form(handler, "/api/approve", &fields).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Writes an executable stand-in for a command-line tool (`az`, `azd`) into `dir`, for scripts
/// and credentials that run it from PATH.
pub fn stand_in_tool(dir: &Path, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `az` as the Azure CLI of an administrator signed in to the simulated tenant: it answers
/// `az account get-access-token` with the simulator's delegated admin token, and
/// `az functionapp config appsettings list` with the file `APP_SETTINGS_FILE` names.
pub fn admin_az(dir: &Path, sim: &Simulator) {
    let (token, expires_on) = sim.admin_token();
    stand_in_tool(
        dir,
        "az",
        &format!(
            r#"#!/bin/sh
case "$*" in
  *'account get-access-token'*)
    echo '{{"accessToken":"{token}","expiresOn":"2099-01-01 00:00:00.000000","expires_on":{expires_on},"tokenType":"Bearer"}}' ;;
  *'account show'*) echo '{{"id":"sub"}}' ;;
  *'functionapp config appsettings list'*) cat "$APP_SETTINGS_FILE" ;;
  *) echo "az: unexpected call: $*" >&2; exit 1 ;;
esac
"#
        ),
    );
}
