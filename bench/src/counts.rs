//! Round trips per operation: the handler runs against a counting proxy in front of Azurite
//! and the Graph simulator counts its own calls. Counted: a sign-up of each kind (admitted,
//! denied, unknown domain, open request), its calls split by whether they reached the proxy
//! before or after the answer reached the client; a verification under an `auto` policy
//! (verify + invite + grants); and an approval (verify under an `approve` policy, then the
//! approver's decision). The links a mail would carry are minted with the portal's signing
//! key; the mails themselves really go to aiosmtpd and are counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use graph_simulator::CallCounts;
use time::OffsetDateTime;

use b2b_signup::core::email::EmailAddress;
use b2b_signup::core::request::{RequestStatus, SignupRequest};
use b2b_signup::core::token::{new_nonce, SigningKeys, TokenClaims, TokenPurpose};

use crate::load;
use crate::platform::{self, Stack, SIGNING_KEYS};
use crate::proxy::{CountingProxy, Tally};
use crate::signup::{self, Submission, APPROVER};

pub const AUTO_DOMAIN: &str = "auto.bench.example";
pub const APPROVE_DOMAIN: &str = "approve.bench.example";

/// Counted calls of one operation, per operation.
#[derive(Debug, Clone, Default)]
pub struct PerOp {
    pub n: usize,
    pub storage: Tally,
    pub graph: CallCounts,
    pub mails: usize,
    pub latencies: Vec<Duration>,
}

impl PerOp {
    pub fn storage_total(&self) -> u64 {
        crate::proxy::calls_in(&self.storage)
    }
}

/// The Table Storage calls of sign-ups of one kind, split at the answer.
#[derive(Debug, Clone)]
pub struct SignupCount {
    pub kind: Submission,
    pub n: usize,
    /// Calls that reached the proxy before the answer reached the client.
    pub answer: Tally,
    /// Calls after that, until the sign-up's work was done.
    pub after: Tally,
    /// Per sign-up, the calls before and after the answer.
    pub answer_each: Vec<u64>,
    pub after_each: Vec<u64>,
    pub mails: usize,
    pub latencies: Vec<Duration>,
    /// Sign-ups whose submission insert was not seen before the answer (split by time).
    pub split_by_time: usize,
}

impl SignupCount {
    /// The median over the sign-ups of the calls before the answer, and after it.
    pub fn medians(&self) -> (u64, u64) {
        let median = |v: &[u64]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(0)
        };
        (median(&self.answer_each), median(&self.after_each))
    }

    /// The mean calls before the answer and after it, per sign-up.
    pub fn means(&self) -> (f64, f64) {
        let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
        (mean(&self.answer_each), mean(&self.after_each))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Storage and Graph calls the handler made between exec and its first answer.
    pub before_ready_storage: u64,
    pub before_ready_graph: u64,
    /// Sign-ups of each kind, in [`Submission::ALL`]'s order.
    pub signups: Vec<SignupCount>,
    pub verify_invite: PerOp,
    pub verify_ask: PerOp,
    pub approval: PerOp,
    /// Checks on the work done (simulator and table state), as lines for the report.
    pub checks: Vec<String>,
}

fn diff(after: &CallCounts, before: &CallCounts) -> CallCounts {
    CallCounts {
        token: after.token - before.token,
        invitations: after.invitations - before.invitations,
        list_users_pages: after.list_users_pages - before.list_users_pages,
        get_user: after.get_user - before.get_user,
        patch_user: after.patch_user - before.patch_user,
        delete_user: after.delete_user - before.delete_user,
        add_member: after.add_member - before.add_member,
        app_role: after.app_role - before.app_role,
        batch: after.batch - before.batch,
        batch_subrequests: after.batch_subrequests - before.batch_subrequests,
        list_users_in_batch: after.list_users_in_batch - before.list_users_in_batch,
        batch_reads_only: after.batch_reads_only - before.batch_reads_only,
        throttled_429: after.throttled_429 - before.throttled_429,
        other: after.other - before.other,
        total: after.total - before.total,
    }
}

async fn post_form(
    http: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let resp = http
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            "X-Azure-Functions-InvocationId",
            uuid::Uuid::new_v4().to_string(),
        )
        .header("User-Agent", "Azure-Functions-Host/4.1040.300.25317")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.unwrap_or_default()))
}

fn token(
    keys: &SigningKeys,
    purpose: TokenPurpose,
    request: &SignupRequest,
    subject: &str,
) -> String {
    keys.sign(&TokenClaims {
        purpose,
        request_id: request.id.clone(),
        subject: subject.to_string(),
        stage: if purpose == TokenPurpose::Verify {
            0
        } else {
            request.stage
        },
        expires_at: OffsetDateTime::now_utc().unix_timestamp() + 3600,
        // A verification link names the submission whose details it confirms: the first
        // submission is the request itself.
        nonce: match purpose {
            TokenPurpose::Verify => {
                b2b_signup::store::requests::submission_nonce(&request.id).unwrap_or_else(new_nonce)
            }
            // The bench mints no review links; a fresh nonce is what the portal gives them too.
            TokenPurpose::Decide | TokenPurpose::Review => new_nonce(),
        },
    })
}

pub async fn run(stack: &Stack, handler_bin: &Path, n: usize, k: usize) -> Result<Counts, String> {
    let proxy = CountingProxy::start(stack.table_port).await?;
    let prefix = format!("n{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let env = stack.handler_env(proxy.port, &prefix);
    let sim = &stack.sim;

    // The tenant: a group and an app role to grant, and the approver (who becomes the sponsor).
    let group = sim.add_group("Bench partners");
    let role = uuid::Uuid::new_v4();
    let sp = sim.add_service_principal("Bench app", &[role]);
    let approver_id = sim.add_member(APPROVER, "Bench Approver");
    signup::add_signup_policy(stack, handler_bin, &env)?;
    signup::add_deny_policy(stack, handler_bin, &env)?;
    stack.cli(
        handler_bin,
        &env,
        &[
            "policy",
            "add",
            "--domain",
            AUTO_DOMAIN,
            "--include-subdomains",
            "--action",
            "auto",
            "--group",
            &group,
            "--app-role",
            &format!("{sp}:{role}"),
        ],
    )?;
    stack.cli(
        handler_bin,
        &env,
        &[
            "policy",
            "add",
            "--domain",
            APPROVE_DOMAIN,
            "--include-subdomains",
            "--action",
            "approve",
            "--approver",
            APPROVER,
            "--group",
            &group,
            "--app-role",
            &format!("{sp}:{role}"),
        ],
    )?;
    proxy.take();
    let graph_at_start = sim.calls();

    let log = stack.work.join(format!("handler-{prefix}.log"));
    let (server, _) = platform::start_server(handler_bin, &env, Some(&log))?;
    let mut counts = Counts {
        before_ready_storage: proxy.take().values().sum(),
        before_ready_graph: diff(&sim.calls(), &graph_at_start).total,
        ..Counts::default()
    };
    let http = signup::host_client();
    let base = server.url("");
    let store = {
        let env = b2b_signup::settings::Environment::from_pairs(
            [
                (
                    "PORTAL_STORAGE",
                    platform::storage_connection_string(stack.table_port),
                ),
                ("PORTAL_TABLE_PREFIX", prefix.clone()),
            ]
            .iter()
            .map(|(k, v)| (*k, v.as_str())),
        );
        let settings =
            b2b_signup::settings::StorageSettings::from_env(&env).map_err(|e| e.to_string())?;
        b2b_signup::adapters::tables::TableStore::new(&settings, reqwest::Client::new(), None)?
    };
    let keys = SigningKeys::parse(SIGNING_KEYS)?;

    // Warm-up: tables created, policies cached, pools and the Graph token filled. One auto
    // sign-up verified fetches the token and opens the Graph connection.
    let run = format!("n{}", &prefix[1..]);
    for i in 0..5 {
        signup::post_signup(
            &http,
            &base,
            &signup::input(&format!("w{run}"), i, signup::SIGNUP_POLICY_DOMAIN),
        )
        .await?;
    }
    // One of each other kind: the Demand table made, the open-request path taken once.
    for kind in [
        Submission::Denied,
        Submission::Unknown,
        Submission::OpenRequest,
    ] {
        let mut input = signup::input(&format!("w{run}"), 1, kind.domain());
        input.client_ip = "172.31.0.1".into();
        signup::post_signup(&http, &base, &input).await?;
    }
    let warm = signup::input(&format!("w{run}"), 0, AUTO_DOMAIN);
    signup::post_signup(&http, &base, &warm).await?;
    for r in pending(&store, AUTO_DOMAIN).await? {
        let t = token(
            &keys,
            TokenPurpose::Verify,
            &r,
            &r.applicant.email.identity_key(),
        );
        post_form(
            &http,
            &format!("{base}/api/signup/verify"),
            &[("token", &t)],
        )
        .await?;
    }

    // 1. Sign-ups (submissions) of each kind, one at a time; the open requests are those of
    // the admitted sign-ups just made.
    settle(&proxy).await;
    let rows_before = stack_rows(stack, &prefix).await?;
    for kind in Submission::ALL {
        let inputs: Vec<_> = (0..n)
            .map(|i| {
                let mut input = signup::input(&run, i, kind.domain());
                if kind == Submission::OpenRequest {
                    // Another client, the same address.
                    input.client_ip = format!("172.16.{}.{}", (i >> 8) & 255, i & 255);
                }
                input
            })
            .collect();
        let count = count_signups(stack, &proxy, &http, &base, kind, &inputs).await?;
        if kind == Submission::Admitted {
            let rows = stack_rows(stack, &prefix).await?;
            counts.checks.push(format!(
                "sign-ups: {} new request rows in the table and {} verification mails delivered for {n} admitted sign-ups answered",
                rows - rows_before,
                count.mails
            ));
        }
        counts.signups.push(count);
    }
    let mails: Vec<String> = counts
        .signups
        .iter()
        .map(|c| {
            format!(
                "{} {} for {} {}",
                c.mails,
                if c.mails == 1 { "mail" } else { "mails" },
                c.n,
                c.kind.name()
            )
        })
        .collect();
    counts.checks.push(format!(
        "mails accepted by aiosmtpd for the sign-ups of each kind: {}",
        mails.join(", ")
    ));

    // Submissions for the two Graph flows (not counted: they are the sign-ups above again).
    for i in 0..k {
        signup::post_signup(&http, &base, &signup::input(&run, i, AUTO_DOMAIN)).await?;
        signup::post_signup(&http, &base, &signup::input(&run, i, APPROVE_DOMAIN)).await?;
    }

    // 2. Verify under an `auto` policy: invitation, grants, guest record, invitation mail.
    let auto = pending(&store, AUTO_DOMAIN).await?;
    counts.verify_invite = measure(stack, &proxy, auto.len(), |i| {
        let http = http.clone();
        let url = format!("{base}/api/signup/verify");
        let t = token(
            &keys,
            TokenPurpose::Verify,
            &auto[i],
            &auto[i].applicant.email.identity_key(),
        );
        async move {
            match post_form(&http, &url, &[("token", &t)]).await? {
                (200, _) => Ok(()),
                (s, body) => Err(format!(
                    "verify answered {s}: {}",
                    body.chars().take(200).collect::<String>()
                )),
            }
        }
    })
    .await?;
    let invited: Vec<_> = auto
        .iter()
        .filter_map(|r| sim.user_by_mail(r.applicant.email.as_str()))
        .collect();
    let in_group = sim.group_members(&group);
    let assigned = sim.app_role_assignments(&sp);
    counts.checks.push(format!(
        "verify + invite: {} of {} requests now `invited` in the table; the simulator holds {} guests for them, {} of them in the group, {} with the app role",
        invited_among(&store, AUTO_DOMAIN, &auto).await?,
        auto.len(),
        invited.len(),
        invited.iter().filter(|u| in_group.contains(&u.id)).count(),
        invited.iter().filter(|u| assigned.iter().any(|(p, _)| p == &u.id)).count(),
    ));

    // 3. Approval: verify (asks the approver), then the approver's decision.
    let pending_approve = pending(&store, APPROVE_DOMAIN).await?;
    counts.verify_ask = measure(stack, &proxy, pending_approve.len(), |i| {
        let http = http.clone();
        let url = format!("{base}/api/signup/verify");
        let r = &pending_approve[i];
        let t = token(
            &keys,
            TokenPurpose::Verify,
            r,
            &r.applicant.email.identity_key(),
        );
        async move {
            match post_form(&http, &url, &[("token", &t)]).await? {
                (200, _) => Ok(()),
                (s, _) => Err(format!("verify answered {s}")),
            }
        }
    })
    .await?;
    let awaiting =
        requests_of(&store, APPROVE_DOMAIN, Some(RequestStatus::PendingApproval)).await?;
    let approver_key = EmailAddress::parse(APPROVER)
        .map_err(|e| format!("{e:?}"))?
        .identity_key();
    counts.approval = measure(stack, &proxy, awaiting.len(), |i| {
        let http = http.clone();
        let url = format!("{base}/api/approve");
        let t = token(&keys, TokenPurpose::Decide, &awaiting[i], &approver_key);
        async move {
            match post_form(&http, &url, &[("token", &t), ("decision", "approve")]).await? {
                (200, _) => Ok(()),
                (s, body) => Err(format!(
                    "approve answered {s}: {}",
                    body.chars().take(200).collect::<String>()
                )),
            }
        }
    })
    .await?;
    let invitations = sim.invitations();
    let sponsored = awaiting
        .iter()
        .filter(|r| {
            invitations.iter().any(|inv| {
                inv.email.eq_ignore_ascii_case(r.applicant.email.as_str())
                    && inv.sponsors.contains(&approver_id)
            })
        })
        .count();
    counts.checks.push(format!(
        "approval: {} of {} requests now `invited`; {} invitations name the approver as sponsor",
        invited_among(&store, APPROVE_DOMAIN, &awaiting).await?,
        awaiting.len(),
        sponsored
    ));
    drop(server);
    Ok(counts)
}

/// Waits until the handler's work in the background (mail after a warm-up) is over: no call
/// for 200 ms (at most 10 s).
async fn settle(proxy: &CountingProxy) {
    let deadline = Instant::now() + Duration::from_secs(10);
    proxy.take_calls();
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(200) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !proxy.take_calls().is_empty() {
            quiet_since = Instant::now();
        }
    }
}

/// Posts each input, one at a time, and sorts the Table Storage calls each caused by whether
/// they reached the proxy before or after the answer reached the client. A sign-up's work is
/// over when its last write has come (the delivery record of its mail, or the deletion of
/// the submission that no policy admits) and the proxy has then been quiet for a moment.
async fn count_signups(
    stack: &Stack,
    proxy: &CountingProxy,
    http: &reqwest::Client,
    base: &str,
    kind: Submission,
    inputs: &[crate::floor::SignupInput],
) -> Result<SignupCount, String> {
    let last_write = if kind.mails() {
        "merge Requests"
    } else {
        "delete Requests"
    };
    let mut count = SignupCount {
        kind,
        n: inputs.len(),
        answer: Tally::new(),
        after: Tally::new(),
        answer_each: Vec::new(),
        after_each: Vec::new(),
        mails: 0,
        latencies: Vec::new(),
        split_by_time: 0,
    };
    let mails_before = stack.mails_delivered();
    for input in inputs {
        proxy.take_calls();
        let sent = Instant::now();
        signup::post_signup(http, base, input).await?;
        let answered = Instant::now();
        count.latencies.push(answered - sent);
        let deadline = answered + Duration::from_secs(5);
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let calls = proxy.calls();
            let done = calls
                .iter()
                .any(|c| c.at > answered && c.what == last_write)
                && calls
                    .last()
                    .is_some_and(|c| c.at.elapsed() > Duration::from_millis(30));
            if done || Instant::now() > deadline {
                break;
            }
        }
        // The answer goes out when the submission's insert returns, and the work after it
        // starts at once: its first calls may reach the proxy before the answer reaches the
        // client. So the answer's calls are those up to the submission's insert (the first
        // insert of a `request` row), which must itself precede the answer.
        let calls = proxy.take_calls();
        let submission = calls
            .iter()
            .position(|c| c.what == "insert Requests" && c.inserted.as_deref() == Some("request"));
        let split = match submission {
            Some(i) if calls[i].at < answered => i + 1,
            _ => {
                count.split_by_time += 1;
                calls.iter().take_while(|c| c.at < answered).count()
            }
        };
        let (mut before, mut after) = (0, 0);
        for (i, call) in calls.into_iter().enumerate() {
            let (tally, n) = if i < split {
                (&mut count.answer, &mut before)
            } else {
                (&mut count.after, &mut after)
            };
            if matches!(call.status, 404 | 409 | 412) {
                *tally
                    .entry(format!("{} -> {}", call.what, call.status))
                    .or_default() += 1;
            }
            *tally.entry(call.what).or_default() += 1;
            *n += 1;
        }
        count.answer_each.push(before);
        count.after_each.push(after);
    }
    count.mails = stack.mails_delivered() - mails_before;
    Ok(count)
}

/// Runs `op(0..n)` one at a time and divides what the proxy, the simulator and the mail
/// server saw by `n`.
async fn measure<F, Fut>(
    stack: &Stack,
    proxy: &CountingProxy,
    n: usize,
    op: F,
) -> Result<PerOp, String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    proxy.take();
    let graph_before = stack.sim.calls();
    let mails_before = stack.mails_delivered();
    let mut latencies = Vec::new();
    for i in 0..n {
        let t = std::time::Instant::now();
        op(i).await?;
        latencies.push(t.elapsed());
    }
    let storage = proxy.take();
    Ok(PerOp {
        n,
        storage,
        graph: diff(&stack.sim.calls(), &graph_before),
        mails: stack.mails_delivered() - mails_before,
        latencies,
    })
}

/// Requests of a status whose address is on `domain` or one of its subdomains.
async fn requests_of(
    store: &b2b_signup::adapters::tables::TableStore,
    domain: &str,
    status: Option<RequestStatus>,
) -> Result<Vec<SignupRequest>, String> {
    let suffix = format!(".{domain}");
    Ok(b2b_signup::store::requests::list(store, status, None)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|r| {
            let d = r.applicant.email.domain().as_str();
            d == domain || d.ends_with(&suffix)
        })
        .collect())
}

async fn pending(
    store: &b2b_signup::adapters::tables::TableStore,
    domain: &str,
) -> Result<Vec<SignupRequest>, String> {
    requests_of(store, domain, Some(RequestStatus::PendingVerification)).await
}

/// How many of `measured` are `invited` now.
async fn invited_among(
    store: &b2b_signup::adapters::tables::TableStore,
    domain: &str,
    measured: &[SignupRequest],
) -> Result<usize, String> {
    Ok(requests_of(store, domain, Some(RequestStatus::Invited))
        .await?
        .iter()
        .filter(|r| measured.iter().any(|m| m.id == r.id))
        .count())
}

async fn stack_rows(stack: &Stack, prefix: &str) -> Result<usize, String> {
    crate::floor::RawTables::new(reqwest::Client::new(), stack.table_port)
        .count(&format!("{prefix}Requests"), "RowKey eq 'request'")
        .await
}

/// Per-operation averages of a tally, e.g. `get Limits: 3.00`.
pub fn per_op(tally: &Tally, n: usize) -> BTreeMap<String, f64> {
    tally
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64 / n.max(1) as f64))
        .collect()
}

pub fn p50(op: &PerOp) -> Duration {
    load::percentile(&op.latencies, 50.0)
}
