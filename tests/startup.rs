//! Start-up of the real binary (`webhooks-server-under-test`) as a subprocess: keys generated
//! by processes racing on a fresh data directory, weak keys refused, database passwords kept
//! out of errors.

use std::path::Path;
use std::time::Duration;

use tokio::task::JoinSet;
use webhooks_e2e::process::{cli_token, server_command, ServerProcess};
use webhooks_e2e::raw_http_client;

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
