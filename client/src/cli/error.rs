//! Why a command failed, and the exit code that says so.

use serde::Serialize;

use crate::{Error, ResponseValue};

/// The command succeeded.
pub const EXIT_OK: u8 = 0;
/// The API answered with an error, or with an answer the contract does not allow.
pub const EXIT_API: u8 = 1;
/// Bad or missing arguments (clap's own code for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// The server could not be reached, or the connection was lost.
pub const EXIT_CONNECTION: u8 = 3;

/// A failed command.
#[derive(Debug)]
pub enum Failure {
    /// The API answered with an error status.
    Api(ApiError),
    /// The API answered something the contract does not allow for this operation.
    Contract(String),
    /// No answer: the server could not be reached or the connection broke.
    Connection(String),
    /// The request could not be built from the arguments.
    Request(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Api(_) | Failure::Contract(_) => EXIT_API,
            Failure::Connection(_) => EXIT_CONNECTION,
            Failure::Request(_) => EXIT_USAGE,
        }
    }
}

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    pub body: ErrorBody,
}

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorBody {
    /// A JSON body: for a documented status, the contract's error body as decoded by the
    /// generated client; otherwise the JSON as received.
    Json(serde_json::Value),
    /// A body that is not JSON, as received (lossy UTF-8).
    Text(String),
}

impl ErrorBody {
    fn from_bytes(bytes: &[u8]) -> Self {
        match serde_json::from_slice(bytes) {
            Ok(value) => ErrorBody::Json(value),
            Err(_) => ErrorBody::Text(String::from_utf8_lossy(bytes).into_owned()),
        }
    }
}

/// The value of a successful call, or why it failed. For an error answer outside the contract
/// (a status it does not list) the body is read here, hence `async`.
pub async fn answer<T, E: Serialize>(result: Result<ResponseValue<T>, Error<E>>) -> Result<T, Failure> {
    match result {
        Ok(response) => Ok(response.into_inner()),
        Err(error) => Err(failure(error).await),
    }
}

async fn failure<E: Serialize>(error: Error<E>) -> Failure {
    match error {
        Error::ErrorResponse(response) => {
            let status = response.status().as_u16();
            // The generated error enums are untagged: re-encoding gives the body's fields.
            match serde_json::to_value(response.into_inner()) {
                Ok(body) => Failure::Api(ApiError { status, body: ErrorBody::Json(body) }),
                Err(e) => Failure::Contract(format!("error {status}: its body could not be re-encoded: {e}")),
            }
        }
        Error::UnexpectedResponse(response) => {
            let status = response.status();
            match response.bytes().await {
                Ok(_) if status.is_success() => Failure::Contract(format!(
                    "the server answered {status}, which the contract does not list for this operation"
                )),
                Ok(bytes) => {
                    Failure::Api(ApiError { status: status.as_u16(), body: ErrorBody::from_bytes(&bytes) })
                }
                Err(e) => Failure::Connection(chain(&e)),
            }
        }
        Error::InvalidResponsePayload(bytes, e) => Failure::Contract(format!(
            "the answer does not match the contract ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )),
        Error::CommunicationError(e) | Error::ResponseBodyError(e) | Error::InvalidUpgrade(e) => {
            Failure::Connection(chain(&e))
        }
        Error::InvalidRequest(message) => Failure::Request(message),
        Error::Custom(message) => Failure::Contract(message),
    }
}

/// An error and its sources, `outer: inner: …` (reqwest's own message says only "error
/// sending request"; the cause, e.g. "Connection refused", is in the chain).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
