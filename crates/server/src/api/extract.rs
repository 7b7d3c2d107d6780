//! Request parsing that answers errors the way the Python server does.

use crate::{ServerError, ServerResult};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use uuid::Uuid;

/// A JSON body. Unlike `axum::Json` it needs no content type (the official client sends none on
/// some calls), reads an empty body as `{}`, and answers 422 with serde's message, which names
/// the field, or 413 when the body is over the limit.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ServerError;

    async fn from_request(request: Request, state: &S) -> ServerResult<Self> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ServerError::PayloadTooLarge {
                        limit: crate::api::BODY_LIMIT,
                    }
                } else {
                    ServerError::BadRequest(rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(Self)
    }
}

/// Parses a request body; an empty body is `{}`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ServerResult<T> {
    let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ServerError::Unprocessable("Invalid JSON in request body".into())
        }
        Category::Data => ServerError::Unprocessable(error.to_string()),
    })
}

/// Parses a path id, answering `Invalid <what> ID: must be a UUID` as the Python server does.
pub(crate) fn parse_id(text: &str, what: &str) -> ServerResult<Uuid> {
    Uuid::parse_str(text)
        .map_err(|_| ServerError::Unprocessable(format!("Invalid {what} ID: must be a UUID")))
}

/// A boolean query value as the Python server reads it: `true`, `yes` or `1`, in any case.
pub(crate) fn query_flag(value: Option<&str>) -> bool {
    value.is_some_and(|value| {
        let value = value.trim();
        value == "1" || value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("yes")
    })
}

/// The first value of `key` among query pairs.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}
