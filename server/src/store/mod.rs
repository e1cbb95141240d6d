//! Durable state. SQLite (WAL, `synchronous = FULL`) is the embedded default: a `201` is on
//! disk before it is sent.

mod delivery;
mod sqlite;
mod writer;

pub use delivery::{
    event_body, AttemptOutcome, ClaimedDelivery, LogEntry, LogQuery, LoggedAttempt, NewEvent, PublishedEvent,
    Target,
};
pub use sqlite::Store;

/// Who owns a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}
