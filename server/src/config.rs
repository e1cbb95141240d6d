//! The server's settings: one struct, [`Settings`], whose clap attributes declare every
//! setting once (flag, environment variable, default, help). Layers, each overriding the
//! previous: built-in defaults, then an optional TOML file (`--config`, snake_case keys), then
//! environment variables, then flags. The file layer is generic ([`file_arguments`]): a file
//! key is the setting's name, applied only where clap says the value came from a default.
//!
//! Why clap rather than a configuration crate (figment, config): clap already owns three of
//! the four layers and is what renders `--help`; a second library would need the defaults
//! declared a second time to show them in `--help`, and would split comma-separated
//! environment lists (`WEBHOOKS_ALLOWED_ROLES=A,B`) by rules of its own.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::auth::DEFAULT_ALLOWED_ROLE;
use crate::serve::ConnectionLimits;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
/// NestJS's body-parser default, `100kb`.
pub const DEFAULT_BODY_LIMIT: usize = 100 * 1024;
/// The documented Public API rate limit: requests per minute and OAuth client.
pub const DEFAULT_RATE_LIMIT: u32 = 100;
/// The documented retry schedule: after 5, 30 and 60 minutes.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5m,30m,60m";
/// Sixteen connections keep two cores busy with room for slow queries; PostgreSQL's default
/// `max_connections` of 100 still admits several replicas.
pub const DEFAULT_DATABASE_MAX_CONNECTIONS: u32 = 16;
/// A statement that runs longer than a whole request may is a runaway; PostgreSQL cancels it.
pub const DEFAULT_STATEMENT_TIMEOUT: &str = "30s";
/// Counting due deliveries costs a query; a Prometheus scrape is every 15-60 s.
pub const DEFAULT_BACKLOG_REFRESH_INTERVAL: &str = "15s";
/// Webhooks one owner (a client and user) may have. Integrations register a handful (one per
/// environment or event family); a hundred leaves room for that while bounding the deliveries
/// one token can attach to every event of its user (and the work of counting them).
pub const DEFAULT_MAX_WEBHOOKS_PER_OWNER: u32 = 100;
/// Largest published `data`, in bytes of compact JSON (as stored and delivered). The documented
/// payloads take under 200 bytes; 64 KiB leaves ample room for extra fields while the delivered
/// body (`data` plus a short envelope) stays below the 100 kB request limit that receivers built on
/// common frameworks (body-parser's `100kb`) refuse above, and below this server's own body limit.
pub const DEFAULT_EVENT_DATA_LIMIT: usize = 64 * 1024;
/// Below this, documented payloads (a facility id and a user id) would not fit.
const MIN_EVENT_DATA_LIMIT: usize = 256;
/// Deliveries in flight at once: enough to keep slow receivers from starving fast ones, few
/// enough for one small machine's sockets and memory.
pub const DEFAULT_DELIVERY_CONCURRENCY: usize = 128;
/// A claim outlives the longest attempt (the delivery timeout) with room to record it.
pub const DEFAULT_DELIVERY_LEASE: &str = "60s";
/// One attempt, connect to last byte; a receiver should answer long before.
pub const DEFAULT_DELIVERY_TIMEOUT: &str = "15s";
/// Resolving, connecting and the TLS handshake of a delivery. Longer than two lost SYNs
/// (retransmitted after 1 s and 2 s more) plus a TLS round trip, so a lossy path still
/// connects; a destination that never accepts holds a slot for this long, not a whole
/// delivery timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(name = "webhooks-server", version, about = "The Webhooks API server (user and facility webhooks)")]
pub struct Cli {
    /// TOML file with any of the settings (snake_case keys, e.g. `body_limit = 4096`); the
    /// environment and flags override it.
    #[arg(long, env = "WEBHOOKS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Print a JWT accepted by a server started with the same configuration / data directory.
    Token(TokenArgs),
    /// Publish an event straight into the database (a running worker delivers it).
    Publish(PublishArgs),
    /// Run only the delivery worker.
    Worker,
    /// Let a user access facilities (their facility webhooks may name them and receive their
    /// shift events), as an accepted connection or creation request does.
    Grant(GrantArgs),
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The user (the `sub` of their tokens).
    #[arg(long)]
    pub user: String,
    /// A facility id (repeatable, or comma separated).
    #[arg(long = "facility", required = true, value_delimiter = ',')]
    pub facilities: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Event type, e.g. facility.creation.accepted.
    #[arg(long = "type")]
    pub event_type: String,
    /// The user whose webhooks receive it (user events; facility events go by `data.facilityId`).
    #[arg(long)]
    pub user: Option<String>,
    /// The payload, a JSON object.
    #[arg(long)]
    pub data: String,
    /// Idempotency key, unique per publisher.
    #[arg(long)]
    pub id: Option<String>,
    /// The publisher the event is recorded for (publishers over HTTP are their token's client).
    #[arg(long, default_value = "webhooks-server-cli")]
    pub publisher: String,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// OAuth client id, echoed as `clientId` (claim `azp`).
    #[arg(long)]
    pub client_id: String,
    /// The user (claim `sub`).
    #[arg(long)]
    pub sub: String,
    /// Claim `role`.
    #[arg(long, default_value = DEFAULT_ALLOWED_ROLE)]
    pub role: String,
    /// A scope to grant (repeatable; claim `scope`, space separated).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Lifetime of the token.
    #[arg(long, default_value = "1h")]
    pub ttl: humantime::Duration,
}

/// Delays before each retry; a type of its own so that clap parses the whole comma-separated
/// list with [`parse_schedule`] (an empty list: no retries) instead of one value per item.
pub type RetrySchedule = Vec<Duration>;

/// Every setting of the server, declared once: flag, environment variable, default and help
/// here; the TOML file's keys are the field names. [`Settings::load`] layers and validates them.
/// Settings whose default depends on another (`database_url`, `delivery_per_host_concurrency`,
/// `delivery_connect_timeout`) are `None` until set; their accessors compute the default.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "WEBHOOKS_BIND", global = true, default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,
    /// Directory for the SQLite database and generated keys.
    #[arg(long, env = "WEBHOOKS_DATA_DIR", global = true, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Database URL or path; `postgres://…` selects PostgreSQL [default: sqlite://<data-dir>/webhooks.db].
    #[arg(long, env = "WEBHOOKS_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Most database connections in the pool.
    #[arg(long, env = "WEBHOOKS_DATABASE_MAX_CONNECTIONS", global = true, default_value_t = DEFAULT_DATABASE_MAX_CONNECTIONS)]
    pub database_max_connections: u32,
    /// PostgreSQL `statement_timeout` of every connection; 0 for none.
    #[arg(long, env = "WEBHOOKS_STATEMENT_TIMEOUT", global = true, default_value = DEFAULT_STATEMENT_TIMEOUT, value_parser = humantime::parse_duration)]
    pub statement_timeout: Duration,
    /// HS256 signing secret for tokens, at least 32 bytes (`openssl rand -base64 32`)
    /// [default: generated into <data-dir>/jwt-hs256.key].
    #[arg(long, env = "WEBHOOKS_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// JWKS file with RS256/ES256 public keys of an OpenID Connect provider.
    #[arg(long, env = "WEBHOOKS_JWKS_FILE", global = true)]
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim (tokens without it are refused) [default: not checked].
    #[arg(long, env = "WEBHOOKS_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim (a string or an array holding it; tokens without it are refused)
    /// [default: not checked].
    #[arg(long, env = "WEBHOOKS_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Roles allowed to use the API, comma separated.
    #[arg(long, env = "WEBHOOKS_ALLOWED_ROLES", global = true, value_delimiter = ',', default_value = DEFAULT_ALLOWED_ROLE)]
    pub allowed_roles: Vec<String>,
    /// Key for webhook secrets at rest: 32 bytes, base64 [default: generated into <data-dir>/secrets.key].
    #[arg(long, env = "WEBHOOKS_SECRETS_KEY", global = true, hide_env_values = true)]
    pub secrets_key: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, env = "WEBHOOKS_BODY_LIMIT", global = true, default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    /// Client connections: header, request and idle deadlines, and their cap.
    #[command(flatten)]
    pub connections: ConnectionLimits,
    /// Public API requests per minute and OAuth client (`clientId`), beyond which it answers
    /// 429; 0 turns the limit off.
    #[arg(long, env = "WEBHOOKS_RATE_LIMIT", global = true, default_value_t = DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    /// Most webhooks one owner (client and user) may have.
    #[arg(long, env = "WEBHOOKS_MAX_WEBHOOKS_PER_OWNER", global = true, default_value_t = DEFAULT_MAX_WEBHOOKS_PER_OWNER)]
    pub max_webhooks_per_owner: u32,
    /// Largest published event `data`, in bytes of compact JSON (at least 256).
    #[arg(long, env = "WEBHOOKS_EVENT_DATA_LIMIT", global = true, default_value_t = DEFAULT_EVENT_DATA_LIMIT)]
    pub event_data_limit: usize,
    /// Log format.
    #[arg(long, env = "WEBHOOKS_LOG_FORMAT", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Delays before each retry, comma separated; empty for none.
    #[arg(long, env = "WEBHOOKS_RETRY_SCHEDULE", global = true, default_value = DEFAULT_RETRY_SCHEDULE, value_parser = parse_schedule)]
    pub retry_schedule: RetrySchedule,
    /// PEM file of extra CAs trusted for deliveries (receivers with a private CA).
    #[arg(long, env = "WEBHOOKS_EXTRA_CA_FILE", global = true)]
    pub extra_ca_file: Option<PathBuf>,
    /// Deliver to any address, private and loopback included.
    #[arg(long, env = "WEBHOOKS_ALLOW_PRIVATE_TARGETS", global = true)]
    pub allow_private_targets: bool,
    /// Networks deliveries may reach although not public, comma separated CIDRs.
    #[arg(long = "allow-target", env = "WEBHOOKS_ALLOWED_TARGETS", global = true, value_delimiter = ',')]
    pub allowed_targets: Vec<ipnet::IpNet>,
    /// Do not run the delivery worker inside `serve`.
    #[arg(long, env = "WEBHOOKS_NO_WORKER", global = true)]
    pub no_worker: bool,
    /// Deliveries in flight at once.
    #[arg(long, env = "WEBHOOKS_DELIVERY_CONCURRENCY", global = true, default_value_t = DEFAULT_DELIVERY_CONCURRENCY)]
    pub delivery_concurrency: usize,
    /// How long a worker's claim on a delivery lasts; more than the delivery timeout.
    #[arg(long, env = "WEBHOOKS_DELIVERY_LEASE", global = true, default_value = DEFAULT_DELIVERY_LEASE, value_parser = humantime::parse_duration)]
    pub delivery_lease: Duration,
    /// Total time allowed for one delivery attempt.
    #[arg(long, env = "WEBHOOKS_DELIVERY_TIMEOUT", global = true, default_value = DEFAULT_DELIVERY_TIMEOUT, value_parser = humantime::parse_duration)]
    pub delivery_timeout: Duration,
    /// How often the due-delivery backlog of `/metrics` is counted.
    #[arg(long, env = "WEBHOOKS_BACKLOG_REFRESH_INTERVAL", global = true, default_value = DEFAULT_BACKLOG_REFRESH_INTERVAL, value_parser = humantime::parse_duration)]
    pub backlog_refresh_interval: Duration,
    /// Deliveries in flight at once to one destination (host and port), at most the delivery
    /// concurrency [default: a quarter of the delivery concurrency, at least 1].
    #[arg(long, env = "WEBHOOKS_DELIVERY_PER_HOST_CONCURRENCY", global = true)]
    pub delivery_per_host_concurrency: Option<usize>,
    /// Time allowed to resolve, connect and finish the TLS handshake of a delivery, at most the
    /// delivery timeout [default: 5s, or the delivery timeout if shorter].
    #[arg(long, env = "WEBHOOKS_DELIVERY_CONNECT_TIMEOUT", global = true, value_parser = humantime::parse_duration)]
    pub delivery_connect_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// Parses `args` (the program name first) and layers the `--config` file under the
    /// environment and flags; the settings come out validated. `--help`, `--version` and
    /// malformed flags are a [`clap::Error`] in the chain (call its `exit`).
    pub fn load<I, T>(args: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let command = Self::command();
        let matches = command.clone().try_get_matches_from(&args)?;
        if let Some(path) = matches.get_one::<PathBuf>("config") {
            let extra = file_arguments(&command, &matches, path)?;
            if !extra.is_empty() {
                args.extend(extra);
                let matches = command.try_get_matches_from(&args)?;
                return Self::finish(&matches);
            }
        }
        Self::finish(&matches)
    }

    fn finish(matches: &clap::ArgMatches) -> anyhow::Result<Self> {
        let cli = Self::from_arg_matches(matches)?;
        cli.settings.validate()?;
        Ok(cli)
    }
}

/// The file at `path` as flags, for every key whose setting got its default value (neither the
/// environment nor a flag set it). Unknown keys and values of the wrong shape are errors.
fn file_arguments(
    command: &clap::Command,
    matches: &clap::ArgMatches,
    path: &Path,
) -> anyhow::Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut extra = Vec::new();
    for (key, value) in table {
        let setting = command
            .get_arguments()
            .find(|arg| arg.get_id() == key.as_str() && arg.get_id() != "config")
            .and_then(|arg| Some((arg, arg.get_long()?)));
        let Some((arg, long)) = setting else {
            bail!("{}: unknown setting {key:?}", path.display());
        };
        if matches!(matches.value_source(&key), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let flag = format!("--{long}");
        let shape = || format!("{}: {key} must be a string, a number, a boolean or a list", path.display());
        match (value, arg.get_action()) {
            (toml::Value::Boolean(on), ArgAction::SetTrue) => {
                if on {
                    extra.push(flag.into());
                }
            }
            (toml::Value::Array(items), _) => {
                // An empty list says "none"; where the default is not none, it reaches the
                // setting as one empty value, for validation to refuse.
                if items.is_empty() && !arg.get_default_values().is_empty() {
                    extra.push(format!("{flag}=").into());
                }
                for item in items {
                    extra.push(format!("{flag}={}", scalar(item).with_context(shape)?).into());
                }
            }
            (value, _) => extra.push(format!("{flag}={}", scalar(value).with_context(shape)?).into()),
        }
    }
    Ok(extra)
}

/// A TOML scalar as the text a flag would carry.
fn scalar(value: toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

impl Settings {
    /// Parses `args` (flags only, no program name) over the environment and the defaults,
    /// validated: for tools and tests that build settings without a command line.
    pub fn from_flags<T: Into<OsString> + Clone>(args: impl IntoIterator<Item = T>) -> anyhow::Result<Self> {
        let args = std::iter::once(OsString::from("webhooks-server")).chain(args.into_iter().map(Into::into));
        Ok(Cli::load(args)?.settings)
    }

    /// Settings for a server in `data_dir` with every other value at its default.
    pub fn for_data_dir(data_dir: &Path) -> anyhow::Result<Self> {
        Self::from_flags([OsString::from("--data-dir"), data_dir.as_os_str().to_owned()])
    }

    /// The database: the configured URL, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("webhooks.db").display()),
        }
    }

    pub fn run_worker(&self) -> bool {
        !self.no_worker
    }

    /// The per-host share of the delivery slots: as set, or a quarter of the concurrency (at
    /// least one). A quarter: a destination that hangs holds no more (and all destinations not
    /// known to answer hold at most half together, see `delivery/fair.rs`), while one busy
    /// receiver still gets 32 requests in flight of the default 128 (320 deliveries/s at 100 ms
    /// each; on loopback, more than the server itself sends to one receiver).
    pub fn delivery_per_host_concurrency(&self) -> usize {
        self.delivery_per_host_concurrency.unwrap_or((self.delivery_concurrency / 4).max(1))
    }

    /// As set, or [`DEFAULT_CONNECT_TIMEOUT`] capped by the delivery timeout.
    pub fn delivery_connect_timeout(&self) -> Duration {
        self.delivery_connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT.min(self.delivery_timeout))
    }

    /// Refuses values that would block everything, open what should be closed, or contradict
    /// each other: a misconfiguration is a start-up error, never a silent default.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.allowed_roles.is_empty() || self.allowed_roles.iter().any(|r| r.trim().is_empty()) {
            bail!("allowed_roles is empty or holds an empty role: nobody could use the API");
        }
        if self.max_webhooks_per_owner == 0 {
            bail!("max_webhooks_per_owner must be at least 1, or no webhook could be created");
        }
        if self.event_data_limit < MIN_EVENT_DATA_LIMIT {
            bail!("event_data_limit must be at least {MIN_EVENT_DATA_LIMIT} bytes, or the documented payloads could not be published");
        }
        if self.delivery_lease <= self.delivery_timeout {
            bail!(
                "delivery_lease ({:?}) must exceed delivery_timeout ({:?}), or deliveries in flight would be claimed twice",
                self.delivery_lease,
                self.delivery_timeout
            );
        }
        if self.database_max_connections == 0 {
            bail!("database_max_connections must be at least 1");
        }
        if self.database_url.as_deref().is_some_and(|url| url.trim().is_empty()) {
            bail!("database_url is empty; leave it unset for SQLite in the data directory");
        }
        validate_connections(&self.connections)?;
        if self.delivery_concurrency == 0 {
            bail!("delivery_concurrency must be at least 1");
        }
        if self.backlog_refresh_interval.is_zero() {
            bail!("backlog_refresh_interval must be more than 0");
        }
        if let Some(secret) = &self.jwt_secret {
            crate::keys::check_hs256_secret(secret)?;
        }
        if let Some(key) = &self.secrets_key {
            crate::crypto::decode_key(key)?;
        }
        non_empty(&self.jwt_issuer, "jwt_issuer")?;
        non_empty(&self.jwt_audience, "jwt_audience")?;
        let (per_host, concurrency) = (self.delivery_per_host_concurrency(), self.delivery_concurrency);
        if per_host == 0 || per_host > concurrency {
            bail!("delivery_per_host_concurrency ({per_host}) must be between 1 and delivery_concurrency ({concurrency})");
        }
        let (connect, timeout) = (self.delivery_connect_timeout(), self.delivery_timeout);
        if connect.is_zero() || connect > timeout {
            bail!("delivery_connect_timeout ({connect:?}) must be above zero and at most delivery_timeout ({timeout:?})");
        }
        Ok(())
    }

    /// What the authenticator needs.
    pub fn auth(&self) -> crate::auth::AuthOptions {
        crate::auth::AuthOptions {
            jwt_secret: self.jwt_secret.clone(),
            jwks_file: self.jwks_file.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            allowed_roles: self.allowed_roles.clone(),
            key_dir: self.data_dir.clone(),
        }
    }

    /// What the store needs.
    pub fn store(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            max_connections: self.database_max_connections,
            statement_timeout: self.statement_timeout,
        }
    }
}

/// A zero deadline would close every connection at once, and no deadline is not on offer.
fn validate_connections(limits: &ConnectionLimits) -> anyhow::Result<()> {
    for (name, value) in [
        ("header_timeout", limits.header_timeout),
        ("request_timeout", limits.request_timeout),
        ("idle_timeout", limits.idle_timeout),
    ] {
        if value.is_zero() {
            bail!("{name} must be more than zero");
        }
    }
    if limits.max_connections == 0 {
        bail!("max_connections must be at least 1");
    }
    Ok(())
}

/// An issuer or audience that is set must say something: an empty one would require an
/// empty claim.
fn non_empty(value: &Option<String>, name: &str) -> anyhow::Result<()> {
    if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
        bail!("{name} is empty; leave it unset to not check it");
    }
    Ok(())
}

/// `5m,30m,60m` → the delays before each retry.
pub fn parse_schedule(text: &str) -> anyhow::Result<RetrySchedule> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            humantime::parse_duration(s).with_context(|| format!("retry schedule: {s:?} is not a duration"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings from `flags` over the file holding `toml` (when given).
    fn load(toml: Option<&str>, flags: &[&str]) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = vec!["--data-dir".into(), dir.path().display().to_string()];
        if let Some(toml) = toml {
            let file = dir.path().join("webhooks.toml");
            std::fs::write(&file, toml).unwrap();
            args.extend(["--config".into(), file.display().to_string()]);
        }
        args.extend(flags.iter().map(|f| f.to_string()));
        Settings::from_flags(args)
    }

    fn error(toml: Option<&str>, flags: &[&str]) -> String {
        match load(toml, flags) {
            Ok(_) => panic!("{toml:?} {flags:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let toml = "bind = \"127.0.0.1:9000\"\nbody_limit = 10\nallowed_roles = [\"NURSE_USER\"]\n";
        let settings = load(Some(toml), &["--body-limit", "20"]).unwrap();
        assert_eq!(settings.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(settings.body_limit, 20);
        assert_eq!(settings.allowed_roles, ["NURSE_USER"]);
        assert!(settings.database_url().starts_with("sqlite://"));

        let defaults = Settings::from_flags(Vec::<String>::new()).unwrap();
        assert_eq!(defaults.bind.to_string(), DEFAULT_BIND);
        assert_eq!(defaults.data_dir, Path::new(DEFAULT_DATA_DIR));
        assert_eq!(defaults.body_limit, DEFAULT_BODY_LIMIT);
        assert_eq!(defaults.allowed_roles, ["FACILITY_USER"]);
        let minutes = |m: u64| Duration::from_secs(60 * m);
        assert_eq!(defaults.retry_schedule, [minutes(5), minutes(30), minutes(60)]);
        assert_eq!(defaults.database_max_connections, 16);
        assert_eq!(defaults.statement_timeout, Duration::from_secs(30));
        assert_eq!(defaults.backlog_refresh_interval, Duration::from_secs(15));
        assert_eq!(defaults.max_webhooks_per_owner, 100);
        assert_eq!(defaults.event_data_limit, 65536);
        assert_eq!(defaults.delivery_concurrency, 128);
        assert_eq!(
            (defaults.delivery_lease, defaults.delivery_timeout),
            (minutes(1), Duration::from_secs(15))
        );
        assert_eq!(defaults.delivery_per_host_concurrency(), 32);
        assert_eq!(defaults.delivery_connect_timeout(), DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(defaults.connections.header_timeout, Duration::from_secs(10));
        assert_eq!(defaults.connections.max_connections, 1024);
        assert_eq!(defaults.log_format, LogFormat::Text);
        assert!(
            defaults.run_worker() && !defaults.allow_private_targets && defaults.allowed_targets.is_empty()
        );
        assert_eq!(parse_schedule("10ms, 20ms,30ms").unwrap(), [10, 20, 30].map(Duration::from_millis));
        assert!(parse_schedule("soon").is_err());
        assert!(load(None, &["--retry-schedule", ""]).unwrap().retry_schedule.is_empty());
        assert_eq!(load(None, &["--statement-timeout", "0"]).unwrap().statement_timeout, Duration::ZERO);
    }

    #[test]
    fn every_kind_of_value_layers_from_the_file() {
        let toml = "statement_timeout = \"2s\"\nallow_private_targets = true\nno_worker = true\n\
                    allowed_targets = [\"10.0.0.0/8\", \"127.0.0.0/8\"]\nretry_schedule = \"1s,2s\"\n\
                    log_format = \"json\"\nheader_timeout = \"3s\"\ndelivery_per_host_concurrency = 3\n\
                    delivery_connect_timeout = \"1500ms\"\ndatabase_url = \"postgres://db/x\"\n";
        let s = load(Some(toml), &[]).unwrap();
        assert_eq!(s.statement_timeout, Duration::from_secs(2));
        assert!(s.allow_private_targets && !s.run_worker());
        assert_eq!(s.allowed_targets, ["10.0.0.0/8".parse().unwrap(), "127.0.0.0/8".parse().unwrap()]);
        assert_eq!(s.retry_schedule, [1, 2].map(Duration::from_secs));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.connections.header_timeout, Duration::from_secs(3));
        assert_eq!(s.delivery_per_host_concurrency(), 3);
        assert_eq!(s.delivery_connect_timeout(), Duration::from_millis(1500));
        assert_eq!(s.database_url(), "postgres://db/x");
        // An empty list of networks is "none"; an empty list of roles would lock everyone out.
        assert!(load(Some("allowed_targets = []\n"), &[]).unwrap().allowed_targets.is_empty());
        assert!(error(Some("allowed_roles = []\n"), &[]).contains("allowed_roles"));
        // Wrong shapes and unknown keys are errors naming the key.
        assert!(error(Some("bnid = \"127.0.0.1:9000\"\n"), &[]).contains("bnid"));
        assert!(error(Some("config = \"other.toml\"\n"), &[]).contains("config"));
        assert!(error(Some("body_limit = \"lots\"\n"), &[]).contains("body-limit"));
        assert!(error(Some("bind = { host = \"x\" }\n"), &[]).contains("bind"));
    }

    #[test]
    fn flags_given_anywhere_override_the_file() {
        use clap::CommandFactory;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("webhooks.toml");
        std::fs::write(&file, "rate_limit = 7\n").unwrap();
        let parse = |flags: &[&str]| {
            let args = [&["webhooks-server", "--config", file.to_str().unwrap()], flags].concat();
            Cli::load(args).map(|cli| cli.settings.rate_limit)
        };
        assert_eq!(parse(&[]).unwrap(), 7);
        assert_eq!(parse(&["--rate-limit", "0"]).unwrap(), 0);
        assert_eq!(parse(&["token", "--client-id", "c", "--sub", "s", "--rate-limit", "5"]).unwrap(), 5);
        for bad in ["", "-1", "ten", "4294967296"] {
            assert!(parse(&["--rate-limit", bad]).is_err(), "{bad:?}");
        }
        let command = Cli::command();
        let arg = command.get_arguments().find(|a| a.get_id() == "rate_limit").expect("--rate-limit");
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some("WEBHOOKS_RATE_LIMIT"));
    }

    #[test]
    fn the_environment_is_a_layer_between_file_and_flags() {
        // A child process, so this test's variables reach clap as real environment.
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("webhooks.toml");
        std::fs::write(&file, "rate_limit = 7\nno_worker = true\n").unwrap();
        let run = |env: &[(&str, &str)], flags: &str| {
            let output = std::process::Command::new(&exe)
                .args(["--exact", "config::tests::print_layered_settings", "--nocapture", "--ignored"])
                .env("LAYERED_CONFIG", &file)
                .env("LAYERED_FLAGS", flags)
                .envs(env.iter().copied())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            stdout.lines().find_map(|l| l.strip_prefix("layered: ").map(str::to_owned)).unwrap_or(stdout)
        };
        assert_eq!(run(&[], ""), "rate_limit=7 run_worker=false");
        assert_eq!(run(&[("WEBHOOKS_RATE_LIMIT", "9")], ""), "rate_limit=9 run_worker=false");
        assert_eq!(run(&[("WEBHOOKS_NO_WORKER", "false")], ""), "rate_limit=7 run_worker=true");
        assert_eq!(run(&[("WEBHOOKS_RATE_LIMIT", "9")], "--rate-limit 3"), "rate_limit=3 run_worker=false");
    }

    /// Run by [`the_environment_is_a_layer_between_file_and_flags`] in a child process.
    #[test]
    #[ignore = "run by the_environment_is_a_layer_between_file_and_flags"]
    fn print_layered_settings() {
        let (Ok(file), Ok(flags)) = (std::env::var("LAYERED_CONFIG"), std::env::var("LAYERED_FLAGS")) else {
            return;
        };
        let mut args = vec!["webhooks-server".to_owned(), "--config".into(), file];
        args.extend(flags.split_whitespace().map(str::to_owned));
        let settings = Cli::load(args).unwrap().settings;
        println!("layered: rate_limit={} run_worker={}", settings.rate_limit, settings.run_worker());
    }

    #[test]
    fn limits_refuse_values_that_would_block_everything() {
        let from_file = load(Some("max_webhooks_per_owner = 7\nevent_data_limit = 4096\n"), &[]).unwrap();
        assert_eq!((from_file.max_webhooks_per_owner, from_file.event_data_limit), (7, 4096));
        assert!(error(None, &["--max-webhooks-per-owner", "0"]).contains("max_webhooks_per_owner"));
        assert!(error(None, &["--event-data-limit", "255"]).contains("event_data_limit"));
        assert!(load(None, &["--event-data-limit", "256"]).is_ok());
        for flag in ["--database-max-connections", "--delivery-concurrency", "--max-connections"] {
            assert!(error(None, &[flag, "0"]).contains(&flag[2..].replace('-', "_")), "{flag}");
        }
        for flag in ["--header-timeout", "--request-timeout", "--idle-timeout", "--backlog-refresh-interval"]
        {
            assert!(error(None, &[flag, "0s"]).contains(&flag[2..].replace('-', "_")), "{flag}");
        }
        assert!(error(None, &["--database-url", " "]).contains("database_url"));
        assert!(error(None, &["--delivery-lease", "15s"]).contains("delivery_lease"));
    }

    #[test]
    fn delivery_shares_and_timeouts_are_validated() {
        let small = load(None, &["--delivery-concurrency", "4"]).unwrap();
        assert_eq!(small.delivery_per_host_concurrency(), 1, "a quarter, at least one");
        let given = load(
            None,
            &[
                "--delivery-concurrency=64",
                "--delivery-per-host-concurrency=64",
                "--delivery-connect-timeout=2s",
            ],
        )
        .unwrap();
        assert_eq!(
            (given.delivery_per_host_concurrency(), given.delivery_connect_timeout()),
            (64, Duration::from_secs(2))
        );
        // A short delivery timeout bounds the default connect timeout.
        let short = load(None, &["--delivery-timeout", "3s"]).unwrap();
        assert_eq!(short.delivery_connect_timeout(), Duration::from_secs(3));
        for (flags, message) in [
            (["--delivery-per-host-concurrency", "0"], "delivery_per_host_concurrency (0)"),
            (["--delivery-per-host-concurrency", "129"], "delivery_per_host_concurrency (129)"),
            (["--delivery-connect-timeout", "0s"], "delivery_connect_timeout (0ns)"),
            (["--delivery-connect-timeout", "16s"], "delivery_connect_timeout (16s)"),
        ] {
            let err = error(None, &flags);
            assert!(err.contains(message), "{err}");
        }
    }

    #[test]
    fn weak_keys_and_empty_claims_settings_are_start_up_errors() {
        for (toml, flags, expected) in [
            ("jwt_secret = \"\"\n", &[][..], "jwt_secret"),
            ("jwt_secret = \"short\"\n", &[], "jwt_secret"),
            ("", &["--jwt-secret="], "jwt_secret"),
            ("", &["--jwt-secret", &"x".repeat(31)], "jwt_secret"),
            ("secrets_key = \"\"\n", &[], "secrets_key"),
            ("secrets_key = \"c2hvcnQ=\"\n", &[], "secrets_key"),
            ("jwt_issuer = \"\"\n", &[], "jwt_issuer"),
            ("jwt_audience = \" \"\n", &[], "jwt_audience"),
            ("backlog_refresh_interval = \"0s\"\n", &[], "backlog_refresh_interval"),
        ] {
            let err = error(Some(toml), flags);
            assert!(err.contains(expected), "{toml:?}: {err}");
            if expected.ends_with("secret") || expected.ends_with("key") {
                assert!(err.contains("openssl rand -base64 32"), "{err}");
            }
        }
        let good =
            format!("jwt_secret = \"{}\"\nsecrets_key = \"{}\"\n", "x".repeat(32), "A".repeat(43) + "=");
        assert!(load(Some(&good), &[]).is_ok());
    }

    /// The README's table is written from these declarations: every setting appears with its
    /// flag, its variable and its default, so the two cannot drift apart.
    #[test]
    fn the_readme_table_lists_every_setting_as_declared() {
        use clap::CommandFactory;
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `--")).collect();
        let command = Cli::command();
        let settings =
            command.get_arguments().filter(|a| !["help", "version"].contains(&a.get_id().as_str()));
        let mut checked = 0;
        for arg in settings {
            let long = format!("`--{}", arg.get_long().unwrap());
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap();
            let row = rows
                .iter()
                .find(|r| r.split('|').nth(1).is_some_and(|flags| flags.contains(&long)))
                .unwrap_or_else(|| panic!("README: no row for {long}`"));
            assert!(row.contains(&format!("`{env}`")), "README row for {long}` lacks `{env}`: {row}");
            let defaults: Vec<_> = arg.get_default_values().iter().map(|v| v.to_string_lossy()).collect();
            if !defaults.is_empty() && arg.get_action().takes_values() {
                let default = format!("`{}`", defaults.join(","));
                let cell = row.rsplit('|').nth(1).unwrap_or_default();
                assert!(cell.contains(&default), "README row for {long}` lacks the default {default}: {row}");
            }
            checked += 1;
        }
        let listed: usize =
            rows.iter().map(|r| r.split('|').nth(1).unwrap_or_default().matches("`--").count()).sum();
        assert_eq!(checked, listed, "README lists flags that are not settings");
    }
}
