//! Database URLs in errors and logs without their password: `postgres://root:***@host/db`.

/// What stands for a password.
pub const MASK: &str = "***";

/// `url` with its password, if any, replaced by [`MASK`]; the rest as given.
pub fn url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // A URL that parses ends its authority at the first `/`, `?` or `#`; one that does not may
    // hold those in its password, so everything up to the last `@` is taken as user info.
    let at = if url::Url::parse(url).is_ok() {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        authority.rfind('@')
    } else {
        rest.rfind('@')
    };
    let Some(at) = at else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:{MASK}{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// `text` (an error message about `url`) with `url` redacted and its password masked wherever
/// it still appears, as given or percent-decoded.
pub fn message(text: &str, url: &str) -> String {
    let mut text = text.replace(url, &self::url(url));
    if let Some(password) = password(url) {
        let decoded = percent_encoding::percent_decode_str(&password).decode_utf8_lossy().into_owned();
        for secret in [password, decoded] {
            if !secret.is_empty() {
                text = text.replace(&secret, MASK);
            }
        }
    }
    text
}

/// The password of `url` as written in it.
fn password(url: &str) -> Option<String> {
    let redacted = self::url(url);
    if redacted == url {
        return None;
    }
    // `url` is `<prefix>:<password><suffix>`, `redacted` is `<prefix>:***<suffix>`.
    let prefix = redacted.find(&format!(":{MASK}"))? + 1;
    let suffix = redacted.len() - prefix - MASK.len();
    url.get(prefix..url.len() - suffix).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            url("postgres://root:hunter2@db.internal:5432/webhooks"),
            "postgres://root:***@db.internal:5432/webhooks"
        );
        assert_eq!(
            url("postgresql://u:p%40ss@h/db?sslmode=require"),
            "postgresql://u:***@h/db?sslmode=require"
        );
        assert_eq!(
            url("postgres://u:pa/ss#x@h/db"),
            "postgres://u:***@h/db",
            "a password that breaks the URL"
        );
        assert_eq!(url("postgres://u:@h/db"), "postgres://u:***@h/db");
        for unchanged in [
            "postgres://root@127.0.0.1:5432/postgres",
            "postgres://127.0.0.1/db?user=a@b",
            "sqlite://./data/webhooks.db",
            "./data/webhooks.db",
            "",
        ] {
            assert_eq!(url(unchanged), unchanged);
        }
    }

    #[test]
    fn messages_lose_the_url_and_the_password() {
        let db = "postgres://root:s3cr%40t@127.0.0.1:1/webhooks";
        let text = format!("connecting to {db}: password s3cr%40t, or s3cr@t, was refused");
        assert_eq!(
            message(&text, db),
            "connecting to postgres://root:***@127.0.0.1:1/webhooks: password ***, or ***, was refused"
        );
        assert_eq!(message("no URL here", "sqlite://x.db"), "no URL here");
    }
}
