use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row, SqlitePool};

use super::writer::Writer;
use super::{NewWebhook, Owner, StoreError, Webhook, WebhookUpdate};
use crate::crypto::SecretBox;

const COLUMNS: &str = "id, client_id, user_id, url, events, secrets";

#[derive(Clone)]
pub struct Store {
    /// Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// The one writer, with group commit. SQLite takes one write transaction at a time anyway;
    /// one queue is fair and immediate, where several writing connections would meet SQLite's
    /// busy handler and its sleeps.
    writer: Writer,
    secrets: SecretBox,
}

impl Store {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or a path) and migrates it.
    pub async fn connect(url: &str, secrets: SecretBox) -> Result<Self, StoreError> {
        let url = if url.starts_with("sqlite:") { url.to_owned() } else { format!("sqlite://{url}") };
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is synced at every commit, so an acknowledged write survives power loss too.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(parent) = std::path::Path::new(options.get_filename()).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Crypto(e.into()))?;
            }
        }
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let writer = Writer::start(options.connect().await?);
        Ok(Self { pool, writer, secrets })
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
        let sealed = self.seal(&webhook.id, &webhook.secrets)?;
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let now = now_ms();
                    sqlx::query(
                        "INSERT INTO webhooks (id, client_id, user_id, url, events, secrets, created_at, updated_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&webhook.id)
                    .bind(&webhook.client_id)
                    .bind(&webhook.user_id)
                    .bind(&webhook.url)
                    .bind(to_json(&webhook.events))
                    .bind(sealed)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    Ok(webhook)
                })
            })
            .await
    }

    pub async fn list(&self, owner: &Owner) -> Result<Vec<Webhook>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE client_id = ? AND user_id = ? ORDER BY seq"
        ))
        .bind(&owner.client_id)
        .bind(&owner.user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| self.webhook(row)).collect()
    }

    pub async fn get(&self, owner: &Owner, id: &str) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE id = ? AND client_id = ? AND user_id = ?"
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
        let secrets = update.secrets.as_ref().map(|s| self.seal(id, s)).transpose()?;
        let (owner, id) = (owner.clone(), id.to_owned());
        let row = self
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(&format!(
                        "UPDATE webhooks
                            SET url = COALESCE(?, url), events = ?, secrets = COALESCE(?, secrets), updated_at = ?
                          WHERE id = ? AND client_id = ? AND user_id = ?
                      RETURNING {COLUMNS}"
                    ))
                    .bind(&update.url)
                    .bind(to_json(&update.events))
                    .bind(secrets)
                    .bind(now_ms())
                    .bind(&id)
                    .bind(&owner.client_id)
                    .bind(&owner.user_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    Ok(row)
                })
            })
            .await?;
        row.as_ref().map(|row| self.webhook(row)).transpose()
    }

    pub async fn delete(&self, owner: &Owner, id: &str) -> Result<bool, StoreError> {
        let (owner, id) = (owner.clone(), id.to_owned());
        self.writer
            .write(move |conn| {
                Box::pin(async move {
                    let done =
                        sqlx::query("DELETE FROM webhooks WHERE id = ? AND client_id = ? AND user_id = ?")
                            .bind(&id)
                            .bind(&owner.client_id)
                            .bind(&owner.user_id)
                            .execute(&mut *conn)
                            .await?;
                    Ok(done.rows_affected() > 0)
                })
            })
            .await
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) fn writer(&self) -> &Writer {
        &self.writer
    }

    pub(super) fn open_secrets(&self, id: &str, sealed: &[u8]) -> Result<Vec<String>, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { id: id.to_owned(), reason };
        let plain = self.secrets.open(sealed, id.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
        serde_json::from_slice(&plain).map_err(|e| corrupt(format!("secrets: {e}")))
    }

    fn seal(&self, id: &str, secrets: &[String]) -> Result<Vec<u8>, StoreError> {
        Ok(self.secrets.seal(to_json(secrets).as_bytes(), id.as_bytes())?)
    }

    fn webhook(&self, row: &SqliteRow) -> Result<Webhook, StoreError> {
        let id: String = row.try_get("id")?;
        let corrupt = |reason: String| StoreError::Corrupt { id: id.clone(), reason };
        let events: String = row.try_get("events")?;
        let sealed: Vec<u8> = row.try_get("secrets")?;
        let secrets = self.open_secrets(&id, &sealed)?;
        Ok(Webhook {
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            url: row.try_get("url")?,
            events: serde_json::from_str(&events).map_err(|e| corrupt(format!("events: {e}")))?,
            secrets,
            id,
        })
    }
}

fn to_json(values: &[String]) -> String {
    serde_json::Value::from(values).to_string()
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &std::path::Path) -> Store {
        Store::connect(&dir.join("t.db").display().to_string(), SecretBox::new(&[1; 32]).unwrap())
            .await
            .unwrap()
    }

    fn owner(c: &str, u: &str) -> Owner {
        Owner { client_id: c.into(), user_id: u.into() }
    }

    #[tokio::test]
    async fn crud_is_scoped_to_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let a = owner("c1", "u1");
        let b = owner("c2", "u1");
        let new = NewWebhook {
            url: "https://a.example/x".into(),
            events: vec!["all".into()],
            secrets: vec!["s1".into(), "s2".into()],
        };
        let created = store.create(&a, new).await.unwrap();
        assert_eq!(store.get(&a, &created.id).await.unwrap().as_ref(), Some(&created));
        assert_eq!(store.get(&b, &created.id).await.unwrap(), None);
        assert!(store.list(&b).await.unwrap().is_empty());
        let update =
            WebhookUpdate { url: None, events: vec!["facility.creation.accepted".into()], secrets: None };
        assert_eq!(store.update(&b, &created.id, update.clone()).await.unwrap(), None);
        let updated = store.update(&a, &created.id, update).await.unwrap().unwrap();
        assert_eq!(updated.url, created.url);
        assert_eq!(updated.secrets, created.secrets);
        assert_eq!(updated.events, ["facility.creation.accepted"]);
        assert!(!store.delete(&b, &created.id).await.unwrap());
        assert!(store.delete(&a, &created.id).await.unwrap());
        assert!(store.list(&a).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn secrets_are_not_stored_in_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let secret = "plain-text-secret-that-must-not-appear";
        store
            .create(
                &owner("c", "u"),
                NewWebhook {
                    url: "https://a.example".into(),
                    events: vec!["all".into()],
                    secrets: vec![secret.into()],
                },
            )
            .await
            .unwrap();
        store.close().await;
        for name in ["t.db", "t.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{name} holds the secret"
                );
            }
        }
    }
}
