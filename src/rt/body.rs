//! Request bodies as the contract reads them (docs/ARCHITECTURE.md §3): a body is JSON only when it says
//! so; no body, a non-JSON content type or a top-level array reads as `{}`; a UTF-8 BOM is
//! skipped; duplicate keys keep the last value; malformed JSON and top-level scalars are
//! rejected with a single message.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use serde_json::Value;

use super::Rejection;

/// Reads the whole body, refusing more than `limit` bytes (413 precedes authentication).
pub async fn read(body: Body, limit: usize) -> Result<Bytes, Rejection> {
    axum::body::to_bytes(body, limit).await.map_err(|_| Rejection::PayloadTooLarge)
}

/// Whether the request declares a JSON body (`application/json`, any parameters).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Decodes the body into the JSON value the validators see.
pub fn json(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, Rejection> {
    let empty = || Value::Object(serde_json::Map::new());
    if !is_json(headers) {
        return Ok(empty());
    }
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(empty());
    }
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(map)) => Ok(Value::Object(map)),
        Ok(Value::Array(_)) => Ok(empty()),
        Ok(_) => Err(Rejection::Malformed(scalar_message(text))),
        Err(e) => Err(Rejection::Malformed(syntax_message(text, &e))),
    }
}

/// Wraps each lone (non-array, non-null) value of `names` in `body` into a one-element list:
/// the `x-single-as-list` properties, once the validators have accepted the lone value.
pub fn single_as_list(body: &mut Value, names: &[&str]) {
    let Some(object) = body.as_object_mut() else { return };
    for name in names {
        if let Some(value) = object.get_mut(*name) {
            if !value.is_array() && !value.is_null() {
                *value = Value::Array(vec![value.take()]);
            }
        }
    }
}

/// body-parser's strict mode refuses scalars at the first character, as `JSON.parse` words it.
fn scalar_message(text: &[u8]) -> String {
    let first = String::from_utf8_lossy(text).trim_start().chars().next().unwrap_or(' ');
    format!("Unexpected token '{first}', \"{}\" is not valid JSON", String::from_utf8_lossy(text).trim())
}

/// A `JSON.parse`-style message: what was expected, at which character position.
fn syntax_message(text: &[u8], e: &serde_json::Error) -> String {
    if e.is_eof() {
        return "Unexpected end of JSON input".to_owned();
    }
    let position = position(text, e.line(), e.column());
    let what = e.to_string();
    let what = what.split(" at line ").next().unwrap_or(&what);
    let expected = match what {
        "key must be a string" => "Expected property name or '}'",
        "trailing comma" => "Expected double-quoted property name",
        _ => return format!("{} in JSON at position {position}", capitalize(what)),
    };
    format!("{expected} in JSON at position {position}")
}

/// serde_json reports 1-based line and column; JavaScript a 0-based offset in UTF-16 units.
fn position(text: &[u8], line: usize, column: usize) -> usize {
    let text = String::from_utf8_lossy(text);
    let mut offset = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            let upto: String = l.chars().take(column.saturating_sub(1)).collect();
            return offset + upto.encode_utf16().count();
        }
        offset += l.encode_utf16().count() + 1;
    }
    offset
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        h
    }

    #[test]
    fn reads_like_body_parser() {
        let h = json_headers();
        assert_eq!(json(&h, b"").unwrap(), serde_json::json!({}));
        assert_eq!(json(&h, b"[1,2]").unwrap(), serde_json::json!({}));
        assert_eq!(json(&h, b"\xEF\xBB\xBF{\"a\":1}").unwrap(), serde_json::json!({"a": 1}));
        assert_eq!(json(&h, br#"{"a":1,"a":2}"#).unwrap(), serde_json::json!({"a": 2}));
        assert_eq!(json(&HeaderMap::new(), br#"{"a":1}"#).unwrap(), serde_json::json!({}));
        assert!(matches!(json(&h, b"5"), Err(Rejection::Malformed(_))));
        assert!(matches!(json(&h, b"\"x\""), Err(Rejection::Malformed(_))));
    }

    #[test]
    fn syntax_errors_name_the_position_as_json_parse_does() {
        let h = json_headers();
        assert_eq!(
            json(&h, b"{'url':'https://example.com'}"),
            Err(Rejection::Malformed("Expected property name or '}' in JSON at position 1".into()))
        );
        assert_eq!(
            json(&h, br#"{"url":"https://example.com/webhook","events":["all"],}"#),
            Err(Rejection::Malformed("Expected double-quoted property name in JSON at position 54".into()))
        );
        assert_eq!(json(&h, b"{\"a\":"), Err(Rejection::Malformed("Unexpected end of JSON input".into())));
    }
}
