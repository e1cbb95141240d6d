//! A `201` is on disk: `kill -9` right after the last one loses nothing. Runs the real binary
//! (built from `server/src/main.rs` as `webhooks-server-under-test`) as a subprocess.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use serde_json::Value;
use webhooks_client::types::{CreateUserWebhookRequest, UserWebhookEvent as Event};
use webhooks_e2e::process::{cli_token, server_command, ServerProcess};

const BIN: &str = env!("CARGO_BIN_EXE_webhooks-server-under-test");
const WEBHOOKS: usize = 20;

/// The caller's webhooks by id.
async fn list(client: &webhooks_client::Client) -> BTreeMap<String, Value> {
    let listed = client.list_user_webhooks().await.expect("listing");
    assert_eq!(listed.status(), 200);
    listed.into_inner().data.into_iter().map(|w| (w.id.clone(), serde_json::to_value(w).unwrap())).collect()
}

#[tokio::test]
async fn kill_9_right_after_201_loses_nothing() {
    webhooks_e2e::install_crypto_provider();
    let data_dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let dir = data_dir.path();
    let start = |log: &str| {
        let log = logs.path().join(log);
        async move { ServerProcess::spawn(server_command(BIN, dir), &log).await }
    };
    let mut first = start("first.log").await;
    let token = cli_token(BIN, dir, "crash-client", "crash-user", &[]).await;
    let client = webhooks_client::with_token(&first.base_url, &token).unwrap();

    let mut created = BTreeMap::new();
    for i in 0..WEBHOOKS {
        // Half with given secrets, half with generated ones: both must survive.
        let secrets = (i % 2 == 0).then(|| vec![format!("given-secret-{i}").parse().unwrap()]);
        let request = CreateUserWebhookRequest {
            url: format!("https://hook-{i}.example.com/path"),
            events: vec![Event::FacilityCreationAccepted, Event::All],
            secrets,
        };
        let response = client.create_user_webhook(&request).await.unwrap();
        assert_eq!(response.status(), 201);
        let w = response.into_inner().data;
        created.insert(w.id.clone(), serde_json::to_value(w).unwrap());
    }

    // SIGKILL immediately after the last 201: no graceful shutdown, no pool close.
    let status = first.kill_9().await;
    assert_eq!(status.signal(), Some(9), "the server died of SIGKILL ({status})");

    let second = start("second.log").await;
    // The same data dir keeps the signing key: the old token is still accepted.
    let client = webhooks_client::with_token(&second.base_url, &token).unwrap();
    let listed = list(&client).await;
    assert_eq!(listed.len(), WEBHOOKS);
    assert_eq!(listed, created, "ids, urls, events and secrets all survived");
}

/// The SQLite backend is served by one process (its list cache relies on seeing every write):
/// a second `serve` on the same database refuses to start and says why; once the first is gone
/// (even by SIGKILL), a new one starts.
#[tokio::test]
async fn a_second_server_on_one_sqlite_database_refuses_to_start() {
    let data_dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut first =
        ServerProcess::spawn(server_command(BIN, data_dir.path()), &logs.path().join("first.log")).await;
    // Bounded: a second server that did start would never exit on its own.
    let second =
        server_command(BIN, data_dir.path()).args(["--bind", "127.0.0.1:0"]).kill_on_drop(true).output();
    let second = tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("a second server on the same database kept running")
        .expect("running a second server");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second server started: {stderr}");
    assert!(
        stderr.contains("another webhooks-server is serving the SQLite database"),
        "the refusal says why: {stderr}"
    );
    first.kill_9().await;
    let third =
        ServerProcess::spawn(server_command(BIN, data_dir.path()), &logs.path().join("third.log")).await;
    assert!(third.base_url.starts_with("http://127.0.0.1:"));
}
