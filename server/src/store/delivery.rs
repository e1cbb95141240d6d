//! Events, deliveries and attempts: what `publishEvent`, the worker and the log need.

use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::sqlite::{now_ms, Store};
use super::StoreError;

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

impl Store {
    /// Records the event and one delivery per matching webhook, in one transaction.
    pub async fn publish(&self, event: NewEvent) -> Result<PublishedEvent, StoreError> {
        let id = event.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // The insert comes first so the transaction holds the write lock from its first statement.
        let inserted = sqlx::query(
            "INSERT INTO events (id, event_type, user_id, body, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(&event.event_type)
        .bind(&event.user_id)
        .bind(event_body(&event.event_type, &event.data))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let row = sqlx::query(
                "SELECT e.event_type, (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id) AS n
                   FROM events e WHERE e.id = ?",
            )
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(PublishedEvent {
                id,
                event_type: row.try_get("event_type")?,
                deliveries: row.try_get("n")?,
                duplicate: true,
            });
        }
        let webhooks = sqlx::query(
            "SELECT id, client_id, url FROM webhooks
              WHERE user_id = ? AND (events LIKE '%\"all\"%' OR events LIKE ?) ORDER BY seq",
        )
        .bind(&event.user_id)
        .bind(format!("%\"{}\"%", event.event_type))
        .fetch_all(&mut *tx)
        .await?;
        for webhook in &webhooks {
            sqlx::query(
                "INSERT INTO deliveries (id, event_id, webhook_id, client_id, user_id, url, status, next_attempt_at, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&id)
            .bind(webhook.try_get::<String, _>("id")?)
            .bind(webhook.try_get::<String, _>("client_id")?)
            .bind(&event.user_id)
            .bind(webhook.try_get::<String, _>("url")?)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(PublishedEvent {
            id,
            event_type: event.event_type,
            deliveries: webhooks.len() as i64,
            duplicate: false,
        })
    }

    /// Claims up to `limit` due deliveries for `lease_ms`; a crashed worker's claims expire.
    pub async fn claim_due(&self, limit: i64, lease_ms: i64) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let now = now_ms();
        let token = uuid::Uuid::new_v4().to_string();
        let claimed = sqlx::query(
            "UPDATE deliveries SET lease_until = ?, lease_token = ?
              WHERE seq IN (SELECT seq FROM deliveries
                             WHERE status = 'pending' AND next_attempt_at <= ?
                               AND (lease_until IS NULL OR lease_until <= ?)
                             ORDER BY next_attempt_at, seq LIMIT ?)",
        )
        .bind(now + lease_ms)
        .bind(&token)
        .bind(now)
        .bind(now)
        .bind(limit)
        .execute(self.pool())
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT d.id, d.event_id, d.attempts, d.url AS fallback_url, e.body, w.id AS webhook, w.url, w.secrets
               FROM deliveries d
               JOIN events e ON e.id = d.event_id
               LEFT JOIN webhooks w ON w.id = d.webhook_id
              WHERE d.lease_token = ?
              ORDER BY d.next_attempt_at, d.seq",
        )
        .bind(&token)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let webhook: Option<String> = row.try_get("webhook")?;
                let target = match webhook {
                    None => None,
                    Some(webhook_id) => {
                        let sealed: Vec<u8> = row.try_get("secrets")?;
                        Some(Target {
                            url: row.try_get("url")?,
                            secrets: self.open_secrets(&webhook_id, &sealed)?,
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
            })
            .collect()
    }

    /// Records attempts and their consequences, all in one transaction (one sync for a batch).
    pub async fn record(&self, outcomes: &[AttemptOutcome]) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for o in outcomes {
            sqlx::query(
                "INSERT INTO attempts (delivery_id, attempt, url, status_code, response_body, duration_ms, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id, attempt) DO NOTHING",
            )
            .bind(&o.delivery_id)
            .bind(o.attempt)
            .bind(&o.url)
            .bind(o.status_code.map(i64::from))
            .bind(&o.response_body)
            .bind(o.duration_ms)
            .bind(o.at_ms)
            .execute(&mut *tx)
            .await?;
            let (status, next) = match (o.success, o.retry_at_ms) {
                (true, _) => ("success", o.at_ms),
                (false, Some(at)) => ("pending", at),
                (false, None) => ("failure", o.at_ms),
            };
            sqlx::query(
                "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, lease_until = NULL, lease_token = NULL
                  WHERE id = ? AND status = 'pending'",
            )
            .bind(status)
            .bind(o.attempt + 1)
            .bind(next)
            .bind(&o.delivery_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many deliveries are due now (the backlog).
    pub async fn due_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?",
        )
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn search_logs(&self, q: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT d.id, d.webhook_id, d.event_id, e.event_type, e.body, d.url, d.status, d.created_at
               FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.client_id = ",
        );
        sql.push_bind(&q.client_id)
            .push(" AND d.user_id = ")
            .push_bind(&q.user_id);
        if let Some(t) = &q.event_type {
            sql.push(" AND e.event_type = ").push_bind(t);
        }
        if let Some(start) = q.start_ms {
            sql.push(" AND d.created_at >= ").push_bind(start);
        }
        if let Some(end) = q.end_ms {
            sql.push(" AND d.created_at < ").push_bind(end);
        }
        if let Some(w) = &q.webhook_id {
            sql.push(" AND d.webhook_id = ").push_bind(w);
        }
        let order = if q.ascending { "ASC" } else { "DESC" };
        sql.push(format!(" ORDER BY d.created_at {order}, d.seq {order} LIMIT "))
            .push_bind(q.limit)
            .push(" OFFSET ")
            .push_bind(q.offset);
        let rows = sql.build().fetch_all(self.pool()).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            let body: Vec<u8> = row.try_get("body")?;
            entries.push(LogEntry {
                id: row.try_get("id")?,
                webhook_id: row.try_get("webhook_id")?,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                request_payload: serde_json::from_slice(&body).unwrap_or(Value::Null),
                url: row.try_get("url")?,
                status: row.try_get("status")?,
                created_at_ms: row.try_get("created_at")?,
                attempts: Vec::new(),
            });
        }
        if entries.is_empty() {
            return Ok(entries);
        }
        let mut sql: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT delivery_id, attempt, url, status_code, response_body, created_at FROM attempts WHERE delivery_id IN (",
        );
        let mut ids = sql.separated(", ");
        for e in &entries {
            ids.push_bind(&e.id);
        }
        sql.push(") ORDER BY delivery_id, attempt");
        for row in sql.build().fetch_all(self.pool()).await? {
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
        Ok(entries)
    }

    /// Drops finished deliveries (and their attempts and events) older than `before_ms`.
    pub async fn purge(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM attempts WHERE delivery_id IN
               (SELECT id FROM deliveries WHERE created_at < ? AND status <> 'pending')",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM deliveries WHERE created_at < ? AND status <> 'pending'")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "DELETE FROM events WHERE created_at < ?
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone)
    }
}
