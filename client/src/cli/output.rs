//! What `webhooks` prints: tables of webhooks and log entries, JSON bodies, and errors.
//!
//! Tables are drawn with comfy-table: a widely used, maintained crate that sizes columns by
//! display width (Unicode-aware), supports multi-line cells (one event or secret per line),
//! and, built without its `tty` feature, pulls no terminal crate and never wraps, so the output
//! is the same in a terminal, a pipe and a test.

use chrono::SecondsFormat;
use comfy_table::presets::{UTF8_FULL, UTF8_FULL_CONDENSED};
use comfy_table::Table;
use serde::Serialize;

use super::error::{ApiError, ErrorBody, Failure};
use crate::types::{FacilityWebhook, UserWebhook, WebhookLog};

/// How many trailing characters of a secret a table shows unless `--show-secrets`.
pub const VISIBLE_SECRET_CHARS: usize = 4;
/// Secrets this short are masked whole: their last 4 characters would be most of them.
const FULLY_MASKED_UP_TO: usize = 8;
const MASK: &str = "****";

/// `****` followed by the last 4 characters; fully masked when 8 characters or fewer. The mask
/// has a fixed length, so it does not tell the secret's length either.
pub fn mask_secret(secret: &str) -> String {
    let count = secret.chars().count();
    if count <= FULLY_MASKED_UP_TO {
        return MASK.to_owned();
    }
    let tail: String = secret.chars().skip(count - VISIBLE_SECRET_CHARS).collect();
    format!("{MASK}{tail}")
}

/// ID | URL | EVENTS | SECRETS, one event and one secret per line in their cells; a sentence
/// instead when there are none.
pub fn webhooks_table(webhooks: &[UserWebhook], show_secrets: bool) -> String {
    if webhooks.is_empty() {
        return "No webhooks.\n".to_owned();
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL).set_header(["ID", "URL", "EVENTS", "SECRETS"]);
    for webhook in webhooks {
        table.add_row([
            webhook.id.clone(),
            webhook.url.clone(),
            lines(&webhook.events),
            secrets_cell(&webhook.secrets, show_secrets),
        ]);
    }
    format!("{}\n", table.trim_fmt())
}

/// ID | URL | EVENTS | FACILITIES | SECRETS, one event, facility and secret per line in their
/// cells (`-` for no facility); a sentence instead when there are none.
pub fn facility_webhooks_table(webhooks: &[FacilityWebhook], show_secrets: bool) -> String {
    if webhooks.is_empty() {
        return "No facility webhooks.\n".to_owned();
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL).set_header(["ID", "URL", "EVENTS", "FACILITIES", "SECRETS"]);
    for webhook in webhooks {
        // A webhook following every facility of a user who has none answers an empty list.
        let facilities =
            if webhook.facilities.is_empty() { "-".to_owned() } else { lines(&webhook.facilities) };
        table.add_row([
            webhook.id.clone(),
            webhook.url.clone(),
            lines(&webhook.events),
            facilities,
            secrets_cell(&webhook.secrets, show_secrets),
        ]);
    }
    format!("{}\n", table.trim_fmt())
}

/// One value per line.
fn lines<T: ToString>(values: &[T]) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// One secret per line, masked unless `show_secrets`.
fn secrets_cell(secrets: &[String], show_secrets: bool) -> String {
    secrets
        .iter()
        .map(|secret| if show_secrets { secret.clone() } else { mask_secret(secret) })
        .collect::<Vec<_>>()
        .join("\n")
}

/// CREATED | EVENT | WEBHOOK | FACILITY | STATUS | HTTP | RETRIES (FACILITY `-` when the event
/// names none); a sentence instead when there are none.
pub fn logs_table(logs: &[WebhookLog]) -> String {
    if logs.is_empty() {
        return "No log entries.\n".to_owned();
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(["CREATED", "EVENT", "WEBHOOK", "FACILITY", "STATUS", "HTTP", "RETRIES"]);
    for log in logs {
        table.add_row([
            log.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            log.event_type.to_string(),
            log.webhook_id.clone(),
            log.facility_id.clone().unwrap_or_else(|| "-".to_owned()),
            log.status.to_string(),
            log.response_status.map_or_else(|| "-".to_owned(), |status| status.to_string()),
            log.retries.len().to_string(),
        ]);
    }
    format!("{}\n", table.trim_fmt())
}

/// A response body as pretty JSON, with a final newline.
pub fn json<T: Serialize>(body: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(body)
        .map(|text| text + "\n")
        .map_err(|e| Failure::Contract(format!("the answer could not be re-encoded as JSON: {e}")))
}

/// What stderr gets for a failure. With `json`, an API error is its body alone (pretty JSON,
/// or the text as received); everything else is one `error: …` line in both modes.
pub fn failure(failure: &Failure, json: bool) -> String {
    match failure {
        Failure::Api(error) if json => api_error_json(error),
        Failure::Api(error) => api_error(error),
        Failure::Contract(message) => format!("error: unexpected answer: {message}\n"),
        Failure::Connection(message) => format!("error: could not reach the server: {message}\n"),
        Failure::Request(message) => format!("error: invalid request: {message}\n"),
    }
}

fn api_error_json(error: &ApiError) -> String {
    match &error.body {
        ErrorBody::Json(body) => {
            serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string()) + "\n"
        }
        ErrorBody::Text(text) if text.ends_with('\n') || text.is_empty() => text.clone(),
        ErrorBody::Text(text) => format!("{text}\n"),
    }
}

/// `error <status> <error>:` then each message on its own line, `  - <message>`. `<error>` is
/// the body's `error` (401 bodies have none: the status's reason phrase then). A body outside
/// the contract's shape is printed indented, as received.
pub fn api_error(error: &ApiError) -> String {
    let reason =
        reqwest::StatusCode::from_u16(error.status).ok().and_then(|status| status.canonical_reason());
    let (title, lines) = match &error.body {
        ErrorBody::Json(body) => {
            let title = body.get("error").and_then(|e| e.as_str()).map(str::to_owned);
            let lines = match body.get("message") {
                Some(serde_json::Value::String(message)) => vec![message.clone()],
                Some(serde_json::Value::Array(messages)) => {
                    messages.iter().map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned)).collect()
                }
                _ => vec![body.to_string()],
            };
            (title, lines)
        }
        ErrorBody::Text(text) if text.trim().is_empty() => (None, Vec::new()),
        ErrorBody::Text(text) => (None, text.lines().map(str::to_owned).collect()),
    };
    let title = title.or(reason.map(str::to_owned));
    let mut out = match title {
        Some(title) => format!("error {} {title}", error.status),
        None => format!("error {}", error.status),
    };
    if lines.is_empty() {
        out.push('\n');
        return out;
    }
    out.push_str(":\n");
    for line in lines {
        out.push_str("  - ");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types::{
        EventType, FacilityWebhookEvent, UserWebhookEvent, WebhookLogRetry, WebhookLogStatus,
    };

    fn webhook(id: &str, secrets: &[&str]) -> UserWebhook {
        UserWebhook {
            client_id: "client-a".into(),
            events: vec![UserWebhookEvent::FacilityCreationAccepted, UserWebhookEvent::All],
            id: id.into(),
            secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
            url: "https://example.com/hook".into(),
        }
    }

    #[test]
    fn secrets_show_only_their_last_four_characters() {
        assert_eq!(mask_secret("sDV1aKqitCLClI12m7UPFbAAvZfZquJw"), "****quJw");
        assert_eq!(mask_secret("123456789"), "****6789");
        // Short secrets are masked whole, and the mask does not tell the length.
        assert_eq!(mask_secret("12345678"), "****");
        assert_eq!(mask_secret("abc"), "****");
        assert_eq!(mask_secret(""), "****");
        // Characters, not bytes.
        assert_eq!(mask_secret("ééééééééé-ümlå"), "****ümlå");
    }

    #[test]
    fn a_webhook_table_masks_secrets_unless_asked() {
        let webhooks = [webhook("fb656bc5", &["first-secret-1234", "second-secret-5678"])];
        let masked = webhooks_table(&webhooks, false);
        assert_eq!(
            masked,
            "\
┌──────────┬──────────────────────────┬────────────────────────────┬──────────┐
│ ID       ┆ URL                      ┆ EVENTS                     ┆ SECRETS  │
╞══════════╪══════════════════════════╪════════════════════════════╪══════════╡
│ fb656bc5 ┆ https://example.com/hook ┆ facility.creation.accepted ┆ ****1234 │
│          ┆                          ┆ all                        ┆ ****5678 │
└──────────┴──────────────────────────┴────────────────────────────┴──────────┘
"
        );
        assert!(!masked.contains("first-secret"));

        let shown = webhooks_table(&webhooks, true);
        assert!(shown.contains("first-secret-1234"), "{shown}");
        assert!(shown.contains("second-secret-5678"), "{shown}");
    }

    #[test]
    fn a_webhook_table_has_a_row_per_webhook() {
        let table = webhooks_table(&[webhook("id-1", &["s"]), webhook("id-2", &[])], false);
        let rows: Vec<&str> = table.lines().filter(|l| l.contains("https://example.com/hook")).collect();
        assert_eq!(rows.len(), 2, "{table}");
        assert!(rows[0].contains("id-1") && rows[1].contains("id-2"), "{table}");
    }

    #[test]
    fn empty_lists_print_a_sentence() {
        assert_eq!(webhooks_table(&[], false), "No webhooks.\n");
        assert_eq!(facility_webhooks_table(&[], false), "No facility webhooks.\n");
        assert_eq!(logs_table(&[]), "No log entries.\n");
    }

    #[test]
    fn a_log_table_shows_status_first_http_answer_and_retries() {
        let at = |s: &str| s.parse().expect("an RFC 3339 instant");
        let log = |status: Option<i64>, retries: usize, outcome| WebhookLog {
            created_at: at("2026-11-26T10:00:00.123Z"),
            event_id: "evt-1".into(),
            event_type: EventType::FacilityCreationAccepted,
            facility_id: None,
            id: "log-1".into(),
            request_payload: serde_json::Map::new(),
            response_body: String::new(),
            response_status: status,
            retries: (1..=retries as i64)
                .map(|n| WebhookLogRetry {
                    created_at: at("2026-11-26T10:05:00Z"),
                    response_body: "OK".into(),
                    response_status: Some(200),
                    retry_attempt: n,
                })
                .collect(),
            status: outcome,
            url: "https://example.com/hook".into(),
            webhook_id: "fb656bc5".into(),
        };
        let table = logs_table(&[
            log(Some(500), 2, WebhookLogStatus::Success),
            log(None, 0, WebhookLogStatus::Failure),
        ]);
        assert_eq!(
            table,
            "\
┌──────────────────────┬────────────────────────────┬──────────┬──────────┬─────────┬──────┬─────────┐
│ CREATED              ┆ EVENT                      ┆ WEBHOOK  ┆ FACILITY ┆ STATUS  ┆ HTTP ┆ RETRIES │
╞══════════════════════╪════════════════════════════╪══════════╪══════════╪═════════╪══════╪═════════╡
│ 2026-11-26T10:00:00Z ┆ facility.creation.accepted ┆ fb656bc5 ┆ -        ┆ success ┆ 500  ┆ 2       │
│ 2026-11-26T10:00:00Z ┆ facility.creation.accepted ┆ fb656bc5 ┆ -        ┆ failure ┆ -    ┆ 0       │
└──────────────────────┴────────────────────────────┴──────────┴──────────┴─────────┴──────┴─────────┘
"
        );
    }

    fn facility_webhook(id: &str, facilities: &[&str]) -> FacilityWebhook {
        FacilityWebhook {
            client_id: "client-a".into(),
            events: vec![
                FacilityWebhookEvent::ShiftCreated,
                FacilityWebhookEvent::ShiftReportAcceptedAutomatically,
            ],
            facilities: facilities.iter().map(|f| (*f).to_owned()).collect(),
            id: id.into(),
            secrets: vec!["first-secret-1234".into()],
            url: "https://example.com/shifts".into(),
        }
    }

    #[test]
    fn a_facility_webhook_table_lists_its_facilities() {
        let table = facility_webhooks_table(&[facility_webhook("9a1c", &["NUR-1", "NUR-2"])], false);
        assert_eq!(
            table,
            "\
┌──────┬────────────────────────────┬─────────────────────────────────────┬────────────┬──────────┐
│ ID   ┆ URL                        ┆ EVENTS                              ┆ FACILITIES ┆ SECRETS  │
╞══════╪════════════════════════════╪═════════════════════════════════════╪════════════╪══════════╡
│ 9a1c ┆ https://example.com/shifts ┆ shift.created                       ┆ NUR-1      ┆ ****1234 │
│      ┆                            ┆ shift.report.accepted-automatically ┆ NUR-2      ┆          │
└──────┴────────────────────────────┴─────────────────────────────────────┴────────────┴──────────┘
"
        );
        let shown = facility_webhooks_table(&[facility_webhook("9a1c", &[])], true);
        assert!(shown.contains("first-secret-1234"), "{shown}");
        // No facility (a user who can access none): a dash.
        let row: Vec<&str> = shown.lines().filter(|l| l.contains("9a1c")).collect();
        assert!(row[0].contains("┆ -  "), "{shown}");
    }

    #[test]
    fn a_log_table_shows_the_facility_of_the_event() {
        let entry = WebhookLog {
            created_at: "2026-11-26T10:00:00Z".parse().expect("an RFC 3339 instant"),
            event_id: "evt-2".into(),
            event_type: EventType::ShiftCreated,
            facility_id: Some("NUR-1".into()),
            id: "log-2".into(),
            request_payload: serde_json::Map::new(),
            response_body: "OK".into(),
            response_status: Some(200),
            retries: Vec::new(),
            status: WebhookLogStatus::Success,
            url: "https://example.com/shifts".into(),
            webhook_id: "9a1c".into(),
        };
        assert_eq!(
            logs_table(&[entry]),
            "\
┌──────────────────────┬───────────────┬─────────┬──────────┬─────────┬──────┬─────────┐
│ CREATED              ┆ EVENT         ┆ WEBHOOK ┆ FACILITY ┆ STATUS  ┆ HTTP ┆ RETRIES │
╞══════════════════════╪═══════════════╪═════════╪══════════╪═════════╪══════╪═════════╡
│ 2026-11-26T10:00:00Z ┆ shift.created ┆ 9a1c    ┆ NUR-1    ┆ success ┆ 200  ┆ 0       │
└──────────────────────┴───────────────┴─────────┴──────────┴─────────┴──────┴─────────┘
"
        );
    }

    #[test]
    fn validation_errors_print_one_message_per_line() {
        let error = ApiError {
            status: 400,
            body: ErrorBody::Json(json!({
                "message": ["should be a secure URL with HTTPS", "events must contain at least 1 elements"],
                "error": "Bad Request",
                "statusCode": 400
            })),
        };
        assert_eq!(
            api_error(&error),
            "error 400 Bad Request:\n  - should be a secure URL with HTTPS\n  - events must contain at least 1 elements\n"
        );
    }

    #[test]
    fn a_401_without_error_field_uses_the_reason_phrase() {
        let error = ApiError {
            status: 401,
            body: ErrorBody::Json(json!({"message": "Unauthorized", "statusCode": 401})),
        };
        assert_eq!(api_error(&error), "error 401 Unauthorized:\n  - Unauthorized\n");
        assert_eq!(
            failure(&Failure::Api(error), true),
            "{\n  \"message\": \"Unauthorized\",\n  \"statusCode\": 401\n}\n"
        );
    }

    #[test]
    fn bodies_outside_the_contract_are_printed_as_received() {
        let text = ApiError { status: 502, body: ErrorBody::Text("Bad gateway\nupstream down".into()) };
        assert_eq!(api_error(&text), "error 502 Bad Gateway:\n  - Bad gateway\n  - upstream down\n");
        assert_eq!(failure(&Failure::Api(text), true), "Bad gateway\nupstream down\n");

        let empty = ApiError { status: 500, body: ErrorBody::Text(String::new()) };
        assert_eq!(api_error(&empty), "error 500 Internal Server Error\n");

        let odd = ApiError { status: 418, body: ErrorBody::Json(json!({"detail": "teapot"})) };
        assert_eq!(api_error(&odd), "error 418 I'm a teapot:\n  - {\"detail\":\"teapot\"}\n");
    }

    #[test]
    fn other_failures_are_one_line() {
        assert_eq!(
            failure(&Failure::Connection("error sending request: Connection refused".into()), true),
            "error: could not reach the server: error sending request: Connection refused\n"
        );
        assert_eq!(Failure::Connection(String::new()).exit_code(), 3);
        assert_eq!(Failure::Contract(String::new()).exit_code(), 1);
        assert_eq!(
            Failure::Api(ApiError { status: 404, body: ErrorBody::Text(String::new()) }).exit_code(),
            1
        );
    }
}
