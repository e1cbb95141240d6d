//! A `201` is on disk: `kill -9` right after the last one loses nothing. Runs the real binary
//! (built from `server/src/main.rs` as `webhooks-server-under-test`) as a subprocess.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use webhooks_client::types::{CreateUserWebhookRequest, UserWebhookEvent as Event};

const BIN: &str = env!("CARGO_BIN_EXE_webhooks-server-under-test");
const WEBHOOKS: usize = 20;

/// The binary configured by flags only: settings from the environment of whoever runs the
/// tests (`WEBHOOKS_*`) must not leak in.
fn server_command(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WEBHOOKS_") {
            command.env_remove(name);
        }
    }
    command.arg("--data-dir").arg(data_dir);
    command
}

struct Running {
    child: Child,
    base_url: String,
}

/// Starts the server on port 0 and waits for its first stdout line, `listening on http://ADDR`,
/// which it prints once the port is bound and the database is open.
async fn start(data_dir: &Path, log: &Path) -> Running {
    let log_file = std::fs::File::create(log).expect("creating the server log");
    let mut child = server_command(data_dir)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .expect("starting the server binary");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .ok()
        .and_then(|line| line.ok().flatten());
    let Some(base_url) = first.as_deref().and_then(|l| l.strip_prefix("listening on ")).map(str::to_owned)
    else {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("the server did not announce its address (first line {first:?}); its log:\n{log}");
    };
    // Keep reading stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running { child, base_url }
}

/// A token from the binary's own `token` command (it prints the token as its last line).
async fn token(data_dir: &Path, client_id: &str, sub: &str) -> String {
    let output = server_command(data_dir)
        .args(["token", "--client-id", client_id, "--sub", sub])
        .output()
        .await
        .expect("running the token command");
    assert!(output.status.success(), "token command failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned()
}

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
    let mut first = start(data_dir.path(), &logs.path().join("first.log")).await;
    let token = token(data_dir.path(), "crash-client", "crash-user").await;
    let client = webhooks_client::with_token(&first.base_url, &token).unwrap();

    let mut created = BTreeMap::new();
    for i in 0..WEBHOOKS {
        // Half with given secrets, half with generated ones: both must survive.
        let secrets = (i % 2 == 0).then(|| vec![format!("given-secret-{i}")]);
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
    first.child.start_kill().expect("sending SIGKILL");
    let status = first.child.wait().await.expect("reaping the server");
    assert_eq!(status.signal(), Some(9), "the server died of SIGKILL ({status})");

    let second = start(data_dir.path(), &logs.path().join("second.log")).await;
    // The same data dir keeps the signing key: the old token is still accepted.
    let client = webhooks_client::with_token(&second.base_url, &token).unwrap();
    let listed = list(&client).await;
    assert_eq!(listed.len(), WEBHOOKS);
    assert_eq!(listed, created, "ids, urls, events and secrets all survived");
}
