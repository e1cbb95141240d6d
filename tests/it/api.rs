//! The API end to end through the generated client: the CRUD round trip, PATCH semantics,
//! secrets, every documented error status, and the byte-level answers outside the
//! operations (unknown routes, oversized bodies, docs and the served spec).

use serde_json::{json, Value};
use webhooks_client::types::{CreateUserWebhookRequest, UpdateUserWebhookRequest, UserWebhookEvent as Event};
use webhooks_e2e::{
    error_parts, forbidden_body, not_found_body, spec, unauthorized_body, TestServer, NURSE_USER,
};

mod connections;
mod properties;

const COLLECTION: &str = "/api/v2/public/webhooks/user";

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializable")
}

fn create_request(url: &str, events: Vec<Event>, secrets: Option<Vec<&str>>) -> CreateUserWebhookRequest {
    CreateUserWebhookRequest {
        url: url.into(),
        events,
        secrets: secrets.map(|s| s.into_iter().map(|s| s.parse().expect("a valid secret")).collect()),
    }
}

fn update_request(
    events: Vec<Event>,
    url: Option<&str>,
    secrets: Option<Vec<&str>>,
) -> UpdateUserWebhookRequest {
    UpdateUserWebhookRequest {
        events,
        url: url.map(String::from),
        secrets: secrets.map(|s| s.into_iter().map(|s| s.parse().expect("a valid secret")).collect()),
    }
}

/// The documented 400 body with `messages` (the shape of the spec's `RequestValidation` example).
fn bad_request(messages: &[String]) -> Value {
    let mut body = webhooks_e2e::json(&webhooks_e2e::documented_body("BadRequest", "RequestValidation"));
    body["message"] = json!(messages);
    body
}

/// The one message of the spec's `RequestValidation` example that starts with `prefix`
/// (the example lists every rule's message; docs/ARCHITECTURE.md §3 gives the same texts).
fn validation_message(prefix: &str) -> String {
    let example = webhooks_e2e::json(&webhooks_e2e::documented_body("BadRequest", "RequestValidation"));
    let found: Vec<String> = example["message"]
        .as_array()
        .expect("message list")
        .iter()
        .filter_map(Value::as_str)
        .filter(|m| m.starts_with(prefix))
        .map(String::from)
        .collect();
    assert_eq!(found.len(), 1, "one documented message starts with {prefix:?}");
    found[0].clone()
}

/// `x-validation-message` of the https-URL rule, read from the spec.
fn url_message() -> String {
    spec()["components"]["schemas"]["CreateUserWebhookRequest"]["properties"]["url"]["x-validation-message"]
        .as_str()
        .expect("x-validation-message")
        .to_owned()
}

fn is_generated_secret(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[tokio::test]
async fn crud_round_trip_with_the_generated_client() {
    let server = TestServer::start().await;
    let client = server.client("client-a", "user-1");

    let request = create_request(
        "https://example.com/hook",
        vec![Event::FacilityCreationAccepted, Event::FacilityUserConnectionAccepted],
        Some(vec!["first-secret", "second-secret"]),
    );
    let created = client.create_user_webhook(&request).await.unwrap();
    assert_eq!(created.status(), 201);
    let created = created.into_inner().data;
    uuid::Uuid::try_parse(&created.id).expect("the id is a UUID");
    assert_eq!(created.url, request.url);
    assert_eq!(created.events, request.events);
    assert_eq!(created.client_id, "client-a");
    assert_eq!(to_json(&created.secrets), to_json(&request.secrets));

    let listed = client.list_user_webhooks().await.unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(to_json(&listed.into_inner().data), json!([to_json(&created)]));

    let got = client.get_user_webhook(&created.id).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(to_json(&got.into_inner().data), to_json(&created));

    let update =
        update_request(vec![Event::All], Some("https://example.org/other"), Some(vec!["third-secret"]));
    let updated = client.update_user_webhook(&created.id, &update).await.unwrap();
    assert_eq!(updated.status(), 200);
    let updated = updated.into_inner().data;
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.client_id, created.client_id);
    assert_eq!(Some(updated.url.clone()), update.url);
    assert_eq!(updated.events, update.events);
    assert_eq!(to_json(&updated.secrets), to_json(&update.secrets));
    let got = client.get_user_webhook(&created.id).await.unwrap();
    assert_eq!(to_json(&got.into_inner().data), to_json(&updated));

    let deleted = client.delete_user_webhook(&created.id).await.unwrap();
    assert_eq!(deleted.status(), 204);

    let gone = client.get_user_webhook(&created.id).await.unwrap_err();
    assert_eq!(error_parts(gone).await, (404, webhooks_e2e::json(&not_found_body())));
    let again = client.delete_user_webhook(&created.id).await.unwrap_err();
    assert_eq!(error_parts(again).await, (404, webhooks_e2e::json(&not_found_body())));
    assert!(client.list_user_webhooks().await.unwrap().into_inner().data.is_empty());
}

#[tokio::test]
async fn delete_answers_204_with_an_empty_body() {
    let server = TestServer::start().await;
    let token = server.token("client-a", "user-1");
    let client = server.client_with_token(&token);
    let created = client
        .create_user_webhook(&create_request("https://example.com/hook", vec![Event::All], None))
        .await
        .unwrap()
        .into_inner()
        .data;
    let auth = format!("Bearer {token}");
    let response = server
        .raw("DELETE", &format!("{COLLECTION}/{}", created.id), &[("Authorization", &auth)], None)
        .await;
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty(), "{:?}", response.text());
}

#[tokio::test]
async fn patch_replaces_events_and_keeps_absent_url_and_secrets() {
    let server = TestServer::start().await;
    let client = server.client("client-a", "user-1");
    let original = client
        .create_user_webhook(&create_request(
            "https://example.com/hook",
            vec![Event::FacilityCreationAccepted, Event::FacilityCreationRejected],
            Some(vec!["secret-one", "secret-two"]),
        ))
        .await
        .unwrap()
        .into_inner()
        .data;
    let id = original.id.clone();

    // Each step: what the PATCH answers is what a later GET returns (it was stored).
    let patch = |update: UpdateUserWebhookRequest| {
        let client = &client;
        let id = &id;
        async move {
            let answered = client.update_user_webhook(id, &update).await.unwrap();
            assert_eq!(answered.status(), 200);
            let answered = answered.into_inner().data;
            let stored = client.get_user_webhook(id).await.unwrap().into_inner().data;
            assert_eq!(to_json(&answered), to_json(&stored));
            stored
        }
    };

    // Only events: events replaced, url and secrets kept.
    let w = patch(update_request(vec![Event::FacilityUserConnectionRejected], None, None)).await;
    assert_eq!(w.events, [Event::FacilityUserConnectionRejected]);
    assert_eq!(w.url, original.url);
    assert_eq!(w.secrets, original.secrets);
    assert_eq!(w.client_id, original.client_id);

    // `secrets: []` keeps the stored secrets.
    let w = patch(update_request(vec![Event::All], None, Some(vec![]))).await;
    assert_eq!(w.events, [Event::All]);
    assert_eq!(w.secrets, original.secrets);

    // New secrets replace the stored ones (in the given order); url still kept.
    let w = patch(update_request(vec![Event::All], None, Some(vec!["secret-new-b", "secret-new-a"]))).await;
    assert_eq!(w.secrets, ["secret-new-b", "secret-new-a"]);
    assert_eq!(w.url, original.url);

    // A new url replaces; secrets kept.
    let w = patch(update_request(vec![Event::All], Some("https://example.net/moved"), None)).await;
    assert_eq!(w.url, "https://example.net/moved");
    assert_eq!(w.secrets, ["secret-new-b", "secret-new-a"]);

    // `null` (the spec marks both nullable) is not validated and keeps the stored values.
    let auth = format!("Bearer {}", server.token("client-a", "user-1"));
    let response = server
        .raw(
            "PATCH",
            &format!("{COLLECTION}/{id}"),
            &[("Authorization", &auth), ("Content-Type", "application/json")],
            Some(br#"{"events":["facility.creation.accepted"],"url":null,"secrets":null}"#.to_vec()),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let stored = client.get_user_webhook(&id).await.unwrap().into_inner().data;
    assert_eq!(response.json()["data"], to_json(&stored));
    assert_eq!(stored.events, [Event::FacilityCreationAccepted]);
    assert_eq!(stored.url, "https://example.net/moved");
    assert_eq!(stored.secrets, ["secret-new-b", "secret-new-a"]);
}

#[tokio::test]
async fn secrets_are_generated_when_absent_and_kept_in_order_when_given() {
    let server = TestServer::start().await;
    let client = server.client("client-a", "user-1");
    let url = "https://example.com/hook";

    let mut generated = Vec::new();
    for secrets in [None, Some(vec![])] {
        let w = client
            .create_user_webhook(&create_request(url, vec![Event::All], secrets))
            .await
            .unwrap()
            .into_inner()
            .data;
        assert_eq!(w.secrets.len(), 1, "{:?}", w.secrets);
        assert!(is_generated_secret(&w.secrets[0]), "{:?}", w.secrets[0]);
        // Stored as answered.
        let stored = client.get_user_webhook(&w.id).await.unwrap().into_inner().data;
        assert_eq!(stored.secrets, w.secrets);
        generated.push(w.secrets[0].clone());
    }
    assert_ne!(generated[0], generated[1], "each webhook gets its own secret");

    // Deliberately not in sorted order: the order given is the order kept.
    let given = vec!["zz-rotating-in", "aa-rotating-out"];
    let w = client
        .create_user_webhook(&create_request(url, vec![Event::All], Some(given.clone())))
        .await
        .unwrap()
        .into_inner()
        .data;
    assert_eq!(w.secrets, given);
    let stored = client.get_user_webhook(&w.id).await.unwrap().into_inner().data;
    assert_eq!(stored.secrets, given);
}

#[tokio::test]
async fn bad_requests_through_the_generated_client() {
    let server = TestServer::start().await;
    let client = server.client("client-a", "user-1");

    let cases = [
        (create_request("http://example.com/hook", vec![Event::All], None), vec![url_message()]),
        // validator.js accepts U+0000 in a path; this service refuses it (PostgreSQL text
        // cannot hold it, and no receiver's URL contains it).
        (create_request("https://example.com/a\u{0}b", vec![Event::All], None), vec![url_message()]),
        (
            create_request("https://example.com/hook", vec![], None),
            vec![validation_message("events must contain at least")],
        ),
        (
            create_request("https://example.com/hook", vec![Event::All], Some(vec!["a", "b", "c"])),
            vec![validation_message("secrets must contain no more than")],
        ),
    ];
    for (request, messages) in cases {
        let error = client.create_user_webhook(&request).await.unwrap_err();
        assert_eq!(error_parts(error).await, (400, bad_request(&messages)), "{request:?}");
    }
    assert!(
        client.list_user_webhooks().await.unwrap().into_inner().data.is_empty(),
        "a rejected create stores nothing"
    );

    let w = client
        .create_user_webhook(&create_request("https://example.com/hook", vec![Event::All], None))
        .await
        .unwrap()
        .into_inner()
        .data;
    let cases = [
        (update_request(vec![], None, None), vec![validation_message("events must contain at least")]),
        (update_request(vec![Event::All], Some("https://localhost/hook"), None), vec![url_message()]),
        (update_request(vec![Event::All], Some("https://example.com/a\u{0}b"), None), vec![url_message()]),
        (
            update_request(vec![Event::All], None, Some(vec!["a", "b", "c"])),
            vec![validation_message("secrets must contain no more than")],
        ),
    ];
    for (request, messages) in &cases {
        let error = client.update_user_webhook(&w.id, request).await.unwrap_err();
        assert_eq!(error_parts(error).await, (400, bad_request(messages)), "{request:?}");
        // Validation comes before existence (docs/ARCHITECTURE.md §3): an unknown id still gets 400.
        let error = client.update_user_webhook("not-a-webhook", request).await.unwrap_err();
        assert_eq!(error_parts(error).await, (400, bad_request(messages)), "{request:?}");
    }
    let stored = client.get_user_webhook(&w.id).await.unwrap().into_inner().data;
    assert_eq!(to_json(&stored), to_json(&w), "a rejected update changes nothing");
}

/// The status and body of an answer the test expects to be an error.
async fn expect_error<T, E: serde::Serialize + std::fmt::Debug>(
    operation: &str,
    result: Result<webhooks_client::ResponseValue<T>, webhooks_client::Error<E>>,
) -> (u16, Value) {
    match result {
        Ok(answer) => panic!("{operation} succeeded with {}", answer.status()),
        Err(error) => error_parts(error).await,
    }
}

/// Calls every operation with `client` (on webhook `id`) and returns what each answered.
async fn answers_of_every_operation(
    client: &webhooks_client::Client,
    id: &str,
) -> Vec<(&'static str, (u16, Value))> {
    let create = create_request("https://example.com/hook", vec![Event::All], None);
    let update = update_request(vec![Event::All], None, None);
    vec![
        ("createUserWebhook", expect_error("create", client.create_user_webhook(&create).await).await),
        ("listUserWebhooks", expect_error("list", client.list_user_webhooks().await).await),
        ("getUserWebhook", expect_error("get", client.get_user_webhook(id).await).await),
        ("updateUserWebhook", expect_error("update", client.update_user_webhook(id, &update).await).await),
        ("deleteUserWebhook", expect_error("delete", client.delete_user_webhook(id).await).await),
    ]
}

#[tokio::test]
async fn unauthorized_through_the_generated_client() {
    let server = TestServer::start().await;
    let owner = server.client("client-a", "user-1");
    let w = owner
        .create_user_webhook(&create_request("https://example.com/hook", vec![Event::All], None))
        .await
        .unwrap()
        .into_inner()
        .data;
    // A well-formed token signed with another server's key.
    let foreign = TestServer::start().await.token("client-a", "user-1");
    let expected = (401, webhooks_e2e::json(&unauthorized_body()));
    for (who, client) in [
        ("no token", server.anonymous_client()),
        ("garbage token", server.client_with_token("not-a-token")),
        ("foreign key", server.client_with_token(&foreign)),
    ] {
        for (operation, answer) in answers_of_every_operation(&client, &w.id).await {
            assert_eq!(answer, expected, "{operation} with {who}");
        }
    }
    let stored = owner.list_user_webhooks().await.unwrap().into_inner().data;
    assert_eq!(to_json(&stored), json!([to_json(&w)]), "nothing changed");
}

#[tokio::test]
async fn forbidden_role_through_the_generated_client() {
    let server = TestServer::start().await;
    let owner = server.client("client-a", "user-1");
    let w = owner
        .create_user_webhook(&create_request("https://example.com/hook", vec![Event::All], None))
        .await
        .unwrap()
        .into_inner()
        .data;
    // Same client and user as the owner: only the role differs.
    let nurse = server.client_with_token(&server.token_with_role("client-a", "user-1", NURSE_USER));
    let expected = (403, webhooks_e2e::json(&forbidden_body()));
    for (operation, answer) in answers_of_every_operation(&nurse, &w.id).await {
        assert_eq!(answer, expected, "{operation}");
    }
    let stored = owner.list_user_webhooks().await.unwrap().into_inner().data;
    assert_eq!(to_json(&stored), json!([to_json(&w)]), "nothing changed");
}

#[tokio::test]
async fn unknown_ids_are_404_through_the_generated_client() {
    let server = TestServer::start().await;
    let client = server.client("client-a", "user-1");
    let existing = client
        .create_user_webhook(&create_request("https://example.com/hook", vec![Event::All], None))
        .await
        .unwrap()
        .into_inner()
        .data;
    let expected = (404, webhooks_e2e::json(&not_found_body()));
    let update = update_request(vec![Event::FacilityCreationRejected], None, None);
    let random = uuid::Uuid::new_v4().to_string();
    for id in [random.as_str(), "not-a-uuid", "42"] {
        let get = expect_error("get", client.get_user_webhook(id).await).await;
        assert_eq!(get, expected, "get {id}");
        let patch = expect_error("update", client.update_user_webhook(id, &update).await).await;
        assert_eq!(patch, expected, "patch {id}");
        let delete = expect_error("delete", client.delete_user_webhook(id).await).await;
        assert_eq!(delete, expected, "delete {id}");
    }
    let stored = client.get_user_webhook(&existing.id).await.unwrap().into_inner().data;
    assert_eq!(to_json(&stored), to_json(&existing), "the existing webhook is untouched");
}

/// The documented text of a rejected route (docs/ARCHITECTURE.md §3).
fn no_route_body(method: &str, path: &str) -> String {
    format!(r#"{{"message":"Cannot {method} {path}","error":"Not Found","statusCode":404}}"#)
}

#[tokio::test]
async fn unknown_routes_and_methods_are_contract_404s() {
    let server = TestServer::start().await;
    let auth = format!("Bearer {}", server.token("client-a", "user-1"));
    let item = format!("{COLLECTION}/{}", uuid::Uuid::new_v4());
    let requests = [
        ("PUT", COLLECTION.to_owned()),
        ("DELETE", COLLECTION.to_owned()),
        ("PATCH", COLLECTION.to_owned()),
        ("POST", item.clone()),
        ("PUT", item),
        ("GET", "/api/v2/public/webhooks".to_owned()),
        ("GET", "/api/v2/public/nothing-here".to_owned()),
        ("POST", "/".to_owned()),
    ];
    for (method, path) in &requests {
        // The route check comes first: with or without a token the answer is the same.
        for headers in [vec![], vec![("Authorization", auth.as_str())]] {
            let response = server.raw(method, path, &headers, None).await;
            assert_eq!(response.status, 404, "{method} {path}");
            assert_eq!(response.text(), no_route_body(method, path), "{method} {path}");
            assert_json_content_type(&response);
        }
    }
}

fn assert_json_content_type(response: &webhooks_e2e::RawResponse) {
    let content_type = response.content_type.as_deref().unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content type {content_type:?}");
}

/// Body-parser's default limit, `100kb`, which the documented API runs with.
const BODY_LIMIT: usize = 100 * 1024;

/// A valid create body of exactly `len` bytes (padded with an ignored unknown property).
fn create_body_of_len(len: usize) -> Vec<u8> {
    let head = r#"{"url":"https://example.com/hook","events":["all"],"padding":""#;
    let tail = r#""}"#;
    let padding = len - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(padding)).into_bytes()
}

#[tokio::test]
async fn bodies_over_100_kb_are_413_before_authentication() {
    let server = TestServer::start().await;
    let expected = r#"{"message":"request entity too large","error":"Payload Too Large","statusCode":413}"#;
    let auth = format!("Bearer {}", server.token("client-a", "user-1"));
    let json_type = ("Content-Type", "application/json");
    let item = format!("{COLLECTION}/{}", uuid::Uuid::new_v4());
    let too_big = create_body_of_len(BODY_LIMIT + 1);

    for (method, path) in [("POST", COLLECTION), ("PATCH", item.as_str())] {
        for headers in [
            vec![json_type],
            vec![json_type, ("Authorization", "Bearer not-a-token")],
            vec![json_type, ("Authorization", auth.as_str())],
        ] {
            let response = server.raw(method, path, &headers, Some(too_big.clone())).await;
            assert_eq!(response.status, 413, "{method} {path} {headers:?}");
            assert_eq!(response.text(), expected, "{method} {path}");
            assert_json_content_type(&response);
        }
    }

    // The route check comes before the size check.
    let response = server.raw("PUT", COLLECTION, &[json_type], Some(too_big)).await;
    assert_eq!(response.text(), no_route_body("PUT", COLLECTION));

    // Exactly at the limit is accepted.
    let response = server
        .raw("POST", COLLECTION, &[json_type, ("Authorization", &auth)], Some(create_body_of_len(BODY_LIMIT)))
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
}

#[tokio::test]
async fn swagger_ui_is_served_at_docs() {
    let server = TestServer::start().await;
    let response = server.raw("GET", "/docs/", &[], None).await;
    assert_eq!(response.status, 200);
    let content_type = response.content_type.as_deref().unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type:?}");
    let html = response.text().to_ascii_lowercase();
    assert!(html.contains("<html") && html.contains("swagger-ui"), "{html}");

    // The UI is vendored (works offline) and loads the spec the server serves.
    let bundle = server.raw("GET", "/docs/swagger-ui-bundle.js", &[], None).await;
    assert_eq!(bundle.status, 200);
    assert!(!bundle.body.is_empty());
    let initializer = server.raw("GET", "/docs/swagger-initializer.js", &[], None).await;
    assert_eq!(initializer.status, 200);
    assert!(initializer.text().contains("\"/api-docs/openapi.json\""), "{}", initializer.text());
}

#[tokio::test]
async fn the_checked_in_spec_is_served_unchanged() {
    let server = TestServer::start().await;
    let yaml = server.raw("GET", "/api-docs/openapi.yaml", &[], None).await;
    assert_eq!(yaml.status, 200);
    assert_eq!(yaml.text(), webhooks::OPENAPI_YAML);

    let served = server.raw("GET", "/api-docs/openapi.json", &[], None).await;
    assert_eq!(served.status, 200);
    assert_json_content_type(&served);
    let expected: Value = serde_yaml::from_str(webhooks::OPENAPI_YAML).expect("YAML as JSON");
    assert_eq!(served.json(), expected);
}

/// The generated error enums are untagged; each error schema's `statusCode` is pinned to its
/// status by the client pre-pass, so a body decodes into the variant of its own status.
#[tokio::test]
async fn typed_errors_decode_into_the_variant_of_their_status() {
    use webhooks_client::types::{GetUserWebhookError, UpdateUserWebhookError};
    let server = TestServer::start().await;
    let client = server.client("client-a", "user-1");
    let update = update_request(vec![Event::FacilityCreationRejected], None, None);

    match client.update_user_webhook("missing", &update).await {
        Err(webhooks_client::Error::ErrorResponse(r)) => {
            assert!(matches!(r.into_inner(), UpdateUserWebhookError::NotFoundError(_)))
        }
        other => panic!("expected a 404 error response, got {other:?}"),
    }
    let nurse = server.client_with_token(&server.token_with_role("client-a", "user-1", NURSE_USER));
    match nurse.get_user_webhook("missing").await {
        Err(webhooks_client::Error::ErrorResponse(r)) => {
            assert!(matches!(r.into_inner(), GetUserWebhookError::ForbiddenError(_)))
        }
        other => panic!("expected a 403 error response, got {other:?}"),
    }
    let bad = UpdateUserWebhookRequest { events: vec![], url: None, secrets: None };
    match client.update_user_webhook("missing", &bad).await {
        Err(webhooks_client::Error::ErrorResponse(r)) => {
            assert!(matches!(r.into_inner(), UpdateUserWebhookError::BadRequestError(_)))
        }
        other => panic!("expected a 400 error response, got {other:?}"),
    }
}
