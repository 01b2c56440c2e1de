//! The stand-ins and the processes under test, started the way `tests/common` starts them:
//! Azurite (in memory), two aiosmtpd servers (real SMTP on loopback, recording what they accept
//! and when: one accepts at once, one takes 150 ms per message like a cloud relay), the Graph
//! simulator in-process, and the release `handler` started as the Functions host starts it
//! (`FUNCTIONS_CUSTOMHANDLER_PORT`, readiness on `GET /`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use graph_simulator::{Simulator, SimulatorConfig};

/// The key every benchmark portal signs links with, so the bench can mint the links a mail
/// would carry (verify, approve) without parsing mail.
pub const SIGNING_KEYS: &str =
    "b1:YmVuY2gtc2lnbmluZy1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// High enough that no rate limit refuses a benchmark sign-up (the counters are still read
/// and written on every sign-up, exactly as in production).
pub const RATE_LIMIT: &str = "100000000";

/// How long the slow SMTP server takes to accept a message: what cloud relays take.
pub const SLOW_SMTP_MS: u64 = 150;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port is free")
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// Makes a child die with the bench, so no Azurite or handler outlives a run.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub child: Child,
    pub what: &'static str,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, proc: &mut Proc) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            return Err(format!(
                "{} exited before it listened ({status})",
                proc.what
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "{} did not listen on {port} within 30 s",
        proc.what
    ))
}

/// One aiosmtpd server and what it has accepted.
pub struct Sink {
    pub port: u16,
    pub proc: Proc,
    pub accepted: MailLog,
}

impl Sink {
    /// `bench/smtp_sink.py`'s `Recorder`, accepting after `delay_ms`.
    fn start(repo: &Path, work: &Path, name: &str, delay_ms: u64) -> Result<Sink, String> {
        let port = free_port();
        let record = work.join(format!("accepted-{name}"));
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "smtp_sink.Recorder"])
            .arg(&record)
            .arg(delay_ms.to_string())
            .env("PYTHONPATH", repo.join("bench"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let mut proc = Proc {
            child: cmd
                .spawn()
                .map_err(|e| format!("python3 -m aiosmtpd: {e}"))?,
            what: "aiosmtpd (pip install aiosmtpd)",
        };
        wait_for_port(port, &mut proc)?;
        Ok(Sink {
            port,
            proc,
            accepted: MailLog::new(record),
        })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

/// A message the SMTP server accepted: to whom, and when (Unix time, ns).
#[derive(Clone, Debug)]
pub struct Accepted {
    pub to: String,
    pub at_ns: i128,
}

/// The record file of a sink, read as it grows.
pub struct MailLog {
    path: PathBuf,
    read: Mutex<(u64, Vec<Accepted>)>,
}

impl MailLog {
    fn new(path: PathBuf) -> MailLog {
        MailLog {
            path,
            read: Mutex::new((0, Vec::new())),
        }
    }

    /// Reads the lines added since the last call (only whole lines).
    fn refresh(&self) -> std::sync::MutexGuard<'_, (u64, Vec<Accepted>)> {
        use std::io::{Seek, SeekFrom};
        let mut read = self.read.lock().expect("the mail log lock");
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return read;
        };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(read.0)).is_err() || file.read_to_string(&mut text).is_err() {
            return read;
        }
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        read.0 += whole as u64;
        for line in text[..whole].lines() {
            if let Some((to, at)) = line.split_once('\t') {
                if let Ok(at_ns) = at.trim().parse() {
                    read.1.push(Accepted {
                        to: to.to_string(),
                        at_ns,
                    });
                }
            }
        }
        read
    }

    /// Messages accepted so far.
    pub fn count(&self) -> usize {
        self.refresh().1.len()
    }

    /// Messages accepted after the first `from`.
    pub fn since(&self, from: usize) -> Vec<Accepted> {
        self.refresh().1.get(from..).unwrap_or_default().to_vec()
    }

    /// Waits until `want` messages have been accepted in all, at most `patience`; returns the
    /// count reached.
    pub async fn wait_for(&self, want: usize, patience: Duration) -> usize {
        let deadline = Instant::now() + patience;
        loop {
            let n = self.count();
            if n >= want || Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The shared stand-ins of one bench run.
pub struct Stack {
    pub work: PathBuf,
    pub table_port: u16,
    pub smtp_port: u16,
    pub sim: Simulator,
    pub azurite: Proc,
    /// Accepts at once.
    pub smtp: Sink,
    /// Takes [`SLOW_SMTP_MS`] per message.
    pub slow_smtp: Sink,
}

impl Stack {
    pub fn start(repo: &Path) -> Result<Stack, String> {
        let work = std::env::temp_dir().join(format!(
            "b2b-bench-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;

        let azurite_bin = repo.join("tests/platform/node_modules/.bin/azurite-table");
        if !azurite_bin.exists() {
            return Err(
                "Azurite is not installed: run `npm ci --prefix tests/platform` (./dev bench does)"
                    .into(),
            );
        }
        let table_port = free_port();
        let mut cmd = Command::new(&azurite_bin);
        cmd.args(["--tableHost", "127.0.0.1", "--tablePort"])
            .arg(table_port.to_string())
            .args([
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ])
            .current_dir(&work)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let mut azurite = Proc {
            child: cmd.spawn().map_err(|e| format!("Azurite: {e}"))?,
            what: "Azurite",
        };
        wait_for_port(table_port, &mut azurite)?;

        let smtp = Sink::start(repo, &work, "instant", 0)?;
        let slow_smtp = Sink::start(repo, &work, "slow", SLOW_SMTP_MS)?;

        // Throttles on (the documented defaults), no added latency: the sign-up figures are
        // about the portal, the Graph counts do not depend on latency.
        let sim = Simulator::start_detached(SimulatorConfig::default())
            .map_err(|e| format!("the Graph simulator: {e}"))?;
        Ok(Stack {
            work,
            table_port,
            smtp_port: smtp.port,
            sim,
            azurite,
            smtp,
            slow_smtp,
        })
    }

    /// The settings a handler needs, as `tests/common` gives them, against `table_port` (Azurite
    /// itself, or the counting proxy in front of it) and its own table prefix.
    pub fn handler_env(&self, table_port: u16, prefix: &str) -> Vec<(String, String)> {
        let pairs = [
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("PORTAL_STORAGE", storage_connection_string(table_port)),
            ("PORTAL_TABLE_PREFIX", prefix.to_string()),
            ("GRAPH_BASE_URL", self.sim.base_url()),
            ("GRAPH_CREDENTIAL", "managed_identity".into()),
            ("IDENTITY_ENDPOINT", self.sim.identity_endpoint()),
            ("IDENTITY_HEADER", self.sim.identity_header()),
            ("SMTP_URL", format!("smtp://127.0.0.1:{}", self.smtp_port)),
            (
                "MAIL_FROM",
                "Contoso Partner Access <no-reply@contoso.example>".into(),
            ),
            ("PORTAL_PUBLIC_URL", "http://localhost:7071".into()),
            ("PORTAL_SIGNING_KEYS", SIGNING_KEYS.into()),
            ("PORTAL_ORG_NAME", "Contoso".into()),
            ("PORTAL_LOG_FORMAT", "json".into()),
            ("PORTAL_RATE_LIMIT_IP", RATE_LIMIT.into()),
            ("PORTAL_RATE_LIMIT_ADDRESS", RATE_LIMIT.into()),
            ("PORTAL_RATE_LIMIT_DOMAIN", RATE_LIMIT.into()),
        ];
        let mut env: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        // BENCH_HANDLER_ENV="NAME=value,...": extra settings, for comparing configurations.
        if let Ok(extra) = std::env::var("BENCH_HANDLER_ENV") {
            env.extend(extra.split(',').filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            }));
        }
        env
    }

    /// Runs an admin command (`handler policy add ...`) with these settings.
    pub fn cli(
        &self,
        handler: &Path,
        env: &[(String, String)],
        args: &[&str],
    ) -> Result<String, String> {
        let out = Command::new(handler)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", handler.display()))?;
        if !out.status.success() {
            return Err(format!(
                "handler {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Mails the instant SMTP server has accepted so far.
    pub fn mails_delivered(&self) -> usize {
        self.smtp.accepted.count()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

pub fn storage_connection_string(table_port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};TableEndpoint=http://127.0.0.1:{table_port}/devstoreaccount1",
        b2b_signup::settings::DEV_ACCOUNT_KEY
    )
}

/// Sets `name` in `env`, replacing what was there.
pub fn set_env(env: &mut Vec<(String, String)>, name: &str, value: impl Into<String>) {
    env.retain(|(k, _)| k != name);
    env.push((name.to_string(), value.into()));
}

/// A started handler (or hello-floor): the process and where it answers.
pub struct Server {
    pub proc: Proc,
    pub port: u16,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Starts `bin` as the Functions host does and returns once `GET /` is answered, with the time
/// from exec to that answer.
pub fn start_server(
    bin: &Path,
    env: &[(String, String)],
    log: Option<&Path>,
) -> Result<(Server, Duration), String> {
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env(
            "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
            uuid::Uuid::new_v4().to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match log {
        Some(path) => {
            let file =
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            cmd.stderr(file);
        }
        None => {
            cmd.stderr(Stdio::null());
        }
    }
    die_with_parent(&mut cmd);
    let started = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
    let mut proc = Proc {
        child,
        what: "the server under test",
    };
    let ready = wait_ready(port, started, &mut proc)?;
    Ok((Server { proc, port }, ready))
}

/// Polls `GET /` as tightly as a probe reasonably can (a connect attempt every 100 µs) and
/// returns the time from `started` to the first byte of the answer.
fn wait_ready(port: u16, started: Instant, proc: &mut Proc) -> Result<Duration, String> {
    let deadline = started + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_nodelay(true);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            if stream
                .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .is_ok()
            {
                let mut first = [0u8; 12];
                if let Ok(n) = stream.read(&mut first) {
                    if n > 0 {
                        let at = started.elapsed();
                        if !first.starts_with(b"HTTP/1.1 200") {
                            return Err(format!(
                                "GET / answered {:?}",
                                String::from_utf8_lossy(&first[..n])
                            ));
                        }
                        return Ok(at);
                    }
                }
            }
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            return Err(format!("the server exited before answering ({status})"));
        }
        if Instant::now() > deadline {
            return Err("the server did not answer GET / within 30 s".into());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = clock_ticks();
    Some(Duration::from_secs_f64((utime + stime) as f64 / ticks))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Busy and total CPU time of the whole machine so far (all cores), from `/proc/stat`.
pub fn machine_cpu() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    let ticks = clock_ticks();
    Some((
        Duration::from_secs_f64((total - idle) as f64 / ticks),
        Duration::from_secs_f64(total as f64 / ticks),
    ))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn the_mail_log_reads_whole_lines_as_they_come() {
        let dir = std::env::temp_dir().join(format!("mail-log-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("accepted");
        let log = super::MailLog::new(path.clone());
        assert_eq!(log.count(), 0, "no file yet");
        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "a@x.example\t100\nb@x.example\t2").unwrap();
        f.flush().unwrap();
        assert_eq!(log.count(), 1, "the second line is not whole yet");
        writeln!(f, "00").unwrap();
        f.flush().unwrap();
        let all = log.since(0);
        assert_eq!(all.len(), 2);
        assert_eq!((all[1].to.as_str(), all[1].at_ns), ("b@x.example", 200));
        assert_eq!(log.since(1).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
