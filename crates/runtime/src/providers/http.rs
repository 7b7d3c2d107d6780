//! What the HTTP providers share: the client, retries, error statuses and SSE decoding.
//!
//! Every provider call goes through [`Http::send`], which retries rate limits (429), server
//! errors (5xx) and connection failures with capped exponential backoff and jitter, honouring
//! `retry-after`, and turns a final error status into the crate's [`Error`] with the provider's
//! own message. Streamed answers go through [`sse_deltas`], which frames the body with
//! [`SseDecoder`] and hands each event to a provider's [`EventDecoder`].
//!
//! Everything here is cancel-safe: dropping a request future or a stream drops the reqwest
//! future or body with it, which closes the connection, so the provider stops working on an
//! answer nobody reads.

use crate::Error;
use crate::model::{MessageBuilder, ModelDelta, ModelRequest, ModelStream};
use errand_protocol::Message;
use errand_protocol::backoff::Backoff;
use errand_protocol::sse::{SseDecoder, SseFrame, SseItem};
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use std::collections::VecDeque;
use std::time::Duration;

/// How a provider retries a call that failed in a way that may pass: a rate limit (429), a
/// server error (5xx) or a connection that could not be made or broke before the answer.
///
/// A streamed answer is only retried until its first byte arrives: after that, what was
/// forwarded cannot be taken back.
///
/// ```
/// use errand_runtime::providers::RetryConfig;
/// use std::time::Duration;
/// let patient = RetryConfig {
///     max_attempts: 8,
///     ..RetryConfig::default()
/// };
/// assert_eq!(patient.initial_backoff, Duration::from_millis(500));
/// assert_eq!(RetryConfig::none().max_attempts, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// How many times a call is sent at most, the first time included (at least 1).
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles on each retry after that.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts when the provider does not say how long to wait.
    pub max_backoff: Duration,
    /// The longest wait the provider's `retry-after` may ask for; longer requests are cut to it.
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    /// Four attempts, waits from 0.5 s doubling up to 8 s, `retry-after` honoured up to 60 s.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryConfig {
    /// Sends each call once and never retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (1-based) when the provider gave no `retry-after`:
    /// the doubled backoff, capped, with "equal jitter" (half fixed, half random) so that many
    /// clients limited at once do not come back at once.
    fn backoff(&self, retry: u32) -> Duration {
        Backoff::new(self.initial_backoff, self.max_backoff)
            .jitter(0.5, 1.0)
            .delay(retry)
    }
}

/// The HTTP side of one provider model: a client and how it retries.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    provider: &'static str,
    /// Building a client only fails when the TLS backend cannot start; the error is kept and
    /// given at the first call, so constructors stay infallible.
    client: Result<Client, String>,
    pub(crate) retry: RetryConfig,
}

impl Http {
    /// A client for `provider`, with the default retries.
    pub(crate) fn new(provider: &'static str) -> Self {
        Self {
            provider,
            client: build_client().map_err(|error| error_chain(&error)),
            retry: RetryConfig::default(),
        }
    }

    /// Sends the request `build` makes, again after each retryable failure, and answers the
    /// first successful response. `model` names the model in an [`Error::UnknownModel`].
    pub(crate) async fn send(
        &self,
        model: &str,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let client = self.client.as_ref().map_err(|detail| {
            Error::Config(format!(
                "the HTTP client for {} could not be set up: {detail}",
                self.provider
            ))
        })?;
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let wait = match build(client).send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable || attempt >= max_attempts {
                        // The body only explains the error; when it cannot be read, the status
                        // alone still says what happened.
                        let body = response.text().await.unwrap_or_default();
                        return Err(status_error(
                            self.provider,
                            model,
                            status,
                            retry_after,
                            &body,
                        ));
                    }
                    tracing::debug!(
                        provider = self.provider,
                        %status,
                        attempt,
                        "retrying after an error status"
                    );
                    match retry_after {
                        Some(asked) => asked.min(self.retry.max_retry_after),
                        None => self.retry.backoff(attempt),
                    }
                }
                Err(error) if error.is_builder() => {
                    // A header value that HTTP cannot carry (a key with a line break, say).
                    return Err(Error::Config(format!(
                        "the request to {} could not be built: {}",
                        self.provider,
                        error_chain(&error)
                    )));
                }
                Err(error) => {
                    if attempt >= max_attempts {
                        return Err(transport_error(self.provider, &error));
                    }
                    tracing::debug!(
                        provider = self.provider,
                        error = %error_chain(&error),
                        attempt,
                        "retrying after a connection failure"
                    );
                    self.retry.backoff(attempt)
                }
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// The whole body of a successful response, read as JSON.
    pub(crate) async fn json_body(&self, response: Response) -> Result<Value, Error> {
        let body = response
            .bytes()
            .await
            .map_err(|error| transport_error(self.provider, &error))?;
        serde_json::from_slice(&body).map_err(|error| Error::MalformedResponse {
            provider: self.provider.to_owned(),
            detail: format!(
                "the answer is not JSON ({error}): {}",
                excerpt(&String::from_utf8_lossy(&body))
            ),
        })
    }
}

/// The one place the providers' reqwest client is configured.
fn build_client() -> Result<Client, reqwest::Error> {
    Client::builder()
        .user_agent(concat!("errand/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // Between two reads, not for the whole answer: a long streamed answer is fine, a
        // provider that went silent is not.
        .read_timeout(Duration::from_secs(300))
        .build()
}

/// Whether `response` carries a JSON body (rather than the SSE a streamed call asked for).
pub(crate) fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"))
}

/// How long the provider asked to wait: `retry-after-ms` (OpenAI) or `retry-after` in seconds.
/// The HTTP-date form is not read; the backoff is used instead.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<f64>().ok())
            .filter(|value| value.is_finite() && *value >= 0.0)
    };
    header("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| header("retry-after"))
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
}

/// The error for a final error `status` with `body`.
pub(crate) fn status_error(
    provider: &str,
    model: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> Error {
    let (detail, code) = error_detail(body);
    let detail = if detail.is_empty() {
        status.to_string()
    } else {
        detail
    };
    status_code_error(provider, model, status.as_u16(), retry_after, detail, &code)
}

/// The error for an error the provider described as `status` and `detail` (with the error's
/// `code` or `type`, when it had one).
pub(crate) fn status_code_error(
    provider: &str,
    model: &str,
    status: u16,
    retry_after: Option<Duration>,
    detail: String,
    code: &str,
) -> Error {
    let provider = provider.to_owned();
    match status {
        401 | 403 => Error::Unauthorized { provider, detail },
        404 => Error::UnknownModel {
            provider,
            model: model.to_owned(),
            detail,
        },
        400 | 422 if names_unknown_model(code, &detail) => Error::UnknownModel {
            provider,
            model: model.to_owned(),
            detail,
        },
        429 => Error::RateLimited {
            provider,
            retry_after,
            detail,
        },
        status => Error::Provider {
            provider,
            status,
            detail,
        },
    }
}

/// Whether an error says the model does not exist. OpenAI-compatible servers differ: OpenAI
/// answers 404 `model_not_found`, vLLM 404 "does not exist", others 400 with a sentence.
fn names_unknown_model(code: &str, detail: &str) -> bool {
    let detail = detail.to_lowercase();
    code == "model_not_found"
        || (detail.contains("model")
            && ["not found", "does not exist", "not exist", "unknown model"]
                .iter()
                .any(|phrase| detail.contains(phrase)))
}

/// The provider's message in an error body, and its error code or type.
///
/// Reads the shapes providers use: `{"error": {"message", "type", "code"}}` (OpenAI, Anthropic,
/// Ollama), `{"error": "..."}`, `{"message": "..."}` (vLLM) and `{"detail": "..."}`; any other
/// body is quoted, shortened.
pub(crate) fn error_detail(body: &str) -> (String, String) {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return (excerpt(body), String::new());
    };
    let error = value.get("error").unwrap_or(&value);
    let text = |key: &str| match error.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    let code = text("code").or_else(|| text("type")).unwrap_or_default();
    let message = match error {
        Value::String(message) => Some(message.clone()),
        _ => text("message").or_else(|| text("detail")),
    };
    match message {
        Some(message) => {
            let kind = text("type").filter(|kind| !kind.is_empty() && kind != "error");
            let detail = match kind {
                Some(kind) => format!("{kind}: {message}"),
                None => message,
            };
            (detail, code)
        }
        None => (excerpt(body), code),
    }
}

/// At most 500 characters of `text`, for error messages.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 500;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A transport failure, with the causes reqwest wraps (they say what really went wrong).
pub(crate) fn transport_error(provider: &str, error: &reqwest::Error) -> Error {
    Error::Transport {
        provider: provider.to_owned(),
        detail: error_chain(error),
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = cause.source();
    }
    detail
}

/// One provider's wire format: how a request is made and how its answers read. The call
/// itself, whole or streamed, is the same for every provider: [`complete`] and [`stream`].
#[async_trait::async_trait]
pub(crate) trait WireFormat: Send + Sync {
    /// The provider's name.
    const PROVIDER: &'static str;
    /// What reads its SSE events.
    type Decoder: EventDecoder;

    /// The model asked for.
    fn model(&self) -> &str;
    /// The shared HTTP client.
    fn http(&self) -> &Http;
    /// The JSON body of a call for `request`.
    fn request_body(&self, request: &ModelRequest, stream: bool) -> Value;
    /// Sends a body, with retries; answers a success status.
    async fn post(&self, body: &Value) -> Result<Response, Error>;
    /// The deltas that make up a whole (not streamed) answer.
    fn answer_deltas(model: &str, answer: Value) -> Result<Vec<ModelDelta>, Error>;
    /// A fresh reader of one streamed answer.
    fn decoder(model: &str) -> Self::Decoder;
}

/// One whole answer.
pub(crate) async fn complete<W: WireFormat>(
    wire: &W,
    request: &ModelRequest,
) -> Result<Message, Error> {
    let response = wire.post(&wire.request_body(request, false)).await?;
    let answer = wire.http().json_body(response).await?;
    let mut builder = MessageBuilder::new(W::PROVIDER);
    for delta in W::answer_deltas(wire.model(), answer)? {
        builder.push(delta);
    }
    builder.finish()
}

/// One streamed answer.
pub(crate) async fn stream<W: WireFormat>(
    wire: &W,
    request: &ModelRequest,
) -> Result<ModelStream, Error> {
    let response = wire.post(&wire.request_body(request, true)).await?;
    if is_json(&response) {
        // A server or proxy that ignored `stream: true`: the whole answer is still an answer.
        let answer = wire.http().json_body(response).await?;
        let deltas = W::answer_deltas(wire.model(), answer)?;
        return Ok(stream::iter(deltas.into_iter().map(Ok)).boxed());
    }
    Ok(sse_deltas(W::PROVIDER, response, W::decoder(wire.model())))
}

/// A provider's reading of its own SSE events into deltas.
pub(crate) trait EventDecoder: Send + 'static {
    /// Reads one event (`event` is its name, `data` its data), adding deltas to `out`.
    fn event(
        &mut self,
        event: Option<&str>,
        data: &str,
        out: &mut Vec<ModelDelta>,
    ) -> Result<(), Error>;

    /// Whether the answer is complete: nothing after this is read.
    fn is_done(&self) -> bool;

    /// Called when the body ends before [`EventDecoder::is_done`]: the last deltas, or the
    /// error for an answer cut short.
    fn end(&mut self, out: &mut Vec<ModelDelta>) -> Result<(), Error>;
}

/// The deltas of a streamed (SSE) response, decoded by `decoder`.
pub(crate) fn sse_deltas<D: EventDecoder>(
    provider: &'static str,
    response: Response,
    decoder: D,
) -> ModelStream {
    let state = SseState {
        provider,
        body: response.bytes_stream().boxed(),
        sse: SseDecoder::new(),
        decoder,
        pending: VecDeque::new(),
        ended: false,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.pending.pop_front() {
                return Some((item, state));
            }
            if state.ended {
                return None;
            }
            match state.body.next().await {
                Some(Ok(chunk)) => {
                    let items = state.sse.push(&chunk);
                    state.read(items);
                }
                Some(Err(error)) => {
                    state
                        .pending
                        .push_back(Err(transport_error(state.provider, &error)));
                    state.ended = true;
                }
                None => {
                    let items = state.sse.finish();
                    state.read(items);
                    if !state.ended {
                        let mut out = Vec::new();
                        let result = state.decoder.end(&mut out);
                        state.pending.extend(out.into_iter().map(Ok));
                        if let Err(error) = result {
                            state.pending.push_back(Err(error));
                        }
                        state.ended = true;
                    }
                }
            }
        }
    })
    .boxed()
}

struct SseState<D, B> {
    provider: &'static str,
    body: BoxStream<'static, Result<B, reqwest::Error>>,
    sse: SseDecoder,
    decoder: D,
    pending: VecDeque<Result<ModelDelta, Error>>,
    /// Set once the answer is complete or failed; nothing more is read or yielded after the
    /// pending items.
    ended: bool,
}

impl<D: EventDecoder, B> SseState<D, B> {
    fn read(&mut self, items: Vec<SseItem>) {
        for item in items {
            if self.ended {
                return;
            }
            // Comments are keep-alives; an event without data says nothing.
            let SseItem::Frame(SseFrame {
                event,
                data: Some(data),
                ..
            }) = item
            else {
                continue;
            };
            let mut out = Vec::new();
            let result = self.decoder.event(event.as_deref(), &data, &mut out);
            self.pending.extend(out.into_iter().map(Ok));
            match result {
                Ok(()) => self.ended = self.decoder.is_done(),
                Err(error) => {
                    self.pending.push_back(Err(error));
                    self.ended = true;
                }
            }
        }
    }
}

/// Reads a JSON value as `T`, or explains what was missing.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    provider: &str,
    what: &str,
    value: Value,
) -> Result<T, Error> {
    let shown = excerpt(&value.to_string());
    serde_json::from_value(value).map_err(|error| Error::MalformedResponse {
        provider: provider.to_owned(),
        detail: format!("{what} does not have the expected shape ({error}): {shown}"),
    })
}

/// Reads SSE event data as JSON, or explains why it is not.
pub(crate) fn parse_event<T: serde::de::DeserializeOwned>(
    provider: &str,
    data: &str,
) -> Result<T, Error> {
    serde_json::from_str(data).map_err(|error| Error::MalformedResponse {
        provider: provider.to_owned(),
        detail: format!(
            "a streamed event could not be read ({error}): {}",
            excerpt(data)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let retry = RetryConfig {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_retry_after: Duration::from_secs(1),
        };
        for (n, full) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (9, 1000)] {
            let wait = retry.backoff(n);
            let full = Duration::from_millis(full);
            assert!(wait >= full / 2 && wait <= full, "retry {n}: {wait:?}");
        }
        assert_eq!(
            RetryConfig {
                initial_backoff: Duration::ZERO,
                ..retry
            }
            .backoff(3),
            Duration::ZERO
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let mut date = HeaderMap::new();
        date.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&date), None);
    }

    #[test]
    fn error_bodies_of_every_shape_are_read() {
        let anthropic =
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}"#;
        assert_eq!(
            error_detail(anthropic),
            (
                "not_found_error: model: claude-x".into(),
                "not_found_error".into()
            )
        );
        let openai = r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        assert_eq!(
            error_detail(openai),
            (
                "invalid_request_error: The model `x` does not exist".into(),
                "model_not_found".into()
            )
        );
        assert_eq!(error_detail(r#"{"error":"no"}"#).0, "no");
        assert_eq!(
            error_detail(r#"{"object":"error","message":"m","code":404}"#),
            ("m".into(), "404".into())
        );
        assert_eq!(error_detail(r#"{"detail":"d"}"#).0, "d");
        assert_eq!(
            error_detail("<html>bad gateway</html>").0,
            "<html>bad gateway</html>"
        );
        assert_eq!(excerpt(&"x".repeat(600)).len(), 503);
    }

    #[test]
    fn statuses_map_to_errors() {
        let error = |status: u16, body: &str| {
            status_error("p", "m", StatusCode::from_u16(status).unwrap(), None, body)
        };
        assert!(matches!(error(401, ""), Error::Unauthorized { .. }));
        assert!(matches!(error(403, ""), Error::Unauthorized { .. }));
        assert!(matches!(error(404, ""), Error::UnknownModel { .. }));
        assert!(matches!(
            error(
                400,
                r#"{"error":{"message":"model \"x\" not found, try pulling it first"}}"#
            ),
            Error::UnknownModel { .. }
        ));
        assert!(matches!(
            error(400, r#"{"error":{"message":"max_tokens is too large"}}"#),
            Error::Provider { status: 400, .. }
        ));
        assert!(matches!(error(429, ""), Error::RateLimited { .. }));
        match error(503, "") {
            Error::Provider { status, detail, .. } => {
                assert_eq!((status, detail.as_str()), (503, "503 Service Unavailable"));
            }
            other => panic!("{other:?}"),
        }
    }
}
