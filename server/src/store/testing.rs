//! Test support for the PostgreSQL backend (used by the store's tests and the end-to-end crate):
//! a fresh, uniquely named database per test, dropped when the guard goes out of scope (also
//! when the test panics).

use std::io::Write;
use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

/// The environment variable with the URL of a PostgreSQL server the tests may create databases
/// on (`postgres://root@127.0.0.1:5432/postgres`). Unset: the PostgreSQL tests are skipped.
pub const TEST_DATABASE_ENV: &str = "WEBHOOKS_TEST_DATABASE_URL";

/// A database `webhooks_test_<uuid>` that exists while this value lives.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the new database (the admin URL with its path replaced).
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// A fresh database on the server named by [`TEST_DATABASE_ENV`], or `None` (after printing
    /// why `test` is skipped) when the variable is unset. Panics if the server cannot be used:
    /// a configured server that does not work is a failure, not a skip.
    pub async fn from_env(test: &str) -> Option<Self> {
        match std::env::var(TEST_DATABASE_ENV) {
            Ok(url) if !url.trim().is_empty() => Some(Self::create(url.trim()).await.unwrap_or_else(|e| {
                panic!("{test}: creating a test database via {TEST_DATABASE_ENV}: {e:#}")
            })),
            _ => {
                // Straight to stderr, not `eprintln!`: the test harness captures the latter, and
                // a skip should be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping {test} on PostgreSQL: {TEST_DATABASE_ENV} is not set \
                     (e.g. {TEST_DATABASE_ENV}=postgres://root@127.0.0.1:5432/postgres)"
                );
                None
            }
        }
    }

    /// Creates `webhooks_test_<uuid>` through `admin_url` (any database of the server, as a
    /// role allowed to create databases).
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let database = Self::reserve(admin_url)?;
        let mut conn = PgConnectOptions::from_str(admin_url)?
            .connect()
            .await
            .with_context(|| format!("connecting to {}", crate::redact::url(admin_url)))?;
        conn.execute(format!("CREATE DATABASE {}", database.name).as_str())
            .await
            .context("CREATE DATABASE")?;
        let _ = conn.close().await;
        Ok(database)
    }

    /// A fresh name and its URL, without creating the database (for code that creates it);
    /// dropped all the same if it exists by then.
    pub fn reserve(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("webhooks_test_{}", uuid::Uuid::new_v4().simple());
        let mut url = url::Url::parse(admin_url).context("parsing the database URL")?;
        url.set_path(&format!("/{name}"));
        Ok(Self { url: url.to_string(), name, admin_url: admin_url.to_owned() })
    }
}

impl Drop for TestDatabase {
    /// Drops the database, closing whatever connections are still open on it. Runs on a thread
    /// of its own (with its own runtime): `drop` cannot await, and may run inside a runtime.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = PgConnectOptions::from_str(&admin_url)?.connect().await?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
                let _ = conn.close().await;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop the test database {}: {e:#}", self.name),
            Err(_) => {
                eprintln!("could not drop the test database {}: the dropping thread panicked", self.name)
            }
        }
    }
}
