//! PostgreSQL, for several replicas on one database. Every statement runs on the pool in its
//! own (short) transaction; PostgreSQL's row locks and unique indexes, not process memory,
//! keep replicas from stepping on each other.

mod delivery;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::Connection;
use sqlx::Postgres;

use super::sql::Sql;
use super::{
    read_webhook, to_json, AccessStore, NewWebhook, Owner, StoreOptions, StoreResult, Webhook, WebhookKind,
    WebhookStore, WebhookUpdate,
};
use crate::crypto::SecretBox;

/// The seed of the hash that turns an owner into the 64-bit key of its advisory lock ("webhooks"
/// in ASCII): keys of this store's own, apart from those of other users of advisory locks on the
/// database (sqlx's migrations). Two owners sharing a key only take turns.
const OWNER_LOCKS: i64 = 0x7765_6268_6f6f_6b73;

/// The same for users' access ("access" in ASCII), so access writes of one user take turns.
const ACCESS_LOCKS: i64 = 0x6163_6365_7373;

/// `invalid_catalog_name`: the database does not exist.
const MISSING_DATABASE: &str = "3D000";
/// `duplicate_database`, and the unique violation a concurrent `CREATE DATABASE` can give.
const DATABASE_EXISTS: [&str; 2] = ["42P04", "23505"];

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    secrets: SecretBox,
}

fn code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned())
}

impl PgStore {
    /// Connects to `url` (creating the database if it does not exist yet) and migrates it.
    /// Replicas starting together are fine: sqlx serializes migrations with an advisory lock.
    pub async fn connect(url: &str, secrets: SecretBox, options: &StoreOptions) -> StoreResult<Self> {
        let base = PgConnectOptions::from_str(url)?.application_name("webhooks-server");
        let connect = base.clone().options([("statement_timeout", options.statement_timeout.as_millis())]);
        let pool_options = || {
            PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(Duration::from_secs(30))
        };
        let pool = match pool_options().connect_with(connect.clone()).await {
            Err(e) if code(&e).as_deref() == Some(MISSING_DATABASE) => {
                match Postgres::create_database(url).await {
                    Ok(()) => tracing::info!(database = connect.get_database(), "created the database"),
                    // Another replica created it meanwhile.
                    Err(e) if code(&e).is_some_and(|c| DATABASE_EXISTS.contains(&c.as_str())) => {}
                    Err(e) => return Err(e.into()),
                }
                pool_options().connect_with(connect).await?
            }
            other => other?,
        };
        // Not under the statement timeout: a migration may rewrite a large table, and a replica
        // waiting for another's migration waits on sqlx's advisory lock in one statement.
        let mut migrating = PgConnection::connect_with(&base).await?;
        sqlx::migrate!("./migrations/postgres").run(&mut migrating).await?;
        let _ = migrating.close().await;
        Ok(Self { pool, secrets })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn webhook(&self, row: &PgRow) -> StoreResult<Webhook> {
        read_webhook(row, &self.secrets)
    }

    /// A transaction holding `user_id`'s access lock (on every replica) until it ends.
    async fn lock_access(&self, user_id: &str) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))")
            .bind(user_id)
            .bind(ACCESS_LOCKS)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

impl WebhookStore for PgStore {
    /// Two creates of one owner (on any replica) must not both count the same rows: each takes
    /// the owner's advisory lock first, held until its transaction ends, and under read
    /// committed the insert that follows sees what the previous holder committed. The wait
    /// for the lock is bounded by `statement_timeout` (and is one create's length anyway).
    async fn create(&self, owner: &Owner, new: NewWebhook, limit: u32) -> StoreResult<Option<Webhook>> {
        let (webhook, mut insert) = Sql::<Postgres>::create(&self.secrets, owner, new, limit)?;
        let mut tx = self.pool.begin().await?;
        // The owner as a JSON array: no two owners give the same text.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, $2))")
            .bind(to_json(&[owner.client_id.clone(), owner.user_id.clone()]))
            .bind(OWNER_LOCKS)
            .execute(&mut *tx)
            .await?;
        let done = insert.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok((done.rows_affected() == 1).then_some(webhook))
    }

    async fn list(&self, owner: &Owner, kind: WebhookKind) -> StoreResult<Vec<Webhook>> {
        let rows = Sql::<Postgres>::list(owner, kind).build().fetch_all(&self.pool).await?;
        rows.iter().map(|row| self.webhook(row)).collect()
    }

    async fn get(&self, owner: &Owner, kind: WebhookKind, id: &str) -> StoreResult<Option<Webhook>> {
        Sql::<Postgres>::fetch_webhook(&self.pool, &self.secrets, owner, kind, id).await
    }

    async fn update(
        &self,
        owner: &Owner,
        kind: WebhookKind,
        id: &str,
        update: WebhookUpdate,
    ) -> StoreResult<Option<Webhook>> {
        let mut statement = Sql::<Postgres>::update(&self.secrets, owner, kind, id, &update)?;
        let row = statement.build().fetch_optional(&self.pool).await?;
        row.as_ref().map(|row| self.webhook(row)).transpose()
    }

    async fn delete(&self, owner: &Owner, kind: WebhookKind, id: &str) -> StoreResult<bool> {
        let done = Sql::<Postgres>::delete(owner, kind, id).build().execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Access writes of one user take its advisory lock first (as creates take the owner's): two
/// replacements, or a replacement and a grant, never interleave, and a grant's next position
/// is read with no other write of the user between.
impl AccessStore for PgStore {
    async fn facilities_of(&self, user_id: &str) -> StoreResult<Vec<String>> {
        Sql::<Postgres>::fetch_facilities(&self.pool, user_id).await
    }

    async fn set_facilities(&self, user_id: &str, facilities: &[String]) -> StoreResult<Vec<String>> {
        let [mut clear, mut insert] = Sql::<Postgres>::set_facilities(user_id, facilities);
        let mut tx = self.lock_access(user_id).await?;
        clear.build().execute(&mut *tx).await?;
        insert.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(facilities.to_vec())
    }

    async fn grant(&self, user_id: &str, facility_id: &str) -> StoreResult<bool> {
        let mut tx = self.lock_access(user_id).await?;
        let done = Sql::<Postgres>::grant(user_id, facility_id).build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
