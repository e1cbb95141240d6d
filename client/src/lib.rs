//! Client of the User Webhooks API: the progenitor client generated from `openapi.yaml`,
//! re-exported, with a constructor that takes a base URL and a bearer token.

pub use webhooks::client::*;

/// A client for `base_url` that sends `Authorization: Bearer <token>` on every request.
pub fn with_token(base_url: &str, token: &str) -> Result<Client, reqwest::Error> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("Bearer invalid"));
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(15))
        .build()?;
    Ok(Client::new_with_client(base_url, http))
}

pub mod signature;

#[cfg(feature = "cli")]
pub mod cli;
