//! The mixed API load: an open-loop schedule of RATE requests/s, each an operation drawn from
//! `MIX`, every answer checked (status, and the body where it can be predicted) and counted.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::task::JoinSet;

use super::setup::{event_request, ChurnHook, Event, Published, World, EVENT_TYPES, EVENT_WEIGHTS};
use super::Config;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Publish,
    Create,
    Get,
    Update,
    Delete,
    ListDeliveryUser,
    ListChurnUser,
    SearchLogs,
    Metrics,
    InvalidCreate,
    GetUnknown,
}

/// The operations and their share of the requests, in percent. Creates and deletes are equal
/// so the churn users' webhooks stay around half their pool.
pub const MIX: [(Op, u32); 11] = [
    (Op::Publish, 15),
    (Op::Create, 8),
    (Op::Get, 12),
    (Op::Update, 8),
    (Op::Delete, 8),
    (Op::ListDeliveryUser, 9),
    (Op::ListChurnUser, 9),
    (Op::SearchLogs, 25),
    (Op::Metrics, 2),
    (Op::InvalidCreate, 2),
    (Op::GetUnknown, 2),
];

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::Publish => "publish event → 202 (deliveries as subscribed)",
            Op::Create => "create webhook (churn user) → 201",
            Op::Get => "get webhook (churn user) → 200, as last written",
            Op::Update => "update webhook (churn user) → 200",
            Op::Delete => "delete webhook (churn user) → 204",
            Op::ListDeliveryUser => "list (delivery user) → 200, all its webhooks",
            Op::ListChurnUser => "list (churn user) → 200",
            Op::SearchLogs => "search logs (delivery user, filters, offsets) → 200",
            Op::Metrics => "GET /metrics → 200",
            Op::InvalidCreate => "create with `{}` → 400",
            Op::GetUnknown => "get an unknown id → 404",
        }
    }
}

/// What one request gave: the status (or the transport error's kind and text), and what was
/// wrong with an answer of the expected status.
type Answer = Result<(u16, String), (&'static str, String)>;

#[derive(Default, Clone)]
pub struct OpStats {
    pub requests: u64,
    /// Answers with the expected status and a body as predicted.
    pub ok: u64,
    /// Answers with another status, by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an answer, by kind (timeout, connect, body, other).
    pub transport: BTreeMap<&'static str, u64>,
    /// Expected status, unexpected body.
    pub wrong: u64,
    /// The first few problems, for the report.
    pub samples: Vec<String>,
    pub latencies_ms: Vec<f32>,
}

impl OpStats {
    pub fn problems(&self) -> u64 {
        self.requests - self.ok
    }
}

/// What happened between two samples.
#[derive(Default)]
pub struct Interval {
    pub requests: u64,
    pub problems: u64,
    pub latencies_ms: Vec<f32>,
}

#[derive(Default)]
pub struct Stats {
    inner: Mutex<(BTreeMap<Op, OpStats>, Interval)>,
}

impl Stats {
    fn record(&self, op: Op, expected: u16, answer: &Answer, wrong: Option<String>, latency: Duration) {
        let ms = latency.as_secs_f64() as f32 * 1000.0;
        let mut inner = self.inner.lock().unwrap();
        let (ops, interval) = &mut *inner;
        let stats = ops.entry(op).or_default();
        stats.requests += 1;
        stats.latencies_ms.push(ms);
        interval.requests += 1;
        interval.latencies_ms.push(ms);
        let problem = match (answer, wrong) {
            (Ok((status, _)), None) if *status == expected => {
                stats.ok += 1;
                return;
            }
            (Ok((status, _)), Some(why)) if *status == expected => {
                stats.wrong += 1;
                format!("{expected} but {why}")
            }
            (Ok((status, body)), _) => {
                *stats.statuses.entry(*status).or_default() += 1;
                format!("{status}: {}", body.chars().take(200).collect::<String>())
            }
            (Err((kind, text)), _) => {
                *stats.transport.entry(kind).or_default() += 1;
                format!("{kind}: {text}")
            }
        };
        interval.problems += 1;
        if stats.samples.len() < 3 {
            stats.samples.push(problem);
        }
    }

    pub fn take_interval(&self) -> Interval {
        std::mem::take(&mut self.inner.lock().unwrap().1)
    }

    pub fn snapshot(&self) -> BTreeMap<Op, OpStats> {
        self.inner.lock().unwrap().0.clone()
    }
}

/// How well the schedule was kept.
#[derive(Default, Clone, Copy)]
pub struct Late {
    pub sent: u64,
    /// Sent more than 20 ms behind schedule (the bench starved, or IN_FLIGHT was reached).
    pub late: u64,
    pub worst_ms: f64,
}

/// Runs the load for the configured duration; returns when every request has been answered.
pub async fn run(cfg: &Arc<Config>, world: &Arc<World>) -> Late {
    let mut rng = fastrand::Rng::with_seed(world.seed);
    let cap = Arc::new(tokio::sync::Semaphore::new(cfg.in_flight));
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let end = start + cfg.duration;
    let mut set = JoinSet::new();
    let mut late = Late::default();
    for seq in 0u64.. {
        let due = start + Duration::from_secs_f64(seq as f64 / cfg.rate as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        let Ok(permit) = cap.clone().acquire_owned().await else { break };
        let behind = tokio::time::Instant::now().saturating_duration_since(due);
        if behind > Duration::from_millis(20) {
            late.late += 1;
        }
        late.worst_ms = late.worst_ms.max(behind.as_secs_f64() * 1000.0);
        late.sent += 1;
        let op = pick(&mut rng);
        let (world, seed) = (world.clone(), rng.u64(..));
        set.spawn(async move {
            world.perform(op, seq, fastrand::Rng::with_seed(seed)).await;
            drop(permit);
        });
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
    late
}

fn pick(rng: &mut fastrand::Rng) -> Op {
    let mut roll = rng.u32(0..MIX.iter().map(|(_, w)| w).sum::<u32>());
    for (op, weight) in MIX {
        if roll < weight {
            return op;
        }
        roll -= weight;
    }
    Op::SearchLogs
}

fn pick_event_type(rng: &mut fastrand::Rng) -> &'static str {
    let mut roll = rng.u32(0..EVENT_WEIGHTS.iter().sum::<u32>());
    for (event_type, weight) in EVENT_TYPES.into_iter().zip(EVENT_WEIGHTS) {
        if roll < weight {
            return event_type;
        }
        roll -= weight;
    }
    EVENT_TYPES[0]
}

/// `all`, or a non-empty subset of the event types.
fn pick_subscription(rng: &mut fastrand::Rng) -> Vec<&'static str> {
    if rng.u8(0..4) == 0 {
        return vec!["all"];
    }
    let mut events: Vec<&'static str> = EVENT_TYPES.into_iter().filter(|_| rng.bool()).collect();
    if events.is_empty() {
        events.push(EVENT_TYPES[rng.usize(0..EVENT_TYPES.len())]);
    }
    events
}

fn parse(body: &str) -> Result<Value, String> {
    serde_json::from_str(body)
        .map_err(|e| format!("body is not JSON ({e}): {}", body.chars().take(100).collect::<String>()))
}

/// The hook as the answer shows it, compared with what was written.
fn differs(data: &Value, hook: &ChurnHook) -> Option<String> {
    let events: Vec<&str> = data["events"].as_array()?.iter().filter_map(Value::as_str).collect();
    if data["url"].as_str() != Some(hook.url.as_str()) || events != hook.events {
        return Some(format!(
            "answered url {} events {:?}, expected {} {:?}",
            data["url"], events, hook.url, hook.events
        ));
    }
    None
}

impl World {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let kind = |e: &reqwest::Error| {
            if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else if e.is_body() || e.is_decode() {
                "body"
            } else {
                "other"
            }
        };
        let response = request.send().await.map_err(|e| (kind(&e), e.to_string()))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| (kind(&e), e.to_string()))?;
        Ok((status, text))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request of `op` (or of a stand-in when `op` cannot run now: no webhook to get,
    /// the pool full), checked and counted.
    async fn perform(&self, op: Op, seq: u64, mut rng: fastrand::Rng) {
        let started = Instant::now();
        let (op, expected, answer, wrong) = match op {
            Op::Publish => self.publish(seq, &mut rng).await,
            // A full pool deletes instead, an empty one creates; neither possible: a list.
            Op::Create => match self.create(seq, &mut rng).await {
                Some(done) => done,
                None => match self.delete(&mut rng).await {
                    Some(done) => done,
                    None => self.list_churn_user(&mut rng).await,
                },
            },
            Op::Delete => match self.delete(&mut rng).await {
                Some(done) => done,
                None => match self.create(seq, &mut rng).await {
                    Some(done) => done,
                    None => self.list_churn_user(&mut rng).await,
                },
            },
            Op::Get => self.get(&mut rng).await,
            Op::Update => self.update(seq, &mut rng).await,
            Op::ListDeliveryUser => self.list_delivery_user(&mut rng).await,
            Op::ListChurnUser => self.list_churn_user(&mut rng).await,
            Op::SearchLogs => self.search_logs(&mut rng).await,
            Op::Metrics => {
                let answer = self.send(self.http.get(self.url("/metrics"))).await;
                (Op::Metrics, 200, answer, None)
            }
            Op::InvalidCreate => {
                let token = &self.churn[rng.usize(0..self.churn.len())].token;
                let request = self
                    .http
                    .post(self.url("/api/v2/public/webhooks/user"))
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body("{}");
                (Op::InvalidCreate, 400, self.send(request).await, None)
            }
            Op::GetUnknown => {
                let token = &self.churn[rng.usize(0..self.churn.len())].token;
                let id =
                    format!("{:08x}-0000-4000-8000-{:012x}", rng.u32(..), rng.u64(..) & 0xffff_ffff_ffff);
                let request =
                    self.http.get(self.url(&format!("/api/v2/public/webhooks/user/{id}"))).bearer_auth(token);
                (Op::GetUnknown, 404, self.send(request).await, None)
            }
        };
        self.stats.record(op, expected, &answer, wrong, started.elapsed());
    }

    async fn publish(&self, seq: u64, rng: &mut fastrand::Rng) -> (Op, u16, Answer, Option<String>) {
        let user = rng.usize(0..self.users.len());
        let event_type = pick_event_type(rng);
        let id = format!("s-{seq}");
        let expected = self.expected_deliveries(user, event_type);
        let request = self
            .http
            .post(self.url("/api/v2/internal/events"))
            .bearer_auth(&self.publish_token)
            .header("content-type", "application/json")
            .body(event_request(&id, &self.users[user].name, event_type));
        let answer = self.send(request).await;
        let (state, wrong) = match &answer {
            Ok((202, body)) => {
                let deliveries = parse(body).ok().and_then(|v| v["data"]["deliveries"].as_u64());
                let wrong = (deliveries != Some(expected as u64))
                    .then(|| format!("deliveries = {deliveries:?}, expected {expected}"));
                (Published::Accepted, wrong)
            }
            _ => (Published::Unsure, None),
        };
        self.events.lock().unwrap().push(Event { id, user, event_type, state });
        (Op::Publish, 202, answer, wrong)
    }

    /// `None` when the user's pool is full.
    async fn create(&self, seq: u64, rng: &mut fastrand::Rng) -> Option<(Op, u16, Answer, Option<String>)> {
        let c = rng.usize(0..self.churn.len());
        let user = &self.churn[c];
        let reserved = user
            .live
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.churn_pool).then_some(n + 1));
        if reserved.is_err() {
            return None;
        }
        let hook = ChurnHook {
            id: String::new(),
            url: format!("{}/{c}/{seq}", self.churn_url_base),
            events: pick_subscription(rng),
        };
        let mut body = serde_json::json!({"url": hook.url, "events": hook.events});
        if rng.bool() {
            body["secrets"] = serde_json::json!([secret(rng), secret(rng)]);
        }
        let request = self
            .http
            .post(self.url("/api/v2/public/webhooks/user"))
            .bearer_auth(&user.token)
            .header("content-type", "application/json")
            .body(body.to_string());
        let answer = self.send(request).await;
        let wrong = match &answer {
            Ok((201, text)) => match parse(text) {
                Ok(v) => match (v["data"]["id"].as_str(), differs(&v["data"], &hook)) {
                    (Some(id), None) => {
                        user.pool.lock().unwrap().push(ChurnHook { id: id.to_owned(), ..hook });
                        None
                    }
                    (None, _) => Some(format!("no id in {v}")),
                    (_, why) => why,
                },
                Err(why) => Some(why),
            },
            // No webhook was made (an answer without one); after a transport error it may
            // exist: the reservation stays.
            Ok(_) => {
                user.live.fetch_sub(1, Ordering::SeqCst);
                None
            }
            Err(_) => None,
        };
        Some((Op::Create, 201, answer, wrong))
    }

    /// Takes a random webhook of a random churn user out of its pool.
    fn checkout(&self, rng: &mut fastrand::Rng) -> Option<(usize, ChurnHook)> {
        let c = rng.usize(0..self.churn.len());
        let mut pool = self.churn[c].pool.lock().unwrap();
        if pool.is_empty() {
            return None;
        }
        let i = rng.usize(0..pool.len());
        Some((c, pool.swap_remove(i)))
    }

    fn give_back(&self, c: usize, hook: ChurnHook) {
        self.churn[c].pool.lock().unwrap().push(hook);
    }

    /// `None` when the pool is empty.
    async fn delete(&self, rng: &mut fastrand::Rng) -> Option<(Op, u16, Answer, Option<String>)> {
        let (c, hook) = self.checkout(rng)?;
        let user = &self.churn[c];
        let request = self
            .http
            .delete(self.url(&format!("/api/v2/public/webhooks/user/{}", hook.id)))
            .bearer_auth(&user.token);
        let answer = self.send(request).await;
        match &answer {
            // Gone (a 404 too, though none is expected).
            Ok((204 | 404, _)) => {
                user.live.fetch_sub(1, Ordering::SeqCst);
            }
            Ok(_) => self.give_back(c, hook),
            // It may or may not be gone: not used again, its reservation kept.
            Err(_) => {}
        }
        Some((Op::Delete, 204, answer, None))
    }

    async fn get(&self, rng: &mut fastrand::Rng) -> (Op, u16, Answer, Option<String>) {
        let Some((c, hook)) = self.checkout(rng) else {
            return self.list_churn_user(rng).await;
        };
        let request = self
            .http
            .get(self.url(&format!("/api/v2/public/webhooks/user/{}", hook.id)))
            .bearer_auth(&self.churn[c].token);
        let answer = self.send(request).await;
        let wrong = match &answer {
            Ok((200, text)) => parse(text).map_or_else(Some, |v| differs(&v["data"], &hook)),
            _ => None,
        };
        self.give_back(c, hook);
        (Op::Get, 200, answer, wrong)
    }

    async fn update(&self, seq: u64, rng: &mut fastrand::Rng) -> (Op, u16, Answer, Option<String>) {
        let Some((c, mut hook)) = self.checkout(rng) else {
            return self.list_churn_user(rng).await;
        };
        let old = hook.clone();
        hook.events = pick_subscription(rng);
        let mut body = serde_json::json!({"events": hook.events});
        if rng.bool() {
            hook.url = format!("{}/{c}/{seq}", self.churn_url_base);
            body["url"] = Value::from(hook.url.clone());
        }
        if rng.u8(0..4) == 0 {
            body["secrets"] = serde_json::json!([secret(rng)]);
        }
        let request = self
            .http
            .patch(self.url(&format!("/api/v2/public/webhooks/user/{}", hook.id)))
            .bearer_auth(&self.churn[c].token)
            .header("content-type", "application/json")
            .body(body.to_string());
        let answer = self.send(request).await;
        let wrong = match &answer {
            Ok((200, text)) => {
                let wrong = parse(text).map_or_else(Some, |v| differs(&v["data"], &hook));
                self.give_back(c, hook);
                wrong
            }
            Ok(_) => {
                self.give_back(c, old);
                None
            }
            // Updated or not: not used again.
            Err(_) => None,
        };
        (Op::Update, 200, answer, wrong)
    }

    async fn list_delivery_user(&self, rng: &mut fastrand::Rng) -> (Op, u16, Answer, Option<String>) {
        let user = rng.usize(0..self.users.len());
        let request =
            self.http.get(self.url("/api/v2/public/webhooks/user")).bearer_auth(&self.users[user].token);
        let answer = self.send(request).await;
        let expected = self.hooks_of(user).count();
        let wrong = match &answer {
            Ok((200, text)) => match parse(text) {
                Ok(v) => {
                    let listed = v["data"].as_array().map(Vec::len);
                    (listed != Some(expected))
                        .then(|| format!("{listed:?} webhooks listed, {expected} exist"))
                }
                Err(why) => Some(why),
            },
            _ => None,
        };
        (Op::ListDeliveryUser, 200, answer, wrong)
    }

    async fn list_churn_user(&self, rng: &mut fastrand::Rng) -> (Op, u16, Answer, Option<String>) {
        let c = rng.usize(0..self.churn.len());
        let request =
            self.http.get(self.url("/api/v2/public/webhooks/user")).bearer_auth(&self.churn[c].token);
        let answer = self.send(request).await;
        let cap = self.churn_pool;
        let wrong = match &answer {
            Ok((200, text)) => match parse(text) {
                Ok(v) => match v["data"].as_array().map(Vec::len) {
                    Some(n) if n <= cap => None,
                    listed => Some(format!("{listed:?} webhooks listed, at most {cap} exist")),
                },
                Err(why) => Some(why),
            },
            _ => None,
        };
        (Op::ListChurnUser, 200, answer, wrong)
    }

    /// One of three searches: by webhook, by event type from an offset (oldest first), or the
    /// largest page.
    async fn search_logs(&self, rng: &mut fastrand::Rng) -> (Op, u16, Answer, Option<String>) {
        let user = rng.usize(0..self.users.len());
        let hooks: Vec<&str> = self.hooks_of(user).map(|h| h.id.as_str()).collect();
        let (query, limit, field, value) = match rng.u8(0..3) {
            0 => {
                let id = hooks[rng.usize(0..hooks.len())];
                (format!("webhookId={id}&limit=20"), 20, "webhookId", Some(id.to_owned()))
            }
            1 => {
                let t = EVENT_TYPES[rng.usize(0..EVENT_TYPES.len())];
                let offset = rng.u32(0..200);
                (
                    format!("eventType={t}&limit=10&offset={offset}&sortDirection=ASC"),
                    10,
                    "eventType",
                    Some(t.to_owned()),
                )
            }
            _ => ("limit=100".to_owned(), 100, "", None),
        };
        let request = self
            .http
            .get(self.url(&format!("/api/v2/public/webhooks/logs?{query}")))
            .bearer_auth(&self.users[user].token);
        let answer = self.send(request).await;
        let wrong = match &answer {
            Ok((200, text)) => match parse(text) {
                Ok(v) => match v["data"].as_array() {
                    None => Some("no data array".into()),
                    Some(entries) if entries.len() > limit => {
                        Some(format!("{} entries, limit {limit}", entries.len()))
                    }
                    Some(entries) => value.and_then(|want| {
                        entries
                            .iter()
                            .find(|e| e[field].as_str() != Some(want.as_str()))
                            .map(|e| format!("an entry with {field} {}, filtered on {want}", e[field]))
                    }),
                },
                Err(why) => Some(why),
            },
            _ => None,
        };
        (Op::SearchLogs, 200, answer, wrong)
    }
}

fn secret(rng: &mut fastrand::Rng) -> String {
    std::iter::repeat_with(|| rng.alphanumeric()).take(32).collect()
}
