//! Query strings as the contract reads them: every value a string (an array when a name
//! repeats), numbers and booleans converted where the parameter's type says so, as
//! class-transformer's implicit conversion does before class-validator runs.

use serde_json::{Map, Value};

pub fn parse(query: Option<&str>) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = Value::String(value.into_owned());
        match map.get_mut(key.as_ref()) {
            None => {
                map.insert(key.into_owned(), value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => *existing = Value::Array(vec![existing.take(), value]),
        }
    }
    map
}

/// A numeric string becomes a number (an exact integer when it is one); anything else stays, to fail.
pub fn to_number(query: &mut Map<String, Value>, name: &str) {
    if let Some(value) = query.get_mut(name) {
        let Some(text) = value.as_str().map(str::trim) else { return };
        if let Ok(n) = text.parse::<i64>() {
            *value = Value::from(n);
        } else if let Some(n) = text.parse::<f64>().ok().filter(|n| n.is_finite()) {
            // `10.0` or `1e3` is an integer to JavaScript too; keep it one where it fits.
            let integral = n.fract() == 0.0 && n.abs() < 9.0e18;
            *value = if integral { Value::from(n as i64) } else { Value::from(n) };
        }
    }
}

/// A lone value becomes a one-element list (form style, exploded: `a=1` is `[1]`, `a=1&a=2` is
/// `[1, 2]`).
pub fn to_list(query: &mut Map<String, Value>, name: &str) {
    if let Some(value) = query.get_mut(name) {
        if !value.is_array() {
            *value = Value::Array(vec![value.take()]);
        }
    }
}

/// `true` / `false` become booleans; anything else stays, to fail.
pub fn to_boolean(query: &mut Map<String, Value>, name: &str) {
    if let Some(value) = query.get_mut(name) {
        match value.as_str() {
            Some("true") => *value = Value::Bool(true),
            Some("false") => *value = Value::Bool(false),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeats_become_arrays_and_numbers_convert() {
        let mut q = parse(Some("limit=5&a=1&a=2&offset=x&f=2.5&b=true&big=9007199254740993"));
        to_number(&mut q, "big");
        assert_eq!(q["big"], json!(9007199254740993_i64), "integers stay exact");
        q.remove("big");
        to_number(&mut q, "limit");
        to_number(&mut q, "offset");
        to_number(&mut q, "f");
        to_boolean(&mut q, "b");
        to_list(&mut q, "a");
        q.insert("one".into(), json!("x"));
        to_list(&mut q, "one");
        assert_eq!(q.remove("one"), Some(json!(["x"])));
        assert_eq!(
            Value::Object(q),
            json!({"limit": 5, "a": ["1", "2"], "offset": "x", "f": 2.5, "b": true})
        );
    }
}
