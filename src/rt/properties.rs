//! Property tests: whatever bytes or JSON a client sends, the runtime and the generated
//! validators answer (a value, a rejection, messages) and never panic. Bounded case counts keep
//! them quick; `PROPTEST_CASES` raises them for a longer hunt.

use axum::http::{header, HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;

use super::{body, is_https_url, query, Rejection};
use crate::server::validate;

/// Any JSON value, nested a few levels, with keys the validators look for among random ones.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".*".prop_map(Value::String),
        "https://[a-z.]{0,20}(:[0-9]{1,6})?/.{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        let key = prop_oneof![
            Just("url".to_owned()),
            Just("events".to_owned()),
            Just("secrets".to_owned()),
            Just("eventType".to_owned()),
            Just("userId".to_owned()),
            Just("data".to_owned()),
            Just("id".to_owned()),
            Just("limit".to_owned()),
            Just("offset".to_owned()),
            Just("startDate".to_owned()),
            ".{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_headers(content_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn body_decoding_answers_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), content_type in prop_oneof![Just("application/json".to_owned()), Just("application/json; charset=utf-8".to_owned()), ".{0,30}"]) {
        match body::json(&json_headers(&content_type), &bytes) {
            Ok(value) => prop_assert!(value.is_object(), "the validators always see an object"),
            Err(Rejection::Malformed(message)) => prop_assert!(!message.is_empty()),
            Err(other) => prop_assert!(false, "unexpected rejection {other:?}"),
        }
    }

    #[test]
    fn body_decoding_answers_any_json_text(value in json_value()) {
        let text = value.to_string();
        let decoded = body::json(&json_headers("application/json"), text.as_bytes());
        match (&value, decoded) {
            // Floats may come back a last digit apart (serde_json's shortest form); the shape holds.
            (Value::Object(_), Ok(decoded)) => prop_assert!(decoded.is_object()),
            (Value::Array(_), Ok(decoded)) => prop_assert_eq!(decoded, Value::Object(Default::default())),
            (_, Err(Rejection::Malformed(_))) => {}
            (_, other) => prop_assert!(false, "{other:?} for {text}"),
        }
    }

    #[test]
    fn every_generated_validator_answers_any_json(value in json_value()) {
        for (name, validator) in [
            ("createUserWebhook", validate::create_user_webhook_request as fn(&Value) -> Vec<String>),
            ("updateUserWebhook", validate::update_user_webhook_request),
            ("publishEvent", validate::publish_event_request),
            ("searchWebhookLogs", validate::search_webhook_logs_query),
        ] {
            let messages = validator(&value);
            prop_assert!(messages.iter().all(|m| !m.is_empty()), "{name}: an empty message for {value}");
        }
    }

    #[test]
    fn https_url_answers_any_string(text in ".{0,300}", urlish in "https?:(//)?[a-zA-Z0-9.:@\\[\\]%_~-]{0,60}(/.{0,20})?") {
        let _ = is_https_url(&text);
        let _ = is_https_url(&urlish);
    }

    #[test]
    fn query_parsing_answers_any_query(text in ".{0,200}", raw in prop::collection::vec(any::<u8>(), 0..100)) {
        let raw = String::from_utf8_lossy(&raw).into_owned();
        for query_text in [text, raw] {
            let mut parsed = query::parse(Some(&query_text));
            for name in ["limit", "offset", "startDate", "sortDirection", ""] {
                query::to_number(&mut parsed, name);
                query::to_boolean(&mut parsed, name);
            }
            let _ = validate::search_webhook_logs_query(&Value::Object(parsed));
        }
    }
}
