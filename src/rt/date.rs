//! The one parser of the contract's instants (`format: date-time`): the generated server parses
//! its date-time query parameters with it, and the CLI its date arguments, so a date one side
//! takes the other takes too.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// An ISO 8601 / RFC 3339 instant, in UTC: any offset (`Z`, `+01:00`, `+0100`, `+01`), seconds
/// and fractions optional, `T` or a space before the time; without an offset the time is UTC,
/// and a date alone is its midnight, UTC. Surrounding whitespace is ignored.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// serde's `deserialize_with` for a required instant, through [`parse_instant`].
pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    parse_instant(&text).ok_or_else(|| serde::de::Error::custom(format!("not an ISO 8601 instant: {text:?}")))
}

/// serde's `deserialize_with` for an optional instant (absent or null is `None`).
pub fn deserialize_option<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match <Option<String> as serde::Deserialize>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) => parse_instant(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not an ISO 8601 instant: {text:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Option<i64> {
        parse_instant(text).map(|t| t.timestamp_millis())
    }

    #[test]
    fn instants_in_every_accepted_shape() {
        let midnight = Some(1_796_083_200_000); // 2026-12-01T00:00:00Z
        for text in [
            "2026-12-01",
            "2026-12-01T00:00:00Z",
            "2026-12-01T00:00:00.000Z",
            "2026-12-01T01:00:00+01:00",
            "2026-12-01T01:00:00+0100",
            "2026-12-01T01:00+01:00",
            "2026-12-01 01:00:00+01",
            "2026-12-01T00:00:00",
            "2026-12-01T00:00",
            " 2026-12-01 ",
        ] {
            assert_eq!(ms(text), midnight, "{text}");
        }
        for text in ["", "yesterday", "2026-02-31", "2026-13-01", "01/12/2026", "2026-12-01T25:00:00Z"] {
            assert_eq!(ms(text), None, "{text}");
        }
    }

    #[test]
    fn serde_helpers_use_the_parser() {
        #[derive(serde::Deserialize)]
        struct Q {
            #[serde(default, deserialize_with = "deserialize_option")]
            at: Option<DateTime<Utc>>,
        }
        let q: Q = serde_json::from_str(r#"{"at":"2026-12-01"}"#).expect("a date");
        assert_eq!(q.at.map(|t| t.timestamp_millis()), Some(1_796_083_200_000));
        let q: Q = serde_json::from_str("{}").expect("absent");
        assert_eq!(q.at, None);
        assert!(serde_json::from_str::<Q>(r#"{"at":"2026-02-31"}"#).is_err());
    }
}
