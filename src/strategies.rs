//! Proptest strategies shared by the runtime's property tests and the end-to-end suite's
//! (feature `testing`; never in the server's release build).

use proptest::prelude::*;
use serde_json::Value;

/// How big the generated JSON may grow: the runtime's tests afford more than requests over HTTP.
#[derive(Debug, Clone, Copy)]
pub struct JsonSize {
    pub depth: u32,
    pub nodes: u32,
    pub branch: u32,
}

/// Any JSON value, nested up to `size`, with the keys and values the contract's validators look
/// for mixed among random ones, so that most cases reach past the first rule.
pub fn json_value(size: JsonSize) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        "https://[a-z.]{0,20}(:[0-9]{1,6})?/.{0,10}".prop_map(Value::String),
        Just(Value::from("all")),
        Just(Value::from("facility.creation.accepted")),
    ];
    let branch = size.branch as usize;
    leaf.prop_recursive(size.depth, size.nodes, size.branch, move |inner| {
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
            prop::collection::vec(inner.clone(), 0..branch).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..branch)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
