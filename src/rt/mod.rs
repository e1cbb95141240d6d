//! The runtime the generated code calls: request-body decoding, validation rules, the
//! [`Rejection`]s the generated layer hands to [`crate::server::Api::reject`] (feature
//! `server`), and the parser of the contract's instants ([`date`], for the client side too).

#[cfg(feature = "server")]
pub mod body;
pub mod date;
#[cfg(feature = "server")]
mod is_url;
#[cfg(feature = "server")]
pub mod params;
#[cfg(all(test, feature = "server"))]
mod properties;
#[cfg(feature = "server")]
pub mod query;
#[cfg(feature = "server")]
pub mod rules;

#[cfg(feature = "server")]
pub use is_url::is_https_url;

/// A request turned away before it reached a handler.
#[cfg(feature = "server")]
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
