//! `delivery-bench [PATH-TO-webhooks-server]`: end-to-end webhook delivery of the release
//! server, measured at an in-process HTTPS receiver that verifies every `Nursa-Signature`.
//! (`delivery-bench soak [PATH]` runs the soak instead: see `soak/mod.rs`.)
//!
//! 1. starts the receiver (private CA, leaf for 127.0.0.1) and the server on a fresh data
//!    directory with `--extra-ca-file` and `--allow-target 127.0.0.0/8`; with REPLICAS=N (and
//!    WEBHOOKS_DATABASE_URL=postgres://…), N servers on that one database, sharing their keys;
//! 2. creates WEBHOOKS webhooks (subscribed to `all`) for one user, over HTTP;
//! 3. (a) throughput: EVENTS events published by PUBLISHERS concurrent clients as fast as the
//!    server takes them (event i to replica i mod N); delivered-and-verified per second, first
//!    publish → last receipt;
//! 4. (b) latency: RATE events/s for RATE_SECS seconds (open loop); publish → verified receipt;
//! 5. (c) ceiling: the same receiver driven directly by a reqwest client (DELIVERY_CONCURRENCY
//!    in flight, the same body size, signed by the client);
//! 6. (e) fan-out: FANOUT_WEBHOOKS facility webhooks of FANOUT_OWNERS users following one
//!    facility; shift events at FANOUT_RATE/s (publish → all receipts, per event), then a burst
//!    of FANOUT_BURST (deliveries/s);
//! 7. (d) the halves apart, on a second server (DRAIN=1);
//! 8. prints a summary with the targets and writes it to bench/results/delivery-<date>.md.
//!
//! Every loop is bounded in count and time; the server is stopped (SIGTERM) at the end.
//! Only 127.0.0.1 is ever contacted.

mod probe;
mod receiver;
mod server;
mod soak;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use receiver::Receiver;
use server::Server;
use tokio::task::JoinSet;

const USER: &str = "bench-user";
/// The owner of the tarpit webhooks (TARPITS > 0): another user, so the measured events do not
/// fan out to them.
const TARPIT_USER: &str = "bench-tarpit";
const EVENT_TYPE: &str = "facility.creation.accepted";
/// The facility the fan-out phase's webhooks follow, and their event type.
const FANOUT_FACILITY: &str = "NUR-FAN";
const FANOUT_EVENT_TYPE: &str = "shift.created";
/// Bound on any single publish or ceiling request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on phase (a)'s and (c)'s sending.
const SEND_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Config {
    binary: PathBuf,
    events: usize,
    publishers: usize,
    webhooks: usize,
    replicas: usize,
    rate: u64,
    rate_secs: u64,
    concurrency: usize,
    retry_schedule: String,
    drain_timeout: Duration,
    warmup: usize,
    drain: bool,
    results_file: Option<PathBuf>,
    /// Webhooks at receivers that never answer, with TARPIT_EVENTS events due for each before
    /// the phases start.
    tarpits: usize,
    /// How many tarpit receivers (ports, so destinations) the tarpit webhooks are spread over.
    tarpit_ports: usize,
    tarpit_events: usize,
    /// `--delivery-per-host-concurrency` (unset: the server's default).
    per_host: Option<usize>,
    /// (e) fan-out: facility webhooks following [`FANOUT_FACILITY`] (0: no phase (e)), spread
    /// round robin over `fanout_owners` users.
    fanout_webhooks: usize,
    fanout_owners: usize,
    /// Shift events offered one by one at `fanout_rate` per second (per-event latency), then
    /// `fanout_burst` published by PUBLISHERS clients as fast as answered (deliveries/s).
    fanout_events: usize,
    fanout_rate: u64,
    fanout_burst: usize,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|_| anyhow::anyhow!("{name}={v:?} does not parse"))
        }
        _ => Ok(default),
    }
}

/// The server binary: the command line's argument `position`, else WEBHOOKS_SERVER, else the
/// workspace's release build.
fn server_binary(position: usize) -> PathBuf {
    let default_binary =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/webhooks-server"));
    std::env::args_os()
        .nth(position)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("WEBHOOKS_SERVER").map(PathBuf::from))
        .unwrap_or(default_binary)
}

impl Config {
    fn load() -> anyhow::Result<Self> {
        let config = Self {
            binary: server_binary(1),
            events: env_or("EVENTS", 20_000)?,
            publishers: env_or("PUBLISHERS", 32)?,
            webhooks: env_or("WEBHOOKS", 1)?,
            replicas: env_or("REPLICAS", 1)?,
            rate: env_or("RATE", 1_000)?,
            rate_secs: env_or("RATE_SECS", 10)?,
            concurrency: env_or("DELIVERY_CONCURRENCY", 64)?,
            retry_schedule: env_or("RETRY_SCHEDULE", "200ms,1s,2s".to_owned())?,
            drain_timeout: Duration::from_secs(env_or("DRAIN_TIMEOUT_SECS", 120)?),
            warmup: env_or("WARMUP_EVENTS", 200)?,
            drain: env_or("DRAIN", 1u8)? != 0,
            results_file: std::env::var_os("RESULTS_FILE").map(PathBuf::from),
            tarpits: env_or("TARPITS", 0)?,
            tarpit_ports: env_or("TARPIT_PORTS", 1)?,
            tarpit_events: env_or("TARPIT_EVENTS", 20)?,
            per_host: std::env::var("PER_HOST")
                .ok()
                .map(|v| v.trim().parse())
                .transpose()
                .map_err(|_| anyhow::anyhow!("PER_HOST does not parse"))?,
            fanout_webhooks: env_or("FANOUT_WEBHOOKS", 20)?,
            fanout_owners: env_or("FANOUT_OWNERS", 4)?,
            fanout_events: env_or("FANOUT_EVENTS", 200)?,
            fanout_rate: env_or("FANOUT_RATE", 20)?,
            fanout_burst: env_or("FANOUT_BURST", 1_000)?,
        };
        if config.fanout_webhooks > 0
            && (!(1..=config.fanout_webhooks).contains(&config.fanout_owners)
                || config.fanout_webhooks > 100 * config.fanout_owners
                || !(1..=100_000).contains(&config.fanout_events)
                || !(1..=10_000).contains(&config.fanout_rate)
                || config.fanout_burst > 1_000_000)
        {
            bail!(
                "FANOUT_OWNERS must be in 1..=FANOUT_WEBHOOKS (at most 100 webhooks each), FANOUT_EVENTS in 1..=100000, FANOUT_RATE in 1..=10000, FANOUT_BURST at most 1000000"
            );
        }
        if config.tarpits > 0
            && (!(1..=config.tarpits.min(256)).contains(&config.tarpit_ports)
                || !(1..=1000).contains(&config.tarpit_events))
        {
            bail!("TARPIT_PORTS must be in 1..=min(TARPITS, 256) and TARPIT_EVENTS in 1..=1000");
        }
        if config.events == 0 || config.publishers == 0 || config.webhooks == 0 || config.concurrency == 0 {
            bail!("EVENTS, PUBLISHERS, WEBHOOKS and DELIVERY_CONCURRENCY must be at least 1");
        }
        let database = std::env::var("WEBHOOKS_DATABASE_URL").unwrap_or_default();
        if !(1..=8).contains(&config.replicas) || (config.replicas > 1 && !database.starts_with("postgres")) {
            bail!("REPLICAS must be in 1..=8, and above 1 only with WEBHOOKS_DATABASE_URL=postgres://…");
        }
        if config.rate == 0 || config.rate > 100_000 || config.rate_secs == 0 || config.rate_secs > 600 {
            bail!("RATE must be in 1..=100000 and RATE_SECS in 1..=600");
        }
        if !config.binary.is_file() {
            bail!(
                "no server binary at {} (cargo build --release -p webhooks-server, or pass its path)",
                config.binary.display()
            );
        }
        Ok(config)
    }
}

/// The HTTP side of the servers: creating webhooks and publishing events.
struct Api {
    http: reqwest::Client,
    /// One base URL per replica: webhooks are created on the first, event `seq` is published
    /// to replica `seq mod N`.
    bases: Vec<String>,
    user_token: String,
    publish_token: String,
}

/// Which events a phase publishes: [`EVENT_TYPE`] for [`USER`]'s webhooks, or shift events at
/// [`FANOUT_FACILITY`] for the facility webhooks following it.
#[derive(Clone, Copy)]
enum Kind {
    User,
    Shift,
}

/// One publish: when it was sent (just before the POST) and answered, and whether it was accepted.
struct Publish {
    seq: usize,
    sent: Instant,
    answered: Instant,
    error: Option<String>,
}

impl Api {
    async fn create_webhook(&self, url: &str) -> anyhow::Result<String> {
        self.create_webhook_as(&self.user_token, url).await
    }

    async fn create_webhook_as(&self, token: &str, url: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/api/v2/public/webhooks/user", self.bases[0]))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(serde_json::json!({"url": url, "events": ["all"]}).to_string())
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = serde_json::from_str(&response.text().await?)?;
        if status.as_u16() != 201 {
            bail!("creating a webhook for {url}: {status} {body}");
        }
        body["data"]["secrets"][0].as_str().map(str::to_owned).with_context(|| format!("no secret in {body}"))
    }

    async fn list_count(&self, base: &str) -> anyhow::Result<usize> {
        let body: serde_json::Value = self
            .http
            .get(format!("{base}/api/v2/public/webhooks/user"))
            .bearer_auth(&self.user_token)
            .send()
            .await?
            .json_text()
            .await?;
        Ok(body["data"].as_array().map(Vec::len).unwrap_or(0))
    }

    /// Publishes event `<phase>-<seq>`; `expect` deliveries must be scheduled.
    async fn publish(&self, phase: &str, seq: usize, expect: usize) -> Publish {
        self.publish_for(USER, phase, seq, expect).await
    }

    /// Event `<phase>-<seq>` of `kind`.
    async fn publish_kind(&self, kind: Kind, phase: &str, seq: usize, expect: usize) -> Publish {
        match kind {
            Kind::User => self.publish(phase, seq, expect).await,
            Kind::Shift => self.publish_shift(phase, seq, expect).await,
        }
    }

    /// [`Self::publish`] for `user`'s webhooks.
    async fn publish_for(&self, user: &str, phase: &str, seq: usize, expect: usize) -> Publish {
        self.publish_body(seq, event_request(user, phase, seq), expect).await
    }

    /// Publishes shift event `<phase>-<seq>` at [`FANOUT_FACILITY`]; `expect` deliveries (the
    /// facility webhooks following it) must be scheduled.
    async fn publish_shift(&self, phase: &str, seq: usize, expect: usize) -> Publish {
        self.publish_body(seq, shift_request(phase, seq), expect).await
    }

    /// Creates a facility webhook at `url` for `token`'s owner, subscribed to
    /// [`FANOUT_EVENT_TYPE`], naming `facilities` (None: following every facility the user can
    /// access); returns its secret.
    async fn create_facility_webhook(
        &self,
        token: &str,
        url: &str,
        facilities: Option<&[&str]>,
    ) -> anyhow::Result<String> {
        let mut request = serde_json::json!({"url": url, "events": [FANOUT_EVENT_TYPE]});
        if let Some(facilities) = facilities {
            request["facilities"] = serde_json::json!(facilities);
        }
        let response = self
            .http
            .post(format!("{}/api/v2/public/webhooks/facility", self.bases[0]))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(request.to_string())
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = serde_json::from_str(&response.text().await?)?;
        if status.as_u16() != 201 {
            bail!("creating a facility webhook for {url}: {status} {body}");
        }
        body["data"]["secrets"][0].as_str().map(str::to_owned).with_context(|| format!("no secret in {body}"))
    }

    /// `PUT /api/v2/internal/users/{user}/facilities` (a token with `facilities:write`).
    async fn set_facilities(&self, token: &str, user: &str, facilities: &[&str]) -> anyhow::Result<()> {
        let response = self
            .http
            .put(format!("{}/api/v2/internal/users/{user}/facilities", self.bases[0]))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "facilities": facilities }).to_string())
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if status.as_u16() != 200 {
            bail!("granting {user} {facilities:?}: {status} {text}");
        }
        Ok(())
    }

    /// Publishes the event request `body` (sequence number `seq`); `expect` deliveries must be
    /// scheduled.
    async fn publish_body(&self, seq: usize, body: String, expect: usize) -> Publish {
        let sent = Instant::now();
        let result = self
            .http
            .post(format!("{}/api/v2/internal/events", self.bases[seq % self.bases.len()]))
            .bearer_auth(&self.publish_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let error = match result {
            Err(e) => Some(format!("request failed: {e}")),
            Ok(response) => {
                let status = response.status().as_u16();
                match response.text().await {
                    Err(e) => Some(format!("{status}, body cut short: {e}")),
                    Ok(text) if status != 202 => {
                        Some(format!("{status} {}", text.chars().take(200).collect::<String>()))
                    }
                    Ok(text) => {
                        let deliveries = serde_json::from_str::<serde_json::Value>(&text)
                            .ok()
                            .and_then(|v| v["data"]["deliveries"].as_u64());
                        (deliveries != Some(expect as u64)).then(|| {
                            format!("202 but deliveries = {deliveries:?}, expected {expect}: {text}")
                        })
                    }
                }
            }
        };
        Publish { seq, sent, answered: Instant::now(), error }
    }
}

/// `reqwest` is built without its `json` feature here: parse the text.
trait JsonText {
    async fn json_text(self) -> anyhow::Result<serde_json::Value>;
}
impl JsonText for reqwest::Response {
    async fn json_text(self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.text().await?)?)
    }
}

fn event_id(phase: &str, seq: usize) -> String {
    format!("{phase}-{seq}")
}

fn event_data(seq: usize) -> serde_json::Value {
    serde_json::json!({"facilityId": format!("NUR-{seq}"), "seq": seq})
}

fn event_request(user: &str, phase: &str, seq: usize) -> String {
    serde_json::json!({
        "id": event_id(phase, seq),
        "eventType": EVENT_TYPE,
        "userId": user,
        "data": event_data(seq),
    })
    .to_string()
}

/// A shift event at [`FANOUT_FACILITY`] (no `userId`: it fans out by facility).
fn shift_request(phase: &str, seq: usize) -> String {
    serde_json::json!({
        "id": event_id(phase, seq),
        "eventType": FANOUT_EVENT_TYPE,
        "data": {"facilityId": FANOUT_FACILITY, "shiftId": seq.to_string()},
    })
    .to_string()
}

/// The bytes the server sends for an event (`{"data":…,"eventType":…}`), for the ceiling client.
fn delivery_body(seq: usize) -> String {
    format!("{{\"data\":{},\"eventType\":\"{EVENT_TYPE}\"}}", event_data(seq))
}

/// Milliseconds at percentile `p` of sorted `v` (nearest rank).
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// CPU seconds per item, in µs ("n/a" for no items).
fn us_per(cpu_secs: f64, items: usize) -> String {
    if items == 0 {
        return "n/a".into();
    }
    let us = 1e6 * cpu_secs / items as f64;
    if us < 10.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.0} µs")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The servers under test (replicas on one database) with their webhooks, and the receiver
/// they point at.
struct Bench {
    cfg: Arc<Config>,
    api: Arc<Api>,
    receiver: Receiver,
    servers: Vec<Server>,
    /// The receiver paths of the webhooks (one per webhook).
    paths: Vec<String>,
}

/// What a phase that publishes found at the receiver.
struct Delivered {
    expected: usize,
    delivered: usize,
    /// Publish → first verified receipt, per delivery, sorted (ms).
    latencies: Vec<f64>,
    first_receipt: Option<Instant>,
    last_receipt: Option<Instant>,
    waited_for_drain: Duration,
}

/// The flags every server (and worker) of the bench runs with.
fn server_args(cfg: &Config, ca_file: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--extra-ca-file".into(),
        ca_file.display().to_string(),
        "--allow-target".into(),
        "127.0.0.0/8".into(),
        "--delivery-concurrency".into(),
        cfg.concurrency.to_string(),
        "--retry-schedule".into(),
        cfg.retry_schedule.clone(),
    ];
    if let Some(per_host) = cfg.per_host {
        args.extend(["--delivery-per-host-concurrency".into(), per_host.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

impl Bench {
    /// Tokens, `replicas` servers on a fresh `data_dir` (so they share its keys: each accepts
    /// the others' tokens and opens their sealed secrets), WEBHOOKS webhooks at `<prefix>/<i>`
    /// of the receiver.
    async fn setup(
        cfg: Arc<Config>,
        receiver: Receiver,
        ca_file: &Path,
        data_dir: &Path,
        prefix: &str,
        extra: &[&str],
        replicas: usize,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let user_token = server::token(&cfg.binary, data_dir, USER, &[]).await?;
        let publish_token =
            server::token(&cfg.binary, data_dir, "bench-publisher", &["events:publish"]).await?;
        let mut servers = Vec::with_capacity(replicas);
        for replica in 0..replicas {
            let log = data_dir.with_extension(format!("{replica}.log"));
            let server =
                Server::start(&cfg.binary, data_dir, &log, &server_args(&cfg, ca_file, extra), "serve")
                    .await?;
            println!(
                "server {} (pid {}) at {}, log {}",
                cfg.binary.display(),
                server.pid,
                server.base,
                server.log.display()
            );
            servers.push(server);
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.publishers.max(64))
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .build()?;
        let bases = servers.iter().map(|s| s.base.clone()).collect();
        let api = Arc::new(Api { http, bases, user_token, publish_token });
        let mut paths = Vec::new();
        for i in 0..cfg.webhooks {
            let path = format!("{prefix}/{i}");
            let secret = api.create_webhook(&receiver.url(&path)).await?;
            receiver.shared.register(&path, &secret);
            paths.push(path);
        }
        for base in &api.bases {
            let listed = api.list_count(base).await?;
            if listed != cfg.webhooks {
                bail!("{base} lists {listed} webhooks for {USER}, {} were created", cfg.webhooks);
            }
        }
        Ok(Self { cfg, api, receiver, servers, paths })
    }

    fn verified(&self) -> usize {
        self.receiver.shared.verified.load(Ordering::Relaxed) as usize
    }

    /// Waits (bounded) until every delivery of the accepted `publishes` is verified (`base`
    /// were verified before they were sent), then reads their receipts.
    async fn collect(&self, phase: &str, publishes: &[Publish], base: usize) -> Delivered {
        self.collect_at(phase, publishes, base, &self.paths).await
    }

    /// [`Self::collect`] for the webhooks at `paths`.
    async fn collect_at(
        &self,
        phase: &str,
        publishes: &[Publish],
        base: usize,
        paths: &[String],
    ) -> Delivered {
        let accepted: Vec<&Publish> = publishes.iter().filter(|p| p.error.is_none()).collect();
        let expected = accepted.len() * paths.len();
        let started = Instant::now();
        while self.verified() < base + expected && started.elapsed() < self.cfg.drain_timeout {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let waited_for_drain = started.elapsed();
        let mut latencies = Vec::with_capacity(expected);
        let (mut first_receipt, mut last_receipt): (Option<Instant>, Option<Instant>) = (None, None);
        for p in &accepted {
            let id = event_id(phase, p.seq);
            for path in paths {
                if let Some(at) = self.receiver.shared.receipt(path, &id) {
                    latencies.push(ms(at.saturating_duration_since(p.sent)));
                    first_receipt = Some(first_receipt.map_or(at, |f| f.min(at)));
                    last_receipt = Some(last_receipt.map_or(at, |l| l.max(at)));
                }
            }
        }
        latencies.sort_by(f64::total_cmp);
        Delivered {
            expected,
            delivered: latencies.len(),
            latencies,
            first_receipt,
            last_receipt,
            waited_for_drain,
        }
    }

    /// Deliveries of the accepted `publishes` verified at or before `by`.
    fn verified_by(&self, phase: &str, publishes: &[Publish], by: Instant) -> usize {
        let mut count = 0;
        for p in publishes.iter().filter(|p| p.error.is_none()) {
            for path in &self.paths {
                if let Some(at) = self.receiver.shared.receipt(path, &event_id(phase, p.seq)) {
                    if at <= by {
                        count += 1;
                    }
                }
            }
        }
        count
    }

    /// Publishes `count` events with `publishers` clients as fast as they are answered.
    async fn publish_closed_loop(
        &self,
        phase: &'static str,
        count: usize,
        publishers: usize,
    ) -> Vec<Publish> {
        self.publish_closed_loop_of(Kind::User, self.paths.len(), phase, count, publishers).await
    }

    /// [`Self::publish_closed_loop`] of `kind`'s events, each scheduling `expect` deliveries.
    async fn publish_closed_loop_of(
        &self,
        kind: Kind,
        expect: usize,
        phase: &'static str,
        count: usize,
        publishers: usize,
    ) -> Vec<Publish> {
        let next = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + SEND_DEADLINE;
        let mut set = JoinSet::new();
        for _ in 0..publishers.min(count) {
            let api = self.api.clone();
            let next = next.clone();
            set.spawn(async move {
                let mut done = Vec::new();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= count || Instant::now() > deadline {
                        return done;
                    }
                    done.push(api.publish_kind(kind, phase, seq, expect).await);
                }
            });
        }
        let mut all = Vec::with_capacity(count);
        while let Some(done) = set.join_next().await {
            all.extend(done.unwrap_or_default());
        }
        all
    }
}

fn summarize_errors(publishes: &[Publish]) -> (usize, Option<String>) {
    let errors: Vec<&String> = publishes.iter().filter_map(|p| p.error.as_ref()).collect();
    (errors.len(), errors.first().map(|e| e.to_string()))
}

/// Publish answer times (POST → 202), sorted, in ms.
fn answer_times(publishes: &[Publish]) -> Vec<f64> {
    let mut v: Vec<f64> = publishes.iter().map(|p| ms(p.answered - p.sent)).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn last(v: &[f64]) -> f64 {
    v.last().copied().unwrap_or(f64::NAN)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// The report, built as the phases run: table rows and detail lines.
#[derive(Default)]
struct Report {
    table: Vec<String>,
    details: Vec<String>,
    loads: Vec<String>,
    /// Everything delivered and verified, nothing refused, no errors, the servers alive.
    clean: bool,
    probe: Option<probe::FsyncProbe>,
}

impl Report {
    fn load(&mut self, label: &str) {
        self.loads.push(format!("{label} {}", server::load1()));
    }

    /// A detail line: the disk's fsync latency over [from, to].
    fn disk(&mut self, label: &str, from: Instant) {
        if let Some(probe) = &self.probe {
            let line = format!(
                "- {label} disk probe (4 KiB append + fsync every 20 ms, same filesystem): {}",
                probe.summary(from, Instant::now())
            );
            self.details.push(line);
        }
    }

    fn render(&self, cfg: &Config) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("# delivery-bench — {}", date_stamp()));
        line(String::new());
        line(format!(
            "config: EVENTS={} PUBLISHERS={} WEBHOOKS={} REPLICAS={} RATE={}/s RATE_SECS={} DELIVERY_CONCURRENCY={} (per replica) PER_HOST={} RETRY_SCHEDULE={} WARMUP_EVENTS={} DRAIN={} TARPITS={} TARPIT_PORTS={} TARPIT_EVENTS={} FANOUT_WEBHOOKS={} FANOUT_OWNERS={} FANOUT_EVENTS={} FANOUT_RATE={}/s FANOUT_BURST={}",
            cfg.events, cfg.publishers, cfg.webhooks, cfg.replicas, cfg.rate, cfg.rate_secs, cfg.concurrency,
            cfg.per_host.map_or_else(|| "server default".to_owned(), |n| n.to_string()),
            cfg.retry_schedule, cfg.warmup, cfg.drain as u8, cfg.tarpits, cfg.tarpit_ports, cfg.tarpit_events,
            cfg.fanout_webhooks, cfg.fanout_owners, cfg.fanout_events, cfg.fanout_rate, cfg.fanout_burst
        ));
        line(format!(
            "database: {}",
            std::env::var("WEBHOOKS_DATABASE_URL").unwrap_or_else(|_| "SQLite in the data directory".into())
        ));
        line(format!(
            "server: {} ({})",
            cfg.binary.display(),
            std::env::var("BENCH_REV").unwrap_or_else(|_| "revision not given".into())
        ));
        line(format!(
            "machine: {} cores; load average (1 min) and CPU pressure at each phase: {}",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            self.loads.join(", ")
        ));
        line(String::new());
        line("| measure | value | target | verdict |".into());
        line("|---|---|---|---|".into());
        for row in &self.table {
            line(row.clone());
        }
        line(String::new());
        line("details:".into());
        for d in &self.details {
            line(d.clone());
        }
        line(format!(
            "- verdict on the run itself: {}",
            if self.clean { "clean (every delivery verified, no errors)" } else { "PROBLEMS (see above)" }
        ));
        out
    }
}

#[tokio::main]
async fn main() {
    // On SIGINT/SIGTERM the run is dropped: the server child is killed (kill_on_drop) and the
    // temporary directory removed.
    let interrupted = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let result = tokio::select! {
        result = run() => result,
        _ = interrupted => Err(anyhow::anyhow!("interrupted")),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(2),
        Err(e) => {
            eprintln!("delivery-bench: error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Ok(true): a clean run; Ok(false): it ran and saw problems (exit status 2).
async fn run() -> anyhow::Result<bool> {
    // reqwest is built without a default crypto provider, as in the server: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::args().nth(1).as_deref() == Some("soak") {
        return soak::run().await;
    }
    let cfg = Arc::new(Config::load()?);
    let temp = tempfile::Builder::new().prefix("delivery-bench-").tempdir()?;
    let receiver = Receiver::start().await?;
    let mut tarpits = Vec::new();
    if cfg.tarpits > 0 {
        for _ in 0..cfg.tarpit_ports {
            tarpits.push(Receiver::start_tarpit().await?);
        }
    }
    let ca_file = temp.path().join("receiver-ca.pem");
    let bundle: String = std::iter::once(&receiver).chain(&tarpits).map(|r| r.ca_pem.as_str()).collect();
    std::fs::write(&ca_file, bundle)?;
    println!("receiver at https://{}, {} tarpit receivers", receiver.addr, tarpits.len());

    let mut report =
        Report { clean: true, probe: probe::FsyncProbe::start(temp.path()).ok(), ..Default::default() };
    report.load("start");

    let data_dir = temp.path().join("data");
    let bench =
        Bench::setup(cfg.clone(), receiver.clone(), &ca_file, &data_dir, "/hook", &[], cfg.replicas).await?;
    if !tarpits.is_empty() {
        engage_tarpits(&bench, &data_dir, &tarpits, &mut report).await?;
    }
    let mut outcome = main_phases(&bench, &mut report).await;
    if outcome.is_ok() && cfg.fanout_webhooks > 0 {
        outcome = fanout_phase(&bench, &data_dir, &mut report).await;
    }
    if !tarpits.is_empty() {
        let hung: u64 = tarpits.iter().map(|t| t.shared.hung.load(Ordering::Relaxed)).sum();
        report.details.push(format!(
            "- tarpits: {hung} requests held unanswered by the end of (c) ({:.1} per destination on average)",
            hung as f64 / tarpits.len() as f64
        ));
    }
    finish(bench, &mut report, "server").await;
    outcome?;

    if cfg.drain {
        drain_phase(&cfg, &receiver, &ca_file, temp.path(), &mut report).await?;
    }

    let refused = receiver.shared.refused.load(Ordering::Relaxed);
    report.details.push(format!(
        "- receiver: {refused} refused (bad/missing signature or unknown path), {} duplicate deliveries, {} TLS connections accepted, {} TLS handshake errors",
        receiver.shared.duplicates.load(Ordering::Relaxed),
        receiver.shared.connections.load(Ordering::Relaxed),
        receiver.shared.tls_errors.load(Ordering::Relaxed)
    ));
    for s in receiver.shared.refusal_samples.lock().unwrap().iter() {
        report.details.push(format!("    refused: {s}"));
    }
    if refused > 0 {
        report.clean = false;
    }
    report.load("end");

    let text = report.render(&cfg);
    println!("\n{text}");
    let path = match &cfg.results_file {
        Some(p) => p.clone(),
        None => {
            let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../results"));
            std::fs::create_dir_all(&dir)?;
            dir.canonicalize()?.join(format!("delivery-{}.md", date_stamp()))
        }
    };
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    println!("written to {}", path.display());
    Ok(report.clean)
}

/// TARPITS webhooks of another user at the tarpit receivers (round robin), TARPIT_EVENTS
/// events for that user (so TARPITS × TARPIT_EVENTS deliveries due that hang), and a wait (at
/// most 10 s) for the tarpits to hold what the server sends them: the phases then run while
/// the tarpits hold their slots (the delivery timeout, 15 s, and retries after it).
async fn engage_tarpits(
    b: &Bench,
    data_dir: &Path,
    tarpits: &[Receiver],
    r: &mut Report,
) -> anyhow::Result<()> {
    let cfg = &b.cfg;
    let token = server::token(&cfg.binary, data_dir, TARPIT_USER, &[]).await?;
    for i in 0..cfg.tarpits {
        let tarpit = &tarpits[i % tarpits.len()];
        b.api.create_webhook_as(&token, &tarpit.url(&format!("/tarpit/{i}"))).await?;
    }
    for seq in 0..cfg.tarpit_events {
        let published = b.api.publish_for(TARPIT_USER, "t", seq, cfg.tarpits).await;
        if let Some(e) = published.error {
            bail!("publishing tarpit event {seq}: {e}");
        }
    }
    let hung = || tarpits.iter().map(|t| t.shared.hung.load(Ordering::Relaxed)).sum::<u64>();
    let started = Instant::now();
    let mut last = (hung(), Instant::now());
    // Engaged once nothing new has arrived at the tarpits for a second.
    while started.elapsed() < Duration::from_secs(10) && last.1.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if hung() != last.0 {
            last = (hung(), Instant::now());
        }
    }
    r.details.push(format!(
        "- tarpits: {} webhooks of another user on {} destinations (receivers that read each request and never answer), {} deliveries due for them; {} held unanswered before the phases",
        cfg.tarpits,
        tarpits.len(),
        cfg.tarpits * cfg.tarpit_events,
        hung()
    ));
    Ok(())
}

/// Stops the servers gracefully and reports how it went and what they logged.
async fn finish(bench: Bench, report: &mut Report, label: &str) {
    let replicas = bench.servers.len();
    for (i, server) in bench.servers.into_iter().enumerate() {
        let label = if replicas > 1 { format!("{label} (replica {})", i + 1) } else { label.to_owned() };
        let log = server.log.clone();
        stop_and_report(server, &log, report, &label).await;
    }
}

async fn stop_and_report(mut server: Server, log: &Path, report: &mut Report, label: &str) {
    if let Some(status) = server.exited() {
        report.details.push(format!("- {label} EXITED DURING THE RUN: {status}"));
        report.clean = false;
    }
    let stopped = server.stop(Duration::from_secs(20)).await;
    report.details.push(format!("- {label} stop: {}", stopped.unwrap_or_else(|e| format!("error: {e}"))));
    let (warn, error, samples) = server::log_problems(log);
    report.details.push(format!("- {label} log: {warn} WARN, {error} ERROR lines"));
    for s in samples {
        report.details.push(format!("    {s}"));
    }
    if error > 0 {
        report.clean = false;
    }
}

fn date_stamp() -> String {
    std::process::Command::new("date")
        .arg("+%F-%H%M")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "undated".into())
}

/// Warm-up, then (a) throughput, (b) latency at a fixed rate, (c) the receiver's ceiling.
async fn main_phases(b: &Bench, r: &mut Report) -> anyhow::Result<()> {
    let cfg = &b.cfg;
    let n = b.paths.len();

    // Warm-up: connections, caches, the SQLite file.
    let base = b.verified();
    let warm = b.publish_closed_loop("w", cfg.warmup, cfg.publishers.min(8)).await;
    let warm_got = b.collect("w", &warm, base).await;
    let (rss_idle, _) = b.servers[0].memory_mb().unwrap_or((f64::NAN, f64::NAN));

    // (a) throughput.
    println!("(a) throughput: publishing {} events with {} publishers …", cfg.events, cfg.publishers);
    r.load("(a)");
    let a_start = Instant::now();
    let a_cpu = server::CpuWindow::start(&b.servers);
    let base = b.verified();
    let a = b.publish_closed_loop("a", cfg.events, cfg.publishers).await;
    let a_got = b.collect("a", &a, base).await;
    let a_cpu = a_cpu.end(&b.servers);
    let first = a.iter().map(|p| p.sent).min().context("phase (a) published nothing")?;
    let publish_end = a.iter().map(|p| p.answered).max().unwrap_or(first);
    let (a_errors, a_error) = summarize_errors(&a);
    let a_accepted = a.len() - a_errors;
    let publish_secs = publish_end.duration_since(first).as_secs_f64();
    let e2e_secs = a_got.last_receipt.map(|l| l.duration_since(first).as_secs_f64()).unwrap_or(f64::NAN);
    let a_rate = a_got.delivered as f64 / e2e_secs;
    let by_publish_end = b.verified_by("a", &a, publish_end);
    let a_answers = answer_times(&a);

    // (b) latency at a fixed offered rate (open loop).
    let total_b = (cfg.rate * cfg.rate_secs) as usize;
    println!("(b) latency: {} events/s for {} s …", cfg.rate, cfg.rate_secs);
    r.load("(b)");
    let b_start = Instant::now();
    let a_disk = r.probe.as_ref().map(|p| p.summary(a_start, b_start));
    let b_cpu = server::CpuWindow::start(&b.servers);
    let base = b.verified();
    let period = Duration::from_secs_f64(1.0 / cfg.rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let in_flight_cap = Arc::new(tokio::sync::Semaphore::new(2048));
    let mut set = JoinSet::new();
    let (mut late, mut worst_late) = (0usize, Duration::ZERO);
    for seq in 0..total_b {
        let due = start + period * seq as u32;
        tokio::time::sleep_until(due).await;
        let permit = in_flight_cap.clone().acquire_owned().await?;
        let behind = tokio::time::Instant::now().saturating_duration_since(due);
        if behind > Duration::from_millis(5) {
            late += 1;
        }
        worst_late = worst_late.max(behind);
        let api = b.api.clone();
        set.spawn(async move {
            let p = api.publish("b", seq, n).await;
            drop(permit);
            p
        });
    }
    let mut bp = Vec::with_capacity(total_b);
    while let Some(done) = set.join_next().await {
        bp.extend(done.ok());
    }
    let b_got = b.collect("b", &bp, base).await;
    let b_disk = r.probe.as_ref().map(|p| p.summary(b_start, Instant::now()));
    let b_cpu = b_cpu.end(&b.servers);
    let (b_errors, b_error) = summarize_errors(&bp);
    let b_answers = answer_times(&bp);
    let (rss_after, hwm) = b.servers[0].memory_mb().unwrap_or((f64::NAN, f64::NAN));

    // (c) ceiling: the receiver driven directly, same concurrency and body size, client-signed.
    let total_c = cfg.events * n;
    println!(
        "(c) ceiling: {} signed deliveries straight to the receiver, {} in flight …",
        total_c, cfg.concurrency
    );
    r.load("(c)");
    let c_cpu = server::CpuWindow::start(&b.servers);
    let (c_rate, c_delivered, c_errors, c_error, c_lat) = ceiling(b, total_c).await?;
    let c_cpu = c_cpu.end(&b.servers);

    let ratio = a_rate / c_rate;
    let b_p99 = pct(&b_got.latencies, 99.0);
    let a_missing = a_got.expected - a_got.delivered;
    let b_missing = b_got.expected - b_got.delivered;
    if a_errors + b_errors + c_errors + a_missing + b_missing + (warm_got.expected - warm_got.delivered) > 0 {
        r.clean = false;
    }

    r.table.push(format!(
        "| (a) end-to-end delivered+verified / s (first publish → last receipt) | {a_rate:.0} deliveries/s ({:.0} events/s) | ≥ 5,000 | {} |",
        a_rate / n as f64,
        verdict(a_rate >= 5000.0)
    ));
    r.table.push(format!(
        "| (a) as share of the ceiling (c) | {:.0}% | ≥ 50% | {} |",
        ratio * 100.0,
        verdict(ratio >= 0.5)
    ));
    r.table.push(format!(
        "| (b) publish → verified receipt at {}/s: p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | p99 ≤ 50 ms | {} |",
        cfg.rate,
        pct(&b_got.latencies, 50.0),
        b_p99,
        last(&b_got.latencies),
        verdict(b_p99 <= 50.0 && b_missing == 0)
    ));
    r.table.push(format!(
        "| (a) server CPU per delivery verified (publish + schedule + sign + send) | {} (bench: publishers + receiver {}) | | |",
        us_per(a_cpu.server_secs, a_got.delivered),
        us_per(a_cpu.bench_secs, a_got.delivered)
    ));
    r.table.push(format!(
        "| (b) server CPU per delivery verified at {}/s | {} | | |",
        cfg.rate,
        us_per(b_cpu.server_secs, b_got.delivered)
    ));
    r.table.push(format!("| (c) ceiling: bare reqwest → same receiver | {c_rate:.0} deliveries/s | | |"));
    r.table.push(format!(
        "| (c) bench CPU per delivery verified (reqwest client + receiver; no server) | {} | | |",
        us_per(c_cpu.bench_secs, c_delivered)
    ));

    r.details.push(format!(
        "- (a) {a_accepted} events accepted ({a_errors} publish errors{}), {} of {} deliveries verified in {e2e_secs:.2} s; publishing took {publish_secs:.2} s = {:.0} events/s accepted; {by_publish_end} deliveries were verified by the time the last publish was answered; then {:.2} s more for the rest",
        a_error.map(|e| format!(", first: {e}")).unwrap_or_default(),
        a_got.delivered,
        a_got.expected,
        a_accepted as f64 / publish_secs,
        a_got.waited_for_drain.as_secs_f64()
    ));
    r.details.push(format!(
        "- (a) publish answer (POST → 202) p50 / p99 / max: {:.1} / {:.1} / {:.1} ms; publish → receipt under saturation p50 / p99 / max: {:.0} / {:.0} / {:.0} ms",
        pct(&a_answers, 50.0),
        pct(&a_answers, 99.0),
        last(&a_answers),
        pct(&a_got.latencies, 50.0),
        pct(&a_got.latencies, 99.0),
        last(&a_got.latencies)
    ));
    r.details.push(format!(
        "- (a) CPU seconds: server {:.1} ({:.0}% of one core over the phase) = {} per delivery verified, bench (publishers + receiver) {:.1} = {} per delivery; other processes used {:.0}% of the machine",
        a_cpu.server_secs,
        100.0 * a_cpu.server_secs / e2e_secs,
        us_per(a_cpu.server_secs, a_got.delivered),
        a_cpu.bench_secs,
        us_per(a_cpu.bench_secs, a_got.delivered),
        a_cpu.others_pct
    ));
    if let Some(d) = a_disk {
        r.details.push(format!("- (a) disk probe (4 KiB append + fsync every 20 ms, same filesystem): {d}"));
    }
    r.details.push(format!(
        "- (b) {total_b} events offered at {}/s ({late} sent > 5 ms behind schedule, worst {:.1} ms), {b_errors} publish errors{}; {} of {} deliveries verified; publish answer p50 / p99 / max: {:.1} / {:.1} / {:.1} ms; receipt p90 / p95 / p99.9: {:.1} / {:.1} / {:.1} ms",
        cfg.rate,
        ms(worst_late),
        b_error.map(|e| format!(" (first: {e})")).unwrap_or_default(),
        b_got.delivered,
        b_got.expected,
        pct(&b_answers, 50.0),
        pct(&b_answers, 99.0),
        last(&b_answers),
        pct(&b_got.latencies, 90.0),
        pct(&b_got.latencies, 95.0),
        pct(&b_got.latencies, 99.9)
    ));
    r.details.push(format!(
        "- (b) CPU seconds: server {:.1} = {} per delivery verified, bench {:.1} = {} per delivery, over {} s offered (+ {:.1} s waiting for the last deliveries); other processes used {:.0}% of the machine",
        b_cpu.server_secs,
        us_per(b_cpu.server_secs, b_got.delivered),
        b_cpu.bench_secs,
        us_per(b_cpu.bench_secs, b_got.delivered),
        cfg.rate_secs,
        b_got.waited_for_drain.as_secs_f64(),
        b_cpu.others_pct
    ));
    if let Some(d) = b_disk {
        r.details.push(format!("- (b) disk probe: {d}"));
    }
    r.details.push(format!(
        "- (c) {c_errors} request errors{}; {c_delivered} deliveries verified; request latency p50 / p99: {:.1} / {:.1} ms; bench CPU (reqwest client + receiver) {:.1} s = {} per delivery (compare (a)'s bench figure: the receiver's share is in both); other processes used {:.0}% of the machine",
        c_error.map(|e| format!(" (first: {e})")).unwrap_or_default(),
        pct(&c_lat, 50.0),
        pct(&c_lat, 99.0),
        c_cpu.bench_secs,
        us_per(c_cpu.bench_secs, c_delivered),
        c_cpu.others_pct
    ));
    r.details.push(format!("- warm-up: {} of {} deliveries verified", warm_got.delivered, warm_got.expected));
    r.details.push(format!(
        "- server memory (first replica): RSS {rss_idle:.1} MB after warm-up, {rss_after:.1} MB after (a)+(b), peak (VmHWM) {hwm:.1} MB"
    ));
    Ok(())
}

/// (d): the two halves apart. A server with `--no-worker` takes EVENTS publishes (publish
/// alone); it is stopped; `webhooks-server worker` alone then drains the backlog.
async fn drain_phase(
    cfg: &Arc<Config>,
    receiver: &Receiver,
    ca_file: &Path,
    temp: &Path,
    r: &mut Report,
) -> anyhow::Result<()> {
    println!("(d) publish only, then the worker alone: {} events …", cfg.events);
    r.load("(d)");
    let data_dir = temp.join("drain");
    let bench =
        Bench::setup(cfg.clone(), receiver.clone(), ca_file, &data_dir, "/drain", &["--no-worker"], 1)
            .await?;
    let base = bench.verified();
    let (cpu, started) = (server::CpuWindow::start(&bench.servers), Instant::now());
    let published = bench.publish_closed_loop("d", cfg.events, cfg.publishers).await;
    let publish_secs = started.elapsed().as_secs_f64();
    let publish_cpu = cpu.end(&bench.servers);
    r.disk("(d) while publishing only:", started);
    let (errors, error) = summarize_errors(&published);
    let accepted = published.len() - errors;
    let answers = answer_times(&published);
    let early = bench.verified() - base;
    let paths = bench.paths.clone();
    let api = bench.api.clone();
    finish(bench, r, "(d) publish-only server").await;

    // The worker alone, on the same database.
    let log = temp.join("drain-worker.log");
    let worker =
        Server::start(&cfg.binary, &data_dir, &log, &server_args(cfg, ca_file, &[]), "worker").await?;
    let spawned = Instant::now();
    let drain_cpu = server::CpuWindow::start(std::slice::from_ref(&worker));
    let drain = Bench { cfg: cfg.clone(), api, receiver: receiver.clone(), servers: vec![worker], paths };
    let got = drain.collect("d", &published, base).await;
    r.disk("(d) while the worker drained:", spawned);
    let drain_cpu = drain_cpu.end(&drain.servers);
    let (rss, hwm) = drain.servers[0].memory_mb().unwrap_or((f64::NAN, f64::NAN));
    let drain_secs = match (got.first_receipt, got.last_receipt) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
        _ => f64::NAN,
    };
    let since_spawn = got.last_receipt.map(|l| l.duration_since(spawned).as_secs_f64()).unwrap_or(f64::NAN);
    let drain_rate = got.delivered as f64 / drain_secs;
    if errors > 0 || got.delivered < got.expected || early > 0 {
        r.clean = false;
    }
    r.table.push(format!(
        "| (d) publish only (server with --no-worker), {} publishers | {:.0} events/s accepted, answer p50 / p99 {:.1} / {:.1} ms | | |",
        cfg.publishers,
        accepted as f64 / publish_secs,
        pct(&answers, 50.0),
        pct(&answers, 99.0)
    ));
    r.table.push(format!(
        "| (d) worker alone draining a backlog of {} deliveries (first → last receipt) | {drain_rate:.0} deliveries/s, worker CPU {} per delivery | | |",
        got.expected,
        us_per(drain_cpu.server_secs, got.delivered)
    ));
    r.details.push(format!(
        "- (d) publish only: {accepted} accepted, {errors} errors{}, in {publish_secs:.2} s, server CPU {:.1} s ({:.0}% of one core) = {} per event accepted, other processes {:.0}% of the machine; {early} deliveries arrived without a worker (should be 0)",
        error.map(|e| format!(" (first: {e})")).unwrap_or_default(),
        publish_cpu.server_secs,
        100.0 * publish_cpu.server_secs / publish_secs,
        us_per(publish_cpu.server_secs, accepted),
        publish_cpu.others_pct
    ));
    r.details.push(format!(
        "- (d) worker alone: {} of {} deliveries verified, {drain_secs:.2} s first → last receipt, {since_spawn:.2} s from its start; worker CPU {:.1} s ({:.0}% of one core) = {} per delivery verified, other processes {:.0}% of the machine; RSS {rss:.1} MB, peak {hwm:.1} MB",
        got.delivered,
        got.expected,
        drain_cpu.server_secs,
        100.0 * drain_cpu.server_secs / since_spawn,
        us_per(drain_cpu.server_secs, got.delivered),
        drain_cpu.others_pct
    ));
    finish(drain, r, "(d) worker").await;
    Ok(())
}

/// (c): `total` deliveries from a bare reqwest client, `concurrency` in flight. Returns
/// (deliveries/s, deliveries verified, errors, first error, sorted request latencies in ms).
async fn ceiling(b: &Bench, total: usize) -> anyhow::Result<(f64, usize, usize, Option<String>, Vec<f64>)> {
    let secret = "ceiling-secret-0123456789abcdefgh";
    let path = "/hook/ceiling";
    b.receiver.shared.register(path, secret);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(b.receiver.ca_pem.as_bytes())?)
        .https_only(true)
        .pool_max_idle_per_host(64)
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let url = b.receiver.url(path);
    let next = Arc::new(AtomicUsize::new(0));
    let base = b.verified();
    let deadline = Instant::now() + SEND_DEADLINE;
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..b.cfg.concurrency.min(total) {
        let client = client.clone();
        let url = url.clone();
        let next = next.clone();
        set.spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), Vec::new());
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total || Instant::now() > deadline {
                    return (lat, errors);
                }
                let body = delivery_body(seq);
                let signature = receiver::sign(secret.as_bytes(), receiver::unix_now(), body.as_bytes());
                let sent = Instant::now();
                let result = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("nursa-signature", signature)
                    .header("nursa-event-id", event_id("c", seq))
                    .header("user-agent", "delivery-bench-ceiling")
                    .body(body)
                    .send()
                    .await;
                match result {
                    Ok(response) => {
                        let status = response.status();
                        let _ = response.bytes().await;
                        if status.as_u16() != 200 {
                            errors.push(format!("{status}"));
                        }
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                lat.push(ms(sent.elapsed()));
            }
        });
    }
    let (mut lat, mut errors) = (Vec::new(), Vec::new());
    while let Some(done) = set.join_next().await {
        if let Ok((l, e)) = done {
            lat.extend(l);
            errors.extend(e);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = b.verified() - base;
    lat.sort_by(f64::total_cmp);
    Ok((delivered as f64 / elapsed, delivered, errors.len(), errors.into_iter().next(), lat))
}

/// (e) facility fan-out: FANOUT_WEBHOOKS facility webhooks of FANOUT_OWNERS users (round robin;
/// even ones name [`FANOUT_FACILITY`], odd ones follow every facility their user can access),
/// each user granted the facility over the internal API. Then FANOUT_EVENTS shift events offered
/// one at a time at FANOUT_RATE/s (open loop): per event, publish → the last of its
/// FANOUT_WEBHOOKS verified receipts; and FANOUT_BURST events by PUBLISHERS clients as fast as
/// answered: deliveries/s, first publish → last receipt.
async fn fanout_phase(b: &Bench, data_dir: &Path, r: &mut Report) -> anyhow::Result<()> {
    let cfg = &b.cfg;
    let n = cfg.fanout_webhooks;
    println!(
        "(e) fan-out: {n} facility webhooks of {} users following {FANOUT_FACILITY} …",
        cfg.fanout_owners
    );
    let grant_token = server::token(&cfg.binary, data_dir, "bench-granter", &["facilities:write"]).await?;
    let mut tokens = Vec::with_capacity(cfg.fanout_owners);
    for owner in 1..=cfg.fanout_owners {
        let user = format!("bench-fan-{owner}");
        b.api.set_facilities(&grant_token, &user, &[FANOUT_FACILITY]).await?;
        tokens.push(server::token(&cfg.binary, data_dir, &user, &[]).await?);
    }
    let mut paths = Vec::with_capacity(n);
    for i in 0..n {
        let path = format!("/fan/{i}");
        let facilities: Option<&[&str]> = (i % 2 == 0).then_some(&[FANOUT_FACILITY][..]);
        let secret = b
            .api
            .create_facility_webhook(&tokens[i % tokens.len()], &b.receiver.url(&path), facilities)
            .await?;
        b.receiver.shared.register(&path, &secret);
        paths.push(path);
    }

    // One event at a time, at a fixed offered rate (open loop, as (b)).
    let total = cfg.fanout_events;
    println!("(e) {total} shift events at {}/s, {n} deliveries each …", cfg.fanout_rate);
    r.load("(e)");
    let started = Instant::now();
    let cpu = server::CpuWindow::start(&b.servers);
    let base = b.verified();
    let period = Duration::from_secs_f64(1.0 / cfg.fanout_rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut set = JoinSet::new();
    let (mut late, mut worst_late) = (0usize, Duration::ZERO);
    for seq in 0..total {
        let due = start + period * seq as u32;
        tokio::time::sleep_until(due).await;
        let behind = tokio::time::Instant::now().saturating_duration_since(due);
        if behind > Duration::from_millis(5) {
            late += 1;
        }
        worst_late = worst_late.max(behind);
        let api = b.api.clone();
        set.spawn(async move { api.publish_shift("e", seq, n).await });
    }
    let mut published = Vec::with_capacity(total);
    while let Some(done) = set.join_next().await {
        published.extend(done.ok());
    }
    let got = b.collect_at("e", &published, base, &paths).await;
    let offered_secs = started.elapsed().as_secs_f64() - got.waited_for_drain.as_secs_f64();
    r.disk("(e) one event at a time:", started);
    let cpu = cpu.end(&b.servers);
    let (errors, error) = summarize_errors(&published);
    let answers = answer_times(&published);
    // Per event: publish → the last of its n receipts (events missing a receipt left out).
    let mut complete = Vec::with_capacity(published.len());
    for p in published.iter().filter(|p| p.error.is_none()) {
        let id = event_id("e", p.seq);
        let receipts: Option<Vec<Instant>> =
            paths.iter().map(|path| b.receiver.shared.receipt(path, &id)).collect();
        if let Some(last_at) = receipts.and_then(|all| all.into_iter().max()) {
            complete.push(ms(last_at.saturating_duration_since(p.sent)));
        }
    }
    complete.sort_by(f64::total_cmp);
    let incomplete = published.len() - errors - complete.len();

    // A burst: as many as the server takes.
    let burst = cfg.fanout_burst;
    let mut burst_row = None;
    if burst > 0 {
        println!("(e) burst: {burst} shift events by {} publishers …", cfg.publishers);
        r.load("(e burst)");
        let burst_start = Instant::now();
        let burst_cpu = server::CpuWindow::start(&b.servers);
        let base = b.verified();
        let bp = b.publish_closed_loop_of(Kind::Shift, n, "eb", burst, cfg.publishers).await;
        let bgot = b.collect_at("eb", &bp, base, &paths).await;
        r.disk("(e) burst:", burst_start);
        let burst_cpu = burst_cpu.end(&b.servers);
        let (berrors, berror) = summarize_errors(&bp);
        let first = bp.iter().map(|p| p.sent).min().context("the fan-out burst published nothing")?;
        let publish_end = bp.iter().map(|p| p.answered).max().unwrap_or(first);
        let e2e_secs = bgot.last_receipt.map(|l| l.duration_since(first).as_secs_f64()).unwrap_or(f64::NAN);
        let rate = bgot.delivered as f64 / e2e_secs;
        if berrors > 0 || bgot.delivered < bgot.expected {
            r.clean = false;
        }
        burst_row = Some(format!(
            "| (e) fan-out burst: {} shift events × {n} facility webhooks, {} publishers (first publish → last receipt) | {rate:.0} deliveries/s ({:.0} events/s), server CPU {} per delivery | | |",
            bp.len(),
            cfg.publishers,
            rate / n as f64,
            us_per(burst_cpu.server_secs, bgot.delivered)
        ));
        r.details.push(format!(
            "- (e) burst: {} events accepted ({berrors} publish errors{}) in {:.2} s, {} of {} deliveries verified in {e2e_secs:.2} s; publish → receipt p50 / p99 / max: {:.0} / {:.0} / {:.0} ms; CPU seconds: server {:.1} = {} per delivery verified, bench {:.1}; other processes used {:.0}% of the machine",
            bp.len() - berrors,
            berror.map(|e| format!(", first: {e}")).unwrap_or_default(),
            publish_end.duration_since(first).as_secs_f64(),
            bgot.delivered,
            bgot.expected,
            pct(&bgot.latencies, 50.0),
            pct(&bgot.latencies, 99.0),
            last(&bgot.latencies),
            burst_cpu.server_secs,
            us_per(burst_cpu.server_secs, bgot.delivered),
            burst_cpu.bench_secs,
            burst_cpu.others_pct
        ));
    }

    if errors > 0 || got.delivered < got.expected {
        r.clean = false;
    }
    r.table.push(format!(
        "| (e) one shift event → {n} facility webhooks ({} users), {}/s: publish → all {n} verified, per event p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | | |",
        cfg.fanout_owners,
        cfg.fanout_rate,
        pct(&complete, 50.0),
        pct(&complete, 99.0),
        last(&complete)
    ));
    r.table.push(format!(
        "| (e) the same: deliveries/s over the run ({total} events offered in {offered_secs:.1} s) | {:.0} deliveries/s | | |",
        got.delivered as f64 / offered_secs
    ));
    if let Some(row) = burst_row {
        r.table.push(row);
    }
    r.details.push(format!(
        "- (e) {n} facility webhooks (events [{FANOUT_EVENT_TYPE}]) of {} users (bench-fan-1 …, round robin; half name {FANOUT_FACILITY}, half follow all), each user granted {FANOUT_FACILITY} with PUT /api/v2/internal/users/{{userId}}/facilities; {total} events offered at {}/s ({late} sent > 5 ms behind schedule, worst {:.1} ms), {errors} publish errors{}; {} of {} deliveries verified, {} events complete, {incomplete} incomplete; publish answer p50 / p99 / max: {:.1} / {:.1} / {:.1} ms; per delivery publish → receipt p50 / p99 / max: {:.1} / {:.1} / {:.1} ms",
        cfg.fanout_owners,
        cfg.fanout_rate,
        ms(worst_late),
        error.map(|e| format!(" (first: {e})")).unwrap_or_default(),
        got.delivered,
        got.expected,
        complete.len(),
        pct(&answers, 50.0),
        pct(&answers, 99.0),
        last(&answers),
        pct(&got.latencies, 50.0),
        pct(&got.latencies, 99.0),
        last(&got.latencies)
    ));
    r.details.push(format!(
        "- (e) CPU seconds: server {:.1} = {} per delivery verified, bench {:.1}, over {offered_secs:.1} s offered (+ {:.1} s waiting for the last deliveries); other processes used {:.0}% of the machine",
        cpu.server_secs,
        us_per(cpu.server_secs, got.delivered),
        cpu.bench_secs,
        got.waited_for_drain.as_secs_f64(),
        cpu.others_pct
    ));
    Ok(())
}
