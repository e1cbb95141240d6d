//! After the load: waiting for the retry schedule to run out, then checking that every
//! delivery of every accepted event ended as it must, three ways: the log API (paged, per
//! webhook), the database (no delivery left pending), and the receiver (every event addressed
//! to a healthy receiver arrived with a valid signature).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use super::setup::{Kind, Published, World};
use super::{parse_duration, Config, Database};

/// Log entries per page (the contract's maximum).
const PAGE: usize = 100;
const DB_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one query with the database's command-line client; its output, trimmed. `None` when
/// the client is missing, fails, or takes longer than DB_TIMEOUT.
pub async fn query(db: &Database, sql: &str) -> Option<String> {
    let mut command = match db {
        Database::Sqlite(path) => {
            let mut c = tokio::process::Command::new("sqlite3");
            c.args(["-cmd", ".timeout 5000"]).arg(format!("file:{}?mode=ro", path.display())).arg(sql);
            c
        }
        Database::Postgres(url) => {
            let mut c = tokio::process::Command::new("psql");
            c.args(["-AtX", "-v", "ON_ERROR_STOP=1"]).arg(url).args(["-c", sql]);
            c
        }
    };
    command.kill_on_drop(true).stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(DB_TIMEOUT, command.output()).await.ok()?.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Deliveries by status (`pending`, `success`, `failure`).
pub async fn status_counts(db: &Database) -> Option<BTreeMap<String, i64>> {
    let text = query(db, "SELECT status || ' ' || COUNT(*) FROM deliveries GROUP BY status").await?;
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let (status, n) = line.split_once(' ')?;
        counts.insert(status.to_owned(), n.trim().parse().ok()?);
    }
    Some(counts)
}

/// The database's size on disk in MiB (SQLite: the file with its WAL).
pub async fn size_mb(db: &Database) -> Option<f64> {
    match db {
        Database::Sqlite(path) => {
            let dir = path.parent()?;
            let name = path.file_name()?.to_str()?;
            let bytes: u64 = std::fs::read_dir(dir)
                .ok()?
                .flatten()
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(name)))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum();
            Some(bytes as f64 / 1024.0 / 1024.0)
        }
        Database::Postgres(_) => {
            let bytes: f64 = query(db, "SELECT pg_database_size(current_database())").await?.parse().ok()?;
            Some(bytes / 1024.0 / 1024.0)
        }
    }
}

pub struct Drain {
    /// No delivery left pending (per the database), or the fixed wait done without one.
    pub drained: bool,
    pub how: String,
}

/// Waits until the database has no pending delivery (polled every 2 s, at most DRAIN_TIMEOUT).
/// Without a database client: the longest a delivery can take (every retry delay, every
/// attempt timing out) and a margin.
pub async fn wait_for_drain(cfg: &Config, db: &Database) -> Drain {
    let started = Instant::now();
    let mut seen_client = false;
    while started.elapsed() < cfg.drain_timeout {
        match status_counts(db).await {
            Some(counts) => {
                seen_client = true;
                let pending = counts.get("pending").copied().unwrap_or(0);
                if pending == 0 {
                    return Drain {
                        drained: true,
                        how: format!(
                            "no delivery pending after {:.0} s (per the database)",
                            started.elapsed().as_secs_f64()
                        ),
                    };
                }
            }
            None if !seen_client => break,
            None => {}
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if seen_client {
        return Drain {
            drained: false,
            how: format!("deliveries still pending after DRAIN_TIMEOUT ({:?})", cfg.drain_timeout),
        };
    }
    let delays: Duration = cfg.retry_schedule.split(',').filter_map(parse_duration).sum();
    let timeout = parse_duration(&cfg.delivery_timeout).unwrap_or(Duration::from_secs(15));
    let wait = (delays + timeout * cfg.attempts + Duration::from_secs(30)).min(cfg.drain_timeout);
    tokio::time::sleep(wait).await;
    Drain {
        drained: true,
        how: format!(
            "no database client: waited {wait:?} (the retry schedule, every attempt timing out, 30 s)"
        ),
    }
}

/// One kind of receiver's deliveries, over every delivery user.
#[derive(Default, Clone)]
pub struct KindRow {
    pub kind: Option<Kind>,
    pub webhooks: usize,
    /// Deliveries the accepted events addressed to these webhooks.
    pub expected: usize,
    /// Log entries found (distinct events).
    pub logged: usize,
    pub success: usize,
    /// `failure` with every attempt made.
    pub failure: usize,
    /// `failure` with attempts left: still pending (the API shows pending as failure).
    pub unfinished: usize,
    pub missing_in_log: usize,
    /// Entries for events this bench did not count as accepted.
    pub unexpected_in_log: usize,
    pub log_duplicates: usize,
    /// Attempts the log records, and the ones the receiver saw (signature verified).
    pub logged_attempts: usize,
    pub received_attempts: usize,
    /// Healthy kinds: expected events verified at the receiver, and those missing there.
    pub received: usize,
    pub missing_at_receiver: usize,
    /// Successes that took a retry.
    pub retried_successes: usize,
}

impl KindRow {
    /// Deliveries that did not end as this kind must.
    pub fn wrong_outcome(&self) -> usize {
        match self.kind {
            Some(k) if k.delivers() => self.failure + self.unfinished,
            _ => self.success + self.unfinished,
        }
    }

    pub fn problems(&self) -> usize {
        self.wrong_outcome()
            + self.missing_in_log
            + self.unexpected_in_log
            + self.log_duplicates
            + self.missing_at_receiver
    }
}

pub struct Reconciliation {
    pub rows: Vec<KindRow>,
    pub events_accepted: usize,
    pub events_unsure: usize,
    /// The database's deliveries by status, when its client answered.
    pub db: Option<BTreeMap<String, i64>>,
    pub pages: usize,
}

impl Reconciliation {
    pub fn expected(&self) -> usize {
        self.rows.iter().map(|r| r.expected).sum()
    }

    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for row in &self.rows {
            if row.problems() > 0 {
                problems.push(format!(
                    "{}: {} deliveries with the wrong outcome, {} missing from the log, {} unexpected in it, {} logged twice, {} missing at the receiver",
                    row.kind.map_or("?", Kind::label),
                    row.wrong_outcome(),
                    row.missing_in_log,
                    row.unexpected_in_log,
                    row.log_duplicates,
                    row.missing_at_receiver
                ));
            }
        }
        if self.events_unsure > 0 {
            problems
                .push(format!("{} events whose publish never got a 202, even repeated", self.events_unsure));
        }
        match &self.db {
            None => problems.push(
                "the database could not be read (no sqlite3/psql?): pending deliveries not counted there"
                    .into(),
            ),
            Some(db) => {
                let pending = db.get("pending").copied().unwrap_or(0);
                let total: i64 = db.values().sum();
                if pending > 0 {
                    problems.push(format!("{pending} deliveries still pending in the database"));
                }
                if total != self.expected() as i64 {
                    problems.push(format!(
                        "the database holds {total} deliveries, the accepted events addressed {}",
                        self.expected()
                    ));
                }
            }
        }
        problems
    }
}

struct LogEntry {
    event_id: String,
    status: String,
    attempts: usize,
}

pub async fn reconcile(cfg: &Config, world: &World, db: &Database) -> anyhow::Result<Reconciliation> {
    let (accepted, unsure): (Vec<(String, usize, &'static str)>, HashSet<String>) = {
        let events = world.events.lock().unwrap();
        let accepted = events
            .iter()
            .filter(|e| e.state == Published::Accepted)
            .map(|e| (e.id.clone(), e.user, e.event_type))
            .collect();
        let unsure = events.iter().filter(|e| e.state == Published::Unsure).map(|e| e.id.clone()).collect();
        (accepted, unsure)
    };
    let mut rows: BTreeMap<Kind, KindRow> = BTreeMap::new();
    let mut pages = 0;
    for hook in &world.hooks {
        let expected: HashSet<&str> = accepted
            .iter()
            .filter(|(_, user, t)| *user == hook.user && hook.subscribed(t))
            .map(|(id, _, _)| id.as_str())
            .collect();
        let (entries, read) = read_log(world, hook.user, &hook.id, expected.len()).await?;
        pages += read;
        let row =
            rows.entry(hook.kind).or_insert_with(|| KindRow { kind: Some(hook.kind), ..Default::default() });
        row.webhooks += 1;
        row.expected += expected.len();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for entry in &entries {
            *seen.entry(entry.event_id.as_str()).or_default() += 1;
            if !expected.contains(entry.event_id.as_str()) {
                row.unexpected_in_log += usize::from(!unsure.contains(&entry.event_id));
                continue;
            }
            row.logged_attempts += entry.attempts;
            match (entry.status.as_str(), entry.attempts >= cfg.attempts as usize) {
                ("success", _) => {
                    row.success += 1;
                    row.retried_successes += usize::from(entry.attempts > 1);
                }
                (_, true) => row.failure += 1,
                (_, false) => row.unfinished += 1,
            }
        }
        row.logged += seen.keys().filter(|id| expected.contains(*id)).count();
        row.log_duplicates += seen.values().filter(|n| **n > 1).map(|n| n - 1).sum::<usize>();
        row.missing_in_log += expected.iter().filter(|id| !seen.contains_key(*id)).count();
        let shared = &world.receiver.shared;
        for id in &expected {
            row.received_attempts += shared.attempts(&hook.path, id) as usize;
            if hook.kind.delivers() {
                if shared.receipt(&hook.path, id).is_some() {
                    row.received += 1;
                } else {
                    row.missing_at_receiver += 1;
                }
            }
        }
    }
    Ok(Reconciliation {
        rows: rows.into_values().collect(),
        events_accepted: accepted.len(),
        events_unsure: unsure.len(),
        db: status_counts(db).await,
        pages,
    })
}

/// Every log entry of one webhook, oldest first, a page at a time (bounded: the expected
/// count's pages and a few more). Returns the entries and the pages read.
async fn read_log(
    world: &World,
    user: usize,
    hook: &str,
    expected: usize,
) -> anyhow::Result<(Vec<LogEntry>, usize)> {
    let mut entries = Vec::with_capacity(expected);
    let max_pages = expected / PAGE + 20;
    for page in 0..max_pages {
        let url = format!(
            "{}/api/v2/public/webhooks/logs?webhookId={hook}&limit={PAGE}&offset={}&sortDirection=ASC",
            world.base,
            page * PAGE
        );
        let body = get_json(world, &url, &world.users[user].token).await?;
        let data = body["data"].as_array().with_context(|| format!("no data array from {url}"))?;
        for entry in data {
            if entry["webhookId"].as_str() != Some(hook) {
                bail!("{url} answered an entry of webhook {}", entry["webhookId"]);
            }
            entries.push(LogEntry {
                event_id: entry["eventId"].as_str().unwrap_or_default().to_owned(),
                status: entry["status"].as_str().unwrap_or_default().to_owned(),
                attempts: 1 + entry["retries"].as_array().map_or(0, Vec::len),
            });
        }
        if data.len() < PAGE {
            return Ok((entries, page + 1));
        }
    }
    bail!("the log of webhook {hook} has more than {max_pages} pages ({expected} entries expected)")
}

/// A GET answered 200 with JSON, tried up to three times.
async fn get_json(world: &World, url: &str, token: &str) -> anyhow::Result<Value> {
    let mut last = String::new();
    for _ in 0..3 {
        match world.http.get(url).bearer_auth(token).send().await {
            Ok(response) if response.status().as_u16() == 200 => {
                return Ok(serde_json::from_str(&response.text().await?)?);
            }
            Ok(response) => {
                last = format!("{}: {}", response.status(), response.text().await.unwrap_or_default())
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("GET {url}: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_wrong_by_what_the_receiver_does() {
        let row = |kind, success, failure, unfinished| KindRow {
            kind: Some(kind),
            success,
            failure,
            unfinished,
            ..Default::default()
        };
        assert_eq!(row(Kind::Healthy, 10, 0, 0).problems(), 0);
        assert_eq!(row(Kind::Healthy, 10, 2, 1).wrong_outcome(), 3);
        assert_eq!(row(Kind::Error500, 0, 10, 0).problems(), 0);
        assert_eq!(row(Kind::Error500, 1, 10, 2).wrong_outcome(), 3);
        let missing = KindRow { missing_at_receiver: 1, ..row(Kind::FailsFirstAttempt, 5, 0, 0) };
        assert_eq!(missing.problems(), 1);
    }
}
