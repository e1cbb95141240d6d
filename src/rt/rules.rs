//! Validation rules with class-validator semantics, over `Option<&Value>` where `None` is
//! an absent property (JavaScript's `undefined`). Each returns whether the value passes.

use serde_json::Value;

type V<'a> = Option<&'a Value>;

/// The ECMAScript regular expressions of `pattern` rules (what JSON Schema and class-validator mean).
pub use regress::Regex;

pub fn is_string(v: V) -> bool {
    matches!(v, Some(Value::String(_)))
}

pub fn is_array(v: V) -> bool {
    matches!(v, Some(Value::Array(_)))
}

/// `@IsObject`: a JSON object (not an array, not null).
pub fn is_object(v: V) -> bool {
    matches!(v, Some(Value::Object(_)))
}

pub fn is_boolean(v: V) -> bool {
    matches!(v, Some(Value::Bool(_)))
}

/// `@IsInt`: a JSON number with no fractional part, within the 64-bit range the server keeps.
pub fn is_integer(v: V) -> bool {
    const LIMIT: f64 = 9_223_372_036_854_775_807.0;
    match v {
        Some(Value::Number(n)) => {
            n.is_i64() || (!n.is_u64() && n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < LIMIT))
        }
        _ => false,
    }
}

/// `@ArrayMinSize`: only an array can pass.
pub fn min_items(v: V, n: usize) -> bool {
    matches!(v, Some(Value::Array(a)) if a.len() >= n)
}

/// `@ArrayMaxSize`: only an array can pass.
pub fn max_items(v: V, n: usize) -> bool {
    matches!(v, Some(Value::Array(a)) if a.len() <= n)
}

/// `each: true`: an array passes when every item does; anything else is checked as one item.
pub fn each(v: V, rule: impl Fn(V) -> bool) -> bool {
    match v {
        Some(Value::Array(items)) => items.iter().all(|item| rule(Some(item))),
        other => rule(other),
    }
}

/// `@IsEnum` over string values.
pub fn one_of(v: V, allowed: &[&str]) -> bool {
    matches!(v, Some(Value::String(s)) if allowed.contains(&s.as_str()))
}

/// `@MinLength`, counted in UTF-16 code units as JavaScript does.
pub fn min_length(v: V, n: usize) -> bool {
    matches!(v, Some(Value::String(s)) if s.encode_utf16().count() >= n)
}

/// `@MaxLength`, counted in UTF-16 code units as JavaScript does.
pub fn max_length(v: V, n: usize) -> bool {
    matches!(v, Some(Value::String(s)) if s.encode_utf16().count() <= n)
}

/// `minLength: 1` as JSON Schema reads it (`x-not-empty`): only a string can be too short, so
/// only `""` fails; other values are the type rule's to report.
pub fn not_empty_string(v: V) -> bool {
    !matches!(v, Some(Value::String(s)) if s.is_empty())
}

/// JSON Schema's `items`: a rule for the items of an array, which anything but an array passes
/// (unlike [`each`], which checks a non-array as one item, as class-validator does).
pub fn items(v: V, rule: impl Fn(V) -> bool) -> bool {
    match v {
        Some(Value::Array(items)) => items.iter().all(|item| rule(Some(item))),
        _ => true,
    }
}

/// `@Matches(pattern)`: a string the expression finds a match in (anywhere, as `RegExp.test`).
/// No expression (it did not compile, which the generator rules out) matches nothing.
pub fn matches(v: V, pattern: Option<&Regex>) -> bool {
    match (v, pattern) {
        (Some(Value::String(s)), Some(pattern)) => pattern.find(s).is_some(),
        _ => false,
    }
}

/// `@Min`.
pub fn minimum(v: V, n: f64) -> bool {
    matches!(v, Some(Value::Number(x)) if x.as_f64().is_some_and(|x| x >= n))
}

/// `@Max`.
pub fn maximum(v: V, n: f64) -> bool {
    matches!(v, Some(Value::Number(x)) if x.as_f64().is_some_and(|x| x <= n))
}

/// `@IsUrl({ protocols: ['https'], require_protocol: true })`, with one deliberate difference:
/// U+0000 is refused (validator.js lets it through in a path). No receiver's URL contains it,
/// and PostgreSQL text cannot store it: accepted, it was a 500 there and stored on SQLite.
pub fn https_url(v: V) -> bool {
    matches!(v, Some(Value::String(s)) if !s.contains('\0') && super::is_https_url(s))
}

/// `@IsISO8601()`: an RFC 3339 / ISO 8601 date or date-time.
pub fn iso8601(v: V) -> bool {
    matches!(v, Some(Value::String(s)) if is_iso8601(s))
}

fn is_iso8601(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |range: std::ops::Range<usize>| b.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 10 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' || !digits(8..10) {
        return false;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    let day = (b[8] - b'0') * 10 + (b[9] - b'0');
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    if !matches!(b[10], b'T' | b't' | b' ')
        || b.len() < 16
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
    {
        return false;
    }
    let mut i = 16;
    if b.get(i) == Some(&b':') {
        if !digits(i + 1..i + 3) {
            return false;
        }
        i += 3;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == start {
                return false;
            }
        }
    }
    match b.get(i) {
        None => true,
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            let tz = &b[i + 1..];
            (tz.len() == 5 && tz[2] == b':' && digits(i + 1..i + 3) && digits(i + 4..i + 6))
                || (tz.len() == 4 && digits(i + 1..i + 5))
                || (tz.len() == 2 && digits(i + 1..i + 3))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_fail_for_non_arrays_and_each_checks_scalars_as_one_item() {
        let s = json!("all");
        assert!(!min_items(Some(&s), 1));
        assert!(!max_items(Some(&s), 2));
        assert!(each(Some(&s), |v| one_of(v, &["all"])));
        assert!(!each(None, is_string));
        let n = json!(5);
        assert!(!each(Some(&n), is_string));
        let items = json!(["a", 1]);
        assert!(!each(Some(&items), is_string));
        assert!(each(Some(&json!([])), is_string));
    }

    #[test]
    fn not_empty_strings_refuse_only_the_empty_string_and_items_only_look_into_arrays() {
        assert!(!not_empty_string(Some(&json!(""))));
        for value in [json!(" "), json!("x"), json!(null), json!(0), json!(false), json!([]), json!({})] {
            assert!(not_empty_string(Some(&value)), "{value}");
        }
        assert!(not_empty_string(None));
        assert!(!items(Some(&json!(["a", ""])), not_empty_string));
        for passes in [json!(["a", 5, null]), json!([]), json!(""), json!("x"), json!(5)] {
            assert!(items(Some(&passes), not_empty_string), "{passes}");
        }
        assert!(items(None, not_empty_string));
    }

    #[test]
    fn matches_searches_strings_only_and_fails_without_an_expression() {
        let visible = Regex::new(r"^[\x21-\x7E]*$").unwrap();
        assert!(matches(Some(&json!("evt-1_~!")), Some(&visible)));
        assert!(matches(Some(&json!("")), Some(&visible)));
        for bad in [json!("a b"), json!("a\u{1}"), json!("é"), json!("a\u{0}"), json!(5)] {
            assert!(!matches(Some(&bad), Some(&visible)), "{bad}");
        }
        let anywhere = Regex::new("b").unwrap();
        assert!(matches(Some(&json!("abc")), Some(&anywhere)), "unanchored, like RegExp.test");
        assert!(!matches(Some(&json!("abc")), None));
        assert!(!matches(None, Some(&anywhere)));
    }

    #[test]
    fn https_urls_refuse_nul_which_validator_js_would_pass() {
        assert!(super::super::is_https_url("https://example.com/a\0b"), "validator.js accepts it");
        assert!(!https_url(Some(&json!("https://example.com/a\u{0}b"))));
        assert!(https_url(Some(&json!("https://example.com/ab"))));
    }

    #[test]
    fn iso8601_dates() {
        for ok in ["2026-11-26", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00.123+01:00", "2026-11-26T10:00Z"]
        {
            assert!(iso8601(Some(&json!(ok))), "{ok}");
        }
        for bad in ["", "2026-13-01", "26-11-2026", "2026-11-26T", "2026-11-26T10:00:00.Z", "yesterday"] {
            assert!(!iso8601(Some(&json!(bad))), "{bad}");
        }
    }
}
