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
        let body = event_body(&event.event_type, &event.data);
        self.writer().write(move |conn| Box::pin(async move {
        let now = now_ms();
        // The insert comes first so the transaction holds the write lock from its first statement.
        let inserted = sqlx::query(
            "INSERT INTO events (id, event_type, user_id, body, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(&event.event_type)
        .bind(&event.user_id)
        .bind(body)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 0 {
            let row = sqlx::query(
                "SELECT e.event_type, (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id) AS n
                   FROM events e WHERE e.id = ?",
            )
            .bind(&id)
            .fetch_one(&mut *conn)
            .await?;
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
        .fetch_all(&mut *conn)
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
            .execute(&mut *conn)
            .await?;
        }
        Ok(PublishedEvent {
            id,
            event_type: event.event_type,
            deliveries: webhooks.len() as i64,
            duplicate: false,
        })
        })).await
    }

    /// Claims up to `limit` due deliveries for `lease_ms`; a crashed worker's claims expire.
    pub async fn claim_due(&self, limit: i64, lease_ms: i64) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let now = now_ms();
        let token = uuid::Uuid::new_v4().to_string();
        let lease_token = token.clone();
        let claimed = self
            .writer()
            .write(move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query(
                        "UPDATE deliveries SET lease_until = ?, lease_token = ?
              WHERE seq IN (SELECT seq FROM deliveries
                             WHERE status = 'pending' AND next_attempt_at <= ?
                               AND (lease_until IS NULL OR lease_until <= ?)
                             ORDER BY next_attempt_at, seq LIMIT ?)",
                    )
                    .bind(now + lease_ms)
                    .bind(&lease_token)
                    .bind(now)
                    .bind(now)
                    .bind(limit)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected())
                })
            })
            .await?;
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
        let outcomes = outcomes.to_vec();
        self.writer().write(move |conn| Box::pin(async move {
        for o in &outcomes {
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
            .execute(&mut *conn)
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
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
        })).await
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
        sql.push_bind(&q.client_id).push(" AND d.user_id = ").push_bind(&q.user_id);
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
        self.writer()
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "DELETE FROM attempts WHERE delivery_id IN
               (SELECT id FROM deliveries WHERE created_at < ? AND status <> 'pending')",
                    )
                    .bind(before_ms)
                    .execute(&mut *conn)
                    .await?;
                    let gone =
                        sqlx::query("DELETE FROM deliveries WHERE created_at < ? AND status <> 'pending'")
                            .bind(before_ms)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                    sqlx::query(
                        "DELETE FROM events WHERE created_at < ?
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)",
                    )
                    .bind(before_ms)
                    .execute(&mut *conn)
                    .await?;
                    Ok(gone)
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretBox;
    use crate::store::{NewWebhook, Owner};

    async fn store(dir: &std::path::Path) -> Store {
        Store::connect(&dir.join("t.db").display().to_string(), SecretBox::new(&[3; 32]).unwrap())
            .await
            .unwrap()
    }

    async fn webhook(store: &Store, client: &str, user: &str, events: &[&str]) -> String {
        let owner = Owner { client_id: client.into(), user_id: user.into() };
        let new = NewWebhook {
            url: format!("https://{client}.example/hook"),
            events: events.iter().map(|e| e.to_string()).collect(),
            secrets: vec!["s".into()],
        };
        store.create(&owner, new).await.unwrap().id
    }

    fn event(id: Option<&str>, event_type: &str, user: &str) -> NewEvent {
        let mut data = serde_json::Map::new();
        data.insert("facilityId".into(), "NUR-1".into());
        NewEvent { id: id.map(str::to_owned), event_type: event_type.into(), user_id: user.into(), data }
    }

    fn outcome(d: &ClaimedDelivery, success: bool, retry_at_ms: Option<i64>) -> AttemptOutcome {
        AttemptOutcome {
            delivery_id: d.id.clone(),
            attempt: d.attempts,
            url: d.fallback_url.clone(),
            status_code: Some(if success { 200 } else { 500 }),
            response_body: String::new(),
            duration_ms: 1,
            at_ms: now_ms(),
            success,
            retry_at_ms,
        }
    }

    #[tokio::test]
    async fn fan_out_reaches_matching_webhooks_of_the_user_only_and_ids_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        webhook(&store, "c1", "u1", &["all"]).await;
        webhook(&store, "c2", "u1", &["facility.creation.accepted"]).await;
        webhook(&store, "c1", "u1", &["facility.creation.rejected"]).await;
        webhook(&store, "c1", "u2", &["all"]).await;

        let first = store.publish(event(Some("e-1"), "facility.creation.accepted", "u1")).await.unwrap();
        assert_eq!((first.deliveries, first.duplicate), (2, false));
        let again = store.publish(event(Some("e-1"), "facility.creation.accepted", "u1")).await.unwrap();
        assert_eq!((again.id.as_str(), again.deliveries, again.duplicate), ("e-1", 2, true));

        let claimed = store.claim_due(100, 60_000).await.unwrap();
        let mut targets: Vec<_> = claimed.iter().map(|d| d.fallback_url.clone()).collect();
        targets.sort();
        assert_eq!(targets, ["https://c1.example/hook", "https://c2.example/hook"]);
        assert!(claimed.iter().all(|d| d.event_id == "e-1" && d.attempts == 0));
        assert_eq!(
            claimed[0].body,
            br#"{"data":{"facilityId":"NUR-1"},"eventType":"facility.creation.accepted"}"#
        );
    }

    #[tokio::test]
    async fn claims_exclude_each_other_until_the_lease_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        webhook(&store, "c1", "u1", &["all"]).await;
        store.publish(event(None, "facility.creation.accepted", "u1")).await.unwrap();
        let first = store.claim_due(10, 50).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(store.claim_due(10, 50).await.unwrap().is_empty(), "claimed twice while leased");
        tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        let retaken = store.claim_due(10, 60_000).await.unwrap();
        assert_eq!(
            retaken.iter().map(|d| &d.id).collect::<Vec<_>>(),
            [&first[0].id],
            "an expired claim is retaken"
        );
    }

    #[tokio::test]
    async fn failures_retry_on_schedule_then_give_up_and_success_stops_retries() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        webhook(&store, "c1", "u1", &["all"]).await;
        store.publish(event(None, "facility.creation.accepted", "u1")).await.unwrap();

        let d = store.claim_due(10, 60_000).await.unwrap().remove(0);
        store.record(&[outcome(&d, false, Some(now_ms() + 60_000))]).await.unwrap();
        assert!(store.claim_due(10, 60_000).await.unwrap().is_empty(), "retried before its time");
        assert_eq!(store.due_count().await.unwrap(), 0);

        // Due again now: a second failure with no retry left ends it.
        sqlx::query("UPDATE deliveries SET next_attempt_at = 0").execute(store.pool()).await.unwrap();
        let d = store.claim_due(10, 60_000).await.unwrap().remove(0);
        assert_eq!(d.attempts, 1);
        store.record(&[outcome(&d, false, None)]).await.unwrap();
        sqlx::query("UPDATE deliveries SET next_attempt_at = 0").execute(store.pool()).await.unwrap();
        assert!(store.claim_due(10, 60_000).await.unwrap().is_empty(), "a failed delivery came back");

        let q = LogQuery {
            client_id: "c1".into(),
            user_id: "u1".into(),
            event_type: None,
            start_ms: None,
            end_ms: None,
            webhook_id: None,
            limit: 10,
            offset: 0,
            ascending: false,
        };
        let log = store.search_logs(&q).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].status, "failure");
        assert_eq!(log[0].attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [0, 1]);
        assert!(store
            .search_logs(&LogQuery { client_id: "c2".into(), ..q.clone() })
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn purge_drops_finished_entries_older_than_the_cutoff_and_keeps_pending_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        webhook(&store, "c1", "u1", &["all"]).await;
        store.publish(event(Some("old"), "facility.creation.accepted", "u1")).await.unwrap();
        store.publish(event(Some("pending"), "facility.creation.accepted", "u1")).await.unwrap();
        let claimed = store.claim_due(10, 60_000).await.unwrap();
        let old = claimed.iter().find(|d| d.event_id == "old").unwrap();
        store.record(&[outcome(old, true, None)]).await.unwrap();
        let fifteen_days_ms = 15 * 24 * 3600 * 1000;
        sqlx::query("UPDATE deliveries SET created_at = created_at - ?")
            .bind(fifteen_days_ms)
            .execute(store.pool())
            .await
            .unwrap();
        sqlx::query("UPDATE events SET created_at = created_at - ?")
            .bind(fifteen_days_ms)
            .execute(store.pool())
            .await
            .unwrap();

        assert_eq!(store.purge(now_ms() - 14 * 24 * 3600 * 1000).await.unwrap(), 1);
        let left: Vec<String> =
            sqlx::query_scalar("SELECT event_id FROM deliveries").fetch_all(store.pool()).await.unwrap();
        assert_eq!(left, ["pending"]);
        let events: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(store.pool()).await.unwrap();
        assert_eq!(events, 1);
    }
}
