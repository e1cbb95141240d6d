//! `delivery-bench soak [PATH-TO-webhooks-server]`: a long run of mixed API load against one
//! release server, with deliveries to receivers of which some fail, to see leaks and lost
//! deliveries rather than peak throughput.
//!
//! 1. a healthy receiver and misbehaving ones (500, first attempt fails, hangs, never speaks
//!    TLS, a refused port), each its own destination; the server on a fresh data directory
//!    with a short retry schedule and delivery timeout;
//! 2. USERS delivery users with one webhook per kind of receiver (see `setup`), CHURN_USERS
//!    users whose webhooks are created, read, updated and deleted all along;
//! 3. RATE requests/s for DURATION, open loop, in a fixed mix (see `load::MIX`), while the
//!    server's RSS, threads, open files and CPU are sampled every SAMPLE_SECS;
//! 4. the retry schedule is let run out, then every delivery is reconciled through the log
//!    API (paged), the database and the receiver (`reconcile`);
//! 5. the report (`report`) says whether RSS levelled off and whether anything was lost.
//!
//! Only 127.0.0.1 is contacted; every loop is bounded in count and time.

mod load;
mod reconcile;
mod report;
mod setup;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::receiver::Receiver;
use crate::server::{self, Server};

/// Bound on any single API request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Config {
    pub binary: PathBuf,
    pub duration: Duration,
    /// API requests per second, all operations together.
    pub rate: u32,
    pub sample: Duration,
    pub users: usize,
    pub churn_users: usize,
    /// Live webhooks per churn user at most (the server may cap a user's webhooks at 100).
    pub churn_pool: usize,
    pub retry_schedule: String,
    /// Attempts a failing delivery gets: the first and one per retry.
    pub attempts: u32,
    pub delivery_timeout: String,
    pub concurrency: Option<usize>,
    /// More flags for the server, split on whitespace.
    pub server_args: Vec<String>,
    pub drain_timeout: Duration,
    /// Requests in flight at most; the schedule waits beyond it (counted as late).
    pub in_flight: usize,
    /// RSS levels off when the last third's peak exceeds the middle third's by at most this
    /// share (or by at most RSS_SLACK_MB).
    pub rss_tolerance_pct: f64,
    pub rss_slack_mb: f64,
    pub seed: u64,
    pub results_file: Option<PathBuf>,
}

/// "600", "600s", "10m", "1h" → a duration.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

fn env_duration(name: &str, default: &str) -> anyhow::Result<Duration> {
    let text = crate::env_or(name, default.to_owned())?;
    parse_duration(&text).with_context(|| format!("{name}={text:?} is not a duration (600, 600s, 10m)"))
}

impl Config {
    pub fn load() -> anyhow::Result<Self> {
        let retry_schedule: String = crate::env_or("RETRY_SCHEDULE", "1s,2s,4s".to_owned())?;
        let retries = retry_schedule.split(',').map(parse_duration).collect::<Option<Vec<_>>>();
        let Some(retries) = retries else {
            bail!("RETRY_SCHEDULE={retry_schedule:?}: a comma-separated list of durations (1s,2s,4s)");
        };
        let concurrency: usize = crate::env_or("DELIVERY_CONCURRENCY", 0)?;
        let config = Self {
            binary: crate::server_binary(2),
            duration: env_duration("DURATION", "600")?,
            rate: crate::env_or("RATE", 200)?,
            sample: env_duration("SAMPLE_SECS", "10")?,
            users: crate::env_or("USERS", 4)?,
            churn_users: crate::env_or("CHURN_USERS", 4)?,
            churn_pool: crate::env_or("CHURN_POOL", 40)?,
            attempts: retries.len() as u32 + 1,
            retry_schedule,
            delivery_timeout: crate::env_or("DELIVERY_TIMEOUT", "2s".to_owned())?,
            concurrency: (concurrency > 0).then_some(concurrency),
            server_args: crate::env_or("SERVER_ARGS", String::new())?
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            drain_timeout: env_duration("DRAIN_TIMEOUT_SECS", "300")?,
            in_flight: crate::env_or("IN_FLIGHT", 256)?,
            rss_tolerance_pct: crate::env_or("RSS_TOLERANCE_PCT", 10.0)?,
            rss_slack_mb: crate::env_or("RSS_SLACK_MB", 2.0)?,
            seed: crate::env_or("SEED", 1)?,
            results_file: std::env::var_os("RESULTS_FILE").map(PathBuf::from),
        };
        if parse_duration(&config.delivery_timeout).is_none() {
            bail!("DELIVERY_TIMEOUT={:?} is not a duration", config.delivery_timeout);
        }
        if config.duration < Duration::from_secs(30) || config.duration > Duration::from_secs(24 * 3600) {
            bail!("DURATION must be between 30 s and 24 h");
        }
        if config.sample < Duration::from_secs(1) || config.sample * 3 > config.duration {
            bail!("SAMPLE_SECS must be at least 1 s and at most a third of DURATION");
        }
        if !(1..=10_000).contains(&config.rate) || !(1..=65_536).contains(&config.in_flight) {
            bail!("RATE must be in 1..=10000 and IN_FLIGHT in 1..=65536");
        }
        if !(1..=50).contains(&config.users) || !(1..=50).contains(&config.churn_users) {
            bail!("USERS and CHURN_USERS must be in 1..=50");
        }
        if !(1..=90).contains(&config.churn_pool) {
            bail!("CHURN_POOL must be in 1..=90 (under the server's 100 webhooks per user)");
        }
        if !config.binary.is_file() {
            bail!(
                "no server binary at {} (cargo build --release -p webhooks-server, or pass its path)",
                config.binary.display()
            );
        }
        Ok(config)
    }

    /// The flags the server runs with.
    fn server_flags(&self, ca_file: &std::path::Path) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--extra-ca-file".into(),
            ca_file.display().to_string(),
            "--allow-target".into(),
            "127.0.0.0/8".into(),
            "--retry-schedule".into(),
            self.retry_schedule.clone(),
            "--delivery-timeout".into(),
            self.delivery_timeout.clone(),
        ];
        if let Some(n) = self.concurrency {
            args.extend(["--delivery-concurrency".into(), n.to_string()]);
        }
        args.extend(self.server_args.iter().cloned());
        args
    }
}

/// Where the server keeps its data, for the reconciliation and the samples.
#[derive(Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("SQLite ({})", path.display()),
            Database::Postgres(url) => format!("PostgreSQL ({url})"),
        }
    }
}

/// Ok(true): a clean run whose RSS levelled off; Ok(false): it ran and saw problems.
pub async fn run() -> anyhow::Result<bool> {
    // A rate limit of 100 requests a minute per client would turn most of this load into 429s;
    // a server without the setting ignores the variable.
    if std::env::var_os("WEBHOOKS_RATE_LIMIT").is_none() {
        std::env::set_var("WEBHOOKS_RATE_LIMIT", "0");
    }
    let cfg = Arc::new(Config::load()?);
    let temp = tempfile::Builder::new().prefix("soak-bench-").tempdir()?;
    let receiver = Receiver::start().await?;
    let ca_file = temp.path().join("receiver-ca.pem");
    std::fs::write(&ca_file, &receiver.ca_pem)?;
    let data_dir = temp.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let database = match std::env::var("WEBHOOKS_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Database::Postgres(url),
        _ => Database::Sqlite(data_dir.join("webhooks.db")),
    };
    let mut report = report::Report::new(&cfg, &database);

    let log = temp.path().join("server.log");
    let server = Server::start(&cfg.binary, &data_dir, &log, &cfg.server_flags(&ca_file), "serve").await?;
    println!(
        "server (pid {}) at {}, log {}; receiver at https://{}",
        server.pid,
        server.base,
        log.display(),
        receiver.addr
    );
    report.memory.push(("after start-up".into(), server.memory_mb()));

    let world = setup::World::build(&cfg, &server, &data_dir, &receiver).await?;
    println!(
        "{} delivery webhooks for {} users, {} churn users",
        world.hooks.len(),
        cfg.users,
        cfg.churn_users
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.memory.push(("before the load (webhooks created)".into(), server.memory_mb()));
    report.fds_start = report::fds(server.pid);

    let outcome = soak(&cfg, &server, &world, &database, &mut report).await;
    let stopped = server.stop(Duration::from_secs(30)).await;
    report.stopped = stopped.unwrap_or_else(|e| format!("error: {e}"));
    report.log = report::log_summary(&log);
    outcome?;
    report.receiver_refused = receiver.shared.refused.load(Ordering::Relaxed);
    report.receiver_refusals = receiver.shared.refusal_samples.lock().unwrap().clone();
    report.receiver_duplicates = receiver.shared.duplicates.load(Ordering::Relaxed);
    report.receiver_tls_errors = receiver.shared.tls_errors.load(Ordering::Relaxed);
    report.load_end = server::load1();

    let text = report.render();
    println!("\n{text}");
    let path = match &cfg.results_file {
        Some(p) => p.clone(),
        None => {
            let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../results"));
            std::fs::create_dir_all(&dir)?;
            dir.canonicalize()?.join(format!("soak-{}.md", crate::date_stamp()))
        }
    };
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    println!("written to {}", path.display());
    Ok(report.clean())
}

/// The load with the sampler beside it, then the drain and the reconciliation.
async fn soak(
    cfg: &Arc<Config>,
    server: &Server,
    world: &Arc<setup::World>,
    database: &Database,
    report: &mut report::Report,
) -> anyhow::Result<()> {
    let sampler = report::Sampler::start(cfg.sample, server.pid, world.clone(), database.clone());
    let cpu = server::CpuWindow::start(std::slice::from_ref(server));
    report.load_start = server::load1();
    println!("load: {} requests/s for {:?} …", cfg.rate, cfg.duration);
    let started = Instant::now();
    let late = load::run(cfg, world).await;
    report.load_secs = started.elapsed().as_secs_f64();
    report.late = late;
    report.cpu = Some(cpu.end(std::slice::from_ref(server)));
    sampler.mark_load_end();
    report.memory.push(("end of the load".into(), server.memory_mb()));
    report.fds_end = report::fds(server.pid);

    println!("load done; publishing again the events whose publish got no clear answer …");
    report.republished = world.republish_unsure().await;
    println!("waiting for the retry schedule to run out (at most {:?}) …", cfg.drain_timeout);
    let drained = Instant::now();
    report.drain = reconcile::wait_for_drain(cfg, database).await;
    report.drain_secs = drained.elapsed().as_secs_f64();
    report.memory.push(("after the drain".into(), server.memory_mb()));
    report.samples = sampler.stop().await;
    report.api = world.stats.snapshot();

    println!("reconciling every delivery through the log API, the database and the receiver …");
    report.reconciliation = Some(reconcile::reconcile(cfg, world, database).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_a_unit() {
        assert_eq!(parse_duration("600"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("600s"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("10 minutes"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
    }
}
