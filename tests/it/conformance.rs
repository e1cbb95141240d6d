//! Replays the conformance fixture — requests and the exact answers the reference NestJS
//! implementation gave — against the real server.
//!
//! `fixtures/conformance.jsonl` is a byte-for-byte copy of the recorded reference cases.
//! Never edit an expected answer to make this pass: a deliberate difference (docs/ARCHITECTURE.md §3)
//! goes into [`DEVIATIONS`] with its reason.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use webhooks_e2e::{RawResponse, TestServer, NURSE_USER};

const CASES: &str = include_str!("fixtures/conformance.jsonl");

/// Cases where the server deliberately answers differently from the reference, with the reason
/// (docs/ARCHITECTURE.md §3). Such a case must still differ: if it starts matching, remove its entry.
const DEVIATIONS: &[(&str, &str)] = &[];

pub(crate) const CLIENT1: &str = "conformance-client-1";
pub(crate) const CLIENT2: &str = "conformance-client-2";
const USER: &str = "conformance-user";

/// What a case's placeholders stand for.
struct Placeholders {
    token: String,
    token2: String,
    noperm_token: String,
}

impl Placeholders {
    /// Placeholders in requests.
    fn request(&self, text: &str) -> String {
        let text = text
            .replace("{{SCHEME}}", "Bearer")
            .replace("{{NOPERM_TOKEN}}", &self.noperm_token)
            .replace("{{TOKEN2}}", &self.token2)
            .replace("{{TOKEN}}", &self.token);
        assert!(!text.contains("{{"), "unknown placeholder in {text:?}");
        text
    }
}

/// Placeholders in answers.
pub(crate) fn answer_text(text: &str) -> String {
    text.replace("{{CLIENT1}}", CLIENT1).replace("{{CLIENT2}}", CLIENT2)
}

pub(crate) fn is_uuid(s: &str) -> bool {
    // The hyphenated form only (the one a JSON answer carries).
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

fn is_generated_secret(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Where `actual` differs from `expected` (with `<uuid>`, `<generated-secret>` and the client
/// placeholders standing for what they match), as readable lines.
pub(crate) fn differences(expected: &Value, actual: &Value, at: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::String(e), Value::String(a)) if e == "<uuid>" => {
            if !is_uuid(a) {
                out.push(format!("{at}: {a:?} is not a UUID"));
            }
        }
        (Value::String(e), Value::String(a)) if e == "<generated-secret>" => {
            if !is_generated_secret(a) {
                out.push(format!("{at}: {a:?} is not 32 characters of [A-Za-z0-9]"));
            }
        }
        (Value::String(e), Value::String(a)) => {
            let e = answer_text(e);
            if &e != a {
                out.push(format!("{at}: expected {e:?}, got {a:?}"));
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            let keys: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for key in keys {
                let at = format!("{at}.{key}");
                match (e.get(key), a.get(key)) {
                    (Some(e), Some(a)) => differences(e, a, &at, out),
                    (Some(e), None) => out.push(format!("{at}: missing (expected {e})")),
                    (None, Some(a)) => out.push(format!("{at}: unexpected {a}")),
                    (None, None) => unreachable!(),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                differences(e, a, &format!("{at}[{i}]"), out);
            }
        }
        (e, a) if e == a => {}
        (e, a) => out.push(format!("{at}: expected {e}, got {a}")),
    }
}

/// `anyStringFields`: top-level fields whose text may differ (JSON parser messages) but that
/// must be strings. Checked here and removed from both sides.
pub(crate) fn take_any_string_fields(
    fields: &[Value],
    expected: &mut Value,
    actual: &mut Value,
    out: &mut Vec<String>,
) {
    for field in fields {
        let field = field.as_str().expect("anyStringFields holds names");
        let removed = |v: &mut Value| v.as_object_mut().and_then(|o: &mut Map<_, _>| o.remove(field));
        assert!(
            removed(expected).is_some_and(|v| v.is_string()),
            "fixture: anyStringFields names {field:?}, which the expected body lacks"
        );
        match removed(actual) {
            Some(Value::String(_)) => {}
            other => out.push(format!("$.{field}: expected any string, got {other:?}")),
        }
    }
}

/// Sends `case`'s request to `server`, its placeholders filled by `fill`: exactly the given
/// headers and body bytes (`null`: no body at all).
pub(crate) async fn send(server: &TestServer, case: &Value, fill: impl Fn(&str) -> String) -> RawResponse {
    let headers: Vec<(String, String)> = case["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .map(|(k, v)| (k.clone(), fill(v.as_str().expect("header value"))))
        .collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let body = case["body"].as_str().map(|b| b.as_bytes().to_vec());
    let path = fill(case["path"].as_str().expect("path"));
    server.raw(case["method"].as_str().expect("method"), &path, &headers, body).await
}

/// Where `response` differs from `case`'s expected answer (status, JSON body with its
/// placeholders and `anyStringFields`, content type; `expect.body: null` means no body at all),
/// and the answer's JSON body when it has one.
pub(crate) fn check_answer(case: &Value, response: &RawResponse) -> (Vec<String>, Option<Value>) {
    let expect = &case["expect"];
    let expected_status = expect["status"].as_u64().expect("expect.status");
    let mut problems = Vec::new();
    if u64::from(response.status) != expected_status {
        problems.push(format!("status: expected {expected_status}, got {}", response.status));
    }
    if expect["body"].is_null() {
        if !response.body.is_empty() {
            problems.push(format!("expected no body, got {:?}", response.text()));
        }
        return (problems, None);
    }
    match serde_json::from_slice::<Value>(&response.body) {
        Err(e) => {
            problems.push(format!("body is not JSON ({e}): {:?}", response.text()));
            (problems, None)
        }
        Ok(mut actual) => {
            let mut expected = expect["body"].clone();
            if let Some(fields) = case.get("anyStringFields").and_then(Value::as_array) {
                take_any_string_fields(fields, &mut expected, &mut actual, &mut problems);
            }
            differences(&expected, &actual, "$", &mut problems);
            let content_type = response.content_type.as_deref().unwrap_or_default();
            if !content_type.starts_with("application/json") {
                problems.push(format!("content type {content_type:?}"));
            }
            (problems, Some(actual))
        }
    }
}

/// Adds to `failures` a case (`name`, `shown` in messages) that differs without being a listed
/// deviation, or is listed but no longer differs; a listed deviation is only printed.
pub(crate) fn judge(
    shown: &str,
    name: &str,
    problems: Vec<String>,
    deviations: &[(&str, &str)],
    failures: &mut Vec<String>,
) {
    match deviations.iter().find(|(n, _)| *n == name) {
        None if problems.is_empty() => {}
        None => failures.push(format!("{shown}:\n    {}", problems.join("\n    "))),
        Some(_) if problems.is_empty() => failures
            .push(format!("{name}: listed in DEVIATIONS but now matches the reference; remove the entry")),
        Some((_, reason)) => eprintln!("deviation {name}: {reason}: {problems:?}"),
    }
}

#[tokio::test]
async fn every_conformance_case_gets_the_reference_answer() {
    replay(&TestServer::start().await).await;
}

#[tokio::test]
async fn every_conformance_case_gets_the_reference_answer_on_postgres() {
    let test = "conformance::every_conformance_case_gets_the_reference_answer_on_postgres";
    let Some(server) = TestServer::start_postgres(test).await else { return };
    replay(&server).await;
}

/// Replays every case against `server` (either backend), then checks what was stored.
async fn replay(server: &TestServer) {
    let placeholders = Placeholders {
        token: server.token(CLIENT1, USER),
        token2: server.token(CLIENT2, USER),
        noperm_token: server.token_with_role(CLIENT1, USER, NURSE_USER),
    };
    let reader = server.client_with_token(&placeholders.token);

    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    let mut replayed = 0;
    let mut created_by_client1 = 0;
    for (line_no, line) in CASES.lines().enumerate() {
        let case: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("fixture line {}: {e}", line_no + 1));
        let name = case["name"].as_str().expect("name").to_owned();
        assert!(names.insert(name.clone()), "duplicate case name {name}");

        let (method, path) = (
            case["method"].as_str().expect("method"),
            placeholders.request(case["path"].as_str().expect("path")),
        );
        let response = send(server, &case, |text| placeholders.request(text)).await;
        replayed += 1;

        let (mut problems, actual) = check_answer(&case, &response);
        // A 201 is stored as answered.
        if let (201, true, Some(actual)) = (response.status, problems.is_empty(), &actual) {
            let id = actual["data"]["id"].as_str().expect("data.id");
            match reader.get_user_webhook(id).await {
                Ok(stored) => {
                    let stored = serde_json::to_value(stored.into_inner()).unwrap();
                    if &stored != actual {
                        problems.push(format!("stored as {stored}, answered {actual}"));
                    }
                }
                Err(e) => problems.push(format!("GET of the created webhook: {e}")),
            }
            created_by_client1 += 1;
        }

        judge(&format!("{name} ({method} {path})"), &name, problems, DEVIATIONS, &mut failures);
    }

    for (name, _) in DEVIATIONS {
        if !names.contains(*name) {
            failures.push(format!("DEVIATIONS names {name}, which is not a case"));
        }
    }
    assert_eq!(replayed, CASES.lines().count(), "every line was replayed");
    assert!(
        failures.is_empty(),
        "{} of {replayed} conformance cases differ from the reference:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Only the 201s stored anything, all under client 1's token.
    let listed = reader.list_user_webhooks().await.unwrap().into_inner().data;
    assert_eq!(listed.len(), created_by_client1);
    let expected_created = CASES
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["expect"]["status"] == 201)
        .count();
    assert_eq!(created_by_client1, expected_created);
}
