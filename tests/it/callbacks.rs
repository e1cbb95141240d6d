//! The outbound delivery is part of the contract (`callbacks` of `createUserWebhook` in
//! openapi.yaml): every request the worker sends to the in-test HTTPS receiver must conform to
//! the callback as the spec text describes it: the body to its envelope schema (checked here
//! against the schema read from openapi.yaml, and by the generated validator with the
//! `x-required-data` rules), both headers present and of the documented form.

use std::time::Duration;

use serde_json::{json, Value};
use webhooks::server::callbacks::user_event;
use webhooks_client::signature::{verify, DEFAULT_TOLERANCE};
use webhooks_client::types::{
    CreateUserWebhookRequest, EventType as Type, PublishEventRequest, UserWebhookEvent as Event,
};
use webhooks_e2e::receiver::{Receiver, Recorded};
use webhooks_e2e::{trust_receiver, TestServer};

const CREATE_PATH: &str = "/api/v2/public/webhooks/user";
const WAIT: Duration = Duration::from_secs(15);

fn spec() -> Value {
    serde_yaml::from_str(webhooks::OPENAPI_YAML).expect("openapi.yaml parses")
}

/// The one callback operation of `createUserWebhook`, as written in the spec.
fn callback_operation(spec: &Value) -> Value {
    let callbacks = &spec["paths"][CREATE_PATH]["post"]["callbacks"];
    let callback = callbacks["userEvent"].as_object().expect("callbacks.userEvent");
    assert_eq!(callback.len(), 1, "one URL expression");
    let (expression, item) = callback.iter().next().expect("one path item");
    assert_eq!(expression, user_event::URL_EXPRESSION);
    item["post"].clone()
}

/// `#/components/schemas/Name` → the schema.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/schemas/").expect("a component schema");
            resolve(spec, &spec["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// What `value` breaks of `schema`, for the keywords the envelope uses (`$ref`, `type`,
/// `required`, `properties`, `enum`, `nullable`); an unknown keyword fails loudly rather than
/// passing silently.
fn schema_errors(spec: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(spec, schema);
    let mut errors = Vec::new();
    for key in schema.as_object().expect("a schema object").keys() {
        let known = ["type", "required", "properties", "enum", "description", "example", "nullable"];
        assert!(
            known.contains(&key.as_str()) || key.starts_with("x-"),
            "{at}: keyword {key} not checked here"
        );
    }
    if value.is_null() && schema["nullable"] == true {
        return errors;
    }
    let type_ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("array") => value.is_array(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("{at}: type {other} not checked here"),
        None => true,
    };
    if !type_ok {
        errors.push(format!("{at}: not of type {}", schema["type"]));
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(value) {
            errors.push(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().expect("a property name");
        if value.get(name).is_none() {
            errors.push(format!("{at}: {name} is required"));
        }
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        if let Some(child) = value.get(name) {
            errors.extend(schema_errors(spec, property, child, &format!("{at}.{name}")));
        }
    }
    errors
}

/// The spec's header parameters of the callback: (name, pattern).
fn headers(operation: &Value) -> Vec<(String, String)> {
    operation["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| {
            assert_eq!(p["in"], "header");
            assert_eq!(p["required"], true, "{p}");
            let pattern = p["schema"]["pattern"].as_str().expect("a pattern").to_owned();
            (p["name"].as_str().expect("a name").to_owned(), pattern)
        })
        .collect()
}

fn publish_request(event_type: Type, data: Value, id: &str) -> PublishEventRequest {
    let Value::Object(data) = data else { panic!("an object") };
    PublishEventRequest {
        data,
        event_type,
        id: Some(id.parse().expect("a valid event id")),
        user_id: Some("user-a".parse().expect("a valid user id")),
    }
}

#[test]
fn the_generated_callback_is_the_one_the_spec_describes() {
    let spec = spec();
    let operation = callback_operation(&spec);
    let names: Vec<String> = headers(&operation).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, user_event::REQUIRED_HEADERS);
    assert_eq!(
        names,
        [webhooks_client::signature::SIGNATURE_HEADER, webhooks_client::signature::EVENT_ID_HEADER]
    );
    let body = &operation["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(body.as_str(), Some(format!("#/components/schemas/{}", user_event::BODY_SCHEMA).as_str()));
    assert_eq!(user_event::METHOD, "POST");
    // Both checks refuse what breaks the envelope.
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    for bad in [
        json!({}),
        json!({"data": [], "eventType": "facility.creation.accepted"}),
        json!({"data": {}, "eventType": "all"}),
    ] {
        assert!(!schema_errors(&spec, schema, &bad, "body").is_empty(), "{bad}");
        assert!(!user_event::validate_body(&bad).is_empty(), "{bad}");
    }
    let missing_field = json!({"data": {"facilityId": 5}, "eventType": "facility.creation.accepted"});
    assert_eq!(user_event::validate_body(&missing_field), ["data.facilityId must be a string"]);
}

#[tokio::test]
async fn every_delivery_conforms_to_the_callback_of_the_contract() {
    let spec = spec();
    let operation = callback_operation(&spec);
    let schema = operation["requestBody"]["content"]["application/json"]["schema"].clone();
    let header_rules: Vec<(String, webhooks::rt::rules::Regex)> = headers(&operation)
        .into_iter()
        .map(|(name, pattern)| {
            let regex = webhooks::rt::rules::Regex::new(&pattern).expect("the spec's pattern compiles");
            (name, regex)
        })
        .collect();

    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|settings| trust_receiver(settings, &receiver)).await;
    let client = server.client("client-a", "user-a");
    let secrets = ["first-secret", "second-secret"];
    let response = client
        .create_user_webhook(&CreateUserWebhookRequest {
            url: receiver.url("/hook"),
            events: vec![Event::All],
            secrets: Some(secrets.iter().map(|s| s.parse().expect("a secret")).collect()),
        })
        .await
        .expect("creating a webhook");
    assert_eq!(response.status(), 201);

    let events = [
        (Type::FacilityUserConnectionAccepted, json!({"facilityId": "NUR-1", "userId": "u-1"})),
        (
            Type::FacilityUserConnectionRejected,
            json!({"facilityId": "NUR-2", "userId": "u-2", "reason": null}),
        ),
        (Type::FacilityCreationAccepted, json!({"facilityId": "NUR-3", "nested": {"a": [1, 2.5, "x"]}})),
        (Type::FacilityCreationRejected, json!({"facilityName": "Café ✓"})),
    ];
    let publisher = server.publisher();
    for (i, (event_type, data)) in events.iter().enumerate() {
        let request = publish_request(*event_type, data.clone(), &format!("evt-callback-{i}"));
        let response = publisher.publish_event(&request).await.expect("publishing");
        assert_eq!(response.status(), 202);
    }

    let received: Vec<Recorded> = receiver.wait_for(events.len(), WAIT).await;
    assert_eq!(received.len(), events.len());
    for r in &received {
        assert_eq!(r.method, user_event::METHOD);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&r.body).expect("the body is JSON");
        let errors = schema_errors(&spec, &schema, &body, "body");
        assert!(errors.is_empty(), "{body}: {errors:?}");
        let errors = user_event::validate_body(&body);
        assert!(errors.is_empty(), "{body}: {errors:?}");
        for (name, pattern) in &header_rules {
            let value = r.header(name).unwrap_or_else(|| panic!("{body}: no {name} header"));
            assert!(pattern.find(value).is_some(), "{name}: {value:?} is not of the documented form");
        }
        for secret in secrets {
            if let Err(e) = verify(&r.headers, &r.body, &[secret], DEFAULT_TOLERANCE) {
                panic!("{body}: the signature does not verify with {secret}: {e}");
            }
        }
    }
    let mut types: Vec<String> =
        received.iter().map(|r| r.body_json()["eventType"].as_str().unwrap_or_default().to_owned()).collect();
    types.sort();
    let mut expected: Vec<String> = events.iter().map(|(t, _)| t.to_string()).collect();
    expected.sort();
    assert_eq!(types, expected);
    receiver.shutdown().await;
}
