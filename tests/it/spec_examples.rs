//! The error bodies the server sends are the examples documented in `openapi.yaml`, byte for
//! byte (compact JSON, keys in the order of the spec), and are snapshotted for review.

use webhooks_e2e::{documented_body, operation_example, spec, TestServer, NURSE_USER, PUBLISH_SCOPE};

const COLLECTION: &str = "/api/v2/public/webhooks/user";
const JSON: (&str, &str) = ("Content-Type", "application/json");

#[tokio::test]
async fn error_bodies_are_the_documented_examples() {
    let server = TestServer::start().await;
    let auth = format!("Bearer {}", server.token("client-a", "user-1"));
    let nurse = format!("Bearer {}", server.token_with_role("client-a", "user-1", NURSE_USER));
    let unknown = format!("{COLLECTION}/{}", uuid::Uuid::new_v4());

    // The body of the documented "Request Validation" example is `{"secrets":"x"}`: every
    // rule but "each value in secrets must be a string" fails.
    let bad_request = server
        .raw("POST", COLLECTION, &[JSON, ("Authorization", &auth)], Some(br#"{"secrets":"x"}"#.to_vec()))
        .await;
    let unauthorized = server.raw("GET", COLLECTION, &[], None).await;
    let forbidden = server.raw("GET", COLLECTION, &[("Authorization", &nurse)], None).await;
    let not_found = server.raw("GET", &unknown, &[("Authorization", &auth)], None).await;
    let limited = TestServer::start_with(|settings| settings.rate_limit = 1).await;
    let limited_auth = format!("Bearer {}", limited.token("client-a", "user-1"));
    limited.raw("GET", COLLECTION, &[("Authorization", &limited_auth)], None).await;
    let too_many = limited.raw("GET", COLLECTION, &[("Authorization", &limited_auth)], None).await;

    for (response, status, documented, snapshot) in [
        (&bad_request, 400, documented_body("BadRequest", "RequestValidation"), "400_request_validation"),
        (&unauthorized, 401, documented_body("Unauthorized", "ExampleFromSchema"), "401_unauthorized"),
        (&forbidden, 403, documented_body("Forbidden", "ExampleFromSchema"), "403_forbidden"),
        (&not_found, 404, documented_body("NotFound", "ExampleFromSchema"), "404_not_found"),
        (&too_many, 429, documented_body("TooManyRequests", "ExampleFromSchema"), "429_too_many_requests"),
    ] {
        assert_eq!(response.status, status, "{}", response.text());
        assert_eq!(response.text(), documented, "{status}");
        insta::assert_snapshot!(snapshot, response.text());
    }
}

/// `publishEvent` documents its own 400 examples: the validation one is what the server answers
/// to the body it describes (`DataTooLarge` is checked in `rules.rs`).
#[tokio::test]
async fn publish_validation_answers_its_documented_example() {
    let server = TestServer::start().await;
    let publisher = format!("Bearer {}", server.token_with_scopes("publisher", "source", &[PUBLISH_SCOPE]));
    let body = br#"{"id":"evt 1","eventType":"all","userId":"u\u0000","data":[]}"#;
    let response = server
        .raw("POST", "/api/v2/internal/events", &[JSON, ("Authorization", &publisher)], Some(body.to_vec()))
        .await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.text(),
        operation_example("post", "/api/v2/internal/events", "400", "RequestValidation")
    );
}

/// `createUserWebhook` documents its 400 inline (to add the webhook limit's example); the
/// examples it shares with every other 400 are the same, byte for byte.
#[test]
fn create_documents_the_shared_400_examples_unchanged() {
    let spec = spec();
    let shared = &spec["components"]["responses"]["BadRequest"]["content"]["application/json"]["examples"];
    let create =
        &spec["paths"][COLLECTION]["post"]["responses"]["400"]["content"]["application/json"]["examples"];
    for name in ["ExampleFromSchema", "RequestValidation"] {
        assert!(!shared[name].is_null(), "{name}");
        assert_eq!(create[name], shared[name], "{name}");
    }
    assert!(!create["WebhookLimitReached"].is_null());
}

const FACILITY_COLLECTION: &str = "/api/v2/public/webhooks/facility";

/// `createFacilityWebhook` documents its 201 and its "Request Validation" 400; the server answers
/// both byte for byte (the 201 but for the id the server makes), and the access 400 too.
#[tokio::test]
async fn facility_create_answers_its_documented_examples() {
    let server = TestServer::start().await;
    crate::facility::set_facilities(&server, "user-1", &["P-123456", "P-123457"]).await;
    // The documented `clientId` is "string": a token of that client.
    let auth = format!("Bearer {}", server.token("string", "user-1"));
    let headers = [JSON, ("Authorization", auth.as_str())];

    // serde_yaml keeps the spec's key order, which is the answer's; serde_json's map sorts keys.
    let documented = spec()["components"]["examples"]["FacilityWebhookResponse"]["value"].clone();
    let mut request: serde_json::Value = serde_json::to_value(&documented["data"]).expect("JSON");
    request
        .as_object_mut()
        .expect("an object")
        .retain(|k, _| ["url", "events", "facilities", "secrets"].contains(&k.as_str()));
    let created =
        server.raw("POST", FACILITY_COLLECTION, &headers, Some(serde_json::to_vec(&request).unwrap())).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["data"]["id"].as_str().expect("an id").to_owned();
    let expected =
        serde_json::to_string(&documented).unwrap().replace("9f08085c-9d51-49e6-bda0-e8b32e0f6605", &id);
    assert_eq!(created.text(), expected);

    // Every rule of the example fails but "each value in secrets must be a string".
    let bad = server
        .raw("POST", FACILITY_COLLECTION, &headers, Some(br#"{"facilities":[1],"secrets":"x"}"#.to_vec()))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.text(), operation_example("post", FACILITY_COLLECTION, "400", "RequestValidation"));
    insta::assert_snapshot!("facility_400_request_validation", bad.text());

    let other = TestServer::start().await;
    let auth = format!("Bearer {}", other.token("string", "user-1"));
    let denied = other
        .raw(
            "POST",
            FACILITY_COLLECTION,
            &[JSON, ("Authorization", &auth)],
            Some(serde_json::to_vec(&request).unwrap()),
        )
        .await;
    assert_eq!(denied.status, 400);
    assert_eq!(denied.text(), operation_example("post", FACILITY_COLLECTION, "400", "FacilityAccess"));
}
