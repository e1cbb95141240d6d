//! Durable state behind one interface with two backends:
//! - SQLite (WAL, `synchronous = FULL`, one group-commit writer), the embedded default for one
//!   machine: a `201` is on disk before it is sent;
//! - PostgreSQL, for several replicas on one database: deliveries are claimed with
//!   `FOR UPDATE SKIP LOCKED` and a lease, event ids are unique in the database.
//!
//! The interface, and what each operation promises, is [`WebhookStore`], [`AccessStore`] and
//! [`DeliveryStore`]: both backends implement them, and so does [`Store`], an enum over the two
//! that dispatches to the backend, so callers do not care which one runs. The SQL both dialects accept is written
//! once (`sql.rs`); a backend's files hold only what differs. Both have their own migrations
//! (`migrations/sqlite`, `migrations/postgres`) of the same tables, and one test suite
//! (`tests.rs`) runs against both.

mod delivery;
mod postgres;
mod sql;
mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;

pub use delivery::{
    event_body, facility_of, AttemptOutcome, ClaimedDelivery, LogEntry, LogQuery, LoggedAttempt, NewEvent,
    PublishedEvent, Target,
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

/// Which resource a webhook is: stored as `'user'` / `'facility'`. User webhooks receive the
/// events of their owner's user; facility webhooks the events of facilities their owner can
/// access ([`AccessStore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookKind {
    User,
    Facility,
}

impl WebhookKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::User => "user",
            WebhookKind::Facility => "facility",
        }
    }

    /// The kind stored as `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(WebhookKind::User),
            "facility" => Some(WebhookKind::Facility),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub secrets: Vec<String>,
    pub kind: WebhookKind,
    /// Facility webhooks: `Some(explicit list, as given, de-duplicated keeping first
    /// occurrence)` or `None` = follows all of its owner's facilities (now and later). Always
    /// `None` for user webhooks.
    pub facilities: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub secrets: Vec<String>,
    pub kind: WebhookKind,
    /// As [`Webhook::facilities`]; de-duplicated on the way in, ignored for user webhooks.
    pub facilities: Option<Vec<String>>,
}

/// `None` keeps the stored value.
#[derive(Debug, Clone)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub secrets: Option<Vec<String>>,
    /// `Some(None)`: follow all of the owner's facilities; `Some(Some(list))`: exactly those
    /// (de-duplicated). Ignored for user webhooks, whose facilities stay `None`.
    pub facilities: Option<Option<Vec<String>>>,
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

pub type StoreResult<T> = Result<T, StoreError>;

/// Connection settings shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections in the pool (SQLite: the readers; the writer has its own).
    pub max_connections: u32,
    /// PostgreSQL's `statement_timeout` for every connection (zero: none). SQLite has none.
    pub statement_timeout: Duration,
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

/// `ids` without repeats, first occurrences kept in order, and without the ids no access row
/// or event can name (see [`unmatchable`]): PostgreSQL could store neither, nor cast a
/// webhook's list holding one to `jsonb` in the fan-out.
fn distinct_facilities(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().filter(|id| !unmatchable(id) && seen.insert(id.clone())).collect()
}

/// The webhooks of owners: every operation is scoped to the owner and a kind, and another
/// owner's webhook, or one of another kind, is answered exactly like a missing one (`None`,
/// `false`, left out).
///
/// Keys holding U+0000 are never stored (PostgreSQL text cannot hold one): [`Store`] answers
/// them as unknown before a backend is asked, so backends may assume keys without it.
pub trait WebhookStore {
    /// Stores a new webhook of `owner`, unless the owner already has `limit` webhooks of
    /// `new.kind`: then `None`, and nothing is stored. Facilities are de-duplicated (first
    /// occurrences kept) and always `None` for user webhooks. Counting and inserting are one
    /// step per owner, whatever
    /// runs at the same time (SQLite: one statement on the one writer; PostgreSQL: under a
    /// per-owner lock shared by every replica).
    fn create(
        &self,
        owner: &Owner,
        new: NewWebhook,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Option<Webhook>>> + Send;

    /// The owner's webhooks of `kind` in creation order, each write before the call included.
    fn list(
        &self,
        owner: &Owner,
        kind: WebhookKind,
    ) -> impl Future<Output = StoreResult<Vec<Webhook>>> + Send;

    /// The owner's webhook `id` of `kind`; `None`: the owner has none of that id and kind.
    fn get(
        &self,
        owner: &Owner,
        kind: WebhookKind,
        id: &str,
    ) -> impl Future<Output = StoreResult<Option<Webhook>>> + Send;

    /// Applies `update` to the owner's webhook `id` of `kind` in one statement and returns the
    /// result; `None`: the owner has none of that id and kind, and nothing changed.
    fn update(
        &self,
        owner: &Owner,
        kind: WebhookKind,
        id: &str,
        update: WebhookUpdate,
    ) -> impl Future<Output = StoreResult<Option<Webhook>>> + Send;

    /// Deletes the owner's webhook `id` of `kind`; `false`: the owner had none of that id and kind.
    fn delete(
        &self,
        owner: &Owner,
        kind: WebhookKind,
        id: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Which facilities each user can access: what the facility fan-out follows at publication.
/// Every method is atomic on its own; purging the log leaves access alone. User ids holding
/// U+0000 are unknown (no facilities, nothing changes), as for [`WebhookStore`]; so are
/// facility ids holding it (left out).
pub trait AccessStore {
    /// The user's accessible facilities, in grant order.
    fn facilities_of(&self, user_id: &str) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// Replaces the user's facilities at once with `facilities`, in the order given (repeats
    /// dropped, first occurrences kept); returns the new set.
    fn set_facilities(
        &self,
        user_id: &str,
        facilities: &[String],
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// Appends `facility_id` to the user's facilities: `true`, or `false` when it was there.
    fn grant(&self, user_id: &str, facility_id: &str) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Events, their deliveries and the attempts at them; every method is atomic on its own.
pub trait DeliveryStore {
    /// Records the event and one delivery per matching webhook, in one transaction. Audience
    /// user: the user webhooks of the event's user subscribed to its type (or `all`); audience
    /// facility: the facility webhooks subscribed to its type (or `all`) of every user who can
    /// access the event's facility now, following all their facilities or naming this one
    /// (no facility: no deliveries). A delivery belongs to its webhook's owner. An `id` the
    /// publisher used before (on any replica) schedules nothing and reports the stored event,
    /// `duplicate`.
    fn publish(&self, event: NewEvent) -> impl Future<Output = StoreResult<PublishedEvent>> + Send;

    /// Leases up to `limit` due, unleased deliveries for `lease_ms`, the longest due first.
    /// No delivery is held by two leases at once; a crashed worker's leases expire.
    fn claim_due(
        &self,
        limit: i64,
        lease_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<ClaimedDelivery>>> + Send;

    /// Gives claimed deliveries back without attempting them: their leases are cleared and
    /// they are due again at `until_ms`. No attempt is counted or logged; settled (or unknown)
    /// deliveries are left alone. Returns how many were given back.
    fn defer(&self, ids: &[String], until_ms: i64) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Logs the attempts and settles or reschedules their deliveries, all in one transaction.
    /// An attempt logged before (a retaken lease) is kept as it was; deliveries settled
    /// meanwhile are left alone.
    fn record(&self, outcomes: &[AttemptOutcome]) -> impl Future<Output = StoreResult<()>> + Send;

    /// How many deliveries are due now (the backlog).
    fn due_count(&self) -> impl Future<Output = StoreResult<i64>> + Send;

    /// The owner's deliveries matching `q`, each with its attempts in order.
    fn search_logs(&self, q: &LogQuery) -> impl Future<Output = StoreResult<Vec<LogEntry>>> + Send;

    /// Drops settled deliveries (and their attempts and events) created before `before_ms`;
    /// returns how many deliveries went. Pending ones stay, however old.
    fn purge(&self, before_ms: i64) -> impl Future<Output = StoreResult<u64>> + Send;
}

impl Store {
    /// Opens the database at `url` and migrates it: PostgreSQL for `postgres://` and
    /// `postgresql://` URLs (the database is created if missing), otherwise SQLite
    /// (`sqlite://path`, `sqlite:path` or a plain path; the file is created if missing).
    pub async fn connect(url: &str, secrets: SecretBox, options: &StoreOptions) -> StoreResult<Self> {
        Ok(if is_postgres_url(url) {
            Store::Postgres(PgStore::connect(url, secrets, options).await?)
        } else {
            Store::Sqlite(SqliteStore::connect(url, secrets, options).await?)
        })
    }

    /// For `serve`, before [`connect`](Self::connect): SQLite's exclusive claim on the database
    /// file at `url` (held while the returned file stays open; the process's death releases
    /// it). PostgreSQL takes any number of replicas: `None`.
    pub fn lock_for_serving(url: &str) -> StoreResult<Option<std::fs::File>> {
        if is_postgres_url(url) {
            Ok(None)
        } else {
            SqliteStore::lock_for_serving(url)
        }
    }

    /// `"sqlite"` or `"postgres"`.
    #[cfg(test)]
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        dispatch!(self, s => sql::Sql::ping(s.pool()).await)
    }

    pub async fn close(&self) {
        dispatch!(self, s => s.pool().close().await)
    }
}

impl WebhookStore for Store {
    async fn create(&self, owner: &Owner, new: NewWebhook, limit: u32) -> StoreResult<Option<Webhook>> {
        dispatch!(self, s => s.create(owner, new, limit).await)
    }

    async fn list(&self, owner: &Owner, kind: WebhookKind) -> StoreResult<Vec<Webhook>> {
        if unmatchable(&owner.client_id) || unmatchable(&owner.user_id) {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.list(owner, kind).await)
    }

    async fn get(&self, owner: &Owner, kind: WebhookKind, id: &str) -> StoreResult<Option<Webhook>> {
        if unmatchable_webhook(owner, id) {
            return Ok(None);
        }
        dispatch!(self, s => s.get(owner, kind, id).await)
    }

    async fn update(
        &self,
        owner: &Owner,
        kind: WebhookKind,
        id: &str,
        update: WebhookUpdate,
    ) -> StoreResult<Option<Webhook>> {
        if unmatchable_webhook(owner, id) {
            return Ok(None);
        }
        dispatch!(self, s => s.update(owner, kind, id, update).await)
    }

    async fn delete(&self, owner: &Owner, kind: WebhookKind, id: &str) -> StoreResult<bool> {
        if unmatchable_webhook(owner, id) {
            return Ok(false);
        }
        dispatch!(self, s => s.delete(owner, kind, id).await)
    }
}

impl AccessStore for Store {
    async fn facilities_of(&self, user_id: &str) -> StoreResult<Vec<String>> {
        if unmatchable(user_id) {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.facilities_of(user_id).await)
    }

    async fn set_facilities(&self, user_id: &str, facilities: &[String]) -> StoreResult<Vec<String>> {
        if unmatchable(user_id) {
            return Ok(Vec::new());
        }
        let facilities = distinct_facilities(facilities.to_vec());
        dispatch!(self, s => s.set_facilities(user_id, &facilities).await)
    }

    async fn grant(&self, user_id: &str, facility_id: &str) -> StoreResult<bool> {
        if unmatchable(user_id) || unmatchable(facility_id) {
            return Ok(false);
        }
        dispatch!(self, s => s.grant(user_id, facility_id).await)
    }
}

impl DeliveryStore for Store {
    async fn publish(&self, mut event: NewEvent) -> StoreResult<PublishedEvent> {
        // No access row can name such a facility (and PostgreSQL text cannot hold it): the
        // event has none to fan out to or be found by.
        if event.facility_id.as_deref().is_some_and(unmatchable) {
            event.facility_id = None;
        }
        dispatch!(self, s => s.publish(event).await)
    }

    async fn claim_due(&self, limit: i64, lease_ms: i64) -> StoreResult<Vec<ClaimedDelivery>> {
        dispatch!(self, s => s.claim_due(limit, lease_ms).await)
    }

    async fn defer(&self, ids: &[String], until_ms: i64) -> StoreResult<u64> {
        let known: Vec<String>;
        let ids = if ids.iter().any(|id| unmatchable(id)) {
            known = ids.iter().filter(|id| !unmatchable(id)).cloned().collect();
            &known[..]
        } else {
            ids
        };
        if ids.is_empty() {
            return Ok(0);
        }
        dispatch!(self, s => s.defer(ids, until_ms).await)
    }

    async fn record(&self, outcomes: &[AttemptOutcome]) -> StoreResult<()> {
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

    async fn due_count(&self) -> StoreResult<i64> {
        dispatch!(self, s => s.due_count().await)
    }

    async fn search_logs(&self, q: &LogQuery) -> StoreResult<Vec<LogEntry>> {
        let keys = [Some(&q.client_id), Some(&q.user_id), q.event_type.as_ref(), q.webhook_id.as_ref()];
        if keys.into_iter().flatten().any(|k| unmatchable(k)) {
            return Ok(Vec::new());
        }
        // A facility id no event can have matches nothing: left out of the filter, and a
        // filter of only such ids matches no entry.
        if q.facility_ids.iter().any(|f| unmatchable(f)) {
            let facility_ids: Vec<String> =
                q.facility_ids.iter().filter(|f| !unmatchable(f)).cloned().collect();
            if facility_ids.is_empty() {
                return Ok(Vec::new());
            }
            let q = LogQuery { facility_ids, ..q.clone() };
            return dispatch!(self, s => s.search_logs(&q).await);
        }
        dispatch!(self, s => s.search_logs(q).await)
    }

    async fn purge(&self, before_ms: i64) -> StoreResult<u64> {
        dispatch!(self, s => s.purge(before_ms).await)
    }
}

/// The webhook columns every read selects, in this order.
const COLUMNS: &str = "id, client_id, user_id, url, events, secrets, kind, facilities";

/// A new webhook of `owner`, not stored yet.
fn new_webhook(owner: &Owner, new: NewWebhook) -> Webhook {
    let facilities = match new.kind {
        WebhookKind::User => None,
        WebhookKind::Facility => new.facilities.map(distinct_facilities),
    };
    Webhook {
        id: uuid::Uuid::new_v4().to_string(),
        client_id: owner.client_id.clone(),
        user_id: owner.user_id.clone(),
        url: new.url,
        events: new.events,
        secrets: new.secrets,
        kind: new.kind,
        facilities,
    }
}

/// `update` as it applies to a webhook of `kind`: new facilities de-duplicated, and none for
/// user webhooks (theirs stay `None`).
fn normalized(kind: WebhookKind, mut update: WebhookUpdate) -> WebhookUpdate {
    update.facilities = match kind {
        WebhookKind::User => None,
        WebhookKind::Facility => update.facilities.map(|f| f.map(distinct_facilities)),
    };
    update
}

fn to_json(values: &[String]) -> String {
    serde_json::Value::from(values).to_string()
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// The sealed form of a webhook's secrets, bound to its id.
fn seal(secrets: &SecretBox, id: &str, values: &[String]) -> StoreResult<Vec<u8>> {
    Ok(secrets.seal(to_json(values).as_bytes(), id.as_bytes())?)
}

fn open_secrets(secrets: &SecretBox, id: &str, sealed: &[u8]) -> StoreResult<Vec<String>> {
    let corrupt = |reason: String| StoreError::Corrupt { id: id.to_owned(), reason };
    let plain = secrets.open(sealed, id.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    serde_json::from_slice(&plain).map_err(|e| corrupt(format!("secrets: {e}")))
}

/// A stored `kind` and `facilities` (JSON array text or NULL) of webhook `id`, read.
fn read_kind_and_facilities(
    id: &str,
    kind: &str,
    facilities: Option<&str>,
) -> StoreResult<(WebhookKind, Option<Vec<String>>)> {
    let corrupt = |reason: String| StoreError::Corrupt { id: id.to_owned(), reason };
    let kind = WebhookKind::parse(kind).ok_or_else(|| corrupt(format!("kind {kind:?}")))?;
    let facilities =
        facilities.map(serde_json::from_str).transpose().map_err(|e| corrupt(format!("facilities: {e}")))?;
    Ok((kind, facilities))
}

/// A webhook from a row of [`COLUMNS`], on either backend.
fn read_webhook<'r, R>(row: &'r R, secrets: &SecretBox) -> StoreResult<Webhook>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get("id")?;
    let corrupt = |reason: String| StoreError::Corrupt { id: id.clone(), reason };
    let events: String = row.try_get("events")?;
    let sealed: Vec<u8> = row.try_get("secrets")?;
    let secrets = open_secrets(secrets, &id, &sealed)?;
    let kind: String = row.try_get("kind")?;
    let facilities: Option<String> = row.try_get("facilities")?;
    let (kind, facilities) = read_kind_and_facilities(&id, &kind, facilities.as_deref())?;
    Ok(Webhook {
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        url: row.try_get("url")?,
        events: serde_json::from_str(&events).map_err(|e| corrupt(format!("events: {e}")))?,
        secrets,
        kind,
        facilities,
        id,
    })
}
