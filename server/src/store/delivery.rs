//! Events, deliveries and attempts: what `publishEvent`, the worker and the log need (the
//! types and row readers both backends share; the SQL is in `sql.rs` where the dialects agree,
//! in `sqlite/delivery.rs` and `postgres/delivery.rs` where they do not).

use std::collections::BTreeMap;

use serde_json::Value;

use super::WebhookKind;

pub struct NewEvent {
    /// Who publishes it (the publishing token's client): ids are unique per publisher.
    pub publisher: String,
    /// The publisher's idempotency key; `None`: a fresh one.
    pub id: Option<String>,
    pub event_type: String,
    /// The event's user; may be empty for facility events (nothing matches it then).
    pub user_id: String,
    pub data: serde_json::Map<String, Value>,
    /// The event's `data.facilityId` when it is a string, whatever the type: stored on the
    /// event for the log, and what a facility event fans out by.
    pub facility_id: Option<String>,
    /// Which webhooks it fans out to: the user webhooks of `user_id`, or the facility webhooks
    /// following `facility_id` (see [`DeliveryStore::publish`](super::DeliveryStore::publish)).
    pub audience: WebhookKind,
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

/// What a batch of outcomes does to one delivery.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StateChange<'a> {
    pub delivery_id: &'a str,
    /// `success`, `pending` (a retry is due at `next_attempt_at`) or `failure`.
    pub status: &'static str,
    pub attempts: i64,
    pub next_attempt_at: i64,
}

/// One change per delivery, from its latest attempt in the batch (the first of equals: a
/// retaken lease recording the same attempt twice); the earlier ones were retries, which that
/// one would overwrite anyway. In delivery id order, so two workers recording overlapping
/// batches lock rows in the same order.
pub(super) fn state_changes(outcomes: &[AttemptOutcome]) -> Vec<StateChange<'_>> {
    let mut latest: BTreeMap<&str, &AttemptOutcome> = BTreeMap::new();
    for o in outcomes {
        let slot = latest.entry(o.delivery_id.as_str()).or_insert(o);
        if o.attempt > slot.attempt {
            *slot = o;
        }
    }
    latest
        .into_values()
        .map(|o| {
            let (status, next_attempt_at) = match (o.success, o.retry_at_ms) {
                (true, _) => ("success", o.at_ms),
                (false, Some(at)) => ("pending", at),
                (false, None) => ("failure", o.at_ms),
            };
            StateChange { delivery_id: &o.delivery_id, status, attempts: o.attempt + 1, next_attempt_at }
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct LogQuery {
    pub client_id: String,
    pub user_id: String,
    pub event_type: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub webhook_id: Option<String>,
    /// Empty: any; otherwise entries whose event's facility is one of these.
    pub facility_ids: Vec<String>,
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
    /// The event's facility (its `data.facilityId`, when that was a string).
    pub facility_id: Option<String>,
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

/// An event's facility: its `data.facilityId` when that is a string (what
/// [`NewEvent::facility_id`] holds).
pub fn facility_of(data: &serde_json::Map<String, Value>) -> Option<String> {
    data.get("facilityId").and_then(Value::as_str).map(str::to_owned)
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

/// A row of the log's `SELECT` (`Sql::log`), attempts still to be added.
pub(super) fn log_entry<'r, R>(row: &'r R) -> Result<LogEntry, sqlx::Error>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let body: Vec<u8> = row.try_get("body")?;
    Ok(LogEntry {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        facility_id: row.try_get("facility_id")?,
        request_payload: serde_json::from_slice(&body).unwrap_or(Value::Null),
        url: row.try_get("url")?,
        status: row.try_get("status")?,
        created_at_ms: row.try_get("created_at")?,
        attempts: Vec::new(),
    })
}

/// Adds rows of `SELECT delivery_id, attempt, url, status_code, response_body, created_at FROM
/// attempts …` to their entries.
pub(super) fn add_attempts<'r, R>(entries: &mut [LogEntry], rows: &'r [R]) -> Result<(), sqlx::Error>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    for row in rows {
        let delivery: String = row.try_get("delivery_id")?;
        if let Some(entry) = entries.iter_mut().find(|e| e.id == delivery) {
            entry.attempts.push(LoggedAttempt {
                attempt: row.try_get("attempt")?,
                url: row.try_get("url")?,
                status_code: row.try_get("status_code")?,
                response_body: row.try_get("response_body")?,
                created_at_ms: row.try_get("created_at")?,
            });
        }
    }
    Ok(())
}

/// A claimed delivery from a row with `id, event_id` (the event's public id), `attempts,
/// fallback_url, body` and the
/// webhook's `webhook, url, secrets` (NULL when the webhook was deleted since).
pub(super) fn claimed_delivery<'r, R>(
    row: &'r R,
    secrets: &crate::crypto::SecretBox,
) -> Result<ClaimedDelivery, super::StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let webhook: Option<String> = row.try_get("webhook")?;
    let target = match webhook {
        None => None,
        Some(webhook_id) => {
            let sealed: Vec<u8> = row.try_get("secrets")?;
            Some(Target {
                url: row.try_get("url")?,
                secrets: super::open_secrets(secrets, &webhook_id, &sealed)?,
            })
        }
    };
    Ok(ClaimedDelivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        body: row.try_get("body")?,
        attempts: row.try_get("attempts")?,
        fallback_url: row.try_get("fallback_url")?,
        target,
    })
}
