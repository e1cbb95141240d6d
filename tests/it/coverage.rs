//! Spec-derived coverage (docs/ARCHITECTURE.md §4, pattern 9): every operation of `openapi.yaml` has an
//! end-to-end test and an auth test. A new operation in the spec fails this file until tests
//! are written for it and named in [`COVERAGE`]; [`EXCEPTIONS`] only shrinks. Every operation
//! of the Public API documents a 429 and answers it once its client is over the rate limit.

use std::collections::BTreeSet;

use serde_yaml::Value;
use webhooks::server::Operation;
use webhooks_e2e::{spec, TestServer, NURSE_USER};

/// operationId → (end-to-end tests, auth tests) covering it, as `file::function`.
const COVERAGE: &[(&str, &[&str], &[&str])] = &[
    (
        "createUserWebhook",
        &[
            "api::crud_round_trip_with_the_generated_client",
            "api::secrets_are_generated_when_absent_and_kept_in_order_when_given",
            "api::bad_requests_through_the_generated_client",
            "conformance::every_conformance_case_gets_the_reference_answer",
            "crash::kill_9_right_after_201_loses_nothing",
            "rules::an_owner_gets_the_default_number_of_webhooks_and_not_one_more_even_when_racing",
            "rules::the_configured_limit_is_the_one_enforced_and_named",
            "rules::empty_secrets_are_refused_on_create_and_update_and_change_nothing",
        ],
        WEBHOOK_AUTH_TESTS,
    ),
    (
        "listUserWebhooks",
        &[
            "api::crud_round_trip_with_the_generated_client",
            "isolation::other_clients_and_users_cannot_reach_a_webhook",
            "crash::kill_9_right_after_201_loses_nothing",
        ],
        WEBHOOK_AUTH_TESTS,
    ),
    (
        "getUserWebhook",
        &[
            "api::crud_round_trip_with_the_generated_client",
            "api::unknown_ids_are_404_through_the_generated_client",
            "isolation::other_clients_and_users_cannot_reach_a_webhook",
        ],
        WEBHOOK_AUTH_TESTS,
    ),
    (
        "updateUserWebhook",
        &[
            "api::crud_round_trip_with_the_generated_client",
            "api::patch_replaces_events_and_keeps_absent_url_and_secrets",
            "api::bad_requests_through_the_generated_client",
            "api::unknown_ids_are_404_through_the_generated_client",
            "isolation::other_clients_and_users_cannot_reach_a_webhook",
            "rules::empty_secrets_are_refused_on_create_and_update_and_change_nothing",
        ],
        WEBHOOK_AUTH_TESTS,
    ),
    (
        "deleteUserWebhook",
        &[
            "api::crud_round_trip_with_the_generated_client",
            "api::delete_answers_204_with_an_empty_body",
            "api::unknown_ids_are_404_through_the_generated_client",
            "isolation::other_clients_and_users_cannot_reach_a_webhook",
        ],
        WEBHOOK_AUTH_TESTS,
    ),
    (
        "searchWebhookLogs",
        &[
            "delivery::the_log_filters_sorts_pages_validates_and_stays_private",
            "delivery::events_fan_out_to_the_matching_webhooks_of_their_user_only",
            "delivery::failed_attempts_are_retried_on_the_schedule_until_a_2xx_or_the_end_of_it",
            "delivery::private_targets_are_refused_unless_allowed",
            "delivery::a_receiver_that_never_answers_costs_one_timeout_not_the_worker",
            "delivery_crash::kill_9_mid_delivery_loses_no_event",
        ],
        &[ALL_OPERATIONS_AUTH_TEST],
    ),
    (
        "publishEvent",
        &[
            "delivery::events_fan_out_to_the_matching_webhooks_of_their_user_only",
            "delivery::deliveries_are_signed_with_every_current_secret_and_rotation_retires_the_old_ones",
            "delivery::publishing_the_same_id_twice_delivers_once",
            "delivery::failed_attempts_are_retried_on_the_schedule_until_a_2xx_or_the_end_of_it",
            "delivery::private_targets_are_refused_unless_allowed",
            "delivery::a_receiver_that_never_answers_costs_one_timeout_not_the_worker",
            "delivery::publishing_needs_the_scope_and_the_documented_payload",
            "delivery::the_worker_can_be_stepped_one_synchronous_round_at_a_time",
            "delivery_crash::kill_9_mid_delivery_loses_no_event",
            "rules::event_ids_are_visible_ascii_and_user_ids_hold_no_nul",
            "rules::nul_inside_data_is_stored_delivered_and_logged_as_sent",
            "rules::data_is_limited_in_bytes_of_compact_json",
            "rules::the_default_data_limit_answers_the_documented_example",
            "spec_examples::publish_validation_answers_its_documented_example",
            "replicas::two_replicas_deliver_every_event_once",
            "replicas::a_replica_killed_midway_loses_no_event",
        ],
        &[ALL_OPERATIONS_AUTH_TEST, "delivery::publishing_needs_the_scope_and_the_documented_payload"],
    ),
    (
        "createFacilityWebhook",
        &[
            "facility::conformance::every_facility_case_gets_the_reference_answer",
            "facility::access::shift_events_reach_explicit_and_following_webhooks_while_access_lasts",
            "facility::access::accepted_requests_grant_access_and_user_and_facility_webhooks_stay_apart",
            "crash::kill_9_right_after_201_loses_nothing",
            "replicas::two_replicas_deliver_every_event_once",
            "replicas::a_replica_killed_midway_loses_no_event",
        ],
        &[ALL_OPERATIONS_AUTH_TEST, "facility::conformance::every_facility_case_gets_the_reference_answer"],
    ),
    (
        "listFacilityWebhooks",
        &[
            "facility::conformance::every_facility_case_gets_the_reference_answer",
            "facility::access::shift_events_reach_explicit_and_following_webhooks_while_access_lasts",
            "facility::access::accepted_requests_grant_access_and_user_and_facility_webhooks_stay_apart",
            "crash::kill_9_right_after_201_loses_nothing",
            "replicas::two_replicas_deliver_every_event_once",
            "replicas::a_replica_killed_midway_loses_no_event",
        ],
        &[ALL_OPERATIONS_AUTH_TEST, "facility::conformance::every_facility_case_gets_the_reference_answer"],
    ),
    (
        "getFacilityWebhook",
        &["facility::access::accepted_requests_grant_access_and_user_and_facility_webhooks_stay_apart"],
        &[ALL_OPERATIONS_AUTH_TEST],
    ),
    (
        "updateFacilityWebhook",
        &["facility::conformance::every_facility_case_gets_the_reference_answer"],
        &[ALL_OPERATIONS_AUTH_TEST, "facility::conformance::every_facility_case_gets_the_reference_answer"],
    ),
    (
        "deleteFacilityWebhook",
        &[
            "facility::conformance::every_facility_case_gets_the_reference_answer",
            "facility::access::accepted_requests_grant_access_and_user_and_facility_webhooks_stay_apart",
        ],
        &[ALL_OPERATIONS_AUTH_TEST],
    ),
    (
        "setUserFacilities",
        &[
            "facility::conformance::every_facility_case_gets_the_reference_answer",
            "facility::access::shift_events_reach_explicit_and_following_webhooks_while_access_lasts",
            "crash::kill_9_right_after_201_loses_nothing",
            "replicas::two_replicas_deliver_every_event_once",
            "replicas::a_replica_killed_midway_loses_no_event",
        ],
        &[ALL_OPERATIONS_AUTH_TEST],
    ),
    ("getHealth", &["operations::health_and_readiness_answer_without_a_token"], OPEN_OPERATIONS_AUTH_TESTS),
    (
        "getReadiness",
        &["operations::health_and_readiness_answer_without_a_token"],
        OPEN_OPERATIONS_AUTH_TESTS,
    ),
    (
        "getMetrics",
        &["operations::metrics_count_requests_by_operation_and_status"],
        OPEN_OPERATIONS_AUTH_TESTS,
    ),
];

/// The operations open to anyone (`security: []`) ignore credentials, good or bad.
const OPEN_OPERATIONS_AUTH_TESTS: &[&str] = &["operations::open_operations_ignore_credentials"];

/// Calls every secured operation of the spec (it iterates `Operation::ALL`).
const ALL_OPERATIONS_AUTH_TEST: &str = "coverage::every_secured_operation_rejects_bad_tokens";

/// The auth tests of the five webhook operations (the typed ones call each of them).
const WEBHOOK_AUTH_TESTS: &[&str] = &[
    ALL_OPERATIONS_AUTH_TEST,
    "api::unauthorized_through_the_generated_client",
    "api::forbidden_role_through_the_generated_client",
];

/// Operations allowed to have no end-to-end test yet, with the reason. This list only
/// shrinks: an operation listed here that has end-to-end tests fails the check.
const EXCEPTIONS: &[(&str, &str)] = &[];

/// The test sources the table names, to check that every named test exists.
const SOURCES: &[(&str, &str)] = &[
    ("api", include_str!("api.rs")),
    ("conformance", include_str!("conformance.rs")),
    ("facility::conformance", include_str!("facility/conformance.rs")),
    ("facility::access", include_str!("facility/access.rs")),
    ("coverage", include_str!("coverage.rs")),
    ("crash", include_str!("crash.rs")),
    ("delivery", include_str!("delivery.rs")),
    ("delivery_crash", include_str!("delivery_crash.rs")),
    ("isolation", include_str!("isolation.rs")),
    ("operations", include_str!("operations.rs")),
    ("replicas", include_str!("replicas.rs")),
    ("rules", include_str!("rules.rs")),
    ("spec_examples", include_str!("spec_examples.rs")),
];

/// An operation as the spec declares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SpecOperation {
    operation_id: String,
    method: String,
    path: String,
    secured: bool,
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn spec_operations(spec: &Value) -> BTreeSet<SpecOperation> {
    let global_security = &spec["security"];
    let mut operations = BTreeSet::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        let path = path.as_str().expect("path").to_owned();
        for method in METHODS {
            let Some(operation) = item.get(*method) else {
                continue;
            };
            // An operation's own `security` overrides the document's; `[]` or `[{}]` is open.
            let security = operation.get("security").unwrap_or(global_security);
            let secured = security.as_sequence().is_some_and(|requirements| {
                !requirements.is_empty()
                    && requirements.iter().all(|r| r.as_mapping().is_some_and(|m| !m.is_empty()))
            });
            operations.insert(SpecOperation {
                operation_id: operation["operationId"]
                    .as_str()
                    .expect("every operation has an operationId")
                    .to_owned(),
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                secured,
            });
        }
    }
    operations
}

fn generated_operations() -> BTreeSet<SpecOperation> {
    Operation::ALL
        .iter()
        .map(|op| SpecOperation {
            operation_id: op.operation_id().to_owned(),
            method: op.method().to_owned(),
            path: op.path().to_owned(),
            secured: op.secured(),
        })
        .collect()
}

#[test]
fn the_generated_operations_are_the_spec_operations() {
    let from_spec = spec_operations(&spec());
    assert!(!from_spec.is_empty());
    assert_eq!(generated_operations(), from_spec);
}

/// Whether `file::function` names a test function in that file: `#[test]`, or `#[tokio::test]`
/// with or without arguments (the replicas run multi-threaded).
fn test_exists(name: &str) -> bool {
    let Some((file, function)) = name.rsplit_once("::") else {
        return false;
    };
    SOURCES.iter().any(|(f, source)| {
        // The line above `async fn {function}(`: its attribute.
        let attribute =
            source.find(&format!("\nasync fn {function}(")).and_then(|at| source[..at].rsplit('\n').next());
        *f == file
            && (source.contains(&format!("#[test]\nfn {function}("))
                || attribute.is_some_and(|a| a.starts_with("#[tokio::test")))
    })
}

#[test]
fn every_operation_has_an_end_to_end_test_and_an_auth_test() {
    let operations = spec_operations(&spec());
    let ids: BTreeSet<&str> = operations.iter().map(|o| o.operation_id.as_str()).collect();
    let mut problems = Vec::new();
    for operation in &operations {
        let id = operation.operation_id.as_str();
        let excepted = EXCEPTIONS.iter().any(|(op, _)| *op == id);
        match COVERAGE.iter().find(|(op, _, _)| *op == id) {
            None => problems.push(format!("{id}: not in COVERAGE")),
            Some((_, e2e, auth)) => {
                match (e2e.is_empty(), excepted) {
                    (true, false) => problems.push(format!("{id}: no end-to-end test")),
                    (false, true) => {
                        problems.push(format!("{id}: has end-to-end tests, so remove it from EXCEPTIONS"))
                    }
                    _ => {}
                }
                // No exceptions for auth: the all-operations auth test calls every one.
                if operation.secured && auth.is_empty() {
                    problems.push(format!("{id}: no auth test"));
                }
            }
        }
    }
    for (id, e2e, auth) in COVERAGE {
        if !ids.contains(id) {
            problems.push(format!("COVERAGE names {id}, which the spec does not have"));
        }
        for test in e2e.iter().chain(auth.iter()) {
            if !test_exists(test) {
                problems.push(format!("{id}: {test} is not a test function"));
            }
        }
    }
    for (id, _) in EXCEPTIONS {
        if !ids.contains(id) {
            problems.push(format!("EXCEPTIONS names {id}, which the spec does not have"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        None => value,
        Some(reference) => {
            let pointer = reference.strip_prefix("#/").expect("a local $ref");
            let target = pointer.split('/').fold(spec, |v, key| &v[key]);
            assert!(!target.is_null(), "unresolved {reference}");
            resolve(spec, target)
        }
    }
}

/// The body the spec documents for `status` of the operation at `method path`: the (only)
/// example of that response, as compact JSON in the spec's key order.
fn documented_error(spec: &Value, method: &str, path: &str, status: &str) -> String {
    let operation = &spec["paths"][path][method.to_ascii_lowercase().as_str()];
    let response = resolve(spec, &operation["responses"][status]);
    let examples = response["content"]["application/json"]["examples"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{method} {path} documents no {status} example"));
    assert_eq!(examples.len(), 1, "{method} {path} {status}: one example");
    let example = resolve(spec, examples.values().next().unwrap());
    serde_json::to_string(&example["value"]).expect("example as JSON")
}

/// The operation's path with each `{param}` replaced by a fresh UUID (auth comes before
/// existence, so any id will do).
fn concrete_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                uuid::Uuid::new_v4().to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_secured_operation_rejects_bad_tokens() {
    let spec = spec();
    let server = TestServer::start().await;
    let token = server.token("client-a", "user-1");
    let foreign = TestServer::start().await.token("client-a", "user-1");
    let nurse = server.token_with_role("client-a", "user-1", NURSE_USER);

    let mut checked = 0;
    let mut problems = Vec::new();
    for operation in Operation::ALL.iter().filter(|op| op.secured()) {
        let (method, template) = (operation.method(), operation.path());
        let path = concrete_path(template);
        let has_body =
            !spec["paths"][template][method.to_ascii_lowercase().as_str()]["requestBody"].is_null();
        // An empty object is an invalid body: auth must still answer first.
        let body = has_body.then(|| b"{}".to_vec());
        let unauthorized = documented_error(&spec, method, template, "401");
        let forbidden = documented_error(&spec, method, template, "403");

        let mut cases = vec![
            ("no Authorization", None, 401, &unauthorized),
            ("garbage token", Some("Bearer not-a-token".to_owned()), 401, &unauthorized),
            ("foreign key", Some(format!("Bearer {foreign}")), 401, &unauthorized),
            ("not a bearer scheme", Some(format!("Basic {token}")), 401, &unauthorized),
            ("role not allowed", Some(format!("Bearer {nurse}")), 403, &forbidden),
        ];
        // An allowed role without the operation's required scopes.
        if !operation.required_scopes().is_empty() {
            cases.push(("missing scope", Some(format!("Bearer {token}")), 403, &forbidden));
        }
        for (what, authorization, status, expected) in cases {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(authorization) = &authorization {
                headers.push(("Authorization", authorization));
            }
            let response = server.raw(method, &path, &headers, body.clone()).await;
            if response.status != status || response.text() != expected.as_str() {
                problems.push(format!(
                    "{} ({what}): expected {status} {expected}, got {} {}",
                    operation.operation_id(),
                    response.status,
                    response.text()
                ));
            }
        }
        checked += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let secured = spec_operations(&spec).iter().filter(|o| o.secured).count();
    assert_eq!(checked, secured, "every secured operation of the spec was called");
}

/// Where the Public API starts: every operation under it, and only those, is rate limited.
const PUBLIC_API: &str = "/api/v2/public/";

#[test]
fn the_public_operations_and_only_they_are_rate_limited() {
    let spec = spec();
    let mut problems = Vec::new();
    for operation in spec_operations(&spec) {
        let (method, path) = (operation.method.to_ascii_lowercase(), operation.path.as_str());
        let documents_429 = !spec["paths"][path][method.as_str()]["responses"]["429"].is_null();
        let public = path.starts_with(PUBLIC_API);
        if documents_429 != public {
            problems
                .push(format!("{}: public {public}, documents 429 {documents_429}", operation.operation_id));
        }
    }
    for operation in Operation::ALL {
        if operation.rate_limited() != operation.path().starts_with(PUBLIC_API) {
            problems.push(format!("{}: generated rate_limited() disagrees", operation.operation_id()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(Operation::ALL.iter().any(|op| op.rate_limited()));
}

#[tokio::test]
async fn every_rate_limited_operation_answers_the_documented_429() {
    let spec = spec();
    let server = TestServer::start_with(|settings| settings.rate_limit = 1).await;
    let mut problems = Vec::new();
    let mut checked = 0;
    for operation in Operation::ALL {
        let (method, template) = (operation.method(), operation.path());
        let path = concrete_path(template);
        let has_body =
            !spec["paths"][template][method.to_ascii_lowercase().as_str()]["requestBody"].is_null();
        let body = has_body.then(|| b"{}".to_vec());
        // A client of its own per operation, with every scope an operation may require.
        let scopes = operation.required_scopes();
        let token = server.token_with_scopes(operation.operation_id(), "user-1", scopes);
        let authorization = format!("Bearer {token}");
        let headers = [("Content-Type", "application/json"), ("Authorization", authorization.as_str())];
        let first = server.raw(method, &path, &headers, body.clone()).await;
        let second = server.raw(method, &path, &headers, body.clone()).await;
        let id = operation.operation_id();
        if first.status == 429 {
            problems.push(format!("{id}: the first request of a client was refused"));
        }
        if !operation.rate_limited() {
            if second.status == 429 {
                problems.push(format!("{id} is not rate limited, yet answered 429"));
            }
            continue;
        }
        let expected = documented_error(&spec, method, template, "429");
        let retry_after =
            second.headers.get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if second.status != 429 || second.text() != expected || retry_after.is_none_or(|s| s < 1) {
            problems.push(format!(
                "{id}: expected 429 {expected} with Retry-After, got {} {} (Retry-After {retry_after:?})",
                second.status,
                second.text()
            ));
        }
        let response = resolve(
            &spec,
            &spec["paths"][template][method.to_ascii_lowercase().as_str()]["responses"]["429"],
        );
        if response["headers"]["Retry-After"].is_null() {
            problems.push(format!("{id}: its 429 does not document Retry-After"));
        }
        checked += 1;
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let public = spec_operations(&spec).iter().filter(|o| o.path.starts_with(PUBLIC_API)).count();
    assert_eq!(checked, public, "every public operation of the spec was called");
}
