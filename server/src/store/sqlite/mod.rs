//! The embedded default: SQLite in WAL mode, `synchronous = FULL`, one group-commit writer.

mod delivery;
mod list_cache;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Sqlite, SqlitePool};

use super::sql::Sql;
use super::{
    read_kind_and_facilities, read_webhook, AccessStore, NewWebhook, Owner, StoreError, StoreOptions,
    StoreResult, Webhook, WebhookKind, WebhookStore, WebhookUpdate,
};
use crate::crypto::SecretBox;
use list_cache::ListCache;
use writer::Writer;

#[derive(Clone)]
pub struct SqliteStore {
    /// Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// The one writer, with group commit. SQLite takes one write transaction at a time anyway;
    /// one queue is fair and immediate, where several writing connections would meet SQLite's
    /// busy handler and its sleeps.
    writer: Writer,
    secrets: SecretBox,
    lists: Arc<ListCache>,
}

/// sqlx's options for `url` (`sqlite://path`, `sqlite:path` or a plain path).
fn connect_options(url: &str) -> StoreResult<SqliteConnectOptions> {
    let url = if url.starts_with("sqlite:") { url.to_owned() } else { format!("sqlite://{url}") };
    Ok(SqliteConnectOptions::from_str(&url)?)
}

/// Creates the directory that will hold `file`.
fn create_parent(file: &Path) -> StoreResult<()> {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Crypto(e.into()))
        }
        _ => Ok(()),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or a path) and migrates it.
    /// `options.max_connections` sizes the readers' pool; SQLite has no statement timeout.
    pub async fn connect(url: &str, secrets: SecretBox, options: &StoreOptions) -> StoreResult<Self> {
        let connect = connect_options(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is synced at every commit, so an acknowledged write survives power loss too.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        create_parent(connect.get_filename())?;
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .connect_with(connect.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let writer = Writer::start(connect.connect().await?);
        Ok(Self { pool, writer, secrets, lists: Arc::default() })
    }

    async fn read_list(&self, owner: &Owner, kind: WebhookKind) -> StoreResult<Vec<Webhook>> {
        // One row holding the whole list as JSON: sqlx-sqlite hands rows over from its worker
        // thread one at a time, and for a list that hand-over costs more than the query.
        let listed: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, url, events, hex(secrets), kind, facilities) ORDER BY seq)
               FROM webhooks WHERE client_id = ? AND user_id = ? AND kind = ?",
        )
        .bind(&owner.client_id)
        .bind(&owner.user_id)
        .bind(kind.as_str())
        .fetch_one(&self.pool)
        .await?;
        type Listed = (String, String, String, String, String, Option<String>);
        let rows: Vec<Listed> = serde_json::from_str(&listed)
            .map_err(|e| StoreError::Corrupt { id: "(list)".into(), reason: e.to_string() })?;
        rows.into_iter()
            .map(|(id, url, events, sealed_hex, kind, facilities)| {
                let corrupt = |reason: String| StoreError::Corrupt { id: id.clone(), reason };
                let sealed = hex::decode(&sealed_hex).map_err(|e| corrupt(format!("secrets: {e}")))?;
                let secrets = super::open_secrets(&self.secrets, &id, &sealed)?;
                let events = serde_json::from_str(&events).map_err(|e| corrupt(format!("events: {e}")))?;
                let (kind, facilities) = read_kind_and_facilities(&id, &kind, facilities.as_deref())?;
                Ok(Webhook {
                    id,
                    client_id: owner.client_id.clone(),
                    user_id: owner.user_id.clone(),
                    url,
                    events,
                    secrets,
                    kind,
                    facilities,
                })
            })
            .collect()
    }

    /// Locks `<database>.serve-lock` of `url` for this process, or says who holds it; before
    /// the database is opened, so a refused server does not touch it. One serving process per
    /// file is what the list cache relies on (every webhook write passes through it); several
    /// replicas belong on PostgreSQL.
    pub fn lock_for_serving(url: &str) -> StoreResult<Option<std::fs::File>> {
        let options = connect_options(url)?;
        let path = options.get_filename();
        if path == Path::new(":memory:") {
            return Ok(None);
        }
        create_parent(path)?;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".serve-lock");
        let lock_path = PathBuf::from(lock_path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::InUse(format!("opening {}: {e}", lock_path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(format!(
                "another webhooks-server is serving the SQLite database {} (it holds {}); \
                 the SQLite backend is served by one process, run several replicas on PostgreSQL",
                path.display(),
                lock_path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(StoreError::InUse(format!("locking {}: {e}", lock_path.display())))
            }
        }
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) fn writer(&self) -> &Writer {
        &self.writer
    }

    pub(super) fn secrets(&self) -> &SecretBox {
        &self.secrets
    }

    fn webhook(&self, row: &SqliteRow) -> StoreResult<Webhook> {
        read_webhook(row, &self.secrets)
    }

    /// Runs a one-statement write on the writer; returns the rows it affected.
    async fn execute(&self, mut statement: QueryBuilder<'static, Sqlite>) -> StoreResult<u64> {
        self.writer
            .write_statement(move |conn| {
                Box::pin(async move { Ok(statement.build().execute(&mut *conn).await?.rows_affected()) })
            })
            .await
    }
}

impl WebhookStore for SqliteStore {
    /// The count and the insert are one statement on the one writer (inside its write
    /// transaction), so no other write comes between them.
    async fn create(&self, owner: &Owner, new: NewWebhook, limit: u32) -> StoreResult<Option<Webhook>> {
        let (webhook, mut insert) = Sql::<Sqlite>::create(&self.secrets, owner, new, limit)?;
        let created = self
            .writer
            .write_statement(move |conn| {
                Box::pin(async move {
                    let done = insert.build().execute(&mut *conn).await?;
                    Ok((done.rows_affected() == 1).then_some(webhook))
                })
            })
            .await;
        self.lists.invalidate(owner);
        created
    }

    async fn list(&self, owner: &Owner, kind: WebhookKind) -> StoreResult<Vec<Webhook>> {
        let generation = match self.lists.get(owner, kind) {
            Ok(cached) => return Ok(cached.as_ref().clone()),
            Err(generation) => generation,
        };
        let listed = Arc::new(self.read_list(owner, kind).await?);
        self.lists.fill(owner, kind, generation, listed.clone());
        Ok(Arc::unwrap_or_clone(listed))
    }

    async fn get(&self, owner: &Owner, kind: WebhookKind, id: &str) -> StoreResult<Option<Webhook>> {
        Sql::<Sqlite>::fetch_webhook(&self.pool, &self.secrets, owner, kind, id).await
    }

    async fn update(
        &self,
        owner: &Owner,
        kind: WebhookKind,
        id: &str,
        update: WebhookUpdate,
    ) -> StoreResult<Option<Webhook>> {
        let mut statement = Sql::<Sqlite>::update(&self.secrets, owner, kind, id, &update)?;
        let row = self
            .writer
            .write_statement(move |conn| {
                Box::pin(async move { Ok(statement.build().fetch_optional(&mut *conn).await?) })
            })
            .await;
        self.lists.invalidate(owner);
        row?.as_ref().map(|row| self.webhook(row)).transpose()
    }

    async fn delete(&self, owner: &Owner, kind: WebhookKind, id: &str) -> StoreResult<bool> {
        let deleted = self.execute(Sql::<Sqlite>::delete(owner, kind, id)).await.map(|n| n > 0);
        self.lists.invalidate(owner);
        deleted
    }
}

/// Access changes no webhook (a webhook's facilities are its own), so the list cache stays.
impl AccessStore for SqliteStore {
    async fn facilities_of(&self, user_id: &str) -> StoreResult<Vec<String>> {
        Sql::<Sqlite>::fetch_facilities(&self.pool, user_id).await
    }

    /// Both statements in one job on the writer (its savepoint): readers and publications see
    /// the old set or the new one.
    async fn set_facilities(&self, user_id: &str, facilities: &[String]) -> StoreResult<Vec<String>> {
        let [mut clear, mut insert] = Sql::<Sqlite>::set_facilities(user_id, facilities);
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    clear.build().execute(&mut *conn).await?;
                    insert.build().execute(&mut *conn).await?;
                    Ok(())
                })
            })
            .await?;
        Ok(facilities.to_vec())
    }

    /// One statement on the one writer: the next position is read and taken with no write between.
    async fn grant(&self, user_id: &str, facility_id: &str) -> StoreResult<bool> {
        Ok(self.execute(Sql::<Sqlite>::grant(user_id, facility_id)).await? == 1)
    }
}
