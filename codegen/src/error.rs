use std::fmt::Display;

/// Why the spec could not be turned into code. Every message names the place in the spec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("openapi.yaml does not parse: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("openapi.yaml, {at}: unsupported: {what}")]
    Unsupported { at: String, what: String },
    #[error("openapi.yaml, {at}: {what}")]
    Invalid { at: String, what: String },
    #[error("type generation failed: {0}")]
    Types(String),
    #[error("client generation failed: {0}")]
    Client(String),
    #[error("{0}")]
    Io(String),
    #[error("internal generator error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn unsupported(at: impl Display, what: impl Display) -> Self {
        Self::Unsupported { at: at.to_string(), what: what.to_string() }
    }

    pub(crate) fn invalid(at: impl Display, what: impl Display) -> Self {
        Self::Invalid { at: at.to_string(), what: what.to_string() }
    }
}
