//! The delivery worker. `deliver_due()` is one synchronous step (claim what is due, send it,
//! record the outcomes) for tests (feature `testing`); `run()` is the pipelined loop `serve` and
//! `worker` use, where a slow receiver holds one slot, never the others, and one destination
//! at most its per-host share of them (see `fair.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::{self, JoinSet};

use super::fair::{destination, Admission, Destinations, Limits};
use super::guard::TargetRefused;
use super::http::DeliveryHttp;
use super::signer::{signature_header, EVENT_ID_HEADER, SIGNATURE_HEADER};
use crate::store::{AttemptOutcome, ClaimedDelivery, DeliveryStore, Store};

/// At most this much of an answer's body is kept in the log.
pub const RESPONSE_BODY_LIMIT: usize = 20 * 1024;
/// Log entries are kept this long.
pub const LOG_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Most outcomes recorded in one transaction (their response bodies are up to 20 kB each).
const RECORD_BATCH: usize = 512;
/// The longest a claimed delivery waits in the worker for a slot of its busy destination.
const HOLD_LIMIT: Duration = Duration::from_secs(1);
/// The shortest delay of a delivery given back for a busy destination.
const MIN_DEFER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Delay before each retry; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// How long a claim holds; a crashed worker's claims are retaken after it.
    pub lease: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Deliveries in flight at once to one destination (a URL's host and port).
    pub per_host_concurrency: usize,
    /// The longest one attempt takes (the delivery timeout): the longest a slot stays taken.
    pub attempt_timeout: Duration,
    /// How often to look for due work when nothing wakes the worker.
    pub poll_interval: Duration,
}

pub struct Worker {
    store: Store,
    http: DeliveryHttp,
    settings: WorkerSettings,
    wake: Arc<Notify>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Where a claimed delivery goes (`None`: it sends nothing, its webhook was deleted).
fn destination_of(delivery: &ClaimedDelivery) -> Option<String> {
    delivery.target.as_ref().and_then(|t| destination(&t.url))
}

impl Worker {
    pub fn new(store: Store, http: DeliveryHttp, settings: WorkerSettings) -> Self {
        Self { store, http, settings, wake: Arc::new(Notify::new()) }
    }

    /// Notified when events are published in this process, so they go out without waiting for a poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Claims every due delivery (up to the concurrency), sends them (at most the per-host
    /// concurrency to one destination: the rest are given back, due at once for the next
    /// step), records the outcomes. Returns how many were attempted.
    #[cfg(any(test, feature = "testing"))]
    pub async fn deliver_due(&self) -> Result<usize, crate::store::StoreError> {
        let claimed = self.store.claim_due(self.settings.concurrency as i64, self.lease_ms()).await?;
        let mut per_destination: HashMap<String, usize> = HashMap::new();
        let mut over_cap = Vec::new();
        let mut set = JoinSet::new();
        for delivery in claimed {
            if let Some(key) = destination_of(&delivery) {
                let sending = per_destination.entry(key).or_default();
                if *sending >= self.settings.per_host_concurrency {
                    over_cap.push(delivery.id);
                    continue;
                }
                *sending += 1;
            }
            set.spawn(attempt(self.http.clone(), self.settings.retry_schedule.clone(), delivery));
        }
        let mut outcomes = Vec::with_capacity(set.len());
        while let Some(result) = set.join_next().await {
            if let Ok(outcome) = result {
                outcomes.push(outcome);
            }
        }
        self.store.record(&outcomes).await?;
        self.store.defer(&over_cap, now_ms()).await?;
        Ok(outcomes.len())
    }

    fn lease_ms(&self) -> i64 {
        self.settings.lease.as_millis() as i64
    }

    /// Runs until `shutdown` turns true, then gives back what waits for a slot and finishes
    /// (and records) what is in flight.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Outcomes are recorded off the loop, so sending never waits for a commit, by one
        // recorder that takes whatever has finished while it was busy as one batch (two
        // statements on SQLite's writer, whatever the batch's size). The deliveries stay leased
        // until recorded, so nothing is claimed twice meanwhile.
        let (finished, unrecorded) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(self.clone().record_all(unrecorded));
        let mut pipeline = Pipeline::new(self.clone(), finished);
        // With work in flight, claim once a few slots are free (one claim per finished delivery
        // cost the shared database a statement each under load), or once a poll interval has
        // passed (slots held by slow receivers must not keep due deliveries waiting longer).
        // Deliveries held for a busy destination count as taken: claiming more for it would
        // only give them back.
        let claim_at = (self.settings.concurrency / 8).max(1);
        let mut last_claim = Instant::now();
        let mut last_purge: Option<Instant> = None;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let taken = pipeline.in_flight.len() + pipeline.fair.held();
            let room = self.settings.concurrency.saturating_sub(taken);
            let claim_due =
                taken == 0 || room >= claim_at || last_claim.elapsed() >= self.settings.poll_interval;
            let mut more_due = false;
            if room > 0 && claim_due && pipeline.may_claim() {
                last_claim = Instant::now();
                more_due = pipeline.claim(room).await;
            }
            pipeline.expire();
            pipeline.give_back().await;
            if more_due {
                continue;
            }
            if pipeline.in_flight.is_empty() {
                if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                    last_purge = Some(Instant::now());
                    self.purge().await;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let full = pipeline.in_flight.len() >= self.settings.concurrency;
            tokio::select! {
                Some(done) = pipeline.in_flight.join_next_with_id() => {
                    // This one and every other that has finished by now.
                    let mut ended = vec![done];
                    ended.extend(std::iter::from_fn(|| pipeline.in_flight.try_join_next_with_id()));
                    for attempt in ended {
                        pipeline.landed(attempt);
                    }
                }
                _ = self.wake.notified(), if !full => {}
                // Held deliveries must not outstay the hold limit, even with every slot taken.
                _ = tokio::time::sleep(self.settings.poll_interval), if !full || pipeline.fair.held() > 0 => {}
                _ = shutdown.changed() => {}
            }
        }
        pipeline.stop().await;
        // The recorder ends once it has recorded everything sent before this.
        drop(pipeline);
        let _ = recorder.await;
    }

    /// The recorder: batches of whatever has finished, until the sender is gone.
    async fn record_all(self: Arc<Self>, mut unrecorded: mpsc::UnboundedReceiver<AttemptOutcome>) {
        let mut batch = Vec::new();
        while unrecorded.recv_many(&mut batch, RECORD_BATCH).await > 0 {
            self.record(&batch).await;
            batch.clear();
        }
    }

    async fn record(&self, outcomes: &[AttemptOutcome]) {
        // Unrecorded attempts are retried once their lease expires: at least once, never lost.
        if let Err(e) = self.store.record(outcomes).await {
            tracing::error!(error = %e, count = outcomes.len(), "recording delivery attempts failed");
        }
    }

    async fn purge(&self) {
        let before = now_ms() - LOG_RETENTION.as_millis() as i64;
        match self.store.purge(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deliveries = n, "purged delivery log entries older than 14 days"),
            Err(e) => tracing::error!(error = %e, "purging the delivery log failed"),
        }
    }
}

/// The state of [`Worker::run`]'s loop: the attempts in flight, the deliveries held for a
/// busy destination, and those to give back to the store.
struct Pipeline {
    worker: Arc<Worker>,
    in_flight: JoinSet<AttemptOutcome>,
    /// The destination and start of each attempt in flight that has one, by task: its slot,
    /// freed when the task ends, however it ends.
    slots: HashMap<task::Id, (String, Instant)>,
    fair: Destinations<ClaimedDelivery>,
    /// Deliveries to give back, by their delay in whole seconds (one statement per delay).
    deferred: BTreeMap<u64, Vec<String>>,
    /// Deliveries given back since `churn_since`: at most [`CHURN_PER_POLL`] times the
    /// concurrency per poll interval, so destinations that hang, however large their
    /// backlog, cost the database a bounded number of claims and give-backs.
    churn: usize,
    churn_since: Instant,
    /// Destinations not yet judged that the last claim gave deliveries back for, and until
    /// when to wait for their first answers before claiming again (see [`Pipeline::claim`]).
    unjudged: Vec<String>,
    unjudged_until: Instant,
    last_prune: Instant,
    finished: mpsc::UnboundedSender<AttemptOutcome>,
}

/// See [`Pipeline::churn`].
const CHURN_PER_POLL: usize = 4;
/// …and at least this many (a small worker still gets through a backlog of busy destinations).
const MIN_CHURN_PER_POLL: usize = 256;

impl Pipeline {
    fn new(worker: Arc<Worker>, finished: mpsc::UnboundedSender<AttemptOutcome>) -> Self {
        let settings = &worker.settings;
        let limits = Limits {
            cap: settings.per_host_concurrency,
            // Far within the lease: a held claim must not expire and be sent twice.
            hold_limit: HOLD_LIMIT.min(settings.lease / 4),
            min_defer: MIN_DEFER,
            max_defer: settings.attempt_timeout,
            unproven_share: (settings.concurrency / 2).max(1),
        };
        Self {
            fair: Destinations::new(limits),
            worker,
            in_flight: JoinSet::new(),
            slots: HashMap::new(),
            deferred: BTreeMap::new(),
            churn: 0,
            churn_since: Instant::now(),
            unjudged: Vec::new(),
            unjudged_until: Instant::now(),
            last_prune: Instant::now(),
            finished,
        }
    }

    fn may_claim(&mut self) -> bool {
        let now = Instant::now();
        if now.saturating_duration_since(self.churn_since) >= self.worker.settings.poll_interval {
            self.churn = 0;
            self.churn_since = now;
        }
        if now < self.unjudged_until {
            let fair = &self.fair;
            self.unjudged.retain(|key| !fair.judged(key, now));
        } else {
            self.unjudged.clear();
        }
        let budget = (CHURN_PER_POLL * self.worker.settings.concurrency).max(MIN_CHURN_PER_POLL);
        self.unjudged.is_empty() && self.churn < budget
    }

    /// Claims up to `room` deliveries and starts, holds or defers each. Returns whether to
    /// claim again at once: the claim was full, yet slots are still free, because it gave back
    /// deliveries of destinations known to be busy (others may be due behind them).
    ///
    /// A destination not yet judged (nothing of it has finished yet) may turn out fast within
    /// a hold limit, and then take a deep queue here: until then, or until that limit, no
    /// claim is made past what was given back for it (it would only give back its whole
    /// backlog, due again a second later).
    async fn claim(&mut self, room: usize) -> bool {
        let claimed = match self.worker.store.claim_due(room as i64, self.worker.lease_ms()).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "claiming deliveries failed");
                return false;
            }
        };
        let full = claimed.len() == room;
        let mut busy = false;
        let now = Instant::now();
        for delivery in claimed {
            let Some(key) = destination_of(&delivery) else {
                self.launch(None, now, delivery);
                continue;
            };
            match self.fair.admit(&key, delivery, now) {
                Admission::Start(delivery) => self.launch(Some(key), now, delivery),
                Admission::Held => {}
                Admission::Defer(delivery, delay) => {
                    if self.fair.judged(&key, now) {
                        busy = true;
                    } else if !self.unjudged.contains(&key) {
                        self.unjudged.push(key);
                        self.unjudged_until = now + self.fair.hold_limit();
                    }
                    self.defer(delivery.id, delay);
                }
            }
        }
        full && busy
    }

    fn launch(&mut self, destination: Option<String>, started: Instant, delivery: ClaimedDelivery) {
        let (http, schedule) = (self.worker.http.clone(), self.worker.settings.retry_schedule.clone());
        let task = self.in_flight.spawn(attempt(http, schedule, delivery));
        if let Some(key) = destination {
            self.slots.insert(task.id(), (key, started));
        }
    }

    /// An attempt ended: its outcome goes to the recorder, its slot to a held delivery.
    fn landed(&mut self, ended: Result<(task::Id, AttemptOutcome), task::JoinError>) {
        let now = Instant::now();
        let (id, took) = match ended {
            Ok((id, outcome)) => {
                let took = Duration::from_millis(outcome.duration_ms.max(0) as u64);
                let _ = self.finished.send(outcome);
                (id, Some(took))
            }
            // A panic: no outcome (the delivery is claimed again once its lease ends), but the
            // slot is free all the same.
            Err(e) => (e.id(), None),
        };
        let Some((key, started)) = self.slots.remove(&id) else { return };
        let took = took.unwrap_or_else(|| now.saturating_duration_since(started));
        if let Some(next) = self.fair.finished(&key, started, took, now) {
            self.launch(Some(key), now, next);
        }
    }

    fn defer(&mut self, id: String, delay: Duration) {
        self.deferred.entry(delay.as_millis().div_ceil(1000) as u64).or_default().push(id);
        self.churn += 1;
    }

    fn expire(&mut self) {
        let now = Instant::now();
        if self.fair.held() > 0 {
            for (delivery, delay) in self.fair.expire(now) {
                self.defer(delivery.id, delay);
            }
        }
        if now.saturating_duration_since(self.last_prune) >= self.worker.settings.poll_interval {
            self.last_prune = now;
            self.fair.prune(now);
        }
    }

    /// Gives the deferred deliveries back to the store: unleased, due again after their delay.
    async fn give_back(&mut self) {
        for (secs, ids) in std::mem::take(&mut self.deferred) {
            let until = now_ms() + 1000 * secs as i64;
            // Not given back: they are claimed again when their lease ends.
            if let Err(e) = self.worker.store.defer(&ids, until).await {
                tracing::error!(error = %e, count = ids.len(), "giving deliveries back failed");
            }
        }
    }

    /// Gives back what waits for a slot (due at once, for whoever runs next), then lets the
    /// attempts in flight finish and goes to the recorder with them.
    async fn stop(&mut self) {
        for delivery in self.fair.take_held() {
            self.defer(delivery.id, Duration::ZERO);
        }
        self.give_back().await;
        while let Some(done) = self.in_flight.join_next().await {
            if let Ok(outcome) = done {
                let _ = self.finished.send(outcome);
            }
        }
    }
}

/// Why an attempt got no answer: what the owner's log says, and, when the server's log should
/// say more (the refused address), what it says.
struct NoAnswer {
    logged: String,
    detail: Option<String>,
}

impl NoAnswer {
    fn new(logged: impl Into<String>) -> Self {
        Self { logged: logged.into(), detail: None }
    }

    fn refused(refused: &TargetRefused) -> Self {
        Self { logged: refused.to_string(), detail: Some(refused.detail()) }
    }
}

/// One attempt at one delivery.
async fn attempt(http: DeliveryHttp, schedule: Vec<Duration>, delivery: ClaimedDelivery) -> AttemptOutcome {
    let started = Instant::now();
    let at_ms = now_ms();
    let (url, result) = match &delivery.target {
        None => (delivery.fallback_url.clone(), Err(NoAnswer::new("webhook deleted: not sent"))),
        Some(target) => {
            (target.url.clone(), send(&http, &delivery, &target.url, &target.secrets, at_ms).await)
        }
    };
    let (status_code, response_body, detail, success) = match result {
        Ok((status, body)) => (Some(status), body, None, (200..300).contains(&status)),
        Err(NoAnswer { logged, detail }) => (None, logged, detail, false),
    };
    let retry = delivery.target.is_some() && !success;
    // The delay runs from the end of the failed attempt, not its start.
    let finished_ms = now_ms();
    let retry_at_ms = schedule
        .get(delivery.attempts as usize)
        .filter(|_| retry)
        .map(|delay| finished_ms + delay.as_millis() as i64);
    crate::metrics::delivery(match (success, retry_at_ms) {
        (true, _) => "success",
        (false, Some(_)) => "retry",
        (false, None) => "failure",
    });
    if !success {
        let reason = detail.unwrap_or_else(|| response_body.chars().take(200).collect());
        tracing::warn!(delivery = %delivery.id, event = %delivery.event_id, %url, status = ?status_code,
            %reason, retry = retry_at_ms.is_some(), "delivery attempt failed");
    }
    AttemptOutcome {
        delivery_id: delivery.id,
        attempt: delivery.attempts,
        url,
        status_code,
        response_body,
        duration_ms: started.elapsed().as_millis() as i64,
        at_ms,
        success,
        retry_at_ms,
    }
}

/// Sends the stored body, signed now. `Ok((status, body))` for any answer; `Err` for none.
async fn send(
    http: &DeliveryHttp,
    delivery: &ClaimedDelivery,
    url: &str,
    secrets: &[String],
    at_ms: i64,
) -> Result<(u16, String), NoAnswer> {
    let parsed = reqwest::Url::parse(url).map_err(|e| NoAnswer::new(format!("invalid URL: {e}")))?;
    // IP literals never reach the resolver, so the guard checks them here.
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal {
        http.policy.check(ip).map_err(|refused| NoAnswer::refused(&refused))?;
    }
    let signature = signature_header(secrets, (at_ms / 1000) as u64, &delivery.body);
    let request = http
        .client
        .post(parsed)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(SIGNATURE_HEADER, signature)
        .header(EVENT_ID_HEADER, &delivery.event_id)
        .body(delivery.body.clone());
    let mut response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_BODY_LIMIT - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= RESPONSE_BODY_LIMIT {
                    break;
                }
            }
            Ok(None) => break,
            // The status arrived; a body cut short does not change the outcome.
            Err(_) => break,
        }
    }
    let cut = body.len() >= RESPONSE_BODY_LIMIT;
    Ok((status, logged_text(&body, cut, RESPONSE_BODY_LIMIT)))
}

/// An answer's body as the log keeps it: at most `limit` bytes of UTF-8. Invalid bytes (and
/// U+0000, which PostgreSQL text cannot hold) become U+FFFD, three bytes for one, so the text
/// is cut after decoding, on a character boundary. When the read stopped at its byte limit
/// (`cut`), a character split by that limit is dropped rather than shown as U+FFFD.
fn logged_text(bytes: &[u8], cut: bool, limit: usize) -> String {
    let bytes = if cut { without_split_char_at_end(bytes) } else { bytes };
    let mut text = String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}");
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// `bytes` without a multi-byte character that its last (at most three) bytes start but do
/// not complete.
fn without_split_char_at_end(bytes: &[u8]) -> &[u8] {
    for start in (bytes.len().saturating_sub(3)..bytes.len()).rev() {
        let is_lead = bytes[start] >= 0xC0;
        if is_lead {
            let incomplete = matches!(std::str::from_utf8(&bytes[start..]),
                Err(e) if e.valid_up_to() == 0 && e.error_len().is_none());
            return if incomplete { &bytes[..start] } else { bytes };
        }
    }
    bytes
}

fn describe(e: &reqwest::Error) -> NoAnswer {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<TargetRefused>() {
            return NoAnswer::refused(refused);
        }
        source = err.source();
    }
    NoAnswer::new(if e.is_timeout() {
        "timed out waiting for the receiver".to_owned()
    } else if e.is_connect() {
        format!("could not connect: {}", root_cause(e))
    } else {
        format!("request failed: {}", root_cause(e))
    })
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = RESPONSE_BODY_LIMIT;

    #[test]
    fn logged_bodies_stay_within_the_limit_after_decoding() {
        // Every invalid byte becomes a three-byte U+FFFD: 20 kB of them decode to 60 kB.
        let text = logged_text(&[0xFF; LIMIT], true, LIMIT);
        assert!(text.len() <= LIMIT, "{}", text.len());
        assert_eq!(text, "\u{FFFD}".repeat(LIMIT / 3));
        // U+0000 too (the store cannot keep it as is).
        let text = logged_text(&[0; LIMIT], true, LIMIT);
        assert_eq!(text, "\u{FFFD}".repeat(LIMIT / 3));
        // Short bodies are kept whole, replacements included.
        assert_eq!(logged_text(b"ok \xFF\0", false, LIMIT), "ok \u{FFFD}\u{FFFD}");
        let ascii = vec![b'a'; LIMIT];
        assert_eq!(logged_text(&ascii, true, LIMIT).as_bytes(), &ascii[..]);
    }

    #[test]
    fn multi_byte_characters_at_the_edge_are_never_split() {
        for (c, len) in [('é', 2), ('€', 3), ('🦀', 4)] {
            for offset in 0..len {
                // A character that straddles the limit by `offset` bytes…
                let mut text = "a".repeat(LIMIT - len + offset);
                while text.len() < LIMIT + 8 {
                    text.push(c);
                }
                // …as the read keeps it (its first LIMIT bytes): the split character goes.
                let read = &text.as_bytes()[..LIMIT];
                let logged = logged_text(read, true, LIMIT);
                assert!(logged.len() <= LIMIT && text.starts_with(&logged), "{c} {offset}");
                assert!(!logged.contains('\u{FFFD}'), "{c} {offset}: a split character shows as U+FFFD");
                assert!(logged.len() > LIMIT - len, "{c} {offset}: only the split character is dropped");
                // Decoded text longer than the limit is cut on a boundary too.
                let cut = logged_text(text.as_bytes(), false, LIMIT);
                assert!(
                    cut.len() <= LIMIT && cut.len() > LIMIT - len && text.starts_with(&cut),
                    "{c} {offset}"
                );
            }
        }
        // Only an incomplete character at the end of a cut read goes: an invalid byte stays
        // (as U+FFFD), and so does an incomplete one at the real end of a body.
        assert_eq!(logged_text(b"abc\xE2\x82", true, 6), "abc");
        assert_eq!(logged_text(b"abc\xFF", true, 6), "abc\u{FFFD}");
        assert_eq!(logged_text(b"abc\xE2\x82", false, 6), "abc\u{FFFD}");
        assert_eq!(logged_text(b"abcd\xFF", false, 6), "abcd", "no room for the U+FFFD");
    }
}
