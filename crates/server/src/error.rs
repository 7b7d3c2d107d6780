//! The one error type of the server, and how it answers HTTP.

use crate::storage::StorageError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errand_protocol::ErrorBody;

/// Everything a request can fail with. Each answers with the status code the Python server
/// uses and a `{"detail": "..."}` body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// 400: the request contradicts itself.
    #[error("{0}")]
    BadRequest(String),
    /// 401: a missing or wrong API key.
    #[error("{0}")]
    Unauthorized(String),
    /// 404: no such thread, run, assistant or route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    /// 409: a duplicate thread, or a busy thread under `reject`.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over the size limit.
    #[error("Request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 422: a malformed body, id or parameter; the text names the field.
    #[error("{0}")]
    Unprocessable(String),
    /// 500: storage failed.
    #[error(transparent)]
    Storage(StorageError),
    /// 503: the server is stopping.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// 503: storage cannot take new work now (its disk is full, or the ends of runs wait to
    /// be written); it will again once space returns, with no restart.
    #[error("{0}")]
    Unavailable(String),
}

/// How long a client told 503 should wait before it tries again, in seconds.
pub(crate) const RETRY_AFTER_SECONDS: u32 = 5;

impl ServerError {
    /// The plain "Not Found" the Python server answers for most missing resources.
    pub fn not_found() -> Self {
        Self::NotFound("Not Found".into())
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ShuttingDown | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<StorageError> for ServerError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::ThreadNotFound(_) => Self::NotFound(error.to_string()),
            StorageError::ThreadExists(_) | StorageError::ThreadBusy => {
                Self::Conflict(error.to_string())
            }
            StorageError::Full(_) => Self::Unavailable(format!(
                "{error}: errand refuses new work until space returns, and takes it again by \
                 itself once it has"
            )),
            // A fenced write is the executor's own, never a request's; a conflict if it were.
            StorageError::Fenced { .. } => Self::Conflict(error.to_string()),
            StorageError::Backend(_) => Self::Storage(error),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, axum::Json(ErrorBody::new(self.to_string()))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// A result of a request handler.
pub type ServerResult<T> = Result<T, ServerError>;
