//! The `webhooks` command-line tool end to end: the real binary (built in this package as
//! `webhooks-cli-under-test` from `client/src/bin/webhooks.rs`) against the in-process server.
//! User and facility webhooks and the log. Tables by default, `--json` bodies, the contract's
//! error bodies on stderr, and the exit codes: 0 success, 1 API error, 2 usage error, 3 server
//! unreachable.
//!
//! The binary runs through `tokio::process`, so the server keeps serving in this test's
//! runtime while the test awaits the child.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use webhooks_client::types::{EventType, PublishEventRequest};
use webhooks_e2e::receiver::Receiver;
use webhooks_e2e::{
    documented_body, forbidden_body, not_found_body, spec, trust_receiver, unauthorized_body, TestServer,
    NURSE_USER,
};

const CLI: &str = env!("CARGO_BIN_EXE_webhooks-cli-under-test");
/// Bound of every wait for a delivery to show up in the log.
const WAIT: Duration = Duration::from_secs(15);

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    fn stderr_json(&self) -> Value {
        serde_json::from_str(&self.stderr).unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {self:#?}"))
    }
}

/// Runs `webhooks ARGS` with `WEBHOOKS_URL=base_url` and, when given, `WEBHOOKS_TOKEN=token`;
/// nothing else of the test's own environment leaks in.
async fn webhooks(base_url: &str, token: Option<&str>, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(CLI);
    command.args(args).env_remove("WEBHOOKS_TOKEN").env("WEBHOOKS_URL", base_url).kill_on_drop(true);
    if let Some(token) = token {
        command.env("WEBHOOKS_TOKEN", token);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("webhooks {args:?} did not finish within 60 s"))
        .expect("running the CLI");
    Run {
        code: output.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// A CLI bound to one server and one token.
struct Cli<'a> {
    server: &'a TestServer,
    token: String,
}

impl Cli<'_> {
    async fn run(&self, args: &[&str]) -> Run {
        webhooks(&self.server.base_url, Some(&self.token), args).await
    }
}

/// The data rows of a table: the lines holding `needle`.
fn rows<'a>(table: &'a str, needle: &str) -> Vec<&'a str> {
    table.lines().filter(|line| line.contains(needle)).collect()
}

/// `x-validation-message` of the https-URL rule, read from the spec.
fn url_message() -> String {
    spec()["components"]["schemas"]["CreateUserWebhookRequest"]["properties"]["url"]["x-validation-message"]
        .as_str()
        .expect("x-validation-message")
        .to_owned()
}

/// `error <status> <error>:` and the body's messages, one per line: what a person sees.
fn readable(body: &str) -> String {
    let body: Value = serde_json::from_str(body).expect("JSON body");
    let status = body["statusCode"].as_u64().expect("statusCode");
    let title = body["error"].as_str().map(str::to_owned).unwrap_or_else(|| {
        reqwest::StatusCode::from_u16(status as u16)
            .expect("status")
            .canonical_reason()
            .expect("reason")
            .to_owned()
    });
    let messages: Vec<String> = match &body["message"] {
        Value::String(message) => vec![message.clone()],
        Value::Array(messages) => messages.iter().map(|m| m.as_str().expect("string").to_owned()).collect(),
        other => panic!("message: {other}"),
    };
    let mut text = format!("error {status} {title}:\n");
    for message in messages {
        text.push_str(&format!("  - {message}\n"));
    }
    text
}

#[tokio::test]
async fn crud_round_trip_with_tables_and_json() {
    let server = TestServer::start().await;
    let cli = Cli { server: &server, token: server.token("cli-client", "cli-user") };

    // create --json: the contract's body, secrets in plain text.
    let created = cli
        .run(&[
            "--json",
            "create",
            "--url",
            "https://example.com/hook",
            "--events",
            "facility.creation.accepted,facility.user-connection.accepted",
            "--secret",
            "first-secret-1234",
            "--secret",
            "second-secret-5678",
        ])
        .await
        .ok();
    assert_eq!(created.stderr, "");
    let body = created.json();
    let id = body["data"]["id"].as_str().expect("data.id").to_owned();
    assert_eq!(
        body,
        json!({"data": {
            "id": id,
            "url": "https://example.com/hook",
            "events": ["facility.creation.accepted", "facility.user-connection.accepted"],
            "clientId": "cli-client",
            "secrets": ["first-secret-1234", "second-secret-5678"],
        }})
    );

    // create (table): one row, secrets masked but for their last 4 characters; the secret the
    // server generated is pointed out on stderr.
    let second = cli.run(&["create", "--url", "https://example.com/other", "--events", "all"]).await.ok();
    assert!(second.stdout.contains("│ ID"), "{second:#?}");
    assert!(second.stdout.contains("SECRETS"), "{second:#?}");
    let row = rows(&second.stdout, "https://example.com/other");
    assert_eq!(row.len(), 1, "{second:#?}");
    assert!(row[0].contains("┆ all") && row[0].contains("****"), "{second:#?}");
    assert!(second.stderr.contains("generated a secret"), "{second:#?}");
    assert!(second.stderr.contains("--show-secrets"), "{second:#?}");

    // list: both, masked by default.
    let list = cli.run(&["list"]).await.ok();
    assert_eq!(rows(&list.stdout, "https://example.com/").len(), 2, "{list:#?}");
    assert_eq!(rows(&list.stdout, &id).len(), 1, "{list:#?}");
    assert!(list.stdout.contains("****1234") && list.stdout.contains("****5678"), "{list:#?}");
    assert!(!list.stdout.contains("first-secret"), "secrets leak: {list:#?}");
    let ids = list_ids(&cli).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&id), "{ids:?}");

    // get: table, --show-secrets, --json (the same body as the create's).
    let get = cli.run(&["get", &id]).await.ok();
    let row = rows(&get.stdout, &id);
    assert_eq!(row.len(), 1, "{get:#?}");
    assert!(row[0].contains("https://example.com/hook") && row[0].contains("****1234"), "{get:#?}");
    assert!(get.stdout.contains("****5678"), "{get:#?}");
    let shown = cli.run(&["get", &id, "--show-secrets"]).await.ok();
    assert!(
        shown.stdout.contains("first-secret-1234") && shown.stdout.contains("second-secret-5678"),
        "{shown:#?}"
    );
    assert_eq!(cli.run(&["get", &id, "--json"]).await.ok().json(), body);

    // update: events replaced, URL changed, secrets kept (none given).
    let updated =
        cli.run(&["update", &id, "--events", "all", "--url", "https://example.com/moved"]).await.ok();
    let row = rows(&updated.stdout, &id);
    assert_eq!(row.len(), 1, "{updated:#?}");
    assert!(row[0].contains("https://example.com/moved") && row[0].contains("┆ all"), "{updated:#?}");
    assert!(updated.stdout.contains("****1234"), "secrets kept: {updated:#?}");
    assert!(!updated.stdout.contains("facility.creation.accepted"), "events replaced: {updated:#?}");
    let updated = cli
        .run(&[
            "--json",
            "update",
            &id,
            "--events",
            "facility.creation.rejected",
            "--secret",
            "third-secret-9999",
        ])
        .await
        .ok();
    assert_eq!(
        updated.json()["data"],
        json!({
            "id": id,
            "url": "https://example.com/moved",
            "events": ["facility.creation.rejected"],
            "clientId": "cli-client",
            "secrets": ["third-secret-9999"],
        })
    );

    // logs: nothing was published.
    assert_eq!(cli.run(&["logs"]).await.ok().stdout, "No log entries.\n");
    assert_eq!(cli.run(&["logs", "--json"]).await.ok().json(), json!({"data": []}));

    // delete: a confirmation; with --json nothing (the answer is an empty 204).
    let deleted = cli.run(&["delete", &id]).await.ok();
    assert_eq!(deleted.stdout, format!("Deleted webhook {id}.\n"));
    let other = list_ids(&cli).await.into_iter().find(|w| *w != id).expect("the second webhook");
    let deleted = cli.run(&["delete", &other, "--json"]).await.ok();
    assert_eq!((deleted.stdout.as_str(), deleted.stderr.as_str()), ("", ""));
    assert_eq!(cli.run(&["list"]).await.ok().stdout, "No webhooks.\n");

    // get after delete: exit 1, the contract's 404 body on stderr.
    let gone = cli.run(&["get", &id]).await;
    assert_eq!(gone.code, 1, "{gone:#?}");
    assert_eq!(gone.stdout, "");
    assert_eq!(gone.stderr, readable(&not_found_body()));
    assert_eq!(gone.stderr, "error 404 Not Found:\n  - Webhook not found\n");
    let gone = cli.run(&["get", &id, "--json"]).await;
    assert_eq!(gone.code, 1, "{gone:#?}");
    assert_eq!(gone.stderr_json(), webhooks_e2e::json(&not_found_body()));
    for args in [vec!["delete", id.as_str()], vec!["update", id.as_str(), "--events", "all"]] {
        let gone = cli.run(&args).await;
        assert_eq!((gone.code, gone.stderr.as_str()), (1, readable(&not_found_body()).as_str()), "{args:?}");
    }
}

async fn list_ids(cli: &Cli<'_>) -> Vec<String> {
    let list = cli.run(&["--json", "list"]).await.ok();
    list.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|w| w["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_400_prints_each_validation_message_and_exits_1() {
    let server = TestServer::start().await;
    let cli = Cli { server: &server, token: server.token("cli-client", "cli-user") };

    let bad = cli.run(&["create", "--url", "http://x", "--events", "all"]).await;
    assert_eq!(bad.code, 1, "{bad:#?}");
    assert_eq!(bad.stdout, "");
    assert_eq!(bad.stderr, format!("error 400 Bad Request:\n  - {}\n", url_message()));

    let bad = cli.run(&["--json", "create", "--url", "http://x", "--events", "all"]).await;
    assert_eq!(bad.code, 1, "{bad:#?}");
    let mut expected = webhooks_e2e::json(&documented_body("BadRequest", "RequestValidation"));
    expected["message"] = json!([url_message()]);
    assert_eq!(bad.stderr_json(), expected);

    // Nothing was created.
    assert_eq!(cli.run(&["list"]).await.ok().stdout, "No webhooks.\n");

    // The log search's own 400 (limit over the contract's maximum, which only the server checks).
    let bad = cli.run(&["logs", "--limit", "1000"]).await;
    assert_eq!(bad.code, 1, "{bad:#?}");
    assert!(bad.stderr.starts_with("error 400 Bad Request:\n  - "), "{bad:#?}");
    assert!(bad.stderr.lines().skip(1).all(|line| line.starts_with("  - ")), "{bad:#?}");
}

#[tokio::test]
async fn a_bad_token_is_a_401_and_a_wrong_role_a_403_both_exit_1() {
    let server = TestServer::start().await;

    let denied = webhooks(&server.base_url, Some("not-a-jwt"), &["list"]).await;
    assert_eq!(denied.code, 1, "{denied:#?}");
    assert_eq!(denied.stdout, "");
    assert_eq!(denied.stderr, readable(&unauthorized_body()));
    assert_eq!(denied.stderr, "error 401 Unauthorized:\n  - Unauthorized\n");
    // --token wins over WEBHOOKS_TOKEN.
    let good = server.token("cli-client", "cli-user");
    let denied = webhooks(&server.base_url, Some(&good), &["--token", "not-a-jwt", "--json", "list"]).await;
    assert_eq!(denied.code, 1, "{denied:#?}");
    assert_eq!(denied.stderr_json(), webhooks_e2e::json(&unauthorized_body()));

    let nurse = server.token_with_role("cli-client", "cli-user", NURSE_USER);
    let forbidden = webhooks(&server.base_url, Some(&nurse), &["get", "some-id"]).await;
    assert_eq!(forbidden.code, 1, "{forbidden:#?}");
    assert_eq!(forbidden.stderr, readable(&forbidden_body()));
}

#[tokio::test]
async fn an_unreachable_server_exits_3() {
    // A port that was free a moment ago and has nothing listening now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
    drop(listener);

    let run = webhooks(&base_url, Some("any-token"), &["list"]).await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.starts_with("error: could not reach the server: "), "{run:#?}");
    assert!(run.stderr.contains(&base_url), "{run:#?}");
    // The same with --json: not an API answer, so no body.
    let run =
        webhooks("http://127.0.0.1:9", Some("any-token"), &["--base-url", &base_url, "--json", "get", "x"])
            .await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(run.stderr.starts_with("error: could not reach the server: "), "{run:#?}");
}

#[tokio::test]
async fn usage_errors_exit_2_without_calling_the_server() {
    // Nothing listens here: reaching it would be exit 3, not 2.
    let nowhere = "http://127.0.0.1:9";
    let no_token = webhooks(nowhere, None, &["list"]).await;
    assert_eq!(no_token.code, 2, "{no_token:#?}");
    assert!(no_token.stderr.contains("WEBHOOKS_TOKEN"), "{no_token:#?}");
    // A token that cannot be sent as a header is refused before any request.
    let pasted = webhooks(nowhere, Some("eyJ.abc\n.def"), &["list"]).await;
    assert_eq!(pasted.code, 2, "{pasted:#?}");
    assert!(pasted.stderr.contains("cannot be sent in an HTTP header"), "{pasted:#?}");

    for args in [
        vec!["create", "--url", "https://example.com/hook", "--events", "facility.created"],
        vec!["create", "--url", "https://example.com/hook"],
        vec![
            "create",
            "--url",
            "https://e.com/h",
            "--events",
            "all",
            "--secret",
            "a",
            "--secret",
            "b",
            "--secret",
            "c",
        ],
        vec!["update", "some-id"],
        vec![
            "facility",
            "create",
            "--url",
            "https://example.com/hook",
            "--events",
            "facility.creation.accepted",
        ],
        vec!["facility", "create", "--url", "https://example.com/hook"],
        vec!["facility", "update", "some-id", "--all-facilities", "--facility", "NUR-1"],
        vec!["facility", "update", "some-id", "--secret", "a", "--secret", "b", "--secret", "c"],
        vec!["facility", "get"],
        vec!["logs", "--event-type", "all"],
        vec!["logs", "--sort", "sideways"],
        vec!["logs", "--start", "last tuesday"],
        vec!["frobnicate"],
        vec![],
    ] {
        let run = webhooks(nowhere, Some("t"), &args).await;
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(run.stderr.contains("Usage:") || run.stderr.contains("--help"), "{args:?}: {run:#?}");
    }

    let help = webhooks(nowhere, None, &["--help"]).await.ok();
    assert!(help.stdout.contains("Exit codes:"), "{help:#?}");
    for command in ["create", "list", "get", "update", "delete", "logs", "facility"] {
        assert!(help.stdout.contains(&format!("  {command} ")), "{command}: {help:#?}");
    }
}

/// A delivery made by the worker, read back through `webhooks logs`.
#[tokio::test]
async fn logs_show_deliveries_and_filter_them() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|settings| trust_receiver(settings, &receiver)).await;
    let cli = Cli { server: &server, token: server.token("cli-client", "cli-user") };

    let hook_url = receiver.url("/hook");
    let created = cli.run(&["--json", "create", "--url", &hook_url, "--events", "all"]).await.ok();
    let id = created.json()["data"]["id"].as_str().expect("id").to_owned();

    let Value::Object(data) = json!({"facilityId": "NUR-123456"}) else { unreachable!() };
    let request = PublishEventRequest {
        data,
        event_type: EventType::FacilityCreationAccepted,
        id: None,
        user_id: Some("cli-user".parse().expect("a user id")),
    };
    let published = server.publisher().publish_event(&request).await.expect("publishing an event");
    assert_eq!(published.status(), 202);
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1, "the receiver got the event");

    // The log records the answer shortly after the receiver got the request.
    let deadline = Instant::now() + WAIT;
    let entry = loop {
        let logs = cli.run(&["logs", "--json"]).await.ok().json();
        let entry = logs["data"][0].clone();
        if entry["responseStatus"] == 200 {
            break entry;
        }
        assert!(Instant::now() < deadline, "no answered entry within {WAIT:?}: {logs:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry["webhookId"], id.as_str());
    assert_eq!(entry["eventType"], "facility.creation.accepted");
    assert_eq!(entry["status"], "success");
    assert_eq!(entry["facilityId"], "NUR-123456");

    let table = cli.run(&["logs"]).await.ok();
    assert!(table.stdout.contains("CREATED") && table.stdout.contains("RETRIES"), "{table:#?}");
    let row = rows(&table.stdout, &id);
    assert_eq!(row.len(), 1, "{table:#?}");
    let cells: Vec<&str> = row[0].split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).collect();
    let created_at = entry["createdAt"].as_str().expect("createdAt");
    assert_eq!(cells.len(), 7, "{table:#?}");
    assert_eq!(&cells[0][..19], &created_at[..19], "CREATED: {table:#?}");
    assert_eq!(
        &cells[1..],
        ["facility.creation.accepted", id.as_str(), "NUR-123456", "success", "200", "0"],
        "{table:#?}"
    );

    // Filters reach the server.
    let none = cli.run(&["logs", "--event-type", "facility.creation.rejected"]).await.ok();
    assert_eq!(none.stdout, "No log entries.\n");
    let none = cli.run(&["logs", "--webhook", "another-id"]).await.ok();
    assert_eq!(none.stdout, "No log entries.\n");
    let none = cli.run(&["logs", "--end", "2020-01-01"]).await.ok();
    assert_eq!(none.stdout, "No log entries.\n");
    let none = cli.run(&["logs", "--offset", "1"]).await.ok();
    assert_eq!(none.stdout, "No log entries.\n");
    let none = cli.run(&["logs", "--facility", "NUR-000000"]).await.ok();
    assert_eq!(none.stdout, "No log entries.\n");
    let none = cli.run(&["logs", "--event-type", "shift.created"]).await.ok();
    assert_eq!(none.stdout, "No log entries.\n");
    // Several facilities (comma-separated and repeated): entries of any of them.
    let found = cli.run(&["logs", "--facility", "NUR-000000,NUR-123456", "--facility", "NUR-1"]).await.ok();
    assert_eq!(rows(&found.stdout, &id).len(), 1, "{found:#?}");
    let found = cli
        .run(&[
            "logs",
            "--webhook",
            &id,
            "--event-type",
            "facility.creation.accepted",
            "--start",
            "2020-01-01",
            "--sort",
            "asc",
            "--limit",
            "5",
        ])
        .await
        .ok();
    assert_eq!(rows(&found.stdout, &id).len(), 1, "{found:#?}");
}

/// Facility webhooks through `webhooks facility …`: create naming a facility, list, get,
/// update to follow every facility, delete; a facility the user cannot access is the API's 400.
#[tokio::test]
async fn facility_webhooks_round_trip_through_the_cli() {
    let server = TestServer::start().await;
    let cli = Cli { server: &server, token: server.token("cli-client", "cli-user") };
    let mut accessible = crate::facility::set_facilities(&server, "cli-user", &["NUR-1", "NUR-2"]).await;
    accessible.sort();
    assert_eq!(accessible, ["NUR-1", "NUR-2"]);
    let sorted = |facilities: &Value| {
        let mut ids: Vec<String> = facilities
            .as_array()
            .unwrap_or_else(|| panic!("facilities: {facilities}"))
            .iter()
            .map(|f| f.as_str().expect("a facility id").to_owned())
            .collect();
        ids.sort();
        ids
    };

    // create --json, one facility named: the contract's body, secrets in plain text.
    let created = cli
        .run(&[
            "--json",
            "facility",
            "create",
            "--url",
            "https://example.com/shifts",
            "--events",
            "shift.created,shift.cancelled",
            "--facility",
            "NUR-1",
            "--secret",
            "first-secret-1234",
        ])
        .await
        .ok();
    assert_eq!(created.stderr, "");
    let body = created.json();
    let id = body["data"]["id"].as_str().expect("data.id").to_owned();
    assert_eq!(
        body,
        json!({"data": {
            "id": id,
            "url": "https://example.com/shifts",
            "events": ["shift.created", "shift.cancelled"],
            "clientId": "cli-client",
            "facilities": ["NUR-1"],
            "secrets": ["first-secret-1234"],
        }})
    );

    // Facility webhooks are their own resource: the user webhooks list does not show them.
    assert_eq!(cli.run(&["list"]).await.ok().stdout, "No webhooks.\n");

    // list: the table has a FACILITIES column; --json the contract's body.
    let list = cli.run(&["facility", "list"]).await.ok();
    assert!(list.stdout.contains("FACILITIES"), "{list:#?}");
    let row = rows(&list.stdout, &id);
    assert_eq!(row.len(), 1, "{list:#?}");
    assert!(row[0].contains("NUR-1") && row[0].contains("****1234"), "{list:#?}");
    assert!(!list.stdout.contains("NUR-2"), "only the named facility: {list:#?}");
    assert_eq!(cli.run(&["--json", "facility", "list"]).await.ok().json(), json!({"data": [body["data"]]}));

    // get: the same body as the create's.
    assert_eq!(cli.run(&["facility", "get", &id, "--json"]).await.ok().json(), body);
    let get = cli.run(&["facility", "get", &id, "--show-secrets"]).await.ok();
    assert!(get.stdout.contains("first-secret-1234"), "{get:#?}");

    // update --all-facilities: follows every facility of the user, and its answers list them;
    // what was not given (URL, events, secrets) is kept.
    let updated = cli.run(&["--json", "facility", "update", &id, "--all-facilities"]).await.ok().json();
    let data = &updated["data"];
    assert_eq!(sorted(&data["facilities"]), ["NUR-1", "NUR-2"], "{updated:#?}");
    assert_eq!(data["url"], "https://example.com/shifts");
    assert_eq!(data["events"], json!(["shift.created", "shift.cancelled"]));
    assert_eq!(data["secrets"], json!(["first-secret-1234"]));
    let got = cli.run(&["--json", "facility", "get", &id]).await.ok().json();
    assert_eq!(sorted(&got["data"]["facilities"]), ["NUR-1", "NUR-2"]);
    // update (table): events and facilities replaced.
    let updated = cli
        .run(&[
            "facility",
            "update",
            &id,
            "--events",
            "all",
            "--facility",
            "NUR-2",
            "--url",
            "https://example.com/moved",
        ])
        .await
        .ok();
    let row = rows(&updated.stdout, &id);
    assert_eq!(row.len(), 1, "{updated:#?}");
    assert!(row[0].contains("https://example.com/moved") && row[0].contains("┆ all"), "{updated:#?}");
    assert!(row[0].contains("NUR-2") && !updated.stdout.contains("NUR-1"), "{updated:#?}");

    // A facility the user cannot access: exit 1, the contract's 400 body on stderr, nothing
    // created or changed.
    let expected = json!({
        "message": ["facilities must only contain facilities you have access to: NUR-9"],
        "error": "Bad Request",
        "statusCode": 400
    });
    let create_denied = [
        "facility",
        "create",
        "--url",
        "https://example.com/shifts",
        "--events",
        "all",
        "--facility",
        "NUR-9",
    ];
    let denied = cli.run(&[&["--json"][..], &create_denied[..]].concat()).await;
    assert_eq!(denied.code, 1, "{denied:#?}");
    assert_eq!(denied.stdout, "");
    assert_eq!(denied.stderr_json(), expected);
    let denied = cli.run(&create_denied).await;
    assert_eq!(denied.code, 1, "{denied:#?}");
    assert_eq!(denied.stderr, readable(&expected.to_string()));
    assert_eq!(
        denied.stderr,
        "error 400 Bad Request:\n  - facilities must only contain facilities you have access to: NUR-9\n"
    );
    let denied = cli.run(&["--json", "facility", "update", &id, "--facility", "NUR-1,NUR-9"]).await;
    assert_eq!(denied.code, 1, "{denied:#?}");
    assert_eq!(denied.stderr_json(), expected);
    let list = cli.run(&["--json", "facility", "list"]).await.ok().json();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list:#}");
    assert_eq!(list["data"][0]["facilities"], json!(["NUR-2"]));

    // delete --json: nothing printed (the answer is an empty 204); then the webhook is gone.
    let deleted = cli.run(&["--json", "facility", "delete", &id]).await.ok();
    assert_eq!((deleted.stdout.as_str(), deleted.stderr.as_str()), ("", ""));
    assert_eq!(cli.run(&["facility", "list"]).await.ok().stdout, "No facility webhooks.\n");
    assert_eq!(cli.run(&["--json", "facility", "list"]).await.ok().json(), json!({"data": []}));
    let gone = cli.run(&["facility", "get", &id, "--json"]).await;
    assert_eq!(gone.code, 1, "{gone:#?}");
    assert_eq!(gone.stderr_json(), webhooks_e2e::json(&not_found_body()));
    let gone = cli.run(&["facility", "delete", &id]).await;
    assert_eq!((gone.code, gone.stderr.as_str()), (1, readable(&not_found_body()).as_str()), "{gone:#?}");
}
