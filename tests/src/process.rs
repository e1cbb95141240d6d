//! The real `webhooks-server` binary as a subprocess, for the tests that kill it (`kill -9`)
//! or run several replicas. Integration tests pass the binary's path
//! (`env!("CARGO_BIN_EXE_webhooks-server-under-test")`: only they can name it).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `binary --data-dir DIR`, configured by flags only: settings from the environment of whoever
/// runs the tests (`WEBHOOKS_*`) must not leak in. The one exception, `WEBHOOKS_RATE_LIMIT=0`,
/// turns the rate limit off (these tests send more than a client's 100 requests a minute); a
/// test's own `--rate-limit` flag overrides it.
pub fn server_command(binary: &str, data_dir: &Path) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WEBHOOKS_") {
            command.env_remove(name);
        }
    }
    command.env("WEBHOOKS_RATE_LIMIT", "0").arg("--data-dir").arg(data_dir);
    command
}

/// A running server process.
pub struct ServerProcess {
    pub child: Child,
    pub base_url: String,
    pub log: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with `--bind 127.0.0.1:0` and stderr appended to `log` (a restarted
    /// server keeps its predecessor's lines), then waits for its first stdout line,
    /// `listening on http://ADDR`, which it prints once the port is bound and the database open.
    pub async fn spawn(mut command: Command, log: &Path) -> Self {
        let log_file =
            std::fs::OpenOptions::new().create(true).append(true).open(log).expect("opening the server log");
        let mut child = command
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
        let Some(base_url) =
            first.as_deref().and_then(|l| l.strip_prefix("listening on ")).map(str::to_owned)
        else {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("the server did not announce its address (first line {first:?}); its log:\n{log}");
        };
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, base_url, log: log.to_owned() }
    }

    /// SIGKILL, and the exit status once reaped.
    pub async fn kill_9(&mut self) -> ExitStatus {
        self.child.start_kill().expect("sending SIGKILL");
        self.child.wait().await.expect("reaping the server")
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A token from the binary's own `token` command (it prints the token as its last line).
pub async fn cli_token(binary: &str, data_dir: &Path, client_id: &str, sub: &str, scopes: &[&str]) -> String {
    let mut command = server_command(binary, data_dir);
    command.args(["token", "--client-id", client_id, "--sub", sub]);
    for scope in scopes {
        command.args(["--scope", scope]);
    }
    let output = command.output().await.expect("running the token command");
    assert!(output.status.success(), "token command failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_owned()
}
