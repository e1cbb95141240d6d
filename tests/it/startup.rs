//! Start-up of the real binary (`webhooks-server-under-test`) as a subprocess: keys generated
//! by processes racing on a fresh data directory, weak keys refused, database passwords kept
//! out of errors, and the backlog gauge of `/metrics` counted in the background rather than
//! per scrape (a process of its own: the metrics recorder is process-wide).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinSet;
use webhooks_e2e::process::{cli_token, server_command, ServerProcess};
use webhooks_e2e::{raw_http_client, PUBLISH_SCOPE};

const BIN: &str = env!("CARGO_BIN_EXE_webhooks-server-under-test");

/// Environment variables given to a server process.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Runs `args` (a command that is expected to fail fast) and returns its stderr.
async fn failing_start(data_dir: &Path, env: Env<'_>, args: &[&str]) -> String {
    let mut command = server_command(BIN, data_dir);
    command.envs(env.iter().copied()).args(args).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("{env:?} {args:?} kept running"))
        .expect("running the server binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{env:?} {args:?} succeeded: {stdout}");
    assert!(!stdout.contains("listening on"), "{env:?} {args:?} served: {stdout}");
    stderr
}

/// Token commands started together on a fresh data directory, then a server on it: every token
/// is accepted. The end-to-end view of the race; `keys`'s unit test, with threads released at
/// once, is the one that catches an unsafe publication (processes seldom start that close).
#[tokio::test]
async fn processes_starting_together_on_a_fresh_data_dir_share_one_key() {
    webhooks_e2e::install_crypto_provider();
    let data_dir = tempfile::tempdir().unwrap();
    let mut minting = JoinSet::new();
    for i in 0..8 {
        let dir = data_dir.path().to_owned();
        minting.spawn(async move { cli_token(BIN, &dir, "client-a", &format!("user-{i}"), &[]).await });
    }
    let tokens = minting.join_all().await;
    let key = std::fs::read_to_string(data_dir.path().join("jwt-hs256.key")).unwrap();
    assert_eq!(key.trim().len(), 44, "base64 of 32 bytes: {key:?}");

    let logs = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::spawn(server_command(BIN, data_dir.path()), &logs.path().join("server.log")).await;
    let http = raw_http_client();
    for token in &tokens {
        let listed = http
            .get(format!("{}/api/v2/public/webhooks/user", server.base_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), 200, "a token minted during the race is refused");
    }
    let stray: Vec<_> = std::fs::read_dir(data_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "temporary key files left behind: {stray:?}");
}

#[tokio::test]
async fn empty_or_short_keys_stop_the_start_with_advice() {
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path();
    let toml = dir.join("webhooks.toml");
    std::fs::write(&toml, "jwt_secret = \"only-twenty-one-bytes\"\n").unwrap();
    let toml = toml.to_str().unwrap();
    let cases: [(Env, &[&str], &str); 6] = [
        (&[("WEBHOOKS_JWT_SECRET", "")], &["serve"], "jwt_secret"),
        (&[("WEBHOOKS_JWT_SECRET", "")], &["token", "--client-id", "c", "--sub", "u"], "jwt_secret"),
        (&[], &["--jwt-secret", "short", "serve"], "jwt_secret"),
        (&[], &["--config", toml, "serve"], "jwt_secret"),
        (&[("WEBHOOKS_SECRETS_KEY", "")], &["serve"], "secrets_key"),
        (&[], &["--secrets-key", "c2hvcnQ=", "worker"], "secrets_key"),
    ];
    for (env, args, setting) in cases {
        let stderr = failing_start(dir, env, &[&["--bind", "127.0.0.1:0"], args].concat()).await;
        assert!(stderr.contains(setting), "{env:?} {args:?}: {stderr}");
        assert!(stderr.contains("openssl rand -base64 32"), "{env:?} {args:?}: {stderr}");
    }
    std::fs::write(dir.join("jwt-hs256.key"), "").unwrap();
    let stderr = failing_start(dir, &[], &["token", "--client-id", "c", "--sub", "u"]).await;
    assert!(stderr.contains(&dir.join("jwt-hs256.key").display().to_string()), "{stderr}");
    assert_eq!(std::fs::read_to_string(dir.join("jwt-hs256.key")).unwrap(), "", "left for the operator");
}

#[tokio::test]
async fn the_database_password_is_masked_in_start_up_errors() {
    let data_dir = tempfile::tempdir().unwrap();
    // An invalid port fails at once (a refused connection waits out the pool's timeout).
    let url = "postgres://root:hunter2-Secret@127.0.0.1:notaport/webhooks";
    for args in [
        vec!["--database-url", url, "--bind", "127.0.0.1:0", "serve"],
        vec![
            "--database-url",
            url,
            "publish",
            "--type",
            "facility.creation.accepted",
            "--user",
            "u",
            "--data",
            r#"{"facilityId":"F"}"#,
        ],
    ] {
        let stderr = failing_start(data_dir.path(), &[], &args).await;
        assert!(stderr.contains("postgres://root:***@127.0.0.1:notaport/webhooks"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    }
}

/// `webhook_deliveries_due` in a `/metrics` text, if present.
fn backlog(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix("webhook_deliveries_due ")?.trim().parse().ok())
}

/// A server without worker (published deliveries stay due) refreshing its backlog every
/// `interval`, with one webhook of `user-1` for every event type.
struct BacklogServer {
    process: ServerProcess,
    publisher: String,
    _data_dir: tempfile::TempDir,
    _logs: tempfile::TempDir,
}

impl BacklogServer {
    async fn start(interval: &str) -> Self {
        webhooks_e2e::install_crypto_provider();
        let data_dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let mut command = server_command(BIN, data_dir.path());
        command.args(["--no-worker", "--backlog-refresh-interval", interval]);
        let process = ServerProcess::spawn(command, &logs.path().join("server.log")).await;
        let owner = cli_token(BIN, data_dir.path(), "client-a", "user-1", &[]).await;
        let publisher = cli_token(BIN, data_dir.path(), "publisher", "source", &[PUBLISH_SCOPE]).await;
        let created = raw_http_client()
            .post(format!("{}/api/v2/public/webhooks/user", process.base_url))
            .bearer_auth(owner)
            .json(&json!({"url": "https://example.com/hook", "events": ["all"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        Self { process, publisher, _data_dir: data_dir, _logs: logs }
    }

    async fn publish(&self) {
        let event = json!({"eventType": "facility.creation.accepted", "userId": "user-1", "data": {"facilityId": "F-1"}});
        let published = raw_http_client()
            .post(format!("{}/api/v2/internal/events", self.process.base_url))
            .bearer_auth(&self.publisher)
            .json(&event)
            .send()
            .await
            .unwrap();
        assert_eq!(published.status(), 202);
    }

    async fn backlog(&self) -> Option<f64> {
        let metrics =
            raw_http_client().get(format!("{}/metrics", self.process.base_url)).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
        backlog(&metrics.text().await.unwrap())
    }

    /// Scrapes until the gauge reads `expected` (bounded far above the refresh interval).
    async fn wait_for_backlog(&self, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.backlog().await;
            if seen == Some(expected) {
                return;
            }
            assert!(Instant::now() < deadline, "the backlog gauge stayed at {seen:?}, not {expected}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Scrapes only render: with the refresher's next count an hour away, a delivery due since
/// the last count does not show, however often `/metrics` is scraped.
#[tokio::test]
async fn a_scrape_does_not_count_the_backlog() {
    let server = BacklogServer::start("1h").await;
    server.wait_for_backlog(0.0).await;
    server.publish().await;
    for _ in 0..3 {
        assert_eq!(server.backlog().await, Some(0.0), "a scrape counted the due deliveries");
    }
}

#[tokio::test]
async fn the_backlog_gauge_follows_the_database_in_the_background() {
    let server = BacklogServer::start("100ms").await;
    server.wait_for_backlog(0.0).await;
    server.publish().await;
    server.publish().await;
    server.wait_for_backlog(2.0).await;
}
