//! Path parameters.

use axum::extract::RawPathParams;

/// The percent-decoded value of the path parameter `name`.
pub fn path(params: &RawPathParams, name: &str) -> Option<String> {
    params.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_owned())
}
