//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables, then flags (each layer overrides the previous), validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::serve::ConnectionLimits;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
/// NestJS's body-parser default, `100kb`.
pub const DEFAULT_BODY_LIMIT: usize = 100 * 1024;
/// The documented Public API rate limit: requests per minute and OAuth client.
pub const DEFAULT_RATE_LIMIT: u32 = 100;
/// The documented retry schedule: after 5, 30 and 60 minutes.
pub const DEFAULT_RETRY_SCHEDULE: &str = "5m,30m,60m";
/// A request head (a few hundred bytes) takes milliseconds; ten seconds covers slow mobile
/// links and still frees a slow-loris socket quickly.
pub const DEFAULT_HEADER_TIMEOUT: &str = "10s";
/// A whole request, 100 kB body and database included (the statement timeout is 30 s too).
pub const DEFAULT_REQUEST_TIMEOUT: &str = "30s";
/// Longer than the 60 s idle timeout of common load balancers, so they close first and never
/// send on a connection the server is closing.
pub const DEFAULT_IDLE_TIMEOUT: &str = "75s";
/// Open connections at once; far below the usual file-descriptor limits.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
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
/// Resolving, connecting and the TLS handshake of a delivery. Longer than two lost SYNs
/// (retransmitted after 1 s and 2 s more) plus a TLS round trip, so a lossy path still
/// connects; a destination that never accepts holds a slot for this long, not a whole
/// delivery timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(name = "webhooks-server", version, about = "The User Webhooks API server")]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
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
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Event type, e.g. facility.creation.accepted.
    #[arg(long = "type")]
    pub event_type: String,
    /// The user whose webhooks receive it.
    #[arg(long)]
    pub user: String,
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
    #[arg(long, default_value = "FACILITY_USER")]
    pub role: String,
    /// A scope to grant (repeatable; claim `scope`, space separated).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Lifetime of the token.
    #[arg(long, default_value = "1h")]
    pub ttl: humantime::Duration,
}

/// Settings that flags and environment variables can set (all optional: unset falls through).
#[derive(Debug, Default, Args)]
pub struct SettingsArgs {
    /// TOML file with any of the settings below (snake_case keys).
    #[arg(long, env = "WEBHOOKS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "WEBHOOKS_BIND", global = true)]
    pub bind: Option<SocketAddr>,
    /// Directory for the SQLite database and generated keys [default: ./data].
    #[arg(long, env = "WEBHOOKS_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL or path [default: sqlite under the data directory].
    #[arg(long, env = "WEBHOOKS_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Most database connections in the pool [default: 16].
    #[arg(long, env = "WEBHOOKS_DATABASE_MAX_CONNECTIONS", global = true)]
    pub database_max_connections: Option<u32>,
    /// PostgreSQL `statement_timeout` of every connection; 0 for none [default: 30s].
    #[arg(long, env = "WEBHOOKS_STATEMENT_TIMEOUT", global = true)]
    pub statement_timeout: Option<humantime::Duration>,
    /// HS256 signing secret for tokens, at least 32 bytes [default: generated into the data directory].
    #[arg(long, env = "WEBHOOKS_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// JWKS file with RS256/ES256 public keys of an OpenID Connect provider.
    #[arg(long, env = "WEBHOOKS_JWKS_FILE", global = true)]
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim (tokens without it are refused).
    #[arg(long, env = "WEBHOOKS_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim (a string or an array holding it; tokens without it are refused).
    #[arg(long, env = "WEBHOOKS_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Roles allowed to use the API, comma separated [default: FACILITY_USER].
    #[arg(long, env = "WEBHOOKS_ALLOWED_ROLES", global = true, value_delimiter = ',')]
    pub allowed_roles: Option<Vec<String>>,
    /// Key for webhook secrets at rest: 32 bytes, base64 [default: generated into the data directory].
    #[arg(long, env = "WEBHOOKS_SECRETS_KEY", global = true, hide_env_values = true)]
    pub secrets_key: Option<String>,
    /// Largest request body in bytes [default: 102400].
    #[arg(long, env = "WEBHOOKS_BODY_LIMIT", global = true)]
    pub body_limit: Option<usize>,
    /// Most time a request head may take, from its first byte or the connection's start [default: 10s].
    #[arg(long, env = "WEBHOOKS_HEADER_TIMEOUT", global = true)]
    pub header_timeout: Option<humantime::Duration>,
    /// Most time a whole request may take, body and handler included; then 408 [default: 30s].
    #[arg(long, env = "WEBHOOKS_REQUEST_TIMEOUT", global = true)]
    pub request_timeout: Option<humantime::Duration>,
    /// Connections with nothing in flight are closed after this long [default: 75s].
    #[arg(long, env = "WEBHOOKS_IDLE_TIMEOUT", global = true)]
    pub idle_timeout: Option<humantime::Duration>,
    /// Most client connections open at once; more wait in the listen backlog [default: 1024].
    #[arg(long, env = "WEBHOOKS_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Public API requests per minute and OAuth client (`clientId`), beyond which it answers
    /// 429; 0 turns the limit off [default: 100].
    #[arg(long, env = "WEBHOOKS_RATE_LIMIT", global = true)]
    pub rate_limit: Option<u32>,
    /// Most webhooks one owner (client and user) may have [default: 100].
    #[arg(long, env = "WEBHOOKS_MAX_WEBHOOKS_PER_OWNER", global = true)]
    pub max_webhooks_per_owner: Option<u32>,
    /// Largest published event `data`, in bytes of compact JSON [default: 65536].
    #[arg(long, env = "WEBHOOKS_EVENT_DATA_LIMIT", global = true)]
    pub event_data_limit: Option<usize>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "WEBHOOKS_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    /// Delays before each retry, comma separated [default: 5m,30m,60m].
    #[arg(long, env = "WEBHOOKS_RETRY_SCHEDULE", global = true)]
    pub retry_schedule: Option<String>,
    /// PEM file of extra CAs trusted for deliveries (receivers with a private CA).
    #[arg(long, env = "WEBHOOKS_EXTRA_CA_FILE", global = true)]
    pub extra_ca_file: Option<PathBuf>,
    /// Deliver to any address, private and loopback included.
    #[arg(long, env = "WEBHOOKS_ALLOW_PRIVATE_TARGETS", global = true)]
    pub allow_private_targets: bool,
    /// Networks deliveries may reach although not public, comma separated CIDRs.
    #[arg(long = "allow-target", env = "WEBHOOKS_ALLOWED_TARGETS", global = true, value_delimiter = ',')]
    pub allowed_targets: Option<Vec<ipnet::IpNet>>,
    /// Do not run the delivery worker inside `serve`.
    #[arg(long, env = "WEBHOOKS_NO_WORKER", global = true)]
    pub no_worker: bool,
    /// Deliveries in flight at once [default: 128].
    #[arg(long, env = "WEBHOOKS_DELIVERY_CONCURRENCY", global = true)]
    pub delivery_concurrency: Option<usize>,
    /// How long a worker's claim on a delivery lasts [default: 60s].
    #[arg(long, env = "WEBHOOKS_DELIVERY_LEASE", global = true)]
    pub delivery_lease: Option<humantime::Duration>,
    /// Total time allowed for one delivery attempt [default: 15s].
    #[arg(long, env = "WEBHOOKS_DELIVERY_TIMEOUT", global = true)]
    pub delivery_timeout: Option<humantime::Duration>,
    /// How often the due-delivery backlog of `/metrics` is counted [default: 15s].
    #[arg(long, env = "WEBHOOKS_BACKLOG_REFRESH_INTERVAL", global = true)]
    pub backlog_refresh_interval: Option<humantime::Duration>,
    /// Deliveries in flight at once to one destination (host and port)
    /// [default: a quarter of the delivery concurrency, at least 1].
    #[arg(long, env = "WEBHOOKS_DELIVERY_PER_HOST_CONCURRENCY", global = true)]
    pub delivery_per_host_concurrency: Option<usize>,
    /// Time allowed to resolve, connect and finish the TLS handshake of a delivery
    /// [default: 5s, or the delivery timeout if shorter].
    #[arg(long, env = "WEBHOOKS_DELIVERY_CONNECT_TIMEOUT", global = true)]
    pub delivery_connect_timeout: Option<humantime::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The TOML file: the same settings, snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    bind: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_max_connections: Option<u32>,
    statement_timeout: Option<String>,
    jwt_secret: Option<String>,
    jwks_file: Option<PathBuf>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    allowed_roles: Option<Vec<String>>,
    secrets_key: Option<String>,
    body_limit: Option<usize>,
    header_timeout: Option<String>,
    request_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    rate_limit: Option<u32>,
    max_webhooks_per_owner: Option<u32>,
    event_data_limit: Option<usize>,
    log_format: Option<LogFormat>,
    retry_schedule: Option<String>,
    extra_ca_file: Option<PathBuf>,
    allow_private_targets: Option<bool>,
    allowed_targets: Option<Vec<ipnet::IpNet>>,
    no_worker: Option<bool>,
    delivery_concurrency: Option<usize>,
    delivery_lease: Option<String>,
    delivery_timeout: Option<String>,
    backlog_refresh_interval: Option<String>,
    delivery_per_host_concurrency: Option<usize>,
    delivery_connect_timeout: Option<String>,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub database_max_connections: u32,
    pub statement_timeout: Duration,
    pub jwt_secret: Option<String>,
    pub jwks_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub allowed_roles: Vec<String>,
    pub secrets_key: Option<String>,
    pub body_limit: usize,
    /// Client connections: header, request and idle deadlines, and their cap.
    pub connections: ConnectionLimits,
    /// Public API requests per minute and client; 0: no limit.
    pub rate_limit: u32,
    pub max_webhooks_per_owner: u32,
    pub event_data_limit: usize,
    pub log_format: LogFormat,
    pub retry_schedule: Vec<Duration>,
    pub extra_ca_file: Option<PathBuf>,
    pub allow_private_targets: bool,
    pub allowed_targets: Vec<ipnet::IpNet>,
    pub run_worker: bool,
    pub delivery_concurrency: usize,
    pub delivery_lease: Duration,
    pub delivery_timeout: Duration,
    /// How often the backlog gauge is refreshed (a scrape only renders it).
    pub backlog_refresh_interval: Duration,
    /// At most this many deliveries in flight to one destination (a URL's host and port).
    pub delivery_per_host_concurrency: usize,
    pub delivery_connect_timeout: Duration,
}

impl Settings {
    pub fn load(args: SettingsArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("webhooks.db").display()));
        let allowed_roles =
            args.allowed_roles.or(file.allowed_roles).unwrap_or_else(|| vec!["FACILITY_USER".to_owned()]);
        if allowed_roles.is_empty() {
            bail!("allowed_roles is empty: nobody could use the API");
        }
        let body_limit = args.body_limit.or(file.body_limit).unwrap_or(DEFAULT_BODY_LIMIT);
        let max_webhooks_per_owner = args
            .max_webhooks_per_owner
            .or(file.max_webhooks_per_owner)
            .unwrap_or(DEFAULT_MAX_WEBHOOKS_PER_OWNER);
        if max_webhooks_per_owner == 0 {
            bail!("max_webhooks_per_owner must be at least 1, or no webhook could be created");
        }
        let event_data_limit =
            args.event_data_limit.or(file.event_data_limit).unwrap_or(DEFAULT_EVENT_DATA_LIMIT);
        if event_data_limit < MIN_EVENT_DATA_LIMIT {
            bail!("event_data_limit must be at least {MIN_EVENT_DATA_LIMIT} bytes, or the documented payloads could not be published");
        }
        let retry_schedule = parse_schedule(
            args.retry_schedule.or(file.retry_schedule).as_deref().unwrap_or(DEFAULT_RETRY_SCHEDULE),
        )?;
        let duration = |flag: Option<humantime::Duration>,
                        file: Option<String>,
                        default: &str,
                        name: &str| match (flag, file) {
            (Some(d), _) => Ok(d.into()),
            (None, text) => humantime::parse_duration(text.as_deref().unwrap_or(default))
                .with_context(|| format!("{name} is not a duration")),
        };
        let delivery_lease = duration(args.delivery_lease, file.delivery_lease, "60s", "delivery_lease")?;
        let delivery_timeout =
            duration(args.delivery_timeout, file.delivery_timeout, "15s", "delivery_timeout")?;
        if delivery_lease <= delivery_timeout {
            bail!("delivery_lease ({delivery_lease:?}) must exceed delivery_timeout ({delivery_timeout:?}), or deliveries in flight would be claimed twice");
        }
        let database_max_connections = args
            .database_max_connections
            .or(file.database_max_connections)
            .unwrap_or(crate::store::DEFAULT_MAX_CONNECTIONS);
        if database_max_connections == 0 {
            bail!("database_max_connections must be at least 1");
        }
        let statement_timeout =
            duration(args.statement_timeout, file.statement_timeout, "30s", "statement_timeout")?;
        let connections = ConnectionLimits {
            header_timeout: duration(
                args.header_timeout,
                file.header_timeout,
                DEFAULT_HEADER_TIMEOUT,
                "header_timeout",
            )?,
            request_timeout: duration(
                args.request_timeout,
                file.request_timeout,
                DEFAULT_REQUEST_TIMEOUT,
                "request_timeout",
            )?,
            idle_timeout: duration(
                args.idle_timeout,
                file.idle_timeout,
                DEFAULT_IDLE_TIMEOUT,
                "idle_timeout",
            )?,
            max_connections: args.max_connections.or(file.max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS),
        };
        validate_connections(&connections)?;
        let delivery_concurrency = args.delivery_concurrency.or(file.delivery_concurrency).unwrap_or(128);
        if delivery_concurrency == 0 {
            bail!("delivery_concurrency must be at least 1");
        }
        let backlog_refresh_interval = duration(
            args.backlog_refresh_interval,
            file.backlog_refresh_interval,
            DEFAULT_BACKLOG_REFRESH_INTERVAL,
            "backlog_refresh_interval",
        )?;
        if backlog_refresh_interval.is_zero() {
            bail!("backlog_refresh_interval must be more than 0");
        }
        let jwt_secret = args.jwt_secret.or(file.jwt_secret);
        if let Some(secret) = &jwt_secret {
            crate::keys::check_hs256_secret(secret)?;
        }
        let secrets_key = args.secrets_key.or(file.secrets_key);
        if let Some(key) = &secrets_key {
            crate::crypto::decode_key(key)?;
        }
        let jwt_issuer = non_empty(args.jwt_issuer.or(file.jwt_issuer), "jwt_issuer")?;
        let jwt_audience = non_empty(args.jwt_audience.or(file.jwt_audience), "jwt_audience")?;
        let delivery_per_host_concurrency = per_host_concurrency(
            args.delivery_per_host_concurrency.or(file.delivery_per_host_concurrency),
            delivery_concurrency,
        )?;
        let delivery_connect_timeout = match (args.delivery_connect_timeout, file.delivery_connect_timeout) {
            (None, None) => DEFAULT_CONNECT_TIMEOUT.min(delivery_timeout),
            (flag, text) => duration(flag, text, "", "delivery_connect_timeout")?,
        };
        if delivery_connect_timeout.is_zero() || delivery_connect_timeout > delivery_timeout {
            bail!("delivery_connect_timeout ({delivery_connect_timeout:?}) must be above zero and at most delivery_timeout ({delivery_timeout:?})");
        }
        Ok(Self {
            bind: match args.bind.or(file.bind) {
                Some(bind) => bind,
                None => DEFAULT_BIND.parse().context("default bind address")?,
            },
            data_dir,
            database_url,
            database_max_connections,
            statement_timeout,
            jwt_secret,
            jwks_file: args.jwks_file.or(file.jwks_file),
            jwt_issuer,
            jwt_audience,
            allowed_roles,
            secrets_key,
            body_limit,
            connections,
            rate_limit: args.rate_limit.or(file.rate_limit).unwrap_or(DEFAULT_RATE_LIMIT),
            max_webhooks_per_owner,
            event_data_limit,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            retry_schedule,
            extra_ca_file: args.extra_ca_file.or(file.extra_ca_file),
            allow_private_targets: args.allow_private_targets || file.allow_private_targets.unwrap_or(false),
            allowed_targets: args.allowed_targets.or(file.allowed_targets).unwrap_or_default(),
            run_worker: !(args.no_worker || file.no_worker.unwrap_or(false)),
            delivery_concurrency,
            delivery_lease,
            delivery_timeout,
            backlog_refresh_interval,
            delivery_per_host_concurrency,
            delivery_connect_timeout,
        })
    }

    /// Settings for a server in `data_dir` with every other value at its default.
    pub fn for_data_dir(data_dir: &Path) -> anyhow::Result<Self> {
        Self::load(SettingsArgs { data_dir: Some(data_dir.to_owned()), ..Default::default() })
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
fn non_empty(value: Option<String>, name: &str) -> anyhow::Result<Option<String>> {
    if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
        bail!("{name} is empty; leave it unset to not check it");
    }
    Ok(value)
}

/// The per-host share of the delivery slots: `given`, or a quarter of `concurrency` (at least
/// one). A quarter: a destination that hangs holds no more (and all destinations not known to
/// answer hold at most half together, see `delivery/fair.rs`), while one busy receiver still
/// gets 32 requests in flight of the default 128 (320 deliveries/s at 100 ms each; on
/// loopback, more than the server itself sends to one receiver). Above `concurrency` it would
/// mean nothing: refused, as is zero.
fn per_host_concurrency(given: Option<usize>, concurrency: usize) -> anyhow::Result<usize> {
    let per_host = given.unwrap_or((concurrency / 4).max(1));
    if per_host == 0 || per_host > concurrency {
        bail!("delivery_per_host_concurrency ({per_host}) must be between 1 and delivery_concurrency ({concurrency})");
    }
    Ok(per_host)
}

/// `5m,30m,60m` → the delays before each retry.
pub fn parse_schedule(text: &str) -> anyhow::Result<Vec<Duration>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            humantime::parse_duration(s).with_context(|| format!("retry schedule: {s:?} is not a duration"))
        })
        .collect()
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("webhooks.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:9000\"\nbody_limit = 10\nallowed_roles = [\"NURSE_USER\"]\n",
        )
        .unwrap();
        let settings = Settings::load(SettingsArgs {
            config: Some(file.clone()),
            body_limit: Some(20),
            data_dir: Some(dir.path().to_owned()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(settings.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(settings.body_limit, 20);
        assert_eq!(settings.allowed_roles, ["NURSE_USER"]);
        assert!(settings.database_url.starts_with("sqlite://"));

        let defaults = Settings::load(SettingsArgs::default()).unwrap();
        assert_eq!(defaults.bind.to_string(), DEFAULT_BIND);
        assert_eq!(defaults.body_limit, DEFAULT_BODY_LIMIT);
        assert_eq!(defaults.allowed_roles, ["FACILITY_USER"]);
        let minutes = |m: u64| Duration::from_secs(60 * m);
        assert_eq!(defaults.retry_schedule, [minutes(5), minutes(30), minutes(60)]);
        assert_eq!(defaults.database_max_connections, 16);
        assert_eq!(defaults.statement_timeout, Duration::from_secs(30));
        assert_eq!(defaults.backlog_refresh_interval, Duration::from_secs(15));
        assert_eq!(defaults.max_webhooks_per_owner, 100);
        assert_eq!(defaults.event_data_limit, 65536);
        assert_eq!(defaults.delivery_per_host_concurrency, 32);
        assert_eq!(defaults.delivery_connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(parse_schedule("10ms, 20ms,30ms").unwrap(), [10, 20, 30].map(Duration::from_millis));
        assert!(parse_schedule("soon").is_err());
    }

    #[test]
    fn the_rate_limit_is_100_a_minute_unless_set_and_0_turns_it_off() {
        use clap::CommandFactory;

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("webhooks.toml");
        std::fs::write(&file, "rate_limit = 7\n").unwrap();
        let load = |rate_limit: Option<u32>, config: Option<PathBuf>| {
            Settings::load(SettingsArgs { config, rate_limit, ..Default::default() }).unwrap().rate_limit
        };
        assert_eq!(load(None, None), DEFAULT_RATE_LIMIT);
        assert_eq!(DEFAULT_RATE_LIMIT, 100);
        assert_eq!(load(None, Some(file.clone())), 7);
        assert_eq!(load(Some(0), Some(file)), 0);

        let parse = |args: &[&str]| Cli::try_parse_from([&["webhooks-server"], args].concat());
        assert_eq!(parse(&["--rate-limit", "0"]).unwrap().settings.rate_limit, Some(0));
        assert_eq!(
            parse(&["token", "--client-id", "c", "--sub", "s", "--rate-limit", "5"])
                .unwrap()
                .settings
                .rate_limit,
            Some(5)
        );
        for bad in ["", "-1", "ten", "4294967296"] {
            assert!(parse(&["--rate-limit", bad]).is_err(), "{bad:?}");
        }
        let command = Cli::command();
        let arg = command.get_arguments().find(|a| a.get_id() == "rate_limit").expect("--rate-limit");
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some("WEBHOOKS_RATE_LIMIT"));
    }

    #[test]
    fn limits_layer_like_every_setting_and_refuse_values_that_would_block_everything() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("webhooks.toml");
        std::fs::write(&file, "max_webhooks_per_owner = 7\nevent_data_limit = 4096\n").unwrap();
        let from_file =
            Settings::load(SettingsArgs { config: Some(file.clone()), ..Default::default() }).unwrap();
        assert_eq!((from_file.max_webhooks_per_owner, from_file.event_data_limit), (7, 4096));
        let from_flags = Settings::load(SettingsArgs {
            config: Some(file),
            max_webhooks_per_owner: Some(8),
            event_data_limit: Some(5000),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((from_flags.max_webhooks_per_owner, from_flags.event_data_limit), (8, 5000));

        let zero = Settings::load(SettingsArgs { max_webhooks_per_owner: Some(0), ..Default::default() });
        assert!(format!("{:#}", zero.unwrap_err()).contains("max_webhooks_per_owner"));

        let tiny = Settings::load(SettingsArgs { event_data_limit: Some(255), ..Default::default() });
        assert!(format!("{:#}", tiny.unwrap_err()).contains("event_data_limit"));
        assert!(Settings::load(SettingsArgs { event_data_limit: Some(256), ..Default::default() }).is_ok());
    }

    #[test]
    fn delivery_shares_and_timeouts_are_validated() {
        let load = |args: SettingsArgs| Settings::load(args).map_err(|e| format!("{e:#}"));
        let secs = |s: u64| Some(humantime::Duration::from(Duration::from_secs(s)));
        let small = load(SettingsArgs { delivery_concurrency: Some(4), ..Default::default() }).unwrap();
        assert_eq!(small.delivery_per_host_concurrency, 1, "a quarter, at least one");
        let given = SettingsArgs {
            delivery_concurrency: Some(64),
            delivery_per_host_concurrency: Some(64),
            delivery_connect_timeout: secs(2),
            ..Default::default()
        };
        let given = load(given).unwrap();
        assert_eq!(
            (given.delivery_per_host_concurrency, given.delivery_connect_timeout),
            (64, Duration::from_secs(2))
        );
        // A short delivery timeout bounds the default connect timeout.
        let short = SettingsArgs { delivery_timeout: secs(3), ..Default::default() };
        assert_eq!(load(short).unwrap().delivery_connect_timeout, Duration::from_secs(3));
        for (args, message) in [
            (
                SettingsArgs { delivery_per_host_concurrency: Some(0), ..Default::default() },
                "delivery_per_host_concurrency (0)",
            ),
            (
                SettingsArgs { delivery_per_host_concurrency: Some(129), ..Default::default() },
                "delivery_per_host_concurrency (129)",
            ),
            (
                SettingsArgs { delivery_connect_timeout: secs(0), ..Default::default() },
                "delivery_connect_timeout (0ns)",
            ),
            (
                SettingsArgs { delivery_connect_timeout: secs(16), ..Default::default() },
                "delivery_connect_timeout (16s)",
            ),
        ] {
            let err = load(args).unwrap_err();
            assert!(err.contains(message), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("webhooks.toml");
        std::fs::write(&file, "delivery_per_host_concurrency = 3\ndelivery_connect_timeout = \"1500ms\"\n")
            .unwrap();
        let from_file = load(SettingsArgs { config: Some(file), ..Default::default() }).unwrap();
        assert_eq!(from_file.delivery_per_host_concurrency, 3);
        assert_eq!(from_file.delivery_connect_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "bnid = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::load(SettingsArgs { config: Some(file), ..Default::default() }).unwrap_err();
        assert!(format!("{err:#}").contains("bnid"), "{err:#}");
    }

    #[test]
    fn weak_keys_and_empty_claims_settings_are_start_up_errors() {
        let dir = tempfile::tempdir().unwrap();
        let load = |toml: &str, args: SettingsArgs| {
            let file = dir.path().join("webhooks.toml");
            std::fs::write(&file, toml).unwrap();
            Settings::load(SettingsArgs { config: Some(file), data_dir: Some(dir.path().into()), ..args })
                .err()
                .map(|e| format!("{e:#}"))
        };
        let flag = |secret: &str| SettingsArgs { jwt_secret: Some(secret.into()), ..Default::default() };
        for (toml, args, expected) in [
            ("jwt_secret = \"\"\n", SettingsArgs::default(), "jwt_secret"),
            ("jwt_secret = \"short\"\n", SettingsArgs::default(), "jwt_secret"),
            ("", flag(""), "jwt_secret"),
            ("", flag(&"x".repeat(31)), "jwt_secret"),
            ("secrets_key = \"\"\n", SettingsArgs::default(), "secrets_key"),
            ("secrets_key = \"c2hvcnQ=\"\n", SettingsArgs::default(), "secrets_key"),
            ("jwt_issuer = \"\"\n", SettingsArgs::default(), "jwt_issuer"),
            ("jwt_audience = \" \"\n", SettingsArgs::default(), "jwt_audience"),
            ("backlog_refresh_interval = \"0s\"\n", SettingsArgs::default(), "backlog_refresh_interval"),
        ] {
            let err = load(toml, args).unwrap_or_else(|| panic!("{toml:?} was accepted"));
            assert!(err.contains(expected), "{toml:?}: {err}");
            if expected.ends_with("secret") || expected.ends_with("key") {
                assert!(err.contains("openssl rand -base64 32"), "{err}");
            }
        }
        let good =
            format!("jwt_secret = \"{}\"\nsecrets_key = \"{}\"\n", "x".repeat(32), "A".repeat(43) + "=");
        assert_eq!(load(&good, SettingsArgs::default()), None);
    }
}
