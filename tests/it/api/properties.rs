//! Property test over HTTP: arbitrary bytes, arbitrary JSON, arbitrary path parameters and query
//! strings sent to every operation of the contract (with a token allowed to call it) get a
//! status the operation documents (or one of the generic 408/413), and every error answer is in
//! the contract's shape. Cases are bounded (`PROPTEST_CASES` raises them).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use webhooks::strategies::{self, JsonSize};
use webhooks_e2e::{TestServer, PUBLISH_SCOPE};

/// Statuses any operation may answer outside its own list: a body cut short by the request
/// timeout, a body over the limit.
const GENERIC: [u16; 2] = [408, 413];

struct Operation {
    method: String,
    path: String,
    statuses: Vec<u16>,
}

fn operations() -> Vec<Operation> {
    let spec = webhooks_e2e::spec();
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for (method, operation) in item.as_mapping().expect("path item") {
            let Some(responses) = operation["responses"].as_mapping() else { continue };
            let statuses = responses.keys().filter_map(|k| k.as_str()?.parse().ok()).collect();
            operations.push(Operation {
                method: method.as_str().expect("method").to_ascii_uppercase(),
                path: path.as_str().expect("path").to_owned(),
                statuses,
            });
        }
    }
    operations
}

/// Any JSON value, smaller than the runtime's property tests use: each case is a request.
fn json_value() -> impl Strategy<Value = Value> {
    strategies::json_value(JsonSize { depth: 3, nodes: 24, branch: 6 })
}

/// A request body: raw bytes, or JSON text.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| v.to_string().into_bytes()),
    ]
}

fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn assert_contract_shape(status: u16, body: &[u8]) -> Result<(), TestCaseError> {
    if status < 400 {
        return Ok(());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        TestCaseError::fail(format!("{status}: not JSON ({e}): {:?}", String::from_utf8_lossy(body)))
    })?;
    prop_assert_eq!(value["statusCode"].as_u64(), Some(u64::from(status)), "{}", value);
    let message_ok = match &value["message"] {
        Value::String(m) => !m.is_empty(),
        Value::Array(ms) => !ms.is_empty() && ms.iter().all(|m| m.as_str().is_some_and(|m| !m.is_empty())),
        _ => false,
    };
    prop_assert!(message_ok, "{}", value);
    prop_assert!(value.get("error").is_none_or(Value::is_string), "{}", value);
    Ok(())
}

#[test]
fn any_input_to_any_operation_gets_a_documented_status_in_the_contracts_shape() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let server = runtime.block_on(TestServer::start());
    let token = server.token_with_scopes("prop-client", "prop-user", &[PUBLISH_SCOPE]);
    let http = webhooks_e2e::raw_http_client();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48);
    for operation in operations() {
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        let strategy = (body(), ".{0,16}", ".{0,40}", any::<bool>());
        let outcome = runner.run(&strategy, |(body, param, query, json)| {
            let path = operation.path.replace("{webhookId}", &encoded(&param));
            let url = format!(
                "{}{path}?{}",
                server.base_url,
                encoded(&query).replace("%3D", "=").replace("%26", "&")
            );
            let method = reqwest::Method::from_bytes(operation.method.as_bytes()).expect("method");
            let mut request = http.request(method, url).bearer_auth(&token).body(body);
            if json {
                request = request.header("content-type", "application/json");
            }
            let (status, bytes) = runtime.block_on(async {
                let response = request.send().await.expect("an answer");
                let status = response.status().as_u16();
                (status, response.bytes().await.expect("a body"))
            });
            prop_assert!(
                operation.statuses.contains(&status) || GENERIC.contains(&status),
                "{} {}: undocumented {status}: {:?}",
                operation.method,
                operation.path,
                String::from_utf8_lossy(&bytes)
            );
            assert_contract_shape(status, &bytes)
        });
        if let Err(e) = outcome {
            panic!("{} {}: {e}", operation.method, operation.path);
        }
    }
}
