//! Property tests: whatever bytes or JSON a client sends, the runtime and the generated
//! validators answer (a value, a rejection, messages) and never panic. Bounded case counts keep
//! them quick; `PROPTEST_CASES` raises them for a longer hunt.

use axum::http::{header, HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;

use super::{body, is_https_url, query, Rejection};
use crate::server::validate;
use crate::strategies::{self, JsonSize};

/// Any JSON value; the runtime's tests afford bigger values than requests over HTTP.
fn json_value() -> impl Strategy<Value = Value> {
    strategies::json_value(JsonSize { depth: 4, nodes: 48, branch: 8 })
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
            ("deliverUserEvent", crate::server::callbacks::user_event::validate_body),
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
