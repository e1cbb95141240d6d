//! Exact port of validator.js 13.15.35 `isURL` (with the `isFQDN` and `isIP`
//! helpers it calls) for the options
//! `{ protocols: ['https'], require_protocol: true }`, every other option at
//! its default.
//!
//! Why a port rather than a URL parser: the contract says a webhook URL
//! "should be a secure URL with HTTPS" exactly as the `NestJS` service's
//! class-validator `@IsUrl({ protocols: ['https'], require_protocol: true })`
//! decides it (see docs/ARCHITECTURE.md §3, class-validator parity). That decorator is
//! validator.js' `isURL`, quirks included: `https:host/path` passes,
//! `localhost` and `host.` fail, an empty port `host:/` passes. A
//! WHATWG-conformant parser would disagree on many inputs, so this follows
//! the JavaScript source line by line instead.
//!
//! JavaScript strings are UTF-16 and none of these regexes carry the `u`
//! flag, so every length limit and character class applies to UTF-16 code
//! units. The port therefore works on `&[u16]`; an astral character counts
//! as two units and passes a label check through its surrogates.
//!
//! The differential vectors in `is_url_vectors.json` come from the real
//! library (`scripts/is-url-vectors/`) and pin this behaviour in the tests.

use std::sync::OnceLock;

/// `default_url_options` of isURL.js, plus `disallow_auth`, which is
/// undefined there and so behaves as `false`. `host_whitelist` and
/// `host_blacklist` are left out: unset in the defaults, and they take
/// JavaScript `RegExp`s, which have no meaning for this fixed port.
struct UrlOptions {
    protocols: &'static [&'static str],
    require_tld: bool,
    require_protocol: bool,
    require_host: bool,
    require_port: bool,
    require_valid_protocol: bool,
    allow_underscores: bool,
    allow_trailing_dot: bool,
    allow_protocol_relative_urls: bool,
    allow_fragments: bool,
    allow_query_components: bool,
    disallow_auth: bool,
    validate_length: bool,
    max_allowed_length: usize,
}

const DEFAULT_URL_OPTIONS: UrlOptions = UrlOptions {
    protocols: &["http", "https", "ftp"],
    require_tld: true,
    require_protocol: false,
    require_host: true,
    require_port: false,
    require_valid_protocol: true,
    allow_underscores: false,
    allow_trailing_dot: false,
    allow_protocol_relative_urls: false,
    allow_fragments: true,
    allow_query_components: true,
    disallow_auth: false,
    validate_length: true,
    max_allowed_length: 2084,
};

/// The options of `@IsUrl({ protocols: ['https'], require_protocol: true })`.
const HTTPS_URL_OPTIONS: UrlOptions =
    UrlOptions { protocols: &["https"], require_protocol: true, ..DEFAULT_URL_OPTIONS };

/// What isFQDN sees: isURL hands it its own merged options object, and
/// `merge` fills the keys isURL does not know from `default_fqdn_options`.
struct FqdnOptions {
    require_tld: bool,
    allow_underscores: bool,
    allow_trailing_dot: bool,
    allow_numeric_tld: bool,
    allow_wildcard: bool,
    ignore_max_length: bool,
}

impl FqdnOptions {
    fn from_url_options(options: &UrlOptions) -> Self {
        FqdnOptions {
            require_tld: options.require_tld,
            allow_underscores: options.allow_underscores,
            allow_trailing_dot: options.allow_trailing_dot,
            allow_numeric_tld: false,
            allow_wildcard: false,
            ignore_max_length: false,
        }
    }
}

/// Whether class-validator's `@IsUrl({ protocols: ['https'],
/// require_protocol: true })` accepts `value`.
#[must_use]
pub fn is_https_url(value: &str) -> bool {
    let units: Vec<u16> = value.encode_utf16().collect();
    is_url(&units, &HTTPS_URL_OPTIONS)
}

fn is_url(url: &[u16], options: &UrlOptions) -> bool {
    if url.is_empty() || url.iter().any(|&c| is_js_space(c) || c == u('<') || c == u('>')) {
        return false;
    }
    if starts_with(url, "mailto:") {
        return false;
    }
    if options.validate_length && url.len() > options.max_allowed_length {
        return false;
    }
    if !options.allow_fragments && url.contains(&u('#')) {
        return false;
    }
    if !options.allow_query_components && (url.contains(&u('?')) || url.contains(&u('&'))) {
        return false;
    }
    let url = before_first(url, '#');
    let mut url = before_first(url, '?');

    // 13.15 matches the scheme with a regex instead of splitting on "://",
    // then second-guesses it: "name:x@host" may be credentials and "host:8080"
    // a port. With require_protocol both of those readings reject the URL.
    let mut had_explicit_protocol = false;
    if let Some(match_len) = protocol_match_len(url) {
        let after_colon = &url[match_len..];
        let is_protocol = if starts_with(after_colon, "//") {
            true
        } else {
            let before_slash = before_first(after_colon, '/');
            if let Some(at_position) = index_of(before_slash, '@') {
                let before_at = &before_slash[..at_position];
                let is_valid_auth = before_at.iter().all(|&c| is_auth_char(c));
                let has_encoded_content =
                    before_at.windows(3).any(|w| w[0] == u('%') && is_hex_digit(w[1]) && is_hex_digit(w[2]));
                // Plain credentials are not a scheme; anything else before the
                // '@' (e.g. `javascript:alert();@host`) is treated as one, so
                // it meets the protocol allow-list below.
                let looks_like_auth = is_valid_auth && !has_encoded_content;
                !looks_like_auth
            } else {
                !after_colon.first().is_some_and(|&c| is_ascii_digit(c))
            }
        };
        if is_protocol {
            had_explicit_protocol = true;
            let protocol = &url[..match_len - 1];
            if options.require_valid_protocol
                && !options.protocols.iter().any(|p| eq_ignore_ascii_case(protocol, p))
            {
                return false;
            }
            url = after_colon;
        } else if options.require_protocol {
            return false;
        }
    } else if options.require_protocol {
        return false;
    }

    // After an explicit scheme "//" is only the separator; without one it
    // would make the URL protocol-relative. Only one "//" is removed, so
    // `https:////x` keeps an empty host and fails below.
    if starts_with(url, "//") {
        if !had_explicit_protocol && !options.allow_protocol_relative_urls {
            return false;
        }
        url = &url[2..];
    }
    if url.is_empty() {
        return false;
    }
    let url = before_first(url, '/');
    if url.is_empty() && !options.require_host {
        return true;
    }

    // Only the first '@' ends the userinfo; later ones stay in the host and
    // make it fail isFQDN.
    let mut hostname = url;
    if let Some(at) = index_of(url, '@') {
        if options.disallow_auth {
            return false;
        }
        let auth = &url[..at];
        if auth.is_empty() {
            return false;
        }
        if auth.iter().filter(|&&c| c == u(':')).count() > 1 {
            return false;
        }
        // `password` is undefined (not '') when there is no colon, so only a
        // bare ":" is rejected here.
        if let Some(colon) = index_of(auth, ':') {
            let (user, password) = (&auth[..colon], &auth[colon + 1..]);
            if user.is_empty() && password.is_empty() {
                return false;
            }
        }
        hostname = &url[at + 1..];
    }

    let host: &[u16];
    let ipv6: Option<&[u16]>;
    let port_str: Option<&[u16]>;
    if let Some((address, port)) = match_wrapped_ipv6(hostname) {
        host = &[];
        ipv6 = Some(address);
        port_str = port;
    } else {
        ipv6 = None;
        if let Some(colon) = index_of(hostname, ':') {
            host = &hostname[..colon];
            // Everything after the first colon, further colons included,
            // which then fails the digits check.
            port_str = Some(&hostname[colon + 1..]);
        } else {
            host = hostname;
            port_str = None;
        }
    }

    // An empty port ("host:") is skipped, not rejected, as in the original.
    match port_str {
        Some(port) if !port.is_empty() => {
            if !port.iter().all(|&c| is_ascii_digit(c)) || !(1..=65535).contains(&parse_port(port)) {
                return false;
            }
        }
        _ => {
            if options.require_port {
                return false;
            }
        }
    }

    if host.is_empty() && !options.require_host {
        return true;
    }
    // A bracketed IPv6 host leaves `host` empty, so only the last clause can
    // accept it.
    if !is_ip(host)
        && !is_fqdn(host, &FqdnOptions::from_url_options(options))
        && ipv6.is_none_or(|address| !is_ipv6(address))
    {
        return false;
    }
    true
}

/// Length of the `/^([a-z][a-z0-9+\-.]*):/i` match, colon included. The
/// class cannot contain ':', so the greedy run either ends at a colon or the
/// regex fails; backtracking could not find another match.
fn protocol_match_len(url: &[u16]) -> Option<usize> {
    if !url.first().is_some_and(|&c| is_ascii_alpha(c)) {
        return None;
    }
    let run = url[1..]
        .iter()
        .take_while(|&&c| is_ascii_alpha(c) || is_ascii_digit(c) || c == u('+') || c == u('-') || c == u('.'))
        .count();
    (url.get(1 + run) == Some(&u(':'))).then_some(2 + run)
}

/// `/^\[([^\]]+)\](?::([0-9]+))?$/`: the address is everything up to the
/// first ']', since the class cannot step over one.
fn match_wrapped_ipv6(hostname: &[u16]) -> Option<(&[u16], Option<&[u16]>)> {
    if hostname.first() != Some(&u('[')) {
        return None;
    }
    let close = 1 + index_of(&hostname[1..], ']')?;
    let address = &hostname[1..close];
    if address.is_empty() {
        return None;
    }
    let rest = &hostname[close + 1..];
    if rest.is_empty() {
        return Some((address, None));
    }
    let port = rest.strip_prefix(&[u(':')])?;
    if port.is_empty() || !port.iter().all(|&c| is_ascii_digit(c)) {
        return None;
    }
    Some((address, Some(port)))
}

/// `parseInt(port_str, 10)` for an all-digit string, saturating: any value
/// above 65535 is rejected alike, however large.
fn parse_port(digits: &[u16]) -> u32 {
    digits
        .iter()
        .fold(0u32, |acc, &c| acc.saturating_mul(10).saturating_add(u32::from(c.saturating_sub(u('0')))))
}

fn is_fqdn(str: &[u16], options: &FqdnOptions) -> bool {
    let mut str = str;
    if options.allow_trailing_dot && str.last() == Some(&u('.')) {
        str = &str[..str.len() - 1];
    }
    if options.allow_wildcard && starts_with(str, "*.") {
        str = &str[2..];
    }
    // Slice split, like String.prototype.split, yields empty parts (and one
    // empty part for an empty string), which the label check then rejects.
    let parts = || str.split(|&c| c == u('.'));
    let tld = parts().next_back().unwrap_or_default();
    if options.require_tld {
        if parts().count() < 2 {
            return false;
        }
        if !options.allow_numeric_tld && !is_tld(tld) {
            return false;
        }
        if tld.iter().any(|&c| is_js_space(c)) {
            return false;
        }
    }
    if !options.allow_numeric_tld && !tld.is_empty() && tld.iter().all(|&c| is_ascii_digit(c)) {
        return false;
    }
    parts().all(|part| {
        if part.len() > 63 && !options.ignore_max_length {
            return false;
        }
        if part.is_empty() || !part.iter().all(|&c| is_label_char(c)) {
            return false;
        }
        // Full-width ASCII look-alikes (U+FF01..U+FF5E) are inside the
        // label class above, so they are excluded separately.
        if part.iter().any(|&c| (0xFF01..=0xFF5E).contains(&c)) {
            return false;
        }
        if part.first() == Some(&u('-')) || part.last() == Some(&u('-')) {
            return false;
        }
        if !options.allow_underscores && part.contains(&u('_')) {
            return false;
        }
        true
    })
}

/// `/^([a-z\u00A1-\u00A8\u00AA-\uD7FF\uF900-\uFDCF\uFDF0-\uFFEF]{2,}|xn[a-z0-9-]{2,})$/i`.
/// With `i` and without `u`, case folding adds nothing beyond A-Z here
/// (checked over all 65536 code units against V8).
fn is_tld(tld: &[u16]) -> bool {
    let unicode_tld = tld.len() >= 2 && tld.iter().all(|&c| is_tld_char(c));
    let punycode_tld = tld.len() >= 4
        && (tld[0] == u('x') || tld[0] == u('X'))
        && (tld[1] == u('n') || tld[1] == u('N'))
        && tld[2..].iter().all(|&c| is_ascii_alpha(c) || is_ascii_digit(c) || c == u('-'));
    unicode_tld || punycode_tld
}

fn is_tld_char(c: u16) -> bool {
    is_ascii_alpha(c) || matches!(c, 0x00A1..=0x00A8 | 0x00AA..=0xD7FF | 0xF900..=0xFDCF | 0xFDF0..=0xFFEF)
}

/// `/^[a-z_\u00a1-\uffff0-9-]+$/i`, per code unit: surrogates are inside
/// the range, so astral characters (emoji) pass.
fn is_label_char(c: u16) -> bool {
    is_ascii_alpha(c) || is_ascii_digit(c) || c == u('_') || c == u('-') || c >= 0x00A1
}

/// isIP without a version: v4 or v6.
fn is_ip(str: &[u16]) -> bool {
    is_ipv4(str) || is_ipv6(str)
}

fn is_ipv4(str: &[u16]) -> bool {
    static RE: OnceLock<Pattern> = OnceLock::new();
    RE.get_or_init(ipv4_address_format).full_match(str)
}

fn is_ipv6(str: &[u16]) -> bool {
    static RE: OnceLock<Pattern> = OnceLock::new();
    RE.get_or_init(ipv6_address_regexp).full_match(str)
}

/// `IPv4SegmentFormat`: 0-255 without leading zeros.
fn ipv4_segment_format() -> Pattern {
    use Pattern::{Alt, Class, Lit, Seq};
    Alt(vec![
        Class(is_ascii_digit),
        Seq(vec![Class(|c| (u('1')..=u('9')).contains(&c)), Class(is_ascii_digit)]),
        Seq(vec![Lit(u('1')), Class(is_ascii_digit), Class(is_ascii_digit)]),
        Seq(vec![Lit(u('2')), Class(|c| (u('0')..=u('4')).contains(&c)), Class(is_ascii_digit)]),
        Seq(vec![Lit(u('2')), Lit(u('5')), Class(|c| (u('0')..=u('5')).contains(&c))]),
    ])
}

/// `IPv4AddressFormat`: `(seg[.]){3}seg`.
fn ipv4_address_format() -> Pattern {
    use Pattern::{Lit, Rep, Seq};
    Seq(vec![Rep(Box::new(Seq(vec![ipv4_segment_format(), Lit(u('.'))])), 3, Some(3)), ipv4_segment_format()])
}

/// `IPv6AddressRegExp`, rebuilt alternative by alternative from isIP.js so
/// the odd corners (e.g. `1:2:3:4:5:6::7`, `::1.2.3.4`, zone ids with dots)
/// match exactly what the regex accepts.
fn ipv6_address_regexp() -> Pattern {
    use Pattern::{Alt, Class, Lit, Rep, Seq};
    let seg = || Class(is_hex_digit);
    let v6seg = || Rep(Box::new(seg()), 1, Some(4));
    let colon = || Lit(u(':'));
    // `(?:SEG:){n}`
    let head = |n: usize| Rep(Box::new(Seq(vec![v6seg(), colon()])), n, Some(n));
    // `(:SEG){min,max}`
    let tail = |min: usize, max: usize| Rep(Box::new(Seq(vec![colon(), v6seg()])), min, Some(max));
    let v4 = ipv4_address_format;
    // `(?:(:SEG){0,k}:V4|(:SEG){1,m}|:)`, shared by the 4..1-group forms.
    let rest = |k: usize, m: usize| Alt(vec![Seq(vec![tail(0, k), colon(), v4()]), tail(1, m), colon()]);
    let address = Alt(vec![
        Seq(vec![head(7), Alt(vec![v6seg(), colon()])]),
        Seq(vec![head(6), Alt(vec![v4(), Seq(vec![colon(), v6seg()]), colon()])]),
        Seq(vec![head(5), Alt(vec![Seq(vec![colon(), v4()]), tail(1, 2), colon()])]),
        Seq(vec![head(4), rest(1, 3)]),
        Seq(vec![head(3), rest(2, 4)]),
        Seq(vec![head(2), rest(3, 5)]),
        Seq(vec![head(1), rest(4, 6)]),
        Seq(vec![colon(), rest(5, 7)]),
    ]);
    // `(%[0-9a-zA-Z.]{1,})?`
    let zone = Rep(
        Box::new(Seq(vec![
            Lit(u('%')),
            Rep(Box::new(Class(|c| is_ascii_alpha(c) || is_ascii_digit(c) || c == u('.'))), 1, None),
        ])),
        0,
        Some(1),
    );
    Seq(vec![address, zone])
}

/// Just enough of a regular expression to restate isIP.js' regexes
/// structurally. Matching tracks every position a sub-pattern can end at,
/// so it accepts exactly the strings an exhaustive backtracking engine
/// would, without the original's backtracking blow-up.
enum Pattern {
    Lit(u16),
    Class(fn(u16) -> bool),
    Seq(Vec<Pattern>),
    Alt(Vec<Pattern>),
    /// `{min,max}`; `None` is unbounded.
    Rep(Box<Pattern>, usize, Option<usize>),
}

impl Pattern {
    /// `^pattern$` without the `m` flag: `$` is the very end of input.
    fn full_match(&self, s: &[u16]) -> bool {
        self.ends(s, vec![0]).contains(&s.len())
    }

    fn ends(&self, s: &[u16], starts: Vec<usize>) -> Vec<usize> {
        match self {
            Pattern::Lit(lit) => {
                starts.into_iter().filter(|&i| s.get(i) == Some(lit)).map(|i| i + 1).collect()
            }
            Pattern::Class(test) => {
                starts.into_iter().filter(|&i| s.get(i).is_some_and(|&c| test(c))).map(|i| i + 1).collect()
            }
            Pattern::Seq(items) => items.iter().fold(starts, |positions, item| item.ends(s, positions)),
            Pattern::Alt(options) => {
                let mut out = Vec::new();
                for option in options {
                    union_into(&mut out, option.ends(s, starts.clone()));
                }
                out
            }
            Pattern::Rep(body, min, max) => {
                let mut out = Vec::new();
                let mut current = starts;
                if *min == 0 {
                    union_into(&mut out, current.clone());
                }
                // Every body used here consumes at least one unit, so more
                // than s.len() rounds can never match.
                let limit = max.unwrap_or(s.len() + 1);
                for round in 1..=limit {
                    current = body.ends(s, current);
                    if current.is_empty() {
                        break;
                    }
                    if round >= *min {
                        union_into(&mut out, current.clone());
                    }
                }
                out
            }
        }
    }
}

fn union_into(out: &mut Vec<usize>, more: Vec<usize>) {
    for position in more {
        if !out.contains(&position) {
            out.push(position);
        }
    }
}

/// JavaScript's `\s` (`WhiteSpace` and `LineTerminator`), as V8 implements it.
fn is_js_space(c: u16) -> bool {
    matches!(
        c,
        0x0009..=0x000D
            | 0x0020
            | 0x00A0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
            | 0xFEFF
    )
}

/// `/^[a-zA-Z0-9\-_.%:]*$/`, the characters isURL takes for credentials.
fn is_auth_char(c: u16) -> bool {
    is_ascii_alpha(c)
        || is_ascii_digit(c)
        || c == u('-')
        || c == u('_')
        || c == u('.')
        || c == u('%')
        || c == u(':')
}

fn is_ascii_alpha(c: u16) -> bool {
    u8::try_from(c).is_ok_and(|b| b.is_ascii_alphabetic())
}

fn is_ascii_digit(c: u16) -> bool {
    u8::try_from(c).is_ok_and(|b| b.is_ascii_digit())
}

fn is_hex_digit(c: u16) -> bool {
    u8::try_from(c).is_ok_and(|b| b.is_ascii_hexdigit())
}

/// An ASCII character as a UTF-16 code unit.
const fn u(c: char) -> u16 {
    c as u16
}

fn index_of(haystack: &[u16], c: char) -> Option<usize> {
    haystack.iter().position(|&x| x == u(c))
}

/// `s.split(c)[0]`: everything before the first `c`, or all of `s`.
fn before_first(s: &[u16], c: char) -> &[u16] {
    index_of(s, c).map_or(s, |i| &s[..i])
}

fn starts_with(s: &[u16], prefix: &str) -> bool {
    let mut units = s.iter();
    prefix.encode_utf16().all(|p| units.next() == Some(&p))
}

fn eq_ignore_ascii_case(units: &[u16], ascii: &str) -> bool {
    units.len() == ascii.len()
        && units
            .iter()
            .zip(ascii.bytes())
            .all(|(&c, b)| u8::try_from(c).is_ok_and(|c| c.eq_ignore_ascii_case(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_every_validator_js_vector() {
        let vectors: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("is_url_vectors.json")).expect("vectors parse");
        assert!(vectors.len() >= 300, "only {} vectors", vectors.len());
        let mut mismatches = Vec::new();
        for vector in &vectors {
            let input = vector["input"].as_str().expect("input is a string");
            let expected = vector["valid"].as_bool().expect("valid is a bool");
            if is_https_url(input) != expected {
                mismatches.push(format!("{input:?}: validator.js says {expected}"));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} of {} vectors differ:\n{}",
            mismatches.len(),
            vectors.len(),
            mismatches.join("\n")
        );
    }

    #[test]
    fn accepts_the_usual_webhook_urls() {
        for url in [
            "https://example.com/webhook",
            "HTTPS://EXAMPLE.COM/hook",
            "https://user:pass@example.com/hook",
            "https://10.0.0.1/hook",
            "https://[::1]:8443/hook",
            "https://xn--bcher-kva.example/hook",
            "https://例え.jp/フック?q=ü",
        ] {
            assert!(is_https_url(url), "{url} should pass");
        }
    }

    #[test]
    fn rejects_what_class_validator_rejects() {
        for url in [
            "",
            "http://example.com/hook",
            "//example.com/hook",
            "https://",
            "https://localhost:3000/hook",
            "https://intranet/hook",
            "https://example.com./hook",
            "https://example.c/hook",
            "https://example.123/hook",
            "https://example.com:0/hook",
            "https://example.com:99999/hook",
            "https://example.com/<script>",
            "https://example.com/a b",
            "https://exa_mple.com/hook",
            "https://ｅxample.com/hook",
        ] {
            assert!(!is_https_url(url), "{url} should fail");
        }
    }

    #[test]
    fn keeps_validator_js_quirks() {
        // Scheme without "//" is accepted when it is not mistaken for
        // credentials or a port.
        assert!(is_https_url("https:example.com/hook"));
        assert!(!is_https_url("https:user@example.com/hook"));
        assert!(!is_https_url("https:8080/hook"));
        assert!(!is_https_url("https:1.example.com/hook"));
        // An empty port is ignored rather than rejected.
        assert!(is_https_url("https://example.com:/hook"));
        // Leading zeros in a port are fine, in an IPv4 octet they are not
        // (and the dotted-digits host then fails isFQDN on its numeric TLD).
        assert!(is_https_url("https://example.com:00443/hook"));
        assert!(!is_https_url("https://10.0.0.01/hook"));
        // Emoji labels pass through their surrogates; an emoji TLD does not.
        assert!(is_https_url("https://😀.example.com/"));
        assert!(!is_https_url("https://example.😀/"));
    }

    #[test]
    fn measures_length_in_utf16_code_units() {
        let prefix = "https://example.com/";
        let fill = |units: usize| format!("{prefix}{}", "a".repeat(units - prefix.len()));
        assert!(is_https_url(&fill(2084)));
        assert!(!is_https_url(&fill(2085)));
        // 2082 ASCII units plus one astral character = 2084 units, 2083 chars.
        let astral_ok = format!("{}😀", fill(2082));
        assert!(is_https_url(&astral_ok));
        let astral_long = format!("{}😀", fill(2083));
        assert_eq!(astral_long.chars().count(), 2084);
        assert!(!is_https_url(&astral_long));
    }

    #[test]
    fn ipv6_forms_follow_the_regex() {
        for (address, valid) in [
            ("::", true),
            ("::1", true),
            ("1:2:3:4:5:6:7:8", true),
            ("1:2:3:4:5:6:7::", true),
            ("1:2:3:4:5:6::7", true),
            ("::ffff:1.2.3.4", true),
            ("fe80::1%eth0", true),
            ("fe80::1%pvc1.3", true),
            ("fe80::1%", false),
            ("1:2:3:4:5:6:7:8:9", false),
            ("12345::", false),
            ("1::2::3", false),
            ("::256.1.1.1", false),
        ] {
            let units: Vec<u16> = address.encode_utf16().collect();
            assert_eq!(is_ipv6(&units), valid, "{address}");
        }
    }
}
