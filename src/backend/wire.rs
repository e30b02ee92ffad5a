//! HTTP helpers every route module shares: the error answer, JSON bodies in and
//! out, and the request's token and region headers. A leaf: it knows no route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::state::ModelError;
use crate::protocol::{ErrorBody, REGION_HEADER};

/// Region of requests without an `X-Chatprobe-Region` header.
pub(super) const DEFAULT_REGION: &str = "default";

/// An error answer: status and a message for people.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error answer with `status`.
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The answer of an `error` fault with `status`.
    pub(super) fn injected(status: u16) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        ApiError::new(status, "injected fault")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<ModelError> for ApiError {
    fn from(error: ModelError) -> ApiError {
        let status = match &error {
            ModelError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ModelError::Forbidden(_) => StatusCode::FORBIDDEN,
            ModelError::NotFound(_) => StatusCode::NOT_FOUND,
            ModelError::BadRequest(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.to_string())
    }
}

/// The result of a handler.
pub(super) type ApiResult = Result<Response, ApiError>;

/// The answer to a request for a route that does not exist.
pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// A 200 answer with `value` as its JSON body.
pub(super) fn json_response<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

/// The region a request says it comes from (`default` without the header).
pub(super) fn request_region(headers: &HeaderMap) -> Arc<str> {
    header_region(headers).unwrap_or(DEFAULT_REGION).into()
}

/// The request's `X-Chatprobe-Region`, if present and not blank.
pub(super) fn header_region(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(REGION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|region| !region.is_empty())
}

/// The bearer token of a request, if any.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Whether a `given` secret equals the `expected` one, in time that depends on
/// the lengths only, never on where they first differ.
pub(super) fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    let mut difference = u8::from(given.len() != expected.len());
    for (index, byte) in expected.iter().enumerate() {
        difference |= byte ^ given.get(index).copied().unwrap_or(!byte);
    }
    std::hint::black_box(difference) == 0
}

/// Decode a JSON body; 413 when over the limit, 400 naming the problem otherwise.
pub(super) fn parse_json<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body =
        body.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    let mut deserializer = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = if path == "." || path == "?" {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body at `{path}`: {inner}")
        };
        ApiError::new(StatusCode::BAD_REQUEST, message)
    })
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3creT", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("s3cret-and-more", "s3cret"));
        assert!(!same_secret("", "s3cret"));
    }
}
