//! Replays the conformance fixture — requests and the exact answers the reference NestJS
//! implementation gave — against the real server.
//!
//! `fixtures/conformance.jsonl` is a byte-for-byte copy of the recorded reference cases.
//! Never edit an expected answer to make this pass: a deliberate difference (docs/ARCHITECTURE.md §3)
//! goes into [`DEVIATIONS`] with its reason.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use webhooks_e2e::{TestServer, NURSE_USER};

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

        let headers: Vec<(String, String)> = case["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(k, v)| (k.clone(), placeholders.request(v.as_str().expect("header value"))))
            .collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // `null`: no body at all; otherwise exactly these bytes.
        let body = case["body"].as_str().map(|b| b.as_bytes().to_vec());
        let path = placeholders.request(case["path"].as_str().expect("path"));
        let method = case["method"].as_str().expect("method");
        let response = server.raw(method, &path, &headers, body).await;
        replayed += 1;

        let expect = &case["expect"];
        let expected_status = expect["status"].as_u64().expect("expect.status");
        let mut problems = Vec::new();
        if u64::from(response.status) != expected_status {
            problems.push(format!("status: expected {expected_status}, got {}", response.status));
        }
        match serde_json::from_slice::<Value>(&response.body) {
            Err(e) => problems.push(format!("body is not JSON ({e}): {:?}", response.text())),
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
                // A 201 is stored as answered.
                if response.status == 201 && problems.is_empty() {
                    let id = actual["data"]["id"].as_str().expect("data.id");
                    match reader.get_user_webhook(id).await {
                        Ok(stored) => {
                            let stored = serde_json::to_value(stored.into_inner()).unwrap();
                            if stored != actual {
                                problems.push(format!("stored as {stored}, answered {actual}"));
                            }
                        }
                        Err(e) => problems.push(format!("GET of the created webhook: {e}")),
                    }
                    created_by_client1 += 1;
                }
            }
        }

        match DEVIATIONS.iter().find(|(n, _)| *n == name) {
            None if problems.is_empty() => {}
            None => failures.push(format!("{name} ({method} {path}):\n    {}", problems.join("\n    "))),
            Some(_) if problems.is_empty() => failures.push(format!(
                "{name}: listed in DEVIATIONS but now matches the reference; remove the entry"
            )),
            Some((_, reason)) => eprintln!("deviation {name}: {reason}: {problems:?}"),
        }
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
