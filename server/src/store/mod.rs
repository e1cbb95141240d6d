//! Durable state behind one interface with two backends:
//! - SQLite (WAL, `synchronous = FULL`, one group-commit writer), the embedded default for one
//!   machine: a `201` is on disk before it is sent;
//! - PostgreSQL, for several replicas on one database: deliveries are claimed with
//!   `FOR UPDATE SKIP LOCKED` and a lease, event ids are unique in the database.
//!
//! [`Store`] is an enum over the two; each method dispatches to the backend, so callers do not
//! care which one runs. Both have their own migrations (`migrations/sqlite`, `migrations/postgres`)
//! of the same tables, and one test suite (`tests.rs`) runs against both.

mod delivery;
mod postgres;
mod sqlite;
pub mod testing;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;

pub use delivery::{
    event_body, AttemptOutcome, ClaimedDelivery, LogEntry, LogQuery, LoggedAttempt, NewEvent, PublishedEvent,
    Target,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::crypto::SecretBox;

/// Who owns a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub client_id: String,
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub secrets: Vec<String>,
}

/// `None` keeps the stored value; `events` always replaces.
#[derive(Debug, Clone)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub events: Vec<String>,
    pub secrets: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored row {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("{0}")]
    Crypto(#[from] anyhow::Error),
    #[error("the write batch did not commit: {0}")]
    Commit(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("{0}")]
    InUse(String),
}

/// Connection settings shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections in the pool (SQLite: the readers; the writer has its own).
    pub max_connections: u32,
    /// PostgreSQL's `statement_timeout` for every connection (zero: none). SQLite has none.
    pub statement_timeout: Duration,
}

pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: DEFAULT_MAX_CONNECTIONS, statement_timeout: DEFAULT_STATEMENT_TIMEOUT }
    }
}

/// The store: SQLite or PostgreSQL, chosen by the database URL. Cheap to clone (pools inside).
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Runs `$body` with `$store` bound to whichever backend `$self` holds.
macro_rules! dispatch {
    ($self:expr, $store:ident => $body:expr) => {
        match $self {
            Store::Sqlite($store) => $body,
            Store::Postgres($store) => $body,
        }
    };
}

/// Whether `url` names a PostgreSQL database (`postgres://…` or `postgresql://…`).
pub fn is_postgres_url(url: &str) -> bool {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    matches!(scheme.as_deref(), Some("postgres" | "postgresql"))
}

/// PostgreSQL text cannot hold U+0000, so no stored value contains one: a key with it is
/// simply unknown, on both backends alike.
fn unmatchable(key: &str) -> bool {
    key.contains('\0')
}

/// No stored webhook of `owner` can have id `id` (see [`unmatchable`]).
fn unmatchable_webhook(owner: &Owner, id: &str) -> bool {
    unmatchable(id) || unmatchable(&owner.client_id) || unmatchable(&owner.user_id)
}

impl Store {
    /// Opens the database at `url` and migrates it: PostgreSQL for `postgres://` and
    /// `postgresql://` URLs (the database is created if missing), otherwise SQLite
    /// (`sqlite://path`, `sqlite:path` or a plain path; the file is created if missing).
    pub async fn connect(url: &str, secrets: SecretBox, options: &StoreOptions) -> Result<Self, StoreError> {
        Ok(if is_postgres_url(url) {
            Store::Postgres(PgStore::connect(url, secrets, options).await?)
        } else {
            Store::Sqlite(SqliteStore::connect(url, secrets, options).await?)
        })
    }

    /// For `serve`, before [`connect`](Self::connect): SQLite's exclusive claim on the database
    /// file at `url` (held while the returned file stays open; the process's death releases
    /// it). PostgreSQL takes any number of replicas: `None`.
    pub fn lock_for_serving(url: &str) -> Result<Option<std::fs::File>, StoreError> {
        if is_postgres_url(url) {
            Ok(None)
        } else {
            SqliteStore::lock_for_serving(url)
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Stores a new webhook of `owner`, unless the owner already has `limit` webhooks: then
    /// `None`, and nothing is stored. Counting and inserting are one step per owner, whatever
    /// runs at the same time (SQLite: one statement on the one writer; PostgreSQL: under a
    /// per-owner lock shared by every replica).
    pub async fn create(
        &self,
        owner: &Owner,
        new: NewWebhook,
        limit: u32,
    ) -> Result<Option<Webhook>, StoreError> {
        dispatch!(self, s => s.create(owner, new, limit).await)
    }

    /// The owner's webhooks in creation order.
    pub async fn list(&self, owner: &Owner) -> Result<Vec<Webhook>, StoreError> {
        if unmatchable(&owner.client_id) || unmatchable(&owner.user_id) {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.list(owner).await)
    }

    pub async fn get(&self, owner: &Owner, id: &str) -> Result<Option<Webhook>, StoreError> {
        if unmatchable_webhook(owner, id) {
            return Ok(None);
        }
        dispatch!(self, s => s.get(owner, id).await)
    }

    pub async fn update(
        &self,
        owner: &Owner,
        id: &str,
        update: WebhookUpdate,
    ) -> Result<Option<Webhook>, StoreError> {
        if unmatchable_webhook(owner, id) {
            return Ok(None);
        }
        dispatch!(self, s => s.update(owner, id, update).await)
    }

    pub async fn delete(&self, owner: &Owner, id: &str) -> Result<bool, StoreError> {
        if unmatchable_webhook(owner, id) {
            return Ok(false);
        }
        dispatch!(self, s => s.delete(owner, id).await)
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    /// Records the event and one delivery per matching webhook, in one transaction. An `id`
    /// seen before (on any replica) schedules nothing and reports the stored event.
    pub async fn publish(&self, event: NewEvent) -> Result<PublishedEvent, StoreError> {
        dispatch!(self, s => s.publish(event).await)
    }

    /// Claims up to `limit` due deliveries for `lease_ms`; a crashed worker's claims expire.
    pub async fn claim_due(&self, limit: i64, lease_ms: i64) -> Result<Vec<ClaimedDelivery>, StoreError> {
        dispatch!(self, s => s.claim_due(limit, lease_ms).await)
    }

    /// Gives claimed deliveries back without attempting them: their leases are cleared and
    /// they are due again at `until_ms`. No attempt is counted or logged; settled (or unknown)
    /// deliveries are left alone. Returns how many were given back.
    pub async fn defer(&self, ids: &[String], until_ms: i64) -> Result<u64, StoreError> {
        let ids: Vec<&str> = ids.iter().map(String::as_str).filter(|id| !unmatchable(id)).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        dispatch!(self, s => s.defer(&ids, until_ms).await)
    }

    /// Records attempts and their consequences, all in one transaction.
    pub async fn record(&self, outcomes: &[AttemptOutcome]) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        // A receiver's answer may hold U+0000, which PostgreSQL text cannot: both backends log
        // it as U+FFFD, as they already do for invalid UTF-8.
        let cleaned: Vec<AttemptOutcome>;
        let outcomes = if outcomes.iter().any(|o| o.response_body.contains('\0')) {
            cleaned = outcomes
                .iter()
                .map(|o| AttemptOutcome {
                    response_body: o.response_body.replace('\0', "\u{FFFD}"),
                    ..o.clone()
                })
                .collect();
            &cleaned[..]
        } else {
            outcomes
        };
        dispatch!(self, s => s.record(outcomes).await)
    }

    /// How many deliveries are due now (the backlog).
    pub async fn due_count(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.due_count().await)
    }

    pub async fn search_logs(&self, q: &LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        let keys = [Some(&q.client_id), Some(&q.user_id), q.event_type.as_ref(), q.webhook_id.as_ref()];
        if keys.into_iter().flatten().any(|k| unmatchable(k)) {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.search_logs(q).await)
    }

    /// Drops finished deliveries (and their attempts and events) older than `before_ms`.
    pub async fn purge(&self, before_ms: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.purge(before_ms).await)
    }
}

/// The webhook columns every read selects, in this order.
const COLUMNS: &str = "id, client_id, user_id, url, events, secrets";

/// A new webhook of `owner`, not stored yet.
fn new_webhook(owner: &Owner, new: NewWebhook) -> Webhook {
    Webhook {
        id: uuid::Uuid::new_v4().to_string(),
        client_id: owner.client_id.clone(),
        user_id: owner.user_id.clone(),
        url: new.url,
        events: new.events,
        secrets: new.secrets,
    }
}

fn to_json(values: &[String]) -> String {
    serde_json::Value::from(values).to_string()
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// The sealed form of a webhook's secrets, bound to its id.
fn seal(secrets: &SecretBox, id: &str, values: &[String]) -> Result<Vec<u8>, StoreError> {
    Ok(secrets.seal(to_json(values).as_bytes(), id.as_bytes())?)
}

fn open_secrets(secrets: &SecretBox, id: &str, sealed: &[u8]) -> Result<Vec<String>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt { id: id.to_owned(), reason };
    let plain = secrets.open(sealed, id.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_slice(&plain).map_err(|e| corrupt(format!("secrets: {e}")))
}

/// A webhook from a row of [`COLUMNS`], on either backend.
fn read_webhook<'r, R>(row: &'r R, secrets: &SecretBox) -> Result<Webhook, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let corrupt = |reason: String| StoreError::Corrupt { id: id.clone(), reason };
    let events: String = row.try_get("events")?;
    let sealed: Vec<u8> = row.try_get("secrets")?;
    let secrets = open_secrets(secrets, &id, &sealed)?;
    Ok(Webhook {
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        url: row.try_get("url")?,
        events: serde_json::from_str(&events).map_err(|e| corrupt(format!("events: {e}")))?,
        secrets,
        id,
    })
}
