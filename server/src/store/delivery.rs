//! Events, deliveries and attempts: what `publishEvent`, the worker and the log need (the
//! types both backends share; the SQL is in `sqlite/delivery.rs` and `postgres/delivery.rs`).

use serde_json::Value;

pub struct NewEvent {
    pub id: Option<String>,
    pub event_type: String,
    pub user_id: String,
    pub data: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedEvent {
    pub id: String,
    pub event_type: String,
    pub deliveries: i64,
    /// The id was published before: nothing new was scheduled.
    pub duplicate: bool,
}

/// A delivery claimed by a worker, with everything needed to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: String,
    pub event_id: String,
    pub body: Vec<u8>,
    /// Attempts made before this one.
    pub attempts: i64,
    /// `None` when the webhook was deleted since.
    pub target: Option<Target>,
    pub fallback_url: String,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub secrets: Vec<String>,
}

/// What one attempt gave.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub delivery_id: String,
    pub attempt: i64,
    pub url: String,
    pub status_code: Option<u16>,
    pub response_body: String,
    pub duration_ms: i64,
    pub at_ms: i64,
    pub success: bool,
    /// When to try again; `None` when this was the last try (or a success).
    pub retry_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct LogQuery {
    pub client_id: String,
    pub user_id: String,
    pub event_type: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub webhook_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub request_payload: Value,
    pub url: String,
    pub status: String,
    pub created_at_ms: i64,
    pub attempts: Vec<LoggedAttempt>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggedAttempt {
    pub attempt: i64,
    pub url: String,
    pub status_code: Option<i64>,
    pub response_body: String,
    pub created_at_ms: i64,
}

/// The bytes sent for an event: `{"data":…,"eventType":…}`, `data` first as documented.
pub fn event_body(event_type: &str, data: &serde_json::Map<String, Value>) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        data: &'a serde_json::Map<String, Value>,
        #[serde(rename = "eventType")]
        event_type: &'a str,
    }
    serde_json::to_vec(&Body { data, event_type }).unwrap_or_default()
}
