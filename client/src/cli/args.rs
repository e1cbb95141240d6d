//! The command line of `webhooks`: clap definitions and the value parsers of its arguments.
//!
//! Values the generated types can check (events, event types, sort order, dates, numbers) are
//! checked here, so a typo is a usage error (exit 2) listing what is allowed. Rules of the
//! contract that only the server applies (HTTPS URLs, at least one event, `limit` ≤ 100) are
//! left to the server, whose 400 body is printed (exit 1).

use std::ffi::OsString;

use chrono::{DateTime, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::types::{
    CreateUserWebhookRequestSecretsItem, CreateWebhookRequestSecretsItem, EventType, FacilityWebhookEvent,
    SearchWebhookLogsSortDirection, UpdateUserWebhookRequestSecretsItem, UpdateWebhookRequestSecretsItem,
    UserWebhookEvent,
};

/// Where the server is when neither `--base-url` nor `WEBHOOKS_URL` says.
pub const DEFAULT_BASE_URL: &str = "http://127.0.0.1:8080";
/// At most this many `--secret` on `create` (the contract's `maxItems`; two allow a rotation).
pub const MAX_SECRETS: usize = crate::contract::CREATE_USER_WEBHOOK_REQUEST_SECRETS_MAX_ITEMS;
/// At most this many `--secret` on `update` (the contract's `maxItems`).
pub const MAX_UPDATE_SECRETS: usize = crate::contract::UPDATE_USER_WEBHOOK_REQUEST_SECRETS_MAX_ITEMS;

/// At most this many `--secret` on `facility create` (the contract's `maxItems`).
pub const MAX_FACILITY_SECRETS: usize = crate::contract::CREATE_WEBHOOK_REQUEST_SECRETS_MAX_ITEMS;
/// At most this many `--secret` on `facility update` (the contract's `maxItems`).
pub const MAX_FACILITY_UPDATE_SECRETS: usize = crate::contract::UPDATE_WEBHOOK_REQUEST_SECRETS_MAX_ITEMS;

/// Every `UserWebhookEvent` of the contract, as written on the wire.
pub use crate::contract::USER_WEBHOOK_EVENT as WEBHOOK_EVENTS;

/// Every `FacilityWebhookEvent` of the contract (the `shift.*` events and `all`).
pub use crate::contract::FACILITY_WEBHOOK_EVENT as FACILITY_WEBHOOK_EVENTS;

/// Every `EventType` of the contract: what a log entry can be, user and facility events
/// (the webhook events without `all`).
pub use crate::contract::EVENT_TYPE as EVENT_TYPES;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the API answered with an error (its body is printed on stderr), or with an answer the
     contract does not allow
  2  usage error: unknown or missing arguments, invalid values, no token
  3  the server could not be reached: connection refused, DNS, TLS, timeout, connection lost

Examples:
  export WEBHOOKS_URL=http://127.0.0.1:8080 WEBHOOKS_TOKEN=<jwt>
  webhooks create --url https://example.com/hook --events facility.creation.accepted,facility.creation.rejected
  webhooks list
  webhooks --json get <ID> | jq -r .data.secrets[0]
  webhooks update <ID> --events all --secret new-secret --secret old-secret
  webhooks logs --event-type facility.creation.accepted --start 2026-11-01 --limit 20
  webhooks delete <ID>

  webhooks facility create --url https://example.com/shifts --events shift.created,shift.cancelled --facility P-123456
  webhooks facility update <ID> --all-facilities
  webhooks logs --event-type shift.created --facility P-123456";

/// `webhooks`: manage your User and Facility Webhooks from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "webhooks",
    version,
    about = "Manage User Webhooks (create, list, get, update, delete), Facility Webhooks \
             (webhooks facility …) and read their delivery log",
    long_about = "Manage User Webhooks (create, list, get, update, delete), Facility Webhooks \
                  for the shift events of your facilities (webhooks facility create, list, get, \
                  update, delete) and read their delivery log, through the client generated from \
                  openapi.yaml.\n\n\
                  Output is a table by default; --json prints the API's JSON for scripts.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options valid before or after the subcommand.
#[derive(Debug, Args)]
pub struct Global {
    /// Base URL of the API server: scheme, host and port (any `/api/v2/...` path is added)
    #[arg(
        long,
        env = "WEBHOOKS_URL",
        default_value = DEFAULT_BASE_URL,
        value_parser = parse_base_url,
        global = true,
        value_name = "URL"
    )]
    pub base_url: String,

    /// Bearer token (a JWT), sent as `Authorization: Bearer <TOKEN>`; required
    #[arg(long, env = "WEBHOOKS_TOKEN", hide_env_values = true, global = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Print JSON instead of tables (for scripts)
    #[arg(
        long,
        global = true,
        long_help = "Print JSON instead of tables, for scripts.\n\n\
                     On success, stdout gets the whole response body of the contract, `{\"data\": …}` \
                     (nothing for `delete`, whose answer is empty). On an API error, stderr gets the \
                     error body, `{\"message\", \"error\", \"statusCode\"}`. Bodies of documented \
                     answers are decoded by the generated client and re-encoded (pretty-printed): \
                     the contract's fields and values, keys in schema order. An answer the contract \
                     does not describe is printed as received."
    )]
    pub json: bool,

    /// Show webhook secrets in full in tables (by default all but the last 4 characters are masked)
    #[arg(long, global = true)]
    pub show_secrets: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register a webhook (createUserWebhook); prints it
    Create(CreateArgs),
    /// List your webhooks (listUserWebhooks)
    List,
    /// Show one webhook (getUserWebhook)
    Get {
        /// Id of the webhook
        id: String,
    },
    /// Replace a webhook's events; change its URL or secrets when given (updateUserWebhook)
    Update(UpdateArgs),
    /// Delete a webhook (deleteUserWebhook)
    Delete {
        /// Id of the webhook
        id: String,
    },
    /// Search the delivery log of your webhooks, user and facility, newest first (searchWebhookLogs)
    #[command(after_help = "Columns: CREATED (when the event was scheduled), EVENT, WEBHOOK (id), \
                      FACILITY (the event's facility, - when it names none), STATUS (success if \
                      any attempt succeeded), HTTP (status of the first attempt, - when there was \
                      no answer yet or none), RETRIES (attempts after the first).")]
    Logs(LogsArgs),
    /// Manage your Facility Webhooks: the shift events of your facilities (create, list, get, update, delete)
    #[command(subcommand)]
    Facility(FacilityCommand),
}

/// The Facility Webhooks subcommands, one operation of the "Facilities webhooks" tag each.
#[derive(Debug, Subcommand)]
#[command(after_help = "A facility webhook follows the facilities it names, or, named none, every \
                  facility you can access, now and later (its answers then list the current ones).")]
pub enum FacilityCommand {
    /// Register a facility webhook (createFacilityWebhook); prints it
    Create(FacilityCreateArgs),
    /// List your facility webhooks (listFacilityWebhooks)
    List,
    /// Show one facility webhook (getFacilityWebhook)
    Get {
        /// Id of the facility webhook
        id: String,
    },
    /// Change a facility webhook's URL, events, facilities or secrets; what is not given is kept (updateFacilityWebhook)
    Update(FacilityUpdateArgs),
    /// Delete a facility webhook (deleteFacilityWebhook)
    Delete {
        /// Id of the facility webhook
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct FacilityCreateArgs {
    /// The HTTPS URL events are sent to
    #[arg(long, value_name = "URL")]
    pub url: String,

    /// Shift events to subscribe to: comma-separated or repeated; `all` means every shift event
    #[arg(
        long,
        required = true,
        value_delimiter = ',',
        value_parser = facility_webhook_event_parser(),
        value_name = "EVENT"
    )]
    pub events: Vec<FacilityWebhookEvent>,

    /// A facility whose events the webhook receives: comma-separated or repeated. Without it the
    /// webhook follows every facility you can access
    #[arg(long = "facility", value_delimiter = ',', value_name = "FACILITY")]
    pub facilities: Vec<String>,

    /// A signing secret, not empty; repeat for a second one (rotation). Without it the server generates one
    #[arg(long = "secret", value_name = "SECRET")]
    pub secrets: Vec<CreateWebhookRequestSecretsItem>,
}

#[derive(Debug, Args)]
pub struct FacilityUpdateArgs {
    /// Id of the facility webhook
    pub id: String,

    /// A new HTTPS URL; the stored one is kept when absent
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// The new events (replace the stored list): comma-separated or repeated; kept when absent
    #[arg(long, value_delimiter = ',', value_parser = facility_webhook_event_parser(), value_name = "EVENT")]
    pub events: Vec<FacilityWebhookEvent>,

    /// The new facilities (replace the stored list): comma-separated or repeated; kept when
    /// neither this nor --all-facilities is given
    #[arg(long = "facility", value_delimiter = ',', value_name = "FACILITY")]
    pub facilities: Vec<String>,

    /// Follow every facility you can access, now and later (sends an empty list)
    #[arg(long, conflicts_with = "facilities")]
    pub all_facilities: bool,

    /// New signing secrets, not empty (repeat for a second one); the stored ones are kept when absent
    #[arg(long = "secret", value_name = "SECRET")]
    pub secrets: Vec<UpdateWebhookRequestSecretsItem>,
}

impl FacilityUpdateArgs {
    /// The `facilities` of the request: `None` keeps the stored list, `Some([])` follows every
    /// accessible facility.
    pub fn facilities(&self) -> Option<Vec<String>> {
        if self.all_facilities {
            Some(Vec::new())
        } else {
            (!self.facilities.is_empty()).then(|| self.facilities.clone())
        }
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The HTTPS URL events are sent to
    #[arg(long, value_name = "URL")]
    pub url: String,

    /// Events to subscribe to: comma-separated or repeated; `all` means every event
    #[arg(long, required = true, value_delimiter = ',', value_parser = webhook_event_parser(), value_name = "EVENT")]
    pub events: Vec<UserWebhookEvent>,

    /// A signing secret, not empty; repeat for a second one (rotation). Without it the server generates one
    #[arg(long = "secret", value_name = "SECRET")]
    pub secrets: Vec<CreateUserWebhookRequestSecretsItem>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Id of the webhook
    pub id: String,

    /// The new events (replace the stored list): comma-separated or repeated
    #[arg(long, required = true, value_delimiter = ',', value_parser = webhook_event_parser(), value_name = "EVENT")]
    pub events: Vec<UserWebhookEvent>,

    /// A new HTTPS URL; the stored one is kept when absent
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// New signing secrets, not empty (repeat for a second one); the stored ones are kept when absent
    #[arg(long = "secret", value_name = "SECRET")]
    pub secrets: Vec<UpdateUserWebhookRequestSecretsItem>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only entries of this event type (a user or a facility event)
    #[arg(long, value_parser = event_type_parser(), value_name = "TYPE")]
    pub event_type: Option<EventType>,

    /// Only entries of this webhook
    #[arg(long = "webhook", value_name = "ID")]
    pub webhook_id: Option<String>,

    /// Only entries whose event names one of these facilities: comma-separated or repeated
    #[arg(long = "facility", value_delimiter = ',', value_name = "FACILITY")]
    pub facilities: Vec<String>,

    /// Only entries created at or after this instant: RFC 3339 or YYYY-MM-DD (midnight UTC)
    #[arg(long, value_parser = parse_instant, value_name = "DATE")]
    pub start: Option<DateTime<Utc>>,

    /// Only entries created before this instant: RFC 3339 or YYYY-MM-DD (midnight UTC)
    #[arg(long, value_parser = parse_instant, value_name = "DATE")]
    pub end: Option<DateTime<Utc>>,

    /// How many entries to return (server default 10, at most 100)
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..), value_name = "N")]
    pub limit: Option<i64>,

    /// How many entries to skip
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..), value_name = "N")]
    pub offset: Option<i64>,

    /// Order by creation date (server default: desc)
    #[arg(long, value_enum, value_name = "ORDER")]
    pub sort: Option<Sort>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sort {
    Asc,
    Desc,
}

impl From<Sort> for SearchWebhookLogsSortDirection {
    fn from(sort: Sort) -> Self {
        match sort {
            Sort::Asc => Self::Asc,
            Sort::Desc => Self::Desc,
        }
    }
}

/// Parses the command line (`args[0]` is the program name) and checks what clap cannot
/// express: a token from `--token` or `WEBHOOKS_TOKEN` (global options cannot be required),
/// and at most [`MAX_SECRETS`] (or [`MAX_UPDATE_SECRETS`], [`MAX_FACILITY_SECRETS`],
/// [`MAX_FACILITY_UPDATE_SECRETS`]) secrets.
pub fn parse<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    if cli.global.token.as_deref().is_none_or(str::is_empty) {
        return Err(Cli::command().error(
            ErrorKind::MissingRequiredArgument,
            "a token is required: pass --token <TOKEN> or set WEBHOOKS_TOKEN",
        ));
    }
    let (secrets, max) = match &cli.command {
        Command::Create(args) => (args.secrets.len(), MAX_SECRETS),
        Command::Update(args) => (args.secrets.len(), MAX_UPDATE_SECRETS),
        Command::Facility(FacilityCommand::Create(args)) => (args.secrets.len(), MAX_FACILITY_SECRETS),
        Command::Facility(FacilityCommand::Update(args)) => (args.secrets.len(), MAX_FACILITY_UPDATE_SECRETS),
        _ => (0, 0),
    };
    if secrets > max {
        return Err(Cli::command().error(
            ErrorKind::TooManyValues,
            format!("--secret is given {secrets} times; a webhook has at most {max} secrets"),
        ));
    }
    Ok(cli)
}

fn webhook_event_parser() -> impl TypedValueParser<Value = UserWebhookEvent> {
    PossibleValuesParser::new(WEBHOOK_EVENTS).try_map(|name| name.parse::<UserWebhookEvent>())
}

fn facility_webhook_event_parser() -> impl TypedValueParser<Value = FacilityWebhookEvent> {
    PossibleValuesParser::new(FACILITY_WEBHOOK_EVENTS).try_map(|name| name.parse::<FacilityWebhookEvent>())
}

fn event_type_parser() -> impl TypedValueParser<Value = EventType> {
    PossibleValuesParser::new(EVENT_TYPES).try_map(|name| name.parse::<EventType>())
}

/// An `http` or `https` URL with a host and no query or fragment; trailing `/` removed (the
/// generated client appends `/api/...`).
pub fn parse_base_url(value: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme must be http or https, not {}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must not have a query or a fragment".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// An instant as the server reads one (`webhooks::rt::date`, the contract's one parser): RFC
/// 3339 (`2026-11-01T00:00:00Z`, any offset, converted to UTC) or a date (`2026-11-01`,
/// midnight UTC), among the ISO 8601 shapes it takes.
pub fn parse_instant(value: &str) -> Result<DateTime<Utc>, String> {
    webhooks::rt::date::parse_instant(value).ok_or_else(|| {
        "expected an RFC 3339 instant (2026-11-01T00:00:00Z) or a date (2026-11-01)".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: [&str; 2] = ["--token", "t0ken"];

    fn parse_ok(args: &[&str]) -> Cli {
        let argv = ["webhooks"].iter().chain(TOKEN.iter()).chain(args.iter());
        match parse(argv) {
            Ok(cli) => cli,
            Err(e) => panic!("{args:?} should parse: {e}"),
        }
    }

    fn parse_err(args: &[&str]) -> clap::Error {
        let argv = ["webhooks"].iter().chain(TOKEN.iter()).chain(args.iter());
        match parse(argv) {
            Ok(cli) => panic!("{args:?} should not parse: {cli:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn event_lists_cover_the_generated_enums() {
        assert_eq!(MAX_SECRETS, 2);
        for name in WEBHOOK_EVENTS {
            let event: UserWebhookEvent = name.parse().expect("a webhook event");
            assert_eq!(event.to_string(), name);
        }
        for name in EVENT_TYPES {
            let event: EventType = name.parse().expect("an event type");
            assert_eq!(event.to_string(), name);
        }
        assert_eq!(MAX_FACILITY_SECRETS, 2);
        assert_eq!(MAX_FACILITY_UPDATE_SECRETS, 2);
        for name in FACILITY_WEBHOOK_EVENTS {
            let event: FacilityWebhookEvent = name.parse().expect("a facility webhook event");
            assert_eq!(event.to_string(), name);
        }
        // A log entry is of a user or a facility event type.
        for name in crate::contract::USER_EVENT_TYPE.iter().chain(&crate::contract::FACILITY_EVENT_TYPE) {
            assert!(EVENT_TYPES.contains(name), "{name}");
        }
    }

    #[test]
    fn create_takes_comma_separated_and_repeated_events_and_up_to_two_secrets() {
        let cli = parse_ok(&[
            "create",
            "--url",
            "https://example.com/hook",
            "--events",
            "all,facility.creation.accepted",
            "--events",
            "facility.creation.rejected",
            "--secret",
            "s1",
            "--secret",
            "s2",
        ]);
        let Command::Create(args) = cli.command else { panic!("create: {:?}", cli.command) };
        assert_eq!(args.url, "https://example.com/hook");
        assert_eq!(
            args.events,
            vec![
                UserWebhookEvent::All,
                UserWebhookEvent::FacilityCreationAccepted,
                UserWebhookEvent::FacilityCreationRejected
            ]
        );
        assert_eq!(args.secrets.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
        // The contract's items refuse an empty secret (it would sign with an empty key).
        let e = parse_err(&["create", "--url", "https://x", "--events", "all", "--secret", ""]);
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::ValueValidation, 2));
        let e = parse_err(&["update", "id-1", "--events", "all", "--secret", "a", "--secret", ""]);
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::ValueValidation, 2));

        let e = parse_err(&[
            "create",
            "--url",
            "https://x",
            "--events",
            "all",
            "--secret",
            "a",
            "--secret",
            "b",
            "--secret",
            "c",
        ]);
        assert_eq!(e.kind(), ErrorKind::TooManyValues);
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn events_are_checked_against_the_contract() {
        let e = parse_err(&["create", "--url", "https://x", "--events", "facility.created"]);
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(e.to_string().contains("facility.user-connection.accepted"), "{e}");
        // Required, on create and on update.
        assert_eq!(parse_err(&["create", "--url", "https://x"]).kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse_err(&["update", "id-1"]).kind(), ErrorKind::MissingRequiredArgument);
        // `all` is a webhook event, not an event type of a log entry.
        assert_eq!(parse_err(&["logs", "--event-type", "all"]).kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn facility_create_takes_shift_events_facilities_and_secrets() {
        let cli = parse_ok(&[
            "facility",
            "create",
            "--url",
            "https://example.com/shifts",
            "--events",
            "shift.created,shift.cancelled",
            "--events",
            "all",
            "--facility",
            "P-1,P-2",
            "--facility",
            "P-3",
            "--secret",
            "s1",
            "--secret",
            "s2",
        ]);
        let Command::Facility(FacilityCommand::Create(args)) = cli.command else {
            panic!("facility create: {:?}", cli.command)
        };
        assert_eq!(args.url, "https://example.com/shifts");
        assert_eq!(
            args.events,
            [
                FacilityWebhookEvent::ShiftCreated,
                FacilityWebhookEvent::ShiftCancelled,
                FacilityWebhookEvent::All
            ]
        );
        assert_eq!(args.facilities, ["P-1", "P-2", "P-3"]);
        assert_eq!(args.secrets.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);

        // No --facility: none sent, the webhook follows every accessible facility.
        let cli =
            parse_ok(&["facility", "create", "--url", "https://x", "--events", "shift.report.accepted"]);
        let Command::Facility(FacilityCommand::Create(args)) = cli.command else { panic!("facility create") };
        assert!(args.facilities.is_empty());
        assert!(args.secrets.is_empty());
    }

    #[test]
    fn facility_events_are_checked_against_the_contract() {
        // A user event is not a facility event, and the reverse.
        let e = parse_err(&[
            "facility",
            "create",
            "--url",
            "https://x",
            "--events",
            "facility.creation.accepted",
        ]);
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::InvalidValue, 2));
        assert!(e.to_string().contains("shift.report.accepted-automatically"), "{e}");
        let e = parse_err(&["create", "--url", "https://x", "--events", "shift.created"]);
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        let e = parse_err(&["facility", "update", "id-1", "--events", "shift.nope"]);
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        // Required on create only: an update keeps what it is not given.
        let e = parse_err(&["facility", "create", "--url", "https://x"]);
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        let e = parse_err(&["facility", "create", "--events", "all"]);
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        // An empty secret is refused by the contract's items, as for user webhooks.
        let e = parse_err(&["facility", "create", "--url", "https://x", "--events", "all", "--secret", ""]);
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        let e = parse_err(&["facility", "update", "id-1", "--secret", ""]);
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn facility_secrets_are_limited_by_the_contract() {
        let three = ["--secret", "a", "--secret", "b", "--secret", "c"];
        let create = ["facility", "create", "--url", "https://x", "--events", "all"];
        let e = parse_err(&[&create[..], &three[..]].concat());
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::TooManyValues, 2));
        assert!(e.to_string().contains("at most 2 secrets"), "{e}");
        let e = parse_err(&[&["facility", "update", "id-1"][..], &three[..]].concat());
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::TooManyValues, 2));
        parse_ok(&[&create[..], &three[..4]].concat());
    }

    #[test]
    fn facility_update_keeps_what_is_not_given() {
        let cli = parse_ok(&["facility", "update", "id-1"]);
        let Command::Facility(FacilityCommand::Update(args)) = cli.command else { panic!("facility update") };
        assert_eq!(args.id, "id-1");
        assert_eq!(
            (args.url.as_deref(), args.events.is_empty(), args.secrets.is_empty()),
            (None, true, true)
        );
        assert_eq!(args.facilities(), None);

        let cli = parse_ok(&[
            "facility",
            "update",
            "id-1",
            "--url",
            "https://example.com/moved",
            "--events",
            "shift.scheduled",
            "--facility",
            "P-1",
            "--secret",
            "new",
        ]);
        let Command::Facility(FacilityCommand::Update(args)) = cli.command else { panic!("facility update") };
        assert_eq!(args.url.as_deref(), Some("https://example.com/moved"));
        assert_eq!(args.events, [FacilityWebhookEvent::ShiftScheduled]);
        assert_eq!(args.facilities(), Some(vec!["P-1".to_owned()]));
        assert_eq!(args.secrets.len(), 1);

        // --all-facilities sends an empty list: follow every accessible facility.
        let cli = parse_ok(&["facility", "update", "id-1", "--all-facilities"]);
        let Command::Facility(FacilityCommand::Update(args)) = cli.command else { panic!("facility update") };
        assert_eq!(args.facilities(), Some(Vec::new()));
    }

    #[test]
    fn all_facilities_conflicts_with_facility() {
        let e = parse_err(&["facility", "update", "id-1", "--all-facilities", "--facility", "P-1"]);
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::ArgumentConflict, 2));
        // Only update has it: a new webhook without --facility already follows all.
        let e =
            parse_err(&["facility", "create", "--url", "https://x", "--events", "all", "--all-facilities"]);
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn facility_list_get_and_delete_take_an_id_where_needed() {
        assert!(matches!(parse_ok(&["facility", "list"]).command, Command::Facility(FacilityCommand::List)));
        let cli = parse_ok(&["facility", "get", "id-1", "--json"]);
        assert!(cli.global.json);
        assert!(matches!(cli.command, Command::Facility(FacilityCommand::Get { id }) if id == "id-1"));
        let cli = parse_ok(&["facility", "delete", "id-2"]);
        assert!(matches!(cli.command, Command::Facility(FacilityCommand::Delete { id }) if id == "id-2"));
        assert_eq!(parse_err(&["facility", "get"]).kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse_err(&["facility"]).exit_code(), 2);
    }

    #[test]
    fn logs_take_facility_event_types_and_facilities() {
        let cli = parse_ok(&[
            "logs",
            "--event-type",
            "shift.report.accepted-automatically",
            "--facility",
            "P-1,P-2",
            "--facility",
            "P-3",
        ]);
        let Command::Logs(args) = cli.command else { panic!("logs") };
        assert_eq!(args.event_type, Some(EventType::ShiftReportAcceptedAutomatically));
        assert_eq!(args.facilities, ["P-1", "P-2", "P-3"]);
        // Every event type of the contract, user and facility, is accepted.
        for name in EVENT_TYPES {
            let Command::Logs(args) = parse_ok(&["logs", "--event-type", name]).command else {
                panic!("logs")
            };
            assert_eq!(args.event_type.map(|t| t.to_string()).as_deref(), Some(name));
        }
        assert_eq!(parse_err(&["logs", "--event-type", "shift.nope"]).kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn the_url_is_left_to_the_server() {
        let cli = parse_ok(&["create", "--url", "http://x", "--events", "all"]);
        let Command::Create(args) = cli.command else { panic!("create") };
        assert_eq!(args.url, "http://x");
    }

    #[test]
    fn update_keeps_url_and_secrets_optional() {
        let cli = parse_ok(&["update", "id-1", "--events", "facility.creation.accepted"]);
        let Command::Update(args) = cli.command else { panic!("update") };
        assert_eq!(args.id, "id-1");
        assert_eq!(args.url, None);
        assert!(args.secrets.is_empty());
    }

    #[test]
    fn logs_filters_parse_into_the_generated_types() {
        let cli = parse_ok(&[
            "logs",
            "--event-type",
            "facility.creation.rejected",
            "--webhook",
            "w-1",
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-30T12:00:00+01:00",
            "--limit",
            "20",
            "--offset",
            "40",
            "--sort",
            "asc",
        ]);
        let Command::Logs(args) = cli.command else { panic!("logs") };
        assert_eq!(args.event_type, Some(EventType::FacilityCreationRejected));
        assert_eq!(args.webhook_id.as_deref(), Some("w-1"));
        assert!(args.facilities.is_empty());
        assert_eq!(args.start.map(|d| d.to_rfc3339()), Some("2026-11-01T00:00:00+00:00".to_owned()));
        assert_eq!(args.end.map(|d| d.to_rfc3339()), Some("2026-11-30T11:00:00+00:00".to_owned()));
        assert_eq!(args.limit, Some(20));
        assert_eq!(args.offset, Some(40));
        assert_eq!(
            args.sort.map(SearchWebhookLogsSortDirection::from),
            Some(SearchWebhookLogsSortDirection::Asc)
        );

        assert_eq!(parse_err(&["logs", "--start", "yesterday"]).kind(), ErrorKind::ValueValidation);
        assert_eq!(parse_err(&["logs", "--limit", "-1"]).kind(), ErrorKind::UnknownArgument);
        assert_eq!(parse_err(&["logs", "--sort", "up"]).kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let cli = parse_ok(&["list", "--json", "--show-secrets", "--base-url", "https://api.example.com/"]);
        assert!(cli.global.json);
        assert!(cli.global.show_secrets);
        assert_eq!(cli.global.base_url, "https://api.example.com");
        assert_eq!(cli.global.token.as_deref(), Some("t0ken"));
        assert!(matches!(cli.command, Command::List));

        let cli = parse_ok(&["--json", "get", "id-1"]);
        assert!(cli.global.json);
        assert!(matches!(cli.command, Command::Get { id } if id == "id-1"));
    }

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(parse_base_url("http://127.0.0.1:8080/").as_deref(), Ok("http://127.0.0.1:8080"));
        assert_eq!(parse_base_url("https://h/prefix/").as_deref(), Ok("https://h/prefix"));
        assert!(parse_base_url("127.0.0.1:8080").is_err());
        assert!(parse_base_url("ftp://h").is_err());
        assert!(parse_base_url("http://h/?a=1").is_err());
        assert_eq!(parse_err(&["--base-url", "nope", "list"]).kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn a_subcommand_is_required() {
        let e = parse_err(&[]);
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn help_exits_zero_and_documents_exit_codes_and_json() {
        let e = parse_err(&["--help"]);
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
        assert_eq!(e.exit_code(), 0);
        let help = e.to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("WEBHOOKS_TOKEN"), "{help}");
        assert!(help.contains("{\"data\": …}"), "{help}");
        assert!(help.contains("facility"), "{help}");
        assert!(help.contains("--all-facilities"), "{help}");
    }
}
