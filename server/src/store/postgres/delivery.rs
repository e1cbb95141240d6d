//! Events, deliveries and attempts on PostgreSQL, shared by every replica.
//!
//! - Publication: the event insert is `ON CONFLICT (publisher, public_id) DO NOTHING` in the
//!   statement that also inserts the deliveries. A concurrent publication of the same id by the
//!   same publisher (through another replica)
//!   waits on the unique index until the first commits, inserts nothing, and reports the stored
//!   event: one fan-out per id, whatever the number of replicas.
//! - Claims: one statement locks due, unleased rows with `FOR UPDATE SKIP LOCKED` (workers never
//!   wait for each other nor take the same row) and leases them; a dead replica's leases expire
//!   and its deliveries are claimed again.

use sqlx::{Postgres, Row};

use super::PgStore;
use crate::store::delivery::{claimed_delivery, state_changes};
use crate::store::sql::Sql;
use crate::store::{
    event_body, now_ms, AttemptOutcome, ClaimedDelivery, DeliveryStore, LogEntry, LogQuery, NewEvent,
    PublishedEvent, StoreResult, WebhookKind,
};

/// The webhooks (`w`) an event fans out to, by audience, as the `FROM … WHERE` of the
/// deliveries' insert: `$3` is the event's user, `$6` the `LIKE` pattern of its type, `$9` its
/// facility. Two texts, not one with a parameter choosing: each gets a plan of its own.
fn audience(kind: WebhookKind) -> &'static str {
    match kind {
        // The user webhooks of the event's user (webhooks_user_kind).
        WebhookKind::User => {
            "FROM inserted i, webhooks w
             WHERE w.user_id = $3 AND w.kind = 'user'
               AND (w.events LIKE '%\"all\"%' OR w.events LIKE $6)"
        }
        // From the users who can access the facility (user_facilities_facility) to their
        // facility webhooks (webhooks_user_kind). No facility ($9 NULL) matches no access row.
        WebhookKind::Facility => {
            "FROM inserted i, user_facilities a
              JOIN webhooks w ON w.user_id = a.user_id AND w.kind = 'facility'
             WHERE a.facility_id = $9
               AND (w.events LIKE '%\"all\"%' OR w.events LIKE $6)
               AND (w.facilities IS NULL OR w.facilities::jsonb @> jsonb_build_array($9::text))"
        }
    }
}

impl DeliveryStore for PgStore {
    /// Records the event and one delivery per matching webhook in one statement (atomic on its
    /// own, and one round trip instead of four: BEGIN, two inserts, COMMIT).
    async fn publish(&self, event: NewEvent) -> StoreResult<PublishedEvent> {
        let key = uuid::Uuid::new_v4().to_string();
        let id = event.id.unwrap_or_else(|| key.clone());
        let body = event_body(&event.event_type, &event.data);
        let now = now_ms();
        // The deliveries select from `inserted`: a duplicate id inserts no event, so no deliveries.
        // A delivery belongs to its webhook's owner (`w.user_id`), so the owner's log finds it.
        let statement = format!(
            "WITH inserted AS (
                 INSERT INTO events (id, publisher, public_id, event_type, user_id, body, created_at, facility_id, audience)
                 VALUES ($7, $8, $1, $2, $3, $4, $5, $9, $10)
                 ON CONFLICT (publisher, public_id) DO NOTHING
                 RETURNING id),
             scheduled AS (
                 INSERT INTO deliveries (id, event_id, webhook_id, client_id, user_id, url, status, next_attempt_at, created_at)
                 SELECT gen_random_uuid()::text, i.id, w.id, w.client_id, w.user_id, w.url, 'pending', $5, $5
                   {}
                  ORDER BY w.seq
                 RETURNING 1)
             SELECT (SELECT COUNT(*) FROM inserted) AS inserted, (SELECT COUNT(*) FROM scheduled) AS scheduled",
            audience(event.audience)
        );
        let row = sqlx::query(&statement)
            .bind(&id)
            .bind(&event.event_type)
            .bind(&event.user_id)
            .bind(body)
            .bind(now)
            .bind(format!("%\"{}\"%", event.event_type))
            .bind(&key)
            .bind(&event.publisher)
            .bind(&event.facility_id)
            .bind(event.audience.as_str())
            .fetch_one(self.pool())
            .await?;
        if row.try_get::<i64, _>("inserted")? == 1 {
            return Ok(PublishedEvent {
                id,
                event_type: event.event_type,
                deliveries: row.try_get("scheduled")?,
                duplicate: false,
            });
        }
        // A duplicate id. The conflicting insert waited for the first publication to commit, so
        // this (read committed) sees its event and deliveries.
        let row = Sql::<Postgres>::published(&event.publisher, &id).build().fetch_one(self.pool()).await?;
        Ok(PublishedEvent {
            id,
            event_type: row.try_get("event_type")?,
            deliveries: row.try_get("n")?,
            duplicate: true,
        })
    }

    /// Claims up to `limit` due deliveries for `lease_ms`, skipping rows other workers hold.
    async fn claim_due(&self, limit: i64, lease_ms: i64) -> StoreResult<Vec<ClaimedDelivery>> {
        let now = now_ms();
        let token = uuid::Uuid::new_v4().to_string();
        let rows = sqlx::query(
            "WITH claimed AS (
                UPDATE deliveries SET lease_until = $1, lease_token = $2
                 WHERE seq IN (SELECT seq FROM deliveries
                                WHERE status = 'pending' AND next_attempt_at <= $3
                                  AND (lease_until IS NULL OR lease_until <= $3)
                                ORDER BY next_attempt_at, seq
                                LIMIT $4
                                  FOR UPDATE SKIP LOCKED)
             RETURNING seq, id, event_id, webhook_id, attempts, url, next_attempt_at)
             SELECT c.id, e.public_id AS event_id, c.attempts, c.url AS fallback_url, e.body, w.id AS webhook, w.url, w.secrets
               FROM claimed c
               JOIN events e ON e.id = c.event_id
               LEFT JOIN webhooks w ON w.id = c.webhook_id
              ORDER BY c.next_attempt_at, c.seq",
        )
        .bind(now + lease_ms)
        .bind(&token)
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| claimed_delivery(row, &self.secrets)).collect()
    }

    async fn defer(&self, ids: &[String], until_ms: i64) -> StoreResult<u64> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let done = Sql::<Postgres>::defer(&ids, until_ms).build().execute(self.pool()).await?;
        Ok(done.rows_affected())
    }

    /// Records attempts and their consequences in one transaction (two statements per batch).
    async fn record(&self, outcomes: &[AttemptOutcome]) -> StoreResult<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let changes = state_changes(outcomes);
        // Rows in a stable order, so two workers recording overlapping batches (a retaken
        // lease) lock them in the same order.
        let mut outcomes: Vec<&AttemptOutcome> = outcomes.iter().collect();
        outcomes.sort_by(|a, b| (&a.delivery_id, a.attempt).cmp(&(&b.delivery_id, b.attempt)));
        let column = |f: fn(&AttemptOutcome) -> String| outcomes.iter().map(|o| f(o)).collect::<Vec<_>>();
        let number = |f: fn(&AttemptOutcome) -> i64| outcomes.iter().map(|o| f(o)).collect::<Vec<_>>();
        let ids = column(|o| o.delivery_id.clone());
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO attempts (delivery_id, attempt, url, status_code, response_body, duration_ms, created_at)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[])
             ORDER BY 1, 2
             ON CONFLICT (delivery_id, attempt) DO NOTHING",
        )
        .bind(&ids)
        .bind(number(|o| o.attempt))
        .bind(column(|o| o.url.clone()))
        .bind(outcomes.iter().map(|o| o.status_code.map(i64::from)).collect::<Vec<_>>())
        .bind(column(|o| o.response_body.clone()))
        .bind(number(|o| o.duration_ms))
        .bind(number(|o| o.at_ms))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deliveries d
                SET status = u.status, attempts = u.attempts, next_attempt_at = u.next,
                    lease_until = NULL, lease_token = NULL
               FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(id, status, attempts, next)
              WHERE d.id = u.id AND d.status = 'pending'",
        )
        .bind(changes.iter().map(|c| c.delivery_id).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.status).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.attempts).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.next_attempt_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_count(&self) -> StoreResult<i64> {
        Sql::<Postgres>::fetch_due_count(self.pool()).await
    }

    async fn search_logs(&self, q: &LogQuery) -> StoreResult<Vec<LogEntry>> {
        Sql::<Postgres>::fetch_logs(self.pool(), q).await
    }

    async fn purge(&self, before_ms: i64) -> StoreResult<u64> {
        let [mut attempts, mut deliveries, mut events] = Sql::<Postgres>::purge(before_ms);
        let mut tx = self.pool().begin().await?;
        attempts.build().execute(&mut *tx).await?;
        let gone = deliveries.build().execute(&mut *tx).await?.rows_affected();
        events.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(gone)
    }
}
