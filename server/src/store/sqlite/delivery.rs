//! Events, deliveries and attempts on SQLite: every write goes through the group-commit writer.

use sqlx::{Row, Sqlite};

use super::SqliteStore;
use crate::store::delivery::{claimed_delivery, state_changes};
use crate::store::sql::Sql;
use crate::store::{
    event_body, now_ms, AttemptOutcome, ClaimedDelivery, DeliveryStore, LogEntry, LogQuery, NewEvent,
    PublishedEvent, StoreResult,
};

impl DeliveryStore for SqliteStore {
    /// Records the event and one delivery per matching webhook (one statement, see below), then
    /// reads back what the event fanned out to.
    async fn publish(&self, event: NewEvent) -> StoreResult<PublishedEvent> {
        let key = uuid::Uuid::new_v4().to_string();
        let id = event.id.unwrap_or_else(|| key.clone());
        let body = event_body(&event.event_type, &event.data);
        let (public_id, user_id, event_type) = (id.clone(), event.user_id, event.event_type);
        let (publisher, facility_id, audience) =
            (event.publisher, event.facility_id, event.audience.as_str());
        let reread_publisher = publisher.clone();
        // One statement on the writer: the `events_fan_out_*` triggers (migration 0006) insert
        // the deliveries in the same statement, so the event never exists without them.
        let inserted = self
            .writer()
            .write_statement(move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query(
                        "INSERT INTO events (id, publisher, public_id, event_type, user_id, body, created_at, facility_id, audience)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (publisher, public_id) DO NOTHING",
                    )
                    .bind(&key)
                    .bind(&publisher)
                    .bind(&public_id)
                    .bind(&event_type)
                    .bind(&user_id)
                    .bind(body)
                    .bind(now_ms())
                    .bind(&facility_id)
                    .bind(audience)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected())
                })
            })
            .await?;
        // Committed: a reader sees the event and its deliveries (the stored type answers a
        // repeated id, which may have been published with another one).
        let row = Sql::<Sqlite>::published(&reread_publisher, &id).build().fetch_one(self.pool()).await?;
        Ok(PublishedEvent {
            id,
            event_type: row.try_get("event_type")?,
            deliveries: row.try_get("n")?,
            duplicate: inserted == 0,
        })
    }

    /// Claims up to `limit` due deliveries for `lease_ms`; a crashed worker's claims expire.
    async fn claim_due(&self, limit: i64, lease_ms: i64) -> StoreResult<Vec<ClaimedDelivery>> {
        let now = now_ms();
        let token = uuid::Uuid::new_v4().to_string();
        let lease_token = token.clone();
        let claimed = self
            .writer()
            .write_statement(move |conn| {
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
            "SELECT d.id, e.public_id AS event_id, d.attempts, d.url AS fallback_url, e.body, w.id AS webhook, w.url, w.secrets
               FROM deliveries d
               JOIN events e ON e.id = d.event_id
               LEFT JOIN webhooks w ON w.id = d.webhook_id
              WHERE d.lease_token = ?
              ORDER BY d.next_attempt_at, d.seq",
        )
        .bind(&token)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| claimed_delivery(row, self.secrets())).collect()
    }

    /// Gives claimed deliveries back (one statement, the ids as JSON).
    async fn defer(&self, ids: &[String], until_ms: i64) -> StoreResult<u64> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.execute(Sql::<Sqlite>::defer(&ids, until_ms)).await
    }

    /// Records attempts and their consequences, all in one transaction (one sync for a batch)
    /// and two statements, whatever the batch's size: the batch goes in as JSON
    /// (`json_each`), so the writer's thread hand-overs do not grow with it.
    async fn record(&self, outcomes: &[AttemptOutcome]) -> StoreResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let attempts = serde_json::Value::from_iter(outcomes.iter().map(|o| {
            serde_json::json!([
                o.delivery_id,
                o.attempt,
                o.url,
                o.status_code,
                o.response_body,
                o.duration_ms,
                o.at_ms
            ])
        }))
        .to_string();
        let changes = serde_json::Value::from_iter(
            state_changes(outcomes)
                .iter()
                .map(|c| serde_json::json!([c.delivery_id, c.status, c.attempts, c.next_attempt_at])),
        )
        .to_string();
        self.writer()
            .write(move |conn| {
                Box::pin(async move {
                    // WHERE true: SQLite's upsert after INSERT … SELECT needs a WHERE to parse.
                    sqlx::query(
                        "INSERT INTO attempts (delivery_id, attempt, url, status_code, response_body, duration_ms, created_at)
                         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6
                           FROM json_each(?) WHERE true
                         ON CONFLICT (delivery_id, attempt) DO NOTHING",
                    )
                    .bind(attempts)
                    .execute(&mut *conn)
                    .await?;
                    // `+status`: keeps the planner off the status index, which, with a backlog,
                    // made it scan every pending delivery once per batch (json_each outside,
                    // the id index inside is one lookup per outcome).
                    sqlx::query(
                        "UPDATE deliveries
                            SET status = o.status, attempts = o.attempts, next_attempt_at = o.next,
                                lease_until = NULL, lease_token = NULL
                           FROM (SELECT value ->> 0 AS id, value ->> 1 AS status, value ->> 2 AS attempts,
                                        value ->> 3 AS next
                                   FROM json_each(?)) AS o
                          WHERE deliveries.id = o.id AND +deliveries.status = 'pending'",
                    )
                    .bind(changes)
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn due_count(&self) -> StoreResult<i64> {
        Sql::<Sqlite>::fetch_due_count(self.pool()).await
    }

    async fn search_logs(&self, q: &LogQuery) -> StoreResult<Vec<LogEntry>> {
        Sql::<Sqlite>::fetch_logs(self.pool(), q).await
    }

    async fn purge(&self, before_ms: i64) -> StoreResult<u64> {
        let [mut attempts, mut deliveries, mut events] = Sql::<Sqlite>::purge(before_ms);
        self.writer()
            .write(move |conn| {
                Box::pin(async move {
                    attempts.build().execute(&mut *conn).await?;
                    let gone = deliveries.build().execute(&mut *conn).await?.rows_affected();
                    events.build().execute(&mut *conn).await?;
                    Ok(gone)
                })
            })
            .await
    }
}
