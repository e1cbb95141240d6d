//! The server's resources sampled through the run, the RSS verdict, and the written report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::load::{Late, Op, OpStats, MIX};
use super::reconcile::{self, Drain, Reconciliation};
use super::setup::World;
use super::{Config, Database};
use crate::server::{self, CpuUse};

/// At most this many samples, whatever the settings (a day at one a second).
const MAX_SAMPLES: usize = 86_400;

pub struct Sample {
    /// Seconds since the load started.
    pub t: f64,
    pub phase: &'static str,
    pub rss_mb: f64,
    pub threads: u64,
    pub fds: Option<usize>,
    /// Server CPU over the interval, in percent of one core.
    pub cpu_pct: f64,
    pub requests_per_sec: f64,
    pub problems: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Deliveries verified at the receiver so far.
    pub received: u64,
    pub pending: Option<i64>,
    pub db_mb: Option<f64>,
}

/// VmRSS (MiB), VmHWM (MiB) and Threads of a process.
fn proc_status(pid: u32) -> Option<(f64, f64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((field("VmRSS:")? / 1024.0, field("VmHWM:")? / 1024.0, field("Threads:")? as u64))
}

/// Open file descriptors of a process.
pub fn fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Samples every `every` on its own task until stopped.
pub struct Sampler {
    task: tokio::task::JoinHandle<Vec<Sample>>,
    stop: Arc<tokio::sync::Notify>,
    load_ended: Arc<AtomicBool>,
}

impl Sampler {
    pub fn start(every: Duration, pid: u32, world: Arc<World>, db: Database) -> Self {
        let stop = Arc::new(tokio::sync::Notify::new());
        let load_ended = Arc::new(AtomicBool::new(false));
        let (halt, ended) = (stop.clone(), load_ended.clone());
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let cpu_path = format!("/proc/{pid}/stat");
            let (mut last_cpu, mut last_at) = (server::cpu_secs_of(&cpu_path), Instant::now());
            let mut samples = Vec::new();
            while samples.len() < MAX_SAMPLES {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = halt.notified() => break,
                }
                let Some((rss_mb, _, threads)) = proc_status(pid) else { break };
                let (cpu, at) = (server::cpu_secs_of(&cpu_path), Instant::now());
                let secs = at.duration_since(last_at).as_secs_f64().max(1e-3);
                let cpu_pct = 100.0 * (cpu - last_cpu) / secs;
                (last_cpu, last_at) = (cpu, at);
                let mut interval = world.stats.take_interval();
                interval.latencies_ms.sort_by(f32::total_cmp);
                let pct = |p: f64| {
                    crate::pct(&interval.latencies_ms.iter().map(|&v| v as f64).collect::<Vec<_>>(), p)
                };
                let pending =
                    reconcile::status_counts(&db).await.map(|c| c.get("pending").copied().unwrap_or(0));
                samples.push(Sample {
                    t: started.elapsed().as_secs_f64(),
                    phase: if ended.load(Ordering::Relaxed) { "drain" } else { "load" },
                    rss_mb,
                    threads,
                    fds: fds(pid),
                    cpu_pct,
                    requests_per_sec: interval.requests as f64 / secs,
                    problems: interval.problems,
                    p50_ms: pct(50.0),
                    p99_ms: pct(99.0),
                    received: world.receiver.shared.verified.load(Ordering::Relaxed),
                    pending,
                    db_mb: reconcile::size_mb(&db).await,
                });
            }
            samples
        });
        Self { task, stop, load_ended }
    }

    pub fn mark_load_end(&self) {
        self.load_ended.store(true, Ordering::Relaxed);
    }

    pub async fn stop(self) -> Vec<Sample> {
        self.stop.notify_one();
        self.task.await.unwrap_or_default()
    }
}

pub struct RssVerdict {
    pub first_max: f64,
    pub middle_max: f64,
    pub last_max: f64,
    /// Least-squares slope over the middle and last thirds, MiB per minute.
    pub slope_mb_per_min: f64,
    pub levels_off: bool,
    /// The server's threads when the middle third began, and at most in the last third.
    pub threads: (u64, u64),
}

/// Compares the peak RSS of the last third of the load with the middle third's.
pub fn rss_verdict(
    samples: &[Sample],
    load_secs: f64,
    tolerance_pct: f64,
    slack_mb: f64,
) -> Option<RssVerdict> {
    let load: Vec<&Sample> = samples.iter().filter(|s| s.phase == "load").collect();
    let third = |from: f64, to: f64| {
        load.iter()
            .filter(|s| s.t >= from * load_secs && s.t < to * load_secs)
            .map(|s| s.rss_mb)
            .fold(f64::NAN, f64::max)
    };
    let (first_max, middle_max, last_max) =
        (third(0.0, 1.0 / 3.0), third(1.0 / 3.0, 2.0 / 3.0), third(2.0 / 3.0, 2.0));
    if first_max.is_nan() || middle_max.is_nan() || last_max.is_nan() {
        return None;
    }
    let tail: Vec<(f64, f64)> =
        load.iter().filter(|s| s.t >= load_secs / 3.0).map(|s| (s.t / 60.0, s.rss_mb)).collect();
    let n = tail.len() as f64;
    let (mx, my) = (tail.iter().map(|p| p.0).sum::<f64>() / n, tail.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = tail.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = tail.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let allowed = slack_mb.max(middle_max * tolerance_pct / 100.0);
    let threads = (
        load.iter().find(|s| s.t >= load_secs / 3.0).map_or(0, |s| s.threads),
        load.iter().filter(|s| s.t >= 2.0 * load_secs / 3.0).map(|s| s.threads).max().unwrap_or(0),
    );
    Some(RssVerdict {
        first_max,
        middle_max,
        last_max,
        slope_mb_per_min: if sxx > 0.0 { sxy / sxx } else { 0.0 },
        levels_off: last_max <= middle_max + allowed,
        threads,
    })
}

pub struct Report {
    header: Vec<String>,
    sqlite: bool,
    duration_secs: f64,
    sample_secs: f64,
    attempts: u32,
    rate: u32,
    tolerance_pct: f64,
    slack_mb: f64,
    pub memory: Vec<(String, Option<(f64, f64)>)>,
    pub fds_start: Option<usize>,
    pub fds_end: Option<usize>,
    pub load_start: String,
    pub load_end: String,
    pub load_secs: f64,
    pub late: Late,
    pub cpu: Option<CpuUse>,
    /// (events published again, still without a 202).
    pub republished: (usize, usize),
    pub drain: Drain,
    pub drain_secs: f64,
    pub samples: Vec<Sample>,
    pub api: BTreeMap<Op, OpStats>,
    pub reconciliation: Option<Reconciliation>,
    pub stopped: String,
    pub log: LogSummary,
    pub receiver_refused: u64,
    pub receiver_refusals: Vec<String>,
    pub receiver_duplicates: u64,
    pub receiver_tls_errors: u64,
}

fn lines(out: &mut String, text: impl AsRef<str>) {
    out.push_str(text.as_ref());
    out.push('\n');
}

impl Report {
    pub fn new(cfg: &Config, db: &Database) -> Self {
        let header = vec![
            format!("# soak — {}", crate::date_stamp()),
            String::new(),
            format!(
                "config: DURATION={} s RATE={}/s USERS={} CHURN_USERS={} CHURN_POOL={} RETRY_SCHEDULE={} DELIVERY_TIMEOUT={} DELIVERY_CONCURRENCY={} SERVER_ARGS={:?} IN_FLIGHT={} SEED={}",
                cfg.duration.as_secs(),
                cfg.rate,
                cfg.users,
                cfg.churn_users,
                cfg.churn_pool,
                cfg.retry_schedule,
                cfg.delivery_timeout,
                cfg.concurrency.map_or("the server's default".to_owned(), |n| n.to_string()),
                cfg.server_args.join(" "),
                cfg.in_flight,
                cfg.seed
            ),
            format!("database: {}", db.describe()),
            format!(
                "server: {} ({}); WEBHOOKS_RATE_LIMIT={}",
                cfg.binary.display(),
                std::env::var("BENCH_REV").unwrap_or_else(|_| "revision not given".into()),
                std::env::var("WEBHOOKS_RATE_LIMIT").unwrap_or_default()
            ),
        ];
        Self {
            header,
            sqlite: matches!(db, Database::Sqlite(_)),
            duration_secs: cfg.duration.as_secs_f64(),
            sample_secs: cfg.sample.as_secs_f64(),
            attempts: cfg.attempts,
            rate: cfg.rate,
            tolerance_pct: cfg.rss_tolerance_pct,
            slack_mb: cfg.rss_slack_mb,
            memory: Vec::new(),
            fds_start: None,
            fds_end: None,
            load_start: String::new(),
            load_end: String::new(),
            load_secs: 0.0,
            late: Late::default(),
            cpu: None,
            republished: (0, 0),
            drain: Drain { drained: false, how: "not reached".into() },
            drain_secs: 0.0,
            samples: Vec::new(),
            api: BTreeMap::new(),
            reconciliation: None,
            stopped: String::new(),
            log: LogSummary::default(),
            receiver_refused: 0,
            receiver_refusals: Vec::new(),
            receiver_duplicates: 0,
            receiver_tls_errors: 0,
        }
    }

    fn rss(&self) -> Option<RssVerdict> {
        rss_verdict(&self.samples, self.load_secs, self.tolerance_pct, self.slack_mb)
    }

    fn api_problems(&self) -> u64 {
        self.api.values().map(OpStats::problems).sum()
    }

    fn delivery_problems(&self) -> Vec<String> {
        let mut problems = match &self.reconciliation {
            Some(r) => r.problems(),
            None => vec!["not reconciled".into()],
        };
        if !self.drain.drained {
            problems.push(self.drain.how.clone());
        }
        if self.receiver_refused > 0 {
            problems
                .push(format!("{} requests refused by the receiver (bad signature)", self.receiver_refused));
        }
        problems
    }

    /// RSS levelled off, every delivery reconciled, every answer as expected, the server
    /// stopped cleanly with no ERROR line.
    pub fn clean(&self) -> bool {
        self.rss().is_some_and(|v| v.levels_off)
            && self.delivery_problems().is_empty()
            && self.api_problems() == 0
            && self.stopped.starts_with("stopped on SIGTERM")
            && self.log.errors == 0
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for h in &self.header {
            lines(&mut out, h);
        }
        lines(
            &mut out,
            format!(
                "machine: {} cores; load average (1 min) and CPU pressure at the start of the load: {}, at the end: {}",
                std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                self.load_start,
                self.load_end
            ),
        );
        lines(&mut out, "");
        self.render_verdict(&mut out);
        self.render_memory(&mut out);
        self.render_api(&mut out);
        self.render_deliveries(&mut out);
        self.render_series(&mut out);
        out
    }

    fn render_verdict(&self, out: &mut String) {
        lines(out, "## Verdict");
        lines(out, "");
        match self.rss() {
            Some(v) => lines(
                out,
                format!(
                    "- **memory: {}** — peak RSS per third of the load: {:.1} / {:.1} / {:.1} MB; the last third {:+.1} MB ({:+.1}%) against the middle (allowed: {:.0}% or {:.1} MB); slope over the last two thirds {:+.2} MB/min",
                    if v.levels_off { "RSS levels off" } else { "RSS STILL GROWS" },
                    v.first_max,
                    v.middle_max,
                    v.last_max,
                    v.last_max - v.middle_max,
                    100.0 * (v.last_max - v.middle_max) / v.middle_max,
                    self.tolerance_pct,
                    self.slack_mb,
                    v.slope_mb_per_min
                ),
            ),
            None => lines(out, "- **memory: no verdict** (too few samples in some third of the load)"),
        }
        if let Some(v) = self.rss().filter(|v| v.threads.1 > v.threads.0) {
            let why = if self.sqlite {
                ": each connection the SQLite pool opens is a thread with its own page cache (2 MB by default), so RSS steps up with the pool until it is full (`--database-max-connections`)"
            } else {
                ""
            };
            lines(
                out,
                format!(
                    "    - server threads grew from {} to {} over the last two thirds{why}",
                    v.threads.0, v.threads.1
                ),
            );
        }
        let problems = self.delivery_problems();
        match &self.reconciliation {
            Some(r) if problems.is_empty() => lines(
                out,
                format!(
                    "- **deliveries: all accounted for** — {} deliveries of {} accepted events: each ended `success` at the healthy receivers (and arrived there, signature verified) or `failure` after all {} attempts at the failing ones; none pending",
                    r.expected(),
                    r.events_accepted,
                    self.attempts
                ),
            ),
            _ => {
                lines(out, "- **deliveries: PROBLEMS**");
                for p in &problems {
                    lines(out, format!("    - {p}"));
                }
            }
        }
        let requests: u64 = self.api.values().map(|s| s.requests).sum();
        let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
        let mut transport: BTreeMap<&str, u64> = BTreeMap::new();
        for s in self.api.values() {
            for (k, v) in &s.statuses {
                *statuses.entry(*k).or_default() += v;
            }
            for (k, v) in &s.transport {
                *transport.entry(k).or_default() += v;
            }
        }
        let wrong: u64 = self.api.values().map(|s| s.wrong).sum();
        lines(
            out,
            format!(
                "- **API: {} of {requests} requests answered otherwise than expected** — unexpected statuses: {}; transport errors: {}; expected status with a wrong body: {wrong}",
                self.api_problems(),
                counts(&statuses),
                counts(&transport)
            ),
        );
        lines(
            out,
            format!(
                "- server: {}; log: {} ERROR lines, {} WARN lines besides the {} failed delivery attempts",
                self.stopped, self.log.errors, self.log.other_warnings, self.log.failed_attempts
            ),
        );
        lines(out, format!("- run: {}", if self.clean() { "**clean**" } else { "**PROBLEMS** (see above)" }));
        lines(out, "");
    }

    fn render_memory(&self, out: &mut String) {
        lines(out, "## Server memory");
        lines(out, "");
        lines(out, "| when | RSS MB | peak (VmHWM) MB |");
        lines(out, "|---|---|---|");
        let mut rows: Vec<(String, Option<(f64, f64)>)> = self.memory.clone();
        let middle =
            self.samples.iter().filter(|s| s.phase == "load").min_by(|a, b| {
                (a.t - self.load_secs / 2.0).abs().total_cmp(&(b.t - self.load_secs / 2.0).abs())
            });
        if let Some(m) = middle {
            rows.insert(
                2.min(rows.len()),
                (format!("middle of the load (sample at {:.0} s)", m.t), Some((m.rss_mb, f64::NAN))),
            );
        }
        for (when, memory) in rows {
            match memory {
                Some((rss, hwm)) if hwm.is_nan() => lines(out, format!("| {when} | {rss:.1} | |")),
                Some((rss, hwm)) => lines(out, format!("| {when} | {rss:.1} | {hwm:.1} |")),
                None => lines(out, format!("| {when} | ? | ? |")),
            }
        }
        let show = |n: Option<usize>| n.map_or("?".to_owned(), |n| n.to_string());
        lines(out, "");
        lines(
            out,
            format!(
                "Open file descriptors before / after the load: {} / {}. The series below has RSS, threads and descriptors every {:.0} s.",
                show(self.fds_start),
                show(self.fds_end),
                self.sample_secs
            ),
        );
        lines(out, "");
    }

    fn render_api(&self, out: &mut String) {
        lines(out, "## API load");
        lines(out, "");
        let sent = self.late.sent;
        lines(
            out,
            format!(
                "{sent} requests in {:.0} s ({:.0}/s offered at {}/s, open loop; {} sent > 20 ms behind schedule, worst {:.0} ms).",
                self.load_secs,
                sent as f64 / self.load_secs,
                self.rate,
                self.late.late,
                self.late.worst_ms
            ),
        );
        if let Some(cpu) = &self.cpu {
            lines(
                out,
                format!(
                    "CPU during the load: server {:.0} s ({:.0}% of one core), bench (load, receiver) {:.0} s; other processes used {:.0}% of the machine.",
                    cpu.server_secs,
                    100.0 * cpu.server_secs / self.duration_secs,
                    cpu.bench_secs,
                    cpu.others_pct
                ),
            );
        }
        lines(out, "");
        lines(out, "| operation | share of the mix | requests | as expected | other statuses | transport errors | wrong body | p50 / p99 / max ms |");
        lines(out, "|---|---|---|---|---|---|---|---|");
        for (op, share) in MIX {
            let Some(s) = self.api.get(&op) else { continue };
            let mut lat: Vec<f64> = s.latencies_ms.iter().map(|&v| v as f64).collect();
            lat.sort_by(f64::total_cmp);
            lines(
                out,
                format!(
                    "| {} | {share}% | {} | {} | {} | {} | {} | {:.1} / {:.1} / {:.1} |",
                    op.label(),
                    s.requests,
                    s.ok,
                    counts(&s.statuses),
                    counts(&s.transport),
                    s.wrong,
                    crate::pct(&lat, 50.0),
                    crate::pct(&lat, 99.0),
                    crate::last(&lat)
                ),
            );
        }
        lines(out, "");
        lines(out, "Creates and deletes fall back on each other (and on a list) when a churn user's pool is full or empty; get and update on a list when it is empty.");
        for (op, s) in &self.api {
            for sample in &s.samples {
                lines(out, format!("- {op:?}: {}", sample.replace('\n', " ")));
            }
        }
        lines(out, "");
    }

    fn render_deliveries(&self, out: &mut String) {
        lines(out, "## Deliveries");
        lines(out, "");
        let Some(r) = &self.reconciliation else {
            lines(out, "not reconciled");
            return;
        };
        lines(
            out,
            format!(
                "{} events accepted ({} published again after no clear answer, {} still without a 202). Drain: {} ({:.0} s after the load).",
                r.events_accepted, self.republished.0, self.republished.1, self.drain.how, self.drain_secs
            ),
        );
        lines(out, "");
        lines(out, "| receiver | webhooks | deliveries addressed | in the log | success | failure (all attempts) | unfinished | missing from / unexpected in the log | verified at the receiver (missing) | successes after a retry | attempts logged / seen by the receiver |");
        lines(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        for row in &r.rows {
            let kind = row.kind.expect("rows are built per kind");
            let received = if kind.delivers() {
                format!("{} ({})", row.received, row.missing_at_receiver)
            } else {
                "—".into()
            };
            lines(
                out,
                format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {received} | {} | {} / {} |",
                    kind.label(),
                    row.webhooks,
                    row.expected,
                    row.logged,
                    row.success,
                    row.failure,
                    row.unfinished,
                    row.missing_in_log,
                    row.unexpected_in_log,
                    row.retried_successes,
                    row.logged_attempts,
                    row.received_attempts
                ),
            );
        }
        lines(out, "");
        lines(
            out,
            format!(
                "Read through `GET /api/v2/public/webhooks/logs?webhookId=…&limit=100&offset=…` ({} pages). The API shows a pending delivery as `failure`: one with fewer than {} attempts counts as unfinished. A receiver sees no attempt when the connection is refused or TLS never starts.",
                r.pages, self.attempts
            ),
        );
        lines(
            out,
            format!(
                "Database: {} (expected {} deliveries in all).",
                r.db.as_ref().map_or("not read".into(), counts),
                r.expected()
            ),
        );
        lines(
            out,
            format!(
                "Receiver: {} requests refused (bad or missing signature), {} duplicate deliveries (at least once), {} TLS handshake errors.",
                self.receiver_refused, self.receiver_duplicates, self.receiver_tls_errors
            ),
        );
        for s in &self.receiver_refusals {
            lines(out, format!("- refused: {s}"));
        }
        for s in &self.log.samples {
            lines(out, format!("- server log: {s}"));
        }
        lines(out, "");
    }

    fn render_series(&self, out: &mut String) {
        lines(out, format!("## Series (every {:.0} s)", self.sample_secs));
        lines(out, "");
        lines(out, "| t s | phase | RSS MB | threads | open fds | server CPU % | API req/s | API problems | API p50 / p99 ms | deliveries verified | pending | database MB |");
        lines(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        let opt = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        for s in &self.samples {
            lines(
                out,
                format!(
                    "| {:.0} | {} | {:.1} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
                    s.t,
                    s.phase,
                    s.rss_mb,
                    s.threads,
                    opt(s.fds.map(|n| n.to_string())),
                    s.cpu_pct,
                    s.requests_per_sec,
                    s.problems,
                    if s.p50_ms.is_nan() {
                        "—".to_owned()
                    } else {
                        format!("{:.1} / {:.1}", s.p50_ms, s.p99_ms)
                    },
                    s.received,
                    opt(s.pending.map(|n| n.to_string())),
                    opt(s.db_mb.map(|mb| format!("{mb:.1}")))
                ),
            );
        }
    }
}

/// The server log's ERROR lines and WARN lines, the expected ones (a failed delivery
/// attempt) apart.
#[derive(Default)]
pub struct LogSummary {
    pub errors: usize,
    pub failed_attempts: usize,
    pub other_warnings: usize,
    /// The first few ERROR and unexpected WARN lines.
    pub samples: Vec<String>,
}

pub fn log_summary(path: &std::path::Path) -> LogSummary {
    let mut summary = LogSummary::default();
    let Ok(text) = std::fs::read_to_string(path) else {
        summary.samples.push(format!("could not read {}", path.display()));
        return summary;
    };
    for line in text.lines().map(server::strip_ansi) {
        match server::level(&line) {
            Some(server::Level::Warn) if line.contains("delivery attempt failed") => {
                summary.failed_attempts += 1;
                continue;
            }
            Some(server::Level::Warn) => summary.other_warnings += 1,
            Some(server::Level::Error) => summary.errors += 1,
            None => continue,
        }
        if summary.samples.len() < 8 {
            summary.samples.push(line.chars().take(300).collect());
        }
    }
    summary
}

/// "a×1, b×2", or "none".
fn counts<K: std::fmt::Display, V: std::fmt::Display>(map: &BTreeMap<K, V>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter().map(|(k, v)| format!("{k}×{v}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(rss: &[f64]) -> Vec<Sample> {
        rss.iter()
            .enumerate()
            .map(|(i, &rss_mb)| Sample {
                t: i as f64 * 10.0,
                phase: "load",
                rss_mb,
                threads: 8,
                fds: None,
                cpu_pct: 0.0,
                requests_per_sec: 0.0,
                problems: 0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                received: 0,
                pending: None,
                db_mb: None,
            })
            .collect()
    }

    #[test]
    fn rss_that_climbs_then_stays_levels_off() {
        let samples = series(&[12.0, 20.0, 25.0, 27.0, 28.0, 28.5, 28.2, 28.9, 28.4]);
        let v = rss_verdict(&samples, 90.0, 10.0, 2.0).unwrap();
        assert_eq!((v.first_max, v.middle_max, v.last_max), (25.0, 28.5, 28.9));
        assert!(v.levels_off);
    }

    #[test]
    fn rss_that_keeps_climbing_does_not() {
        let samples = series(&[12.0, 20.0, 25.0, 27.0, 29.0, 31.0, 33.0, 35.0, 37.0]);
        let v = rss_verdict(&samples, 90.0, 10.0, 2.0).unwrap();
        assert!(!v.levels_off, "last third {} against middle {}", v.last_max, v.middle_max);
        assert!((v.slope_mb_per_min - 12.0).abs() < 1e-9);
    }

    #[test]
    fn small_absolute_growth_is_within_the_slack() {
        // +1.5 MB on 10 MB is 15%, over the share but under the 2 MB slack.
        let samples = series(&[8.0, 9.0, 9.5, 10.0, 10.0, 10.0, 11.0, 11.5, 11.5]);
        assert!(rss_verdict(&samples, 90.0, 10.0, 2.0).unwrap().levels_off);
        assert!(!rss_verdict(&samples, 90.0, 10.0, 1.0).unwrap().levels_off);
    }

    #[test]
    fn drain_samples_and_empty_thirds_give_no_verdict_on_their_own() {
        let mut samples = series(&[10.0, 10.0]);
        assert!(rss_verdict(&samples, 90.0, 10.0, 2.0).is_none());
        samples.extend(series(&[50.0; 9]).into_iter().map(|s| Sample { phase: "drain", ..s }));
        assert!(rss_verdict(&samples, 90.0, 10.0, 2.0).is_none());
    }
}
