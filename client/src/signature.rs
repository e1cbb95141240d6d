//! Receiver-side verification of delivered events.
//!
//! Every delivery carries `Nursa-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, one `v1` per
//! current secret of the webhook. Each `v1` is the lowercase hex HMAC-SHA256, keyed with the
//! secret's UTF-8 bytes, of the bytes `"<t>.<raw request body>"`. A receiver splits the header on
//! `,` and each part on its first `=`.
//!
//! This module only verifies; it deliberately has no signer, so tests that use it check the
//! server's signatures against an independent implementation.
//!
//! Parsing rules (decided here, tested below):
//! - no trimming: a part is `key=value` exactly as sent, so ` v1=…` has the key `" v1"` and is
//!   an unknown key (ignored), not a signature;
//! - unknown keys (e.g. a future `v2`) are ignored; a part without `=` or with an empty key is
//!   malformed;
//! - exactly one `t`, made of ASCII digits only; at least one `v1`;
//! - every `v1` is exactly 64 lowercase hex digits, otherwise the header is malformed;
//! - the signature is checked before the timestamp, so [`VerifyError::TimestampOutsideTolerance`]
//!   means "authentic but too old (or too far in the future)".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use sha2::Sha256;

/// The header that carries the timestamp and the signatures.
pub const SIGNATURE_HEADER: &str = "Nursa-Signature";
/// The header that carries the event id, stable across retries (for receiver-side dedupe).
pub const EVENT_ID_HEADER: &str = "Nursa-Event-Id";
/// How far the signed timestamp may be from the receiver's clock, either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Length in hex digits of a `v1` value (HMAC-SHA256 = 32 bytes).
const V1_HEX_LEN: usize = 64;

/// A verified delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureOk {
    /// Index into the `secrets` given to [`verify`] of the (first) secret that matched.
    pub secret_index: usize,
    /// The signed timestamp `t`, unix seconds.
    pub timestamp: u64,
}

/// Why a delivery was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `Nursa-Signature` header.
    #[error("missing {SIGNATURE_HEADER} header")]
    MissingHeader,
    /// The header is present but does not follow `t=<unix>,v1=<hex>[,v1=<hex>…]`.
    #[error("malformed {SIGNATURE_HEADER} header: {0}")]
    MalformedHeader(&'static str),
    /// The signature matches but `t` is further than the tolerance from the receiver's clock.
    #[error("signature timestamp {timestamp} is outside the tolerance (now {now})")]
    TimestampOutsideTolerance { timestamp: u64, now: u64 },
    /// No `v1` matches any of the secrets.
    #[error("no signature matches any secret")]
    NoMatchingSignature,
}

/// Verifies a delivery against the webhook's secrets, with the current system time.
///
/// `raw_body` must be the request body exactly as received (not re-serialized JSON).
pub fn verify<S: AsRef<[u8]>>(
    headers: &HeaderMap,
    raw_body: &[u8],
    secrets: &[S],
    tolerance: Duration,
) -> Result<SignatureOk, VerifyError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    verify_at(headers, raw_body, secrets, tolerance, now)
}

/// [`verify`] with the receiver's clock given as `now_unix` (unix seconds).
pub fn verify_at<S: AsRef<[u8]>>(
    headers: &HeaderMap,
    raw_body: &[u8],
    secrets: &[S],
    tolerance: Duration,
    now_unix: u64,
) -> Result<SignatureOk, VerifyError> {
    let mut values = headers.get_all(SIGNATURE_HEADER).iter();
    let value = values.next().ok_or(VerifyError::MissingHeader)?;
    if values.next().is_some() {
        return Err(VerifyError::MalformedHeader("more than one header"));
    }
    let value = value.to_str().map_err(|_| VerifyError::MalformedHeader("not visible ASCII"))?;
    let parsed = parse(value)?;

    // The signed payload is "<t>.<raw body>", with `t` exactly as it appears in the header.
    let secret_index = secrets
        .iter()
        .position(|secret| {
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(secret.as_ref()).expect("HMAC accepts any key length");
            mac.update(parsed.timestamp_text.as_bytes());
            mac.update(b".");
            mac.update(raw_body);
            // `verify_slice` compares in constant time.
            parsed.v1.iter().any(|sig| mac.clone().verify_slice(sig).is_ok())
        })
        .ok_or(VerifyError::NoMatchingSignature)?;

    if Duration::from_secs(now_unix.abs_diff(parsed.timestamp)) > tolerance {
        return Err(VerifyError::TimestampOutsideTolerance { timestamp: parsed.timestamp, now: now_unix });
    }
    Ok(SignatureOk { secret_index, timestamp: parsed.timestamp })
}

struct Parsed<'a> {
    timestamp_text: &'a str,
    timestamp: u64,
    v1: Vec<[u8; 32]>,
}

fn parse(value: &str) -> Result<Parsed<'_>, VerifyError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for part in value.split(',') {
        let (key, val) = part.split_once('=').ok_or(VerifyError::MalformedHeader("a part without '='"))?;
        match key {
            "" => return Err(VerifyError::MalformedHeader("a part with an empty key")),
            "t" => {
                if timestamp.is_some() {
                    return Err(VerifyError::MalformedHeader("more than one t"));
                }
                // `u64::from_str` also takes a leading '+': require plain digits.
                if val.is_empty() || !val.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VerifyError::MalformedHeader("t is not unix seconds"));
                }
                let secs: u64 = val.parse().map_err(|_| VerifyError::MalformedHeader("t is out of range"))?;
                timestamp = Some((val, secs));
            }
            "v1" => {
                if val.len() != V1_HEX_LEN || !val.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(VerifyError::MalformedHeader("v1 is not 64 lowercase hex digits"));
                }
                let mut sig = [0u8; 32];
                hex::decode_to_slice(val, &mut sig)
                    .map_err(|_| VerifyError::MalformedHeader("v1 is not 64 lowercase hex digits"))?;
                v1.push(sig);
            }
            // Forward compatible: other schemes (`v2=…`) and unknown keys are ignored.
            _ => {}
        }
    }
    let (timestamp_text, timestamp) = timestamp.ok_or(VerifyError::MalformedHeader("no t"))?;
    if v1.is_empty() {
        return Err(VerifyError::MalformedHeader("no v1"));
    }
    Ok(Parsed { timestamp_text, timestamp, v1 })
}

#[cfg(test)]
mod tests {
    //! Every expected signature below is a literal computed outside this crate, with
    //!
    //! ```text
    //! python3 -c 'import hmac,hashlib; print(hmac.new(SECRET, b"1492774577." + BODY, hashlib.sha256).hexdigest())'
    //! ```
    //!
    //! and cross-checked with `printf '%s' '1492774577.BODY' | openssl dgst -sha256 -hmac SECRET`
    //! (both tools gave the same hex).

    use super::*;
    use reqwest::header::HeaderValue;

    const T: u64 = 1_492_774_577;
    const BODY: &[u8] = br#"{"data":{"facilityId":"NUR-123456","userId":"lcFQMy1n0decDeZljQG2wUNZBru7"},"eventType":"facility.user-connection.accepted"}"#;
    const SECRET_A: &str = "sDV1aKqitCLClI12m7UPFbAAvZfZquJw";
    const SECRET_B: &str = "mryefgHPBVHJwux0o3BYW7hPM0BZlcCa";
    /// HMAC-SHA256(SECRET_A, "1492774577." + BODY)
    const SIG_A: &str = "b720b00a70ab8f5bc5c7d167b18d017186fd80bd59b6d2e6a472fe663bda487b";
    /// HMAC-SHA256(SECRET_B, "1492774577." + BODY)
    const SIG_B: &str = "32d8c33c78cdc4f2687bc956193b9220e551bf8bef20816ec4863467a13e0d25";
    /// HMAC-SHA256("secret", "1492774577.") — an empty body.
    const SIG_EMPTY_BODY: &str = "cb29dfcb3d64c88b80b89534fc88793dda94b351bb3a35e84815d08350e1d99c";
    /// HMAC-SHA256("sécret-ü" as UTF-8 = 73 c3a9 63 72 65 74 2d c3bc, "1492774577.{\"a\":1}")
    const SIG_UTF8_SECRET: &str = "f5496628f39bad4d6d30fd6fc0f22c1729551310b25b9d46d8c5b65bc1d05d5e";

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(value).unwrap());
        h
    }

    fn check(value: &str, body: &[u8], secrets: &[&str]) -> Result<SignatureOk, VerifyError> {
        verify_at(&headers(value), body, secrets, DEFAULT_TOLERANCE, T)
    }

    fn malformed(value: &str) -> bool {
        matches!(check(value, BODY, &[SECRET_A]), Err(VerifyError::MalformedHeader(_)))
    }

    #[test]
    fn valid_single_v1() {
        let got = check(&format!("t={T},v1={SIG_A}"), BODY, &[SECRET_A]);
        assert_eq!(got, Ok(SignatureOk { secret_index: 0, timestamp: T }));
    }

    #[test]
    fn empty_body_and_utf8_secret() {
        assert!(check(&format!("t={T},v1={SIG_EMPTY_BODY}"), b"", &["secret"]).is_ok());
        let got = check(&format!("t={T},v1={SIG_UTF8_SECRET}"), br#"{"a":1}"#, &["sécret-ü"]);
        assert!(got.is_ok(), "{got:?}");
        // A byte string secret works the same as the &str.
        let got = verify_at(
            &headers(&format!("t={T},v1={SIG_UTF8_SECRET}")),
            br#"{"a":1}"#,
            &["sécret-ü".as_bytes().to_vec()],
            DEFAULT_TOLERANCE,
            T,
        );
        assert!(got.is_ok(), "{got:?}");
    }

    #[test]
    fn rotation_second_v1_matches_the_receivers_secret() {
        // The server signs with both current secrets; the receiver knows only the new one.
        let got = check(&format!("t={T},v1={SIG_A},v1={SIG_B}"), BODY, &[SECRET_B]);
        assert_eq!(got, Ok(SignatureOk { secret_index: 0, timestamp: T }));
        // The server still signs only with the old secret; the receiver knows old and new.
        let got = check(&format!("t={T},v1={SIG_A}"), BODY, &["someNewSecret", SECRET_A]);
        assert_eq!(got, Ok(SignatureOk { secret_index: 1, timestamp: T }));
    }

    #[test]
    fn either_of_two_secrets() {
        let value = format!("t={T},v1={SIG_A},v1={SIG_B}");
        assert_eq!(check(&value, BODY, &[SECRET_A, SECRET_B]).unwrap().secret_index, 0);
        assert_eq!(check(&value, BODY, &[SECRET_B, SECRET_A]).unwrap().secret_index, 0);
        assert_eq!(check(&format!("t={T},v1={SIG_B}"), BODY, &[SECRET_A, SECRET_B]).unwrap().secret_index, 1);
    }

    #[test]
    fn wrong_secret() {
        let value = format!("t={T},v1={SIG_A},v1={SIG_B}");
        assert_eq!(
            check(&value, BODY, &["sDV1aKqitCLClI12m7UPFbAAvZfZquJx"]),
            Err(VerifyError::NoMatchingSignature)
        );
        let none: [&str; 0] = [];
        assert_eq!(
            verify_at(&headers(&value), BODY, &none, DEFAULT_TOLERANCE, T),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn tampered_body_or_timestamp() {
        let value = format!("t={T},v1={SIG_A}");
        let mut body = BODY.to_vec();
        let i = body.iter().position(|&b| b == b'6').unwrap(); // NUR-123456 → NUR-123457
        body[i] = b'7';
        assert_eq!(check(&value, &body, &[SECRET_A]), Err(VerifyError::NoMatchingSignature));
        // One byte more (a trailing newline) also fails.
        let mut body = BODY.to_vec();
        body.push(b'\n');
        assert_eq!(check(&value, &body, &[SECRET_A]), Err(VerifyError::NoMatchingSignature));
        // The timestamp is part of the signed payload: changing t (within tolerance) fails.
        let value = format!("t={},v1={SIG_A}", T + 1);
        assert_eq!(check(&value, BODY, &[SECRET_A]), Err(VerifyError::NoMatchingSignature));
        // So does the same number spelled with a leading zero.
        assert_eq!(
            check(&format!("t=0{T},v1={SIG_A}"), BODY, &[SECRET_A]),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn one_flipped_hex_digit() {
        let mut sig = SIG_A.to_string();
        sig.replace_range(63.., "c"); // ...7b → ...7c
        assert_eq!(
            check(&format!("t={T},v1={sig}"), BODY, &[SECRET_A]),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn timestamp_tolerance() {
        let h = headers(&format!("t={T},v1={SIG_A}"));
        let at = |now| verify_at(&h, BODY, &[SECRET_A], DEFAULT_TOLERANCE, now);
        assert!(at(T + 300).is_ok(), "exactly 5 min old is accepted");
        assert!(at(T - 300).is_ok(), "exactly 5 min ahead is accepted");
        assert_eq!(at(T + 301), Err(VerifyError::TimestampOutsideTolerance { timestamp: T, now: T + 301 }));
        assert_eq!(at(T - 301), Err(VerifyError::TimestampOutsideTolerance { timestamp: T, now: T - 301 }));
        assert!(matches!(at(0), Err(VerifyError::TimestampOutsideTolerance { .. })));
        assert!(matches!(at(u64::MAX), Err(VerifyError::TimestampOutsideTolerance { .. })));
        // A custom tolerance.
        assert!(verify_at(&h, BODY, &[SECRET_A], Duration::from_secs(10), T + 10).is_ok());
        assert!(verify_at(&h, BODY, &[SECRET_A], Duration::from_secs(10), T + 11).is_err());
        // The system clock is far past 2017: the real-time `verify` rejects this old vector.
        assert!(matches!(
            verify(&h, BODY, &[SECRET_A], DEFAULT_TOLERANCE),
            Err(VerifyError::TimestampOutsideTolerance { timestamp: T, .. })
        ));
    }

    #[test]
    fn the_signature_is_checked_before_the_timestamp() {
        let h = headers(&format!("t={T},v1={SIG_A}"));
        assert_eq!(
            verify_at(&h, BODY, &[SECRET_B], DEFAULT_TOLERANCE, T + 3600),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn missing_header() {
        let h = HeaderMap::new();
        assert_eq!(verify_at(&h, BODY, &[SECRET_A], DEFAULT_TOLERANCE, T), Err(VerifyError::MissingHeader));
        // The header name is case-insensitive (HTTP), so a lowercase name is found.
        let mut h = HeaderMap::new();
        h.insert("nursa-signature", HeaderValue::from_str(&format!("t={T},v1={SIG_A}")).unwrap());
        assert!(verify_at(&h, BODY, &[SECRET_A], DEFAULT_TOLERANCE, T).is_ok());
    }

    #[test]
    fn malformed_headers() {
        assert!(malformed(""), "empty");
        assert!(malformed("garbage"), "garbage");
        assert!(malformed("t"), "key without '='");
        assert!(malformed(&format!("v1={SIG_A}")), "no t");
        assert!(malformed(&format!("t={T},t={T},v1={SIG_A}")), "two t");
        assert!(malformed(&format!("t=abc,v1={SIG_A}")), "t not a number");
        assert!(malformed(&format!("t=,v1={SIG_A}")), "empty t");
        assert!(malformed(&format!("t=+{T},v1={SIG_A}")), "t with a sign");
        assert!(malformed(&format!("t=-{T},v1={SIG_A}")), "negative t");
        assert!(malformed(&format!("t={T}.5,v1={SIG_A}")), "fractional t");
        assert!(malformed(&format!("t=99999999999999999999999,v1={SIG_A}")), "t beyond u64");
        assert!(malformed(&format!("t={T}")), "no v1");
        assert!(malformed(&format!("t={T},v1=")), "empty v1");
        assert!(malformed(&format!("t={T},v1={}", &SIG_A[..62])), "short v1");
        assert!(malformed(&format!("t={T},v1={SIG_A}00")), "long v1");
        assert!(malformed(&format!("t={T},v1={}g", &SIG_A[..63])), "non-hex v1");
        assert!(malformed(&format!("t={T},v1={SIG_A},")), "trailing comma");
        assert!(malformed(&format!(",t={T},v1={SIG_A}")), "leading comma");
        assert!(malformed(&format!("t={T},,v1={SIG_A}")), "empty part");
        assert!(malformed(&format!("t={T},={SIG_A}")), "empty key");
        assert!(malformed(&format!("t={T};v1={SIG_A}")), "';' is not a separator");
        // `t` only is "ignored keys + t" → still no v1.
        assert!(malformed(&format!("t={T},v2={SIG_A}")), "only an unknown scheme");
    }

    #[test]
    fn two_header_lines_are_malformed() {
        let mut h = headers(&format!("t={T},v1={SIG_A}"));
        h.append(SIGNATURE_HEADER, HeaderValue::from_str(&format!("t={T},v1={SIG_B}")).unwrap());
        assert!(matches!(
            verify_at(&h, BODY, &[SECRET_A], DEFAULT_TOLERANCE, T),
            Err(VerifyError::MalformedHeader(_))
        ));
    }

    #[test]
    fn non_ascii_header_value_is_malformed() {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, HeaderValue::from_bytes(b"t=1492774577,v1=\xff").unwrap());
        assert!(matches!(
            verify_at(&h, BODY, &[SECRET_A], DEFAULT_TOLERANCE, T),
            Err(VerifyError::MalformedHeader(_))
        ));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let value = format!("v0=xyz,t={T},v2=future-scheme,v1={SIG_A},foo=bar=baz,x=");
        assert_eq!(check(&value, BODY, &[SECRET_A]), Ok(SignatureOk { secret_index: 0, timestamp: T }));
        // Order does not matter: t may come after the signatures.
        assert!(check(&format!("v1={SIG_B},v1={SIG_A},t={T}"), BODY, &[SECRET_A]).is_ok());
    }

    #[test]
    fn only_lowercase_hex_is_accepted() {
        // The documentation says "lowercase hex"; an uppercase signature is malformed.
        let upper = SIG_A.to_ascii_uppercase();
        assert!(malformed(&format!("t={T},v1={upper}")));
        let mut mixed = SIG_A.to_string();
        mixed.replace_range(0..1, "B"); // b720… → B720…
        assert!(malformed(&format!("t={T},v1={mixed}")));
    }

    #[test]
    fn no_whitespace_trimming() {
        // Receivers split on ',' then '=': " v1" is an unknown key, not a v1.
        assert!(malformed(&format!("t={T}, v1={SIG_A}")), "the only v1 has a leading space");
        // With a proper v1 as well, the spaced one is ignored and the proper one verifies.
        assert!(check(&format!("t={T}, v1={SIG_B},v1={SIG_A}"), BODY, &[SECRET_A]).is_ok());
        assert_eq!(
            check(&format!("t={T}, v1={SIG_A},v1={SIG_B}"), BODY, &[SECRET_A]),
            Err(VerifyError::NoMatchingSignature),
            "the spaced v1 is not used"
        );
        // A space inside a value is part of the value.
        assert!(malformed(&format!("t= {T},v1={SIG_A}")), "space before t's value");
        assert!(malformed(&format!("t={T},v1= {SIG_A}")), "space before v1's value");
        assert!(malformed(&format!("t={T},v1={SIG_A} ")), "space after v1's value");
        // " t" is an unknown key → no t.
        assert!(malformed(&format!(" t={T},v1={SIG_A}")), "the only t has a leading space");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever a sender (or an attacker) puts in the headers, `verify` answers.
        #[test]
        fn verify_answers_any_headers(
            values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 0..3),
            shaped in "t=[0-9]{0,12}(,v1=[0-9a-fA-F]{0,70}){0,3},?.{0,10}",
            body in prop::collection::vec(any::<u8>(), 0..64),
            secrets in prop::collection::vec(".{0,40}", 0..3),
            now in any::<u64>(),
            tolerance in any::<u64>(),
        ) {
            let mut headers = HeaderMap::new();
            for value in values.iter().map(|v| HeaderValue::from_bytes(v)).filter_map(Result::ok) {
                headers.append(SIGNATURE_HEADER, value);
            }
            let _ = verify_at(&headers, &body, &secrets, Duration::from_secs(tolerance), now);
            if let Ok(value) = HeaderValue::from_str(&shaped) {
                let mut one = HeaderMap::new();
                one.insert(SIGNATURE_HEADER, value);
                let _ = verify_at(&one, &body, &secrets, Duration::from_secs(tolerance), now);
                let _ = verify(&one, &body, &secrets, Duration::from_secs(tolerance));
            }
        }
    }
}
