//! `graph-simulator --port 7300 [--host 127.0.0.1] [--seed-guests N]
//! [--seed-days-ago D] [--latency-ms N] [--tenant-id GUID] [--no-p1] [--no-throttle]`
//!
//! Runs the Graph simulator for the local dev loop and prints one JSON line
//! with the endpoints and credentials to put in local.settings.json.

use std::time::Duration;

use graph_simulator::{SignInUser, Simulator, SimulatorConfig};

/// Partner tenants for the local dev loop's sign-in (`./dev run` adds policies naming them).
const FABRIKAM_TENANT: &str = "3c1e2f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6";
const NORTHWIND_TENANT: &str = "8a7b6c5d-4e3f-4a2b-9c1d-0e9f8a7b6c5d";

struct Args {
    host: String,
    port: u16,
    seed_guests: usize,
    seed_days_ago: i64,
    config: SimulatorConfig,
}

const USAGE: &str = "usage: graph-simulator [--port 7300] [--host 127.0.0.1] [--seed-guests N] \
[--seed-days-ago D] [--latency-ms N] [--tenant-id GUID] [--no-p1] [--no-throttle]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 7300,
        seed_guests: 0,
        seed_days_ago: 90,
        config: SimulatorConfig::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--port" => {
                a.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--host" => a.host = value("--host")?,
            "--seed-guests" => {
                a.seed_guests = value("--seed-guests")?
                    .parse()
                    .map_err(|e| format!("--seed-guests: {e}"))?
            }
            "--seed-days-ago" => {
                a.seed_days_ago = value("--seed-days-ago")?
                    .parse()
                    .map_err(|e| format!("--seed-days-ago: {e}"))?
            }
            "--latency-ms" => {
                let ms: u64 = value("--latency-ms")?
                    .parse()
                    .map_err(|e| format!("--latency-ms: {e}"))?;
                a.config.latency = Duration::from_millis(ms);
            }
            "--tenant-id" => a.config.tenant_id = value("--tenant-id")?,
            "--no-p1" => a.config.p1_license = false,
            "--no-throttle" => {
                a.config.invitation_throttle = None;
                a.config.write_throttle = None;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot bind {}:{}: {e}", args.host, args.port);
            std::process::exit(1);
        }
    };
    let sim = match Simulator::start_on(listener, args.config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start: {e}");
            std::process::exit(1);
        }
    };
    // People from two partner tenants who can sign in (nothing is generated until they do).
    sim.add_sign_in_tenant(FABRIKAM_TENANT, "Fabrikam");
    sim.add_sign_in_tenant(NORTHWIND_TENANT, "Northwind Traders");
    sim.add_sign_in_user(
        SignInUser::new(FABRIKAM_TENANT, "ada@fabrikam.example", "Ada Lovelace").with_mfa(),
    );
    sim.add_sign_in_user(SignInUser::new(
        FABRIKAM_TENANT,
        "bob@fabrikam.example",
        "Bob Builder",
    ));
    sim.add_sign_in_user(
        SignInUser::new(NORTHWIND_TENANT, "carol@northwind.example", "Carol Shaw").with_mfa(),
    );
    if args.seed_guests > 0 {
        let created = time::OffsetDateTime::now_utc() - time::Duration::days(args.seed_days_ago);
        sim.seed_guests(args.seed_guests, created);
    }
    println!(
        "{}",
        serde_json::json!({
            "baseUrl": sim.base_url(),
            "authorityHost": sim.authority_host(),
            "tenantId": sim.tenant_id(),
            "clientId": sim.client_id(),
            "clientSecret": sim.client_secret(),
            "identityEndpoint": sim.identity_endpoint(),
            "identityHeader": sim.identity_header(),
            "seededGuests": args.seed_guests,
            "signInAuthority": sim.sign_in_authority(),
            "signInClientId": sim.sign_in_client_id(),
            "signInTenants": {"Fabrikam": FABRIKAM_TENANT, "Northwind Traders": NORTHWIND_TENANT},
        })
    );
    tracing::info!(base_url = %sim.base_url(), "graph simulator listening");
    let _ = tokio::signal::ctrl_c().await;
}
