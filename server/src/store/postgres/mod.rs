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

use super::{
    now_ms, read_webhook, seal, to_json, NewWebhook, Owner, StoreError, StoreOptions, Webhook, WebhookUpdate,
    COLUMNS,
};
use crate::crypto::SecretBox;

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
    pub async fn connect(url: &str, secrets: SecretBox, options: &StoreOptions) -> Result<Self, StoreError> {
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

    pub async fn create(&self, owner: &Owner, new: NewWebhook) -> Result<Webhook, StoreError> {
        let webhook = Webhook {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: owner.client_id.clone(),
            user_id: owner.user_id.clone(),
            url: new.url,
            events: new.events,
            secrets: new.secrets,
        };
        let sealed = seal(&self.secrets, &webhook.id, &webhook.secrets)?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO webhooks (id, client_id, user_id, url, events, secrets, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&webhook.id)
        .bind(&webhook.client_id)
        .bind(&webhook.user_id)
        .bind(&webhook.url)
        .bind(to_json(&webhook.events))
        .bind(sealed)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(webhook)
    }

    pub async fn list(&self, owner: &Owner) -> Result<Vec<Webhook>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE client_id = $1 AND user_id = $2 ORDER BY seq"
        ))
        .bind(&owner.client_id)
        .bind(&owner.user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| self.webhook(row)).collect()
    }

    pub async fn get(&self, owner: &Owner, id: &str) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE id = $1 AND client_id = $2 AND user_id = $3"
        ))
        .bind(id)
        .bind(&owner.client_id)
        .bind(&owner.user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|row| self.webhook(row)).transpose()
    }

    pub async fn update(
        &self,
        owner: &Owner,
        id: &str,
        update: WebhookUpdate,
    ) -> Result<Option<Webhook>, StoreError> {
        let secrets = update.secrets.as_ref().map(|s| seal(&self.secrets, id, s)).transpose()?;
        let row = sqlx::query(&format!(
            "UPDATE webhooks
                SET url = COALESCE($1, url), events = $2, secrets = COALESCE($3, secrets), updated_at = $4
              WHERE id = $5 AND client_id = $6 AND user_id = $7
          RETURNING {COLUMNS}"
        ))
        .bind(&update.url)
        .bind(to_json(&update.events))
        .bind(secrets)
        .bind(now_ms())
        .bind(id)
        .bind(&owner.client_id)
        .bind(&owner.user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(|row| self.webhook(row)).transpose()
    }

    pub async fn delete(&self, owner: &Owner, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND client_id = $2 AND user_id = $3")
            .bind(id)
            .bind(&owner.client_id)
            .bind(&owner.user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn webhook(&self, row: &PgRow) -> Result<Webhook, StoreError> {
        read_webhook(row, &self.secrets)
    }
}
