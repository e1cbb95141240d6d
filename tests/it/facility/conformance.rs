//! Replays the facility reference cases — requests and the exact answers the reference
//! implementation gave — in file order on a fresh server (they are stateful: `capture` binds an
//! answer's field for later paths). `fixtures/facility-conformance.jsonl` is a byte-for-byte copy.
//! Never edit an expected answer to make this pass: a deliberate difference goes into
//! [`DEVIATIONS`] with its reason.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use webhooks_e2e::{TestServer, NURSE_USER};

use super::set_facilities;
use crate::conformance::{check_answer, judge, send, CLIENT1, CLIENT2};

const CASES: &str = include_str!("../fixtures/facility-conformance.jsonl");

/// Cases where the server deliberately answers differently from the reference, with the reason.
/// Such a case must still differ: if it starts matching, remove its entry.
const DEVIATIONS: &[(&str, &str)] = &[];

/// Access is per user, so the two tokens belong to different users as well as clients.
const USER1: &str = "facility-conformance-user-1";
const USER2: &str = "facility-conformance-user-2";

#[tokio::test]
async fn every_facility_case_gets_the_reference_answer() {
    replay(&TestServer::start().await).await;
}

#[tokio::test]
async fn every_facility_case_gets_the_reference_answer_on_postgres() {
    let test = "facility::conformance::every_facility_case_gets_the_reference_answer_on_postgres";
    let Some(server) = TestServer::start_postgres(test).await else { return };
    replay(&server).await;
}

/// The value at a dotted `path` (`data.id`) of `answer`.
fn at<'a>(answer: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(answer, |value, key| value.get(key))
}

async fn replay(server: &TestServer) {
    // Granted in this order: a webhook without facilities lists them so.
    assert_eq!(set_facilities(server, USER1, &["P-100001", "P-100002"]).await, ["P-100001", "P-100002"]);
    assert_eq!(set_facilities(server, USER2, &["P-200001"]).await, ["P-200001"]);
    let mut bindings: BTreeMap<String, String> = BTreeMap::from([
        ("SCHEME".to_owned(), "Bearer".to_owned()),
        ("TOKEN".to_owned(), server.token(CLIENT1, USER1)),
        ("TOKEN2".to_owned(), server.token(CLIENT2, USER2)),
        ("NOPERM_TOKEN".to_owned(), server.token_with_role(CLIENT1, USER1, NURSE_USER)),
    ]);
    let fill = |text: &str, bindings: &BTreeMap<String, String>| {
        let filled = bindings.iter().fold(text.to_owned(), |t, (k, v)| t.replace(&format!("{{{{{k}}}}}"), v));
        assert!(!filled.contains("{{"), "unknown placeholder in {filled:?}");
        filled
    };

    let mut failures = Vec::new();
    let mut names = BTreeSet::new();
    for (line_no, line) in CASES.lines().enumerate() {
        let case: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("fixture line {}: {e}", line_no + 1));
        let name = case["name"].as_str().expect("name").to_owned();
        assert!(names.insert(name.clone()), "duplicate case name {name}");
        let (method, path) =
            (case["method"].as_str().expect("method"), fill(case["path"].as_str().expect("path"), &bindings));
        let response = send(server, &case, |text| fill(text, &bindings)).await;
        let (mut problems, actual) = check_answer(&case, &response);
        if let (Some(capture), Some(actual)) = (case.get("capture").and_then(Value::as_object), &actual) {
            for (key, path) in capture {
                match at(actual, path.as_str().expect("capture path")).and_then(Value::as_str) {
                    Some(value) => {
                        bindings.insert(key.clone(), value.to_owned());
                    }
                    None => problems.push(format!("capture {key}: no string at {path}")),
                }
            }
        }
        judge(&format!("{name} ({method} {path})"), &name, problems, DEVIATIONS, &mut failures);
    }
    assert_eq!(names.len(), CASES.lines().count(), "every line was replayed");
    assert!(
        failures.is_empty(),
        "{} of {} facility cases differ from the reference:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}
