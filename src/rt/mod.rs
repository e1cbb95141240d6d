//! The runtime the generated server code calls: request-body decoding, validation rules,
//! and the [`Rejection`]s the generated layer hands to [`crate::server::Api::reject`].

pub mod body;
mod is_url;
pub mod params;
#[cfg(test)]
mod properties;
pub mod query;
pub mod rules;

pub use is_url::is_https_url;

/// A request turned away before it reached a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No route has this path, or the path has no such method.
    NoRoute { method: axum::http::Method, path: String },
    /// The body is larger than [`crate::server::Api::body_limit`].
    PayloadTooLarge,
    /// Missing, malformed, expired or wrongly signed credentials.
    Unauthorized,
    /// Valid credentials without the role or scope the operation needs.
    Forbidden,
    /// The caller has used up its rate limit; a request would be allowed again in
    /// `retry_after_secs` whole seconds (at least 1).
    TooManyRequests { retry_after_secs: u64 },
    /// The body broke rules of the contract: one message per failing rule.
    Validation(Vec<String>),
    /// The body is not JSON the contract can read.
    Malformed(String),
}
