//! Group commit for the one SQLite writer.
//!
//! With `synchronous = FULL` every commit waits for the disk. Writers queue their jobs here;
//! one task runs every queued job inside a single transaction (each in its own savepoint, so
//! a failing job rolls back alone), commits once, and only then answers each caller. A `201`
//! is still on disk before it is sent, but a burst of writes costs one sync, not one each.

use std::future::Future;
use std::pin::Pin;

use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// A job's work on the writer's connection.
pub type JobFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;

/// Answers the caller once the batch's commit is known.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Work = Box<
    dyn for<'c> FnOnce(&'c mut SqliteConnection) -> Pin<Box<dyn Future<Output = (bool, Reply)> + Send + 'c>>
        + Send,
>;

struct Job {
    work: Work,
    /// A job of several statements runs in a savepoint, so it can roll back alone. A single
    /// statement needs none: SQLite undoes a failed statement without ending the transaction.
    savepoint: bool,
}

/// Most jobs in one transaction; bounds how long one commit makes its first caller wait.
const MAX_BATCH: usize = 256;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: SqliteConnection) -> Self {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(conn, queue));
        Self { jobs }
    }

    /// Runs `work` in the next batch; returns its result once the batch is committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> JobFuture<'c, T> + Send + 'static,
    {
        self.submit(work, true).await
    }

    /// Like [`Writer::write`], for work that is one SQL statement (no savepoint needed).
    pub async fn write_statement<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> JobFuture<'c, T> + Send + 'static,
    {
        self.submit(work, false).await
    }

    async fn submit<T, F>(&self, work: F, savepoint: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> JobFuture<'c, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let work: Work = Box::new(move |conn| {
            Box::pin(async move {
                let result = work(conn).await;
                let ok = result.is_ok();
                let reply: Reply = Box::new(move |commit| {
                    let _ = reply.send(match commit {
                        Ok(()) => result,
                        Err(e) => result.and(Err(StoreError::Commit(e))),
                    });
                });
                (ok, reply)
            })
        });
        self.jobs.send(Job { work, savepoint }).await.map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> Result<(), String> {
    sqlx::query(sql).execute(&mut *conn).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn run(mut conn: SqliteConnection, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let in_transaction = exec(&mut conn, "BEGIN IMMEDIATE").await.is_ok();
        let mut replies = Vec::with_capacity(batch.len());
        for Job { work, savepoint } in batch.drain(..) {
            let savepoint = savepoint && in_transaction;
            if savepoint && exec(&mut conn, "SAVEPOINT job").await.is_err() {
                replies.push((work(&mut conn).await.1, false));
                continue;
            }
            let (ok, reply) = work(&mut conn).await;
            if savepoint {
                if !ok {
                    let _ = exec(&mut conn, "ROLLBACK TO job").await;
                }
                let _ = exec(&mut conn, "RELEASE job").await;
            }
            replies.push((reply, ok));
        }
        let commit = if in_transaction { exec(&mut conn, "COMMIT").await } else { Ok(()) };
        if commit.is_err() {
            let _ = exec(&mut conn, "ROLLBACK").await;
            tracing::error!(error = ?commit, jobs = replies.len(), "a write batch failed to commit");
        }
        for (reply, _) in replies {
            reply(commit.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::ConnectOptions;

    use super::*;

    #[tokio::test]
    async fn a_failing_job_rolls_back_alone_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut setup = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE t (k INTEGER PRIMARY KEY)").execute(&mut setup).await.unwrap();
        let writer = Writer::start(options.connect().await.unwrap());

        // Concurrent jobs land in shared batches; every 10th inserts two rows, the second a duplicate.
        let jobs = (0..200i64).map(|k| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |conn| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO t (k) VALUES (?)").bind(k).execute(&mut *conn).await?;
                            if k % 10 == 0 {
                                sqlx::query("INSERT INTO t (k) VALUES (?)")
                                    .bind(k)
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            Ok(k)
                        })
                    })
                    .await
            })
        });
        let mut failed = Vec::new();
        for job in jobs.collect::<Vec<_>>() {
            if let Err(e) = job.await.unwrap() {
                assert!(matches!(e, StoreError::Database(_)), "{e}");
                failed.push(e);
            }
        }
        assert_eq!(failed.len(), 20);
        let stored: Vec<i64> =
            sqlx::query_scalar("SELECT k FROM t ORDER BY k").fetch_all(&mut setup).await.unwrap();
        assert_eq!(stored, (0..200).filter(|k| k % 10 != 0).collect::<Vec<_>>());
    }
}
