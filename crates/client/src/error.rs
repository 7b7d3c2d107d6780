//! The one error type of this crate.

use errand_protocol::ErrorBody;
use http::{HeaderMap, StatusCode};
use std::fmt;
use std::time::Duration;

/// A boxed error from a layer below (reqwest, hyper, a tower service).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What the server said when it refused a call: the status, its `detail` text and the
/// `x-request-id` it answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The server's text: `detail` (or `message`, `error`, `error.message`, as the official
    /// client reads it); the raw body or the status reason when there was none.
    pub detail: String,
    /// The `x-request-id` response header, when present.
    pub request_id: Option<String>,
}

impl ApiError {
    /// Reads an error answer: the status, the body's message and the request id.
    pub(crate) fn from_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let detail = serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .and_then(|error| error.message().map(str::to_owned))
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.is_empty() {
                    status.canonical_reason().unwrap_or("error").to_owned()
                } else {
                    truncate(text, 1000)
                }
            });
        Self {
            status,
            detail,
            request_id: request_id(headers),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.status.as_u16())?;
        if let Some(id) = &self.request_id {
            write!(f, " [request {id}]")?;
        }
        Ok(())
    }
}

/// The `x-request-id` header, if any.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The first `max` characters of `text`, with `...` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// Everything a call can fail with.
///
/// Answers with an error status keep the server's text, the status and the request id in an
/// [`ApiError`]; [`ClientError::status`], [`ClientError::detail`] and
/// [`ClientError::request_id`] read them from any variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// 400: the request contradicts itself.
    #[error("bad request: {0}")]
    BadRequest(ApiError),
    /// 401: a missing or wrong API key.
    #[error("unauthorized: {0}")]
    Unauthorized(ApiError),
    /// 403: the key may not do this.
    #[error("forbidden: {0}")]
    Forbidden(ApiError),
    /// 404: no such thread, run, assistant or route.
    #[error("not found: {0}")]
    NotFound(ApiError),
    /// 409: a duplicate thread, or a busy thread under `multitask_strategy: reject`.
    #[error("conflict: {0}")]
    Conflict(ApiError),
    /// 413: the request body is over the server's limit.
    #[error("payload too large: {0}")]
    PayloadTooLarge(ApiError),
    /// 422: a malformed body, id or parameter.
    #[error("unprocessable: {0}")]
    Unprocessable(ApiError),
    /// 429: too many requests.
    #[error("rate limited: {error}")]
    RateLimited {
        /// What the server said.
        error: ApiError,
        /// How long the server asked to wait (`Retry-After`), when it said.
        retry_after: Option<Duration>,
    },
    /// 5xx: the server failed.
    #[error("server error: {0}")]
    Server(ApiError),
    /// Any other status of 400 or more (405, 410, ...).
    #[error("unexpected status: {0}")]
    Status(ApiError),
    /// The connection failed: refused, reset, closed early, DNS, TLS.
    #[error("transport error: {message}")]
    Transport {
        /// What failed.
        message: String,
        /// True when the request certainly never reached the server (the connection was not
        /// made), so it is safe to send again whatever it was.
        connect: bool,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// Nothing arrived in time.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        /// What was awaited: `a connection`, `the response`, `the response body`.
        waiting_for: &'static str,
        /// The limit that passed.
        after: Duration,
    },
    /// An answer was not the JSON (or SSE event) it should be.
    #[error("could not decode {what}: {source} (body: {snippet:?})")]
    Decode {
        /// What was being read.
        what: String,
        /// The status of the answer, when it was an HTTP answer.
        status: Option<StatusCode>,
        /// The `x-request-id` of the answer, when present.
        request_id: Option<String>,
        /// The start of the text that did not decode.
        snippet: String,
        /// The parser's error.
        #[source]
        source: BoxError,
    },
    /// The client was set up wrongly (a bad URL, a reserved header, no runtime).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// An argument of a call cannot be sent (e.g. a store namespace label with a `.`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// The error for an answer with an error status, by status.
    pub(crate) fn from_status(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let error = ApiError::from_answer(status, headers, body);
        match status.as_u16() {
            400 => Self::BadRequest(error),
            401 => Self::Unauthorized(error),
            403 => Self::Forbidden(error),
            404 => Self::NotFound(error),
            409 => Self::Conflict(error),
            413 => Self::PayloadTooLarge(error),
            422 => Self::Unprocessable(error),
            429 => Self::RateLimited {
                error,
                retry_after: retry_after(headers),
            },
            500..=599 => Self::Server(error),
            _ => Self::Status(error),
        }
    }

    /// A transport failure with its source.
    #[cfg_attr(
        not(any(feature = "http", feature = "in-process")),
        expect(dead_code, reason = "only the built-in transports use it")
    )]
    pub(crate) fn transport(
        message: impl Into<String>,
        connect: bool,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Transport {
            message: message.into(),
            connect,
            source: Some(source.into()),
        }
    }

    /// A decode failure of `text`.
    pub(crate) fn decode(
        what: impl Into<String>,
        status: Option<StatusCode>,
        headers: Option<&HeaderMap>,
        text: &[u8],
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Decode {
            what: what.into(),
            status,
            request_id: headers.and_then(request_id),
            snippet: truncate(&String::from_utf8_lossy(text), 200),
            source: source.into(),
        }
    }

    /// The server's answer, for the variants that have one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::BadRequest(error)
            | Self::Unauthorized(error)
            | Self::Forbidden(error)
            | Self::NotFound(error)
            | Self::Conflict(error)
            | Self::PayloadTooLarge(error)
            | Self::Unprocessable(error)
            | Self::RateLimited { error, .. }
            | Self::Server(error)
            | Self::Status(error) => Some(error),
            _ => None,
        }
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Decode { status, .. } => *status,
            other => other.api_error().map(|error| error.status),
        }
    }

    /// The server's `detail` text, when it answered with an error.
    pub fn detail(&self) -> Option<&str> {
        self.api_error().map(|error| error.detail.as_str())
    }

    /// The `x-request-id` of the answer, when present.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Decode { request_id, .. } => request_id.as_deref(),
            other => other
                .api_error()
                .and_then(|error| error.request_id.as_deref()),
        }
    }

    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }

    /// True when the request certainly never reached the server.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Transport { connect: true, .. })
    }

    /// True for failures a repeat may cure: transport errors, timeouts, 429 and 5xx. Whether
    /// repeating is *safe* depends on the call (see the crate docs on retries).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Timeout { .. } | Self::RateLimited { .. } => true,
            Self::Server(error) => error.status != StatusCode::NOT_IMPLEMENTED,
            _ => false,
        }
    }
}

/// The `Retry-After` header in seconds (the HTTP-date form is not read).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn maps_statuses_and_keeps_detail_and_request_id() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("req-1"));
        let error = ClientError::from_status(
            StatusCode::NOT_FOUND,
            &headers,
            br#"{"detail":"Thread with ID x not found"}"#,
        );
        assert!(error.is_not_found());
        assert_eq!(error.detail(), Some("Thread with ID x not found"));
        assert_eq!(error.request_id(), Some("req-1"));
        assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
        assert_eq!(
            error.to_string(),
            "not found: Thread with ID x not found (404) [request req-1]"
        );

        let error = ClientError::from_status(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":"Key is required"}"#,
        );
        assert!(matches!(&error, ClientError::BadRequest(e) if e.detail == "Key is required"));

        let error = ClientError::from_status(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            br#"{"error":{"message":"no"}}"#,
        );
        assert!(matches!(&error, ClientError::Forbidden(e) if e.detail == "no"));

        let error = ClientError::from_status(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"");
        assert_eq!(error.detail(), Some("Bad Gateway"));
        assert!(error.is_transient());

        let error =
            ClientError::from_status(StatusCode::METHOD_NOT_ALLOWED, &HeaderMap::new(), b"nope");
        assert!(matches!(&error, ClientError::Status(e) if e.detail == "nope"));
    }

    #[test]
    fn reads_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("2"));
        let error = ClientError::from_status(StatusCode::TOO_MANY_REQUESTS, &headers, b"{}");
        assert!(matches!(
            error,
            ClientError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(2)
        ));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé...");
        assert_eq!(truncate("hi", 2), "hi");
    }
}
