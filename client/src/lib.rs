//! Client of the User Webhooks API: the progenitor client generated from `openapi.yaml`,
//! re-exported, with constructors that work out of the box: [`with_token`] for a base URL and
//! a bearer token, [`anonymous`] for one without. Neither panics, whatever the process has set
//! up: the TLS crypto provider comes along (ring), and a token that could not be sent is an
//! error, not a request that fails later.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

pub use webhooks::client::*;

pub mod signature;

#[cfg(feature = "cli")]
pub mod cli;

/// Connecting (TCP and TLS) takes longer than this only when something is wrong.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole request; the server answers within its own 30 s request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the token is empty")]
    EmptyToken,
    #[error("the token cannot be sent in an HTTP header: it holds a control character, a space at either end or non-ASCII text")]
    InvalidToken,
    #[error("building the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A client for `base_url` that sends `Authorization: Bearer <token>` on every request.
pub fn with_token(base_url: &str, token: &str) -> Result<Client, ClientError> {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, bearer(token)?);
    Ok(Client::new_with_client(base_url, http(headers)?))
}

/// A client for `base_url` that sends no credentials (for the documentation and the metrics,
/// or to see the 401).
pub fn anonymous(base_url: &str) -> Result<Client, ClientError> {
    Ok(Client::new_with_client(base_url, http(HeaderMap::new())?))
}

/// `Bearer <token>`, marked sensitive (left out of debug output). Surrounding whitespace would
/// be trimmed by the server's parser and so means a pasting mistake: refused, like an empty
/// token and one that is not a header value.
fn bearer(token: &str) -> Result<HeaderValue, ClientError> {
    if token.is_empty() {
        return Err(ClientError::EmptyToken);
    }
    if token.trim() != token || !token.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ClientError::InvalidToken);
    }
    let mut value =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ClientError::InvalidToken)?;
    value.set_sensitive(true);
    Ok(value)
}

fn http(headers: HeaderMap) -> Result<reqwest::Client, ClientError> {
    // reqwest is built with `rustls-no-provider`: building a client, even for plain HTTP,
    // panics without a process-wide provider. Install ring unless the application chose one.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one meanwhile, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_cannot_be_sent_are_errors() {
        assert!(matches!(bearer(""), Err(ClientError::EmptyToken)));
        for bad in ["a\nb", "a\rb", "tab\there", "é", " lead", "trail ", "nul\0"] {
            assert!(matches!(bearer(bad), Err(ClientError::InvalidToken)), "{bad:?}");
        }
        let value = bearer("eyJ.abc-_.x").unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer eyJ.abc-_.x");
        assert!(value.is_sensitive());
    }
}
