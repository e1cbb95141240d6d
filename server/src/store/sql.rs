//! The statements whose text both dialects accept, written once. Placeholders are
//! [`QueryBuilder`]'s (`?` on SQLite, `$n` on PostgreSQL); the little that differs inside a
//! shared statement is the [`Dialect`]'s. What differs in substance (SQLite's group-commit
//! writer and fan-out trigger, PostgreSQL's fan-out CTE and `SKIP LOCKED` claim, `json_each`
//! against `UNNEST`) stays in the backend's own files.
//!
//! Each builder clones what it binds, so the statement can outlive its inputs (SQLite runs
//! it later, on the writer's task).

use std::future::Future;
use std::marker::PhantomData;

use sqlx::{ColumnIndex, Database, Decode, Encode, Pool, Postgres, QueryBuilder, Row, Sqlite, Type};

use super::delivery::{add_attempts, log_entry};
use super::{
    new_webhook, normalized, now_ms, read_webhook, seal, to_json, LogEntry, LogQuery, NewWebhook, Owner,
    StoreResult, Webhook, WebhookKind, WebhookUpdate, COLUMNS,
};
use crate::crypto::SecretBox;

/// What the two dialects spell differently inside otherwise shared statements, and how a
/// built statement runs on a backend's pool of readers.
pub(super) trait Dialect: Database {
    /// `column` is one of `ids`, with the ids as one parameter whatever their number: a
    /// statement's text (and its plan, in the statement cache) does not grow with the batch.
    fn push_any<'q>(sql: &mut QueryBuilder<'q, Self>, column: &str, ids: &[&str]);

    /// Put before a column so the planner does not pick that column's index.
    const NO_INDEX: &'static str;

    /// A `FROM` item `given(value, position)`: `values` in order, `position` increasing with
    /// it, all as one parameter (as [`push_any`](Self::push_any)).
    fn push_ordered<'q>(sql: &mut QueryBuilder<'q, Self>, values: &[String]);

    // Running a builder is spelled per backend: generically, its arguments' lifetime would be
    // tied to the borrow of the builder itself (sqlx's `IntoArguments<'q>`), which no caller
    // can satisfy; for the concrete types it is a plain borrow.

    fn fetch_all<'a>(
        pool: &'a Pool<Self>,
        sql: QueryBuilder<'a, Self>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;

    fn fetch_optional<'a>(
        pool: &'a Pool<Self>,
        sql: QueryBuilder<'a, Self>,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'a;
}

/// The same for both, where the types are concrete.
macro_rules! run_on_pool {
    () => {
        fn fetch_all<'a>(
            pool: &'a Pool<Self>,
            mut sql: QueryBuilder<'a, Self>,
        ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a {
            async move { sql.build().fetch_all(pool).await }
        }

        fn fetch_optional<'a>(
            pool: &'a Pool<Self>,
            mut sql: QueryBuilder<'a, Self>,
        ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'a {
            async move { sql.build().fetch_optional(pool).await }
        }
    };
}

impl Dialect for Sqlite {
    fn push_any<'q>(sql: &mut QueryBuilder<'q, Self>, column: &str, ids: &[&str]) {
        sql.push(column)
            .push(" IN (SELECT value FROM json_each(")
            .push_bind(serde_json::Value::from(ids).to_string())
            .push("))");
    }

    /// Unary `+`: with a backlog, the status index made SQLite scan every pending delivery
    /// where the id index is one lookup per id.
    const NO_INDEX: &'static str = "+";

    fn push_ordered<'q>(sql: &mut QueryBuilder<'q, Self>, values: &[String]) {
        sql.push("(SELECT value, key AS position FROM json_each(")
            .push_bind(to_json(values))
            .push(")) AS given");
    }

    run_on_pool!();
}

impl Dialect for Postgres {
    fn push_any<'q>(sql: &mut QueryBuilder<'q, Self>, column: &str, ids: &[&str]) {
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        sql.push(column).push(" = ANY(").push_bind(ids).push(")");
    }

    /// PostgreSQL's planner picks the id index by itself (and has no unary `+` for text).
    const NO_INDEX: &'static str = "";

    fn push_ordered<'q>(sql: &mut QueryBuilder<'q, Self>, values: &[String]) {
        sql.push("UNNEST(")
            .push_bind(values.to_vec())
            .push("::text[]) WITH ORDINALITY AS given(value, position)");
    }

    run_on_pool!();
}

/// The shared statements of dialect `DB`, e.g. `Sql::<Sqlite>::get(owner, id)`.
pub(super) struct Sql<DB>(PhantomData<DB>);

impl<DB> Sql<DB>
where
    DB: Dialect,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
    &'static str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB>,
    for<'r> Vec<u8>: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> Option<i64>: Decode<'r, DB>,
    for<'r> Option<String>: Decode<'r, DB>,
{
    /// `WHERE` the row is webhook `id` of `owner` and `kind`.
    fn owned<'q>(sql: &mut QueryBuilder<'q, DB>, owner: &Owner, kind: WebhookKind, id: &str) {
        sql.push(" WHERE id = ")
            .push_bind(id.to_owned())
            .push(" AND client_id = ")
            .push_bind(owner.client_id.clone())
            .push(" AND user_id = ")
            .push_bind(owner.user_id.clone())
            .push(" AND kind = ")
            .push_bind(kind.as_str().to_owned());
    }

    /// A new webhook of `owner` (its secrets sealed with `secrets`) and the statement that
    /// inserts it unless the owner already has `limit` webhooks of its kind (then no row is
    /// affected).
    /// The count stops at the limit: an owner above a since-lowered limit costs no more than
    /// one at it. Atomic only on a writer the backend makes exclusive per owner.
    pub fn create<'q>(
        secrets: &SecretBox,
        owner: &Owner,
        new: NewWebhook,
        limit: u32,
    ) -> StoreResult<(Webhook, QueryBuilder<'q, DB>)> {
        let webhook = new_webhook(owner, new);
        let sealed = seal(secrets, &webhook.id, &webhook.secrets)?;
        let now = now_ms();
        let mut sql = QueryBuilder::new(
            "INSERT INTO webhooks (id, client_id, user_id, url, events, secrets, kind, facilities, created_at, updated_at) SELECT ",
        );
        sql.separated(", ")
            .push_bind(webhook.id.clone())
            .push_bind(webhook.client_id.clone())
            .push_bind(webhook.user_id.clone())
            .push_bind(webhook.url.clone())
            .push_bind(to_json(&webhook.events))
            .push_bind(sealed)
            .push_bind(webhook.kind.as_str().to_owned())
            .push_bind(webhook.facilities.as_deref().map(to_json))
            .push_bind(now)
            .push_bind(now);
        sql.push(" WHERE (SELECT COUNT(*) FROM (SELECT 1 FROM webhooks WHERE client_id = ")
            .push_bind(webhook.client_id.clone())
            .push(" AND user_id = ")
            .push_bind(webhook.user_id.clone())
            .push(" AND kind = ")
            .push_bind(webhook.kind.as_str().to_owned())
            .push(" LIMIT ")
            .push_bind(i64::from(limit))
            .push(") AS owned) < ")
            .push_bind(i64::from(limit));
        Ok((webhook, sql))
    }

    /// The owner's webhooks of `kind` as rows of [`COLUMNS`], in creation order.
    pub fn list<'q>(owner: &Owner, kind: WebhookKind) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM webhooks WHERE client_id = "));
        sql.push_bind(owner.client_id.clone())
            .push(" AND user_id = ")
            .push_bind(owner.user_id.clone())
            .push(" AND kind = ")
            .push_bind(kind.as_str().to_owned())
            .push(" ORDER BY seq");
        sql
    }

    /// Webhook `id` of `owner` and `kind` as a row of [`COLUMNS`], if there is one.
    pub fn get<'q>(owner: &Owner, kind: WebhookKind, id: &str) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new(format!("SELECT {COLUMNS} FROM webhooks"));
        Self::owned(&mut sql, owner, kind, id);
        sql
    }

    /// Applies `update` (new secrets sealed with `secrets`) to webhook `id` of `owner` and
    /// `kind`, returning the updated row of [`COLUMNS`] (none: no such webhook).
    pub fn update<'q>(
        secrets: &SecretBox,
        owner: &Owner,
        kind: WebhookKind,
        id: &str,
        update: &WebhookUpdate,
    ) -> StoreResult<QueryBuilder<'q, DB>> {
        let update = normalized(kind, update.clone());
        let sealed = update.secrets.as_ref().map(|s| seal(secrets, id, s)).transpose()?;
        let mut sql = QueryBuilder::new("UPDATE webhooks SET url = COALESCE(");
        sql.push_bind(update.url.clone())
            .push(", url), events = COALESCE(")
            .push_bind(update.events.as_deref().map(to_json))
            .push(", events), secrets = COALESCE(")
            .push_bind(sealed)
            .push(", secrets), ");
        // NULL is a value here (follow all), so no COALESCE: the clause is there or not.
        match &update.facilities {
            None => {}
            Some(None) => {
                sql.push("facilities = NULL, ");
            }
            Some(Some(list)) => {
                sql.push("facilities = ").push_bind(to_json(list)).push(", ");
            }
        }
        sql.push("updated_at = ").push_bind(now_ms());
        Self::owned(&mut sql, owner, kind, id);
        sql.push(format!(" RETURNING {COLUMNS}"));
        Ok(sql)
    }

    /// Deletes webhook `id` of `owner` and `kind` (no row affected: there was none).
    pub fn delete<'q>(owner: &Owner, kind: WebhookKind, id: &str) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new("DELETE FROM webhooks");
        Self::owned(&mut sql, owner, kind, id);
        sql
    }

    /// The facilities `user_id` can access, in grant order.
    pub fn facilities_of<'q>(user_id: &str) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new("SELECT facility_id FROM user_facilities WHERE user_id = ");
        sql.push_bind(user_id.to_owned()).push(" ORDER BY position");
        sql
    }

    /// Replacing the user's facilities with `facilities` (distinct), in the order to run it
    /// (in one transaction): the old ones go, the new ones come in the order given.
    pub fn set_facilities<'q>(user_id: &str, facilities: &[String]) -> [QueryBuilder<'q, DB>; 2] {
        let mut clear = QueryBuilder::new("DELETE FROM user_facilities WHERE user_id = ");
        clear.push_bind(user_id.to_owned());
        let mut insert = QueryBuilder::new(
            "INSERT INTO user_facilities (user_id, facility_id, position, created_at) SELECT ",
        );
        insert.push_bind(user_id.to_owned()).push(", value, position, ").push_bind(now_ms()).push(" FROM ");
        DB::push_ordered(&mut insert, facilities);
        [clear, insert]
    }

    /// Appends `facility_id` to the user's facilities, unless it is there (no row affected).
    /// Positions are only unique on a writer the backend makes exclusive per user.
    pub fn grant<'q>(user_id: &str, facility_id: &str) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new(
            "INSERT INTO user_facilities (user_id, facility_id, position, created_at) SELECT ",
        );
        sql.push_bind(user_id.to_owned())
            .push(", ")
            .push_bind(facility_id.to_owned())
            .push(", COALESCE(MAX(position), 0) + 1, ")
            .push_bind(now_ms())
            .push(" FROM user_facilities WHERE user_id = ")
            .push_bind(user_id.to_owned())
            .push(" ON CONFLICT (user_id, facility_id) DO NOTHING");
        sql
    }

    /// The stored `event_type` of the publisher's event `public_id` and its `n` deliveries.
    pub fn published<'q>(publisher: &str, public_id: &str) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new(
            "SELECT e.event_type, (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id) AS n
               FROM events e WHERE e.publisher = ",
        );
        sql.push_bind(publisher.to_owned()).push(" AND e.public_id = ").push_bind(public_id.to_owned());
        sql
    }

    /// Releases the claimed deliveries `ids` that are still pending, due again at `until_ms`.
    pub fn defer<'q>(ids: &[&str], until_ms: i64) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new("UPDATE deliveries SET next_attempt_at = ");
        sql.push_bind(until_ms).push(", lease_until = NULL, lease_token = NULL WHERE ");
        DB::push_any(&mut sql, "id", ids);
        sql.push(format!(" AND {}status = 'pending'", DB::NO_INDEX));
        sql
    }

    /// How many deliveries are due at `now`.
    pub fn due_count<'q>(now: i64) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ",
        );
        sql.push_bind(now);
        sql
    }

    /// The log's `SELECT` with the query's filters, order and page.
    pub fn log<'q>(q: &LogQuery) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new(
            "SELECT d.id, d.webhook_id, e.public_id AS event_id, e.event_type, e.facility_id, e.body, d.url, d.status, d.created_at
               FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.client_id = ",
        );
        sql.push_bind(q.client_id.clone()).push(" AND d.user_id = ").push_bind(q.user_id.clone());
        if let Some(t) = &q.event_type {
            sql.push(" AND e.event_type = ").push_bind(t.clone());
        }
        if let Some(start) = q.start_ms {
            sql.push(" AND d.created_at >= ").push_bind(start);
        }
        if let Some(end) = q.end_ms {
            sql.push(" AND d.created_at < ").push_bind(end);
        }
        if let Some(w) = &q.webhook_id {
            sql.push(" AND d.webhook_id = ").push_bind(w.clone());
        }
        if !q.facility_ids.is_empty() {
            let ids: Vec<&str> = q.facility_ids.iter().map(String::as_str).collect();
            sql.push(" AND ");
            DB::push_any(&mut sql, "e.facility_id", &ids);
        }
        let order = if q.ascending { "ASC" } else { "DESC" };
        sql.push(format!(" ORDER BY d.created_at {order}, d.seq {order} LIMIT "))
            .push_bind(q.limit)
            .push(" OFFSET ")
            .push_bind(q.offset);
        sql
    }

    /// The attempts of the deliveries `ids`, as the log shows them.
    pub fn attempts<'q>(ids: &[&str]) -> QueryBuilder<'q, DB> {
        let mut sql = QueryBuilder::new(
            "SELECT delivery_id, attempt, url, status_code, response_body, created_at FROM attempts WHERE ",
        );
        DB::push_any(&mut sql, "delivery_id", ids);
        sql.push(" ORDER BY delivery_id, attempt");
        sql
    }

    /// The purge, in the order to run it (in one transaction): the attempts, the deliveries
    /// (their rows affected are the purge's count), then the events left without deliveries.
    pub fn purge<'q>(before_ms: i64) -> [QueryBuilder<'q, DB>; 3] {
        let mut attempts = QueryBuilder::new(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE created_at < ",
        );
        attempts.push_bind(before_ms).push(" AND status <> 'pending')");
        let mut deliveries = QueryBuilder::new("DELETE FROM deliveries WHERE created_at < ");
        deliveries.push_bind(before_ms).push(" AND status <> 'pending'");
        let mut events = QueryBuilder::new("DELETE FROM events WHERE created_at < ");
        events
            .push_bind(before_ms)
            .push(" AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)");
        [attempts, deliveries, events]
    }

    /// Webhook `id` of `owner` and `kind`, its secrets opened.
    pub async fn fetch_webhook(
        pool: &Pool<DB>,
        secrets: &SecretBox,
        owner: &Owner,
        kind: WebhookKind,
        id: &str,
    ) -> StoreResult<Option<Webhook>> {
        let row = DB::fetch_optional(pool, Self::get(owner, kind, id)).await?;
        row.as_ref().map(|row| read_webhook(row, secrets)).transpose()
    }

    /// The facilities `user_id` can access, in grant order.
    pub async fn fetch_facilities(pool: &Pool<DB>, user_id: &str) -> StoreResult<Vec<String>> {
        let rows = DB::fetch_all(pool, Self::facilities_of(user_id)).await?;
        Ok(rows.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?)
    }

    /// How many deliveries are due now.
    pub async fn fetch_due_count(pool: &Pool<DB>) -> StoreResult<i64> {
        let row = DB::fetch_optional(pool, Self::due_count(now_ms())).await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?.unwrap_or_default())
    }

    /// The log entries matching `q`, each with its attempts.
    pub async fn fetch_logs(pool: &Pool<DB>, q: &LogQuery) -> StoreResult<Vec<LogEntry>> {
        let rows = DB::fetch_all(pool, Self::log(q)).await?;
        let mut entries = rows.iter().map(log_entry).collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            return Ok(entries);
        }
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let rows = DB::fetch_all(pool, Self::attempts(&ids)).await?;
        add_attempts(&mut entries, &rows)?;
        Ok(entries)
    }

    /// Whether the database answers.
    pub async fn ping(pool: &Pool<DB>) -> StoreResult<()> {
        DB::fetch_optional(pool, QueryBuilder::new("SELECT 1")).await?;
        Ok(())
    }
}
