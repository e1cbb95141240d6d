//! The `webhooks-server` process under test: tokens, start-up on a fresh data directory,
//! resource readings from /proc, and a graceful stop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Server {
    pub log: PathBuf,
    pub base: String,
    pub pid: u32,
    child: Child,
}

/// `webhooks-server --data-dir D token …`: the JWT is the last line.
pub async fn token(binary: &Path, data_dir: &Path, sub: &str, scopes: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new(binary);
    cmd.arg("--data-dir").arg(data_dir).args([
        "token",
        "--client-id",
        "bench-client",
        "--sub",
        sub,
        "--ttl",
        "2h",
    ]);
    for scope in scopes {
        cmd.args(["--scope", scope]);
    }
    let out = cmd.output().await.with_context(|| format!("running {}", binary.display()))?;
    if !out.status.success() {
        bail!("token: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout)?;
    Ok(text.lines().last().context("token printed nothing")?.trim().to_owned())
}

impl Server {
    /// Starts `binary --data-dir D --bind 127.0.0.1:0 ARGS… SUBCOMMAND` with stderr to `log`;
    /// for `serve`, waits for `listening on http://ADDR` (`base`), else `base` is empty.
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        log: &Path,
        args: &[String],
        subcommand: &str,
    ) -> anyhow::Result<Self> {
        let log = log.to_owned();
        let stderr = std::fs::File::create(&log)?;
        let mut child = Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--bind", "127.0.0.1:0"])
            // One client creates, lists and polls far more than 100 times a minute.
            .args(["--rate-limit", "0"])
            .args(args)
            .arg(subcommand)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("server pid")?;
        if subcommand != "serve" {
            let mut stdout = child.stdout.take().context("stdout")?;
            tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
            return Ok(Self { log, base: String::new(), pid, child });
        }
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("server did not print its address within 30 s")??
            .with_context(|| format!("server exited at start-up; see {}", log.display()))?;
        let base = first
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line {first:?}"))?
            .trim()
            .to_owned();
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { log, base, pid, child })
    }

    /// `None` while running; the exit status once it has ended (e.g. crashed).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// VmRSS and VmHWM (peak) in MiB.
    pub fn memory_mb(&self) -> Option<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU seconds (user + system) the server has used so far.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs_of(&format!("/proc/{}/stat", self.pid))
    }

    /// SIGTERM, then up to `grace` for a clean exit (it finishes deliveries in flight), then SIGKILL.
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<String> {
        if let Some(status) = self.exited() {
            return Ok(format!("had already exited: {status}"));
        }
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().await;
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => Ok(format!("stopped on SIGTERM: {status}")),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let _ = self.child.kill().await;
                Ok(format!("did NOT stop within {grace:?} of SIGTERM; killed"))
            }
        }
    }
}

/// utime + stime of a /proc/…/stat file, in seconds (USER_HZ = 100 on Linux).
pub fn cpu_secs_of(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The 1-minute load average, and the share of the last 10 s in which some task waited for
/// a CPU (pressure stall information: other work on the machine shows up here).
pub fn load1() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let psi = std::fs::read_to_string("/proc/pressure/cpu").ok().and_then(|p| {
        p.lines().next()?.split_whitespace().find_map(|f| f.strip_prefix("avg10=").map(str::to_owned))
    });
    match psi {
        Some(psi) => format!("{load} (cpu psi {psi}%)"),
        None => load,
    }
}

pub enum Level {
    Warn,
    Error,
}

/// A log line's level when WARN or ERROR (text format without colours, or JSON).
pub fn level(line: &str) -> Option<Level> {
    if line.contains(" ERROR ") || line.contains("\"level\":\"ERROR\"") || line.starts_with("error") {
        Some(Level::Error)
    } else if line.contains(" WARN ") || line.contains("\"level\":\"WARN\"") {
        Some(Level::Warn)
    } else {
        None
    }
}

/// Lines of the server log at WARN or ERROR level (text or JSON format), and the first few.
pub fn log_problems(log: &Path) -> (usize, usize, Vec<String>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (mut warn, mut error, mut samples) = (0, 0, Vec::new());
    for line in text.lines().map(strip_ansi) {
        match level(&line) {
            Some(Level::Error) => error += 1,
            Some(Level::Warn) => warn += 1,
            None => continue,
        }
        if samples.len() < 8 {
            samples.push(line.chars().take(400).collect());
        }
    }
    (warn, error, samples)
}

pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The whole machine's busy CPU seconds (user, nice, system, irq, softirq, steal; not idle or
/// I/O wait), from /proc/stat.
pub fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<f64> = cpu.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0.0)).collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0.0);
    (at(0) + at(1) + at(2) + at(5) + at(6) + at(7)) / 100.0
}

/// CPU used over a window: by the server, by this bench process, and by everything else on
/// the machine (what competed with the measurement).
pub struct CpuWindow {
    started: std::time::Instant,
    busy: f64,
    server: f64,
    bench: f64,
}

pub struct CpuUse {
    pub server_secs: f64,
    pub bench_secs: f64,
    /// Other processes' CPU as a share of all cores, in percent.
    pub others_pct: f64,
}

impl CpuWindow {
    /// `servers`: the processes under test (their CPU is summed).
    pub fn start(servers: &[Server]) -> Self {
        Self {
            started: std::time::Instant::now(),
            busy: machine_busy_secs(),
            server: servers.iter().map(Server::cpu_secs).sum(),
            bench: cpu_secs_of("/proc/self/stat"),
        }
    }

    pub fn end(&self, servers: &[Server]) -> CpuUse {
        let elapsed = self.started.elapsed().as_secs_f64();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
        let server_secs = servers.iter().map(Server::cpu_secs).sum::<f64>() - self.server;
        let bench_secs = cpu_secs_of("/proc/self/stat") - self.bench;
        let others = (machine_busy_secs() - self.busy - server_secs - bench_secs).max(0.0);
        CpuUse { server_secs, bench_secs, others_pct: 100.0 * others / (elapsed * cores) }
    }
}
