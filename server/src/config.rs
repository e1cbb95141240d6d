//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables, then flags (each layer overrides the previous), validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
/// NestJS's body-parser default, `100kb`.
pub const DEFAULT_BODY_LIMIT: usize = 100 * 1024;

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
    /// HS256 signing secret for tokens [default: generated into the data directory].
    #[arg(long, env = "WEBHOOKS_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// JWKS file with RS256/ES256 public keys of an OpenID Connect provider.
    #[arg(long, env = "WEBHOOKS_JWKS_FILE", global = true)]
    pub jwks_file: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "WEBHOOKS_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim.
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
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "WEBHOOKS_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
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
    jwt_secret: Option<String>,
    jwks_file: Option<PathBuf>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    allowed_roles: Option<Vec<String>>,
    secrets_key: Option<String>,
    body_limit: Option<usize>,
    log_format: Option<LogFormat>,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub jwt_secret: Option<String>,
    pub jwks_file: Option<PathBuf>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub allowed_roles: Vec<String>,
    pub secrets_key: Option<String>,
    pub body_limit: usize,
    pub log_format: LogFormat,
}

impl Settings {
    pub fn load(args: SettingsArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("webhooks.db").display()));
        let allowed_roles = args
            .allowed_roles
            .or(file.allowed_roles)
            .unwrap_or_else(|| vec!["FACILITY_USER".to_owned()]);
        if allowed_roles.is_empty() {
            bail!("allowed_roles is empty: nobody could use the API");
        }
        let body_limit = args.body_limit.or(file.body_limit).unwrap_or(DEFAULT_BODY_LIMIT);
        Ok(Self {
            bind: match args.bind.or(file.bind) {
                Some(bind) => bind,
                None => DEFAULT_BIND.parse().context("default bind address")?,
            },
            data_dir,
            database_url,
            jwt_secret: args.jwt_secret.or(file.jwt_secret),
            jwks_file: args.jwks_file.or(file.jwks_file),
            jwt_issuer: args.jwt_issuer.or(file.jwt_issuer),
            jwt_audience: args.jwt_audience.or(file.jwt_audience),
            allowed_roles,
            secrets_key: args.secrets_key.or(file.secrets_key),
            body_limit,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
        })
    }

    /// Settings for a server in `data_dir` with every other value at its default.
    pub fn for_data_dir(data_dir: &Path) -> anyhow::Result<Self> {
        Self::load(SettingsArgs {
            data_dir: Some(data_dir.to_owned()),
            ..Default::default()
        })
    }
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
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "bnid = \"127.0.0.1:9000\"\n").unwrap();
        let err = Settings::load(SettingsArgs {
            config: Some(file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("bnid"), "{err:#}");
    }
}
