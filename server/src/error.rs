//! Every error the server sends, in the contract's shape, decided in this one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use webhooks::rt::Rejection;
use webhooks::server::types::{
    BadRequestError, BadRequestErrorMessage, ForbiddenError, NotFoundError, TooManyRequestsError,
    UnauthorizedError,
};

use crate::store::StoreError;

/// Statuses outside any operation's documented set (413, 500, and 404 for unknown routes)
/// still speak the contract's `{message, error, statusCode}` shape.
#[derive(Serialize)]
struct GenericError<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(rename = "statusCode")]
    status_code: u16,
}

fn generic(status: StatusCode, message: &str, error: Option<&str>) -> Response {
    (status, Json(GenericError { message, error, status_code: status.as_u16() })).into_response()
}

pub fn unauthorized() -> UnauthorizedError {
    UnauthorizedError { message: "Unauthorized".into(), status_code: 401 }
}

pub fn forbidden() -> ForbiddenError {
    ForbiddenError { message: "Forbidden Resource".into(), error: "Forbidden".into(), status_code: 403 }
}

pub fn webhook_not_found() -> NotFoundError {
    NotFoundError { message: "Webhook not found".into(), error: "Not Found".into(), status_code: 404 }
}

pub fn too_many_requests() -> TooManyRequestsError {
    TooManyRequestsError {
        message: "Too Many Requests".into(),
        error: "Too Many Requests".into(),
        status_code: 429,
    }
}

/// A create beyond the owner's `limit`: a 400, so every client decodes it as the documented
/// `BadRequestError` (it is not a rate: waiting does not help, deleting a webhook does).
pub fn webhook_limit_reached(limit: u32) -> BadRequestError {
    bad_request(BadRequestErrorMessage::String(format!(
        "Webhook limit reached: a user may have at most {limit} webhooks per client"
    )))
}

/// A facility webhook naming facilities its user cannot access: `inaccessible`, in request order.
pub fn facilities_not_accessible(inaccessible: &[String]) -> BadRequestError {
    bad_request(BadRequestErrorMessage::Array(vec![format!(
        "facilities must only contain facilities you have access to: {}",
        inaccessible.join(", ")
    )]))
}

pub fn bad_request(message: BadRequestErrorMessage) -> BadRequestError {
    BadRequestError { message, error: "Bad Request".into(), status_code: 400 }
}

/// Renders what the generated layer turned away.
pub fn reject(rejection: Rejection) -> Response {
    match rejection {
        Rejection::NoRoute { method, path } => {
            generic(StatusCode::NOT_FOUND, &format!("Cannot {method} {path}"), Some("Not Found"))
        }
        Rejection::PayloadTooLarge => {
            generic(StatusCode::PAYLOAD_TOO_LARGE, "request entity too large", Some("Payload Too Large"))
        }
        Rejection::Unauthorized => (StatusCode::UNAUTHORIZED, Json(unauthorized())).into_response(),
        Rejection::Forbidden => (StatusCode::FORBIDDEN, Json(forbidden())).into_response(),
        Rejection::TooManyRequests { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)))],
            Json(too_many_requests()),
        )
            .into_response(),
        Rejection::Validation(messages) => {
            (StatusCode::BAD_REQUEST, Json(bad_request(BadRequestErrorMessage::Array(messages))))
                .into_response()
        }
        Rejection::Malformed(message) => {
            (StatusCode::BAD_REQUEST, Json(bad_request(BadRequestErrorMessage::String(message))))
                .into_response()
        }
    }
}

/// An unexpected failure: details go to the log, never to the caller.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Internal(#[from] pub(crate) StoreError);

impl IntoResponse for Internal {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "request failed");
        internal_error()
    }
}

/// A request that did not finish within the request timeout (a body that never came, say).
pub fn request_timeout() -> Response {
    generic(StatusCode::REQUEST_TIMEOUT, "Request Timeout", Some("Request Timeout"))
}

pub fn internal_error() -> Response {
    generic(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error", None)
}
