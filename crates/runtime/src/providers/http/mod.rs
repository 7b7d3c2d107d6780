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
//!
//! This file holds the client and its retries; `errors.rs` turns error statuses and unreadable
//! answers into the crate's [`Error`], and `calls.rs` makes the whole and streamed calls every
//! provider's [`WireFormat`] shares.
//!
//! [`sse_deltas`]: calls::sse_deltas
//! [`SseDecoder`]: errand_protocol::sse::SseDecoder

mod calls;
mod errors;

pub(crate) use calls::{EventDecoder, WireFormat, chat_model_by_wire_format, complete, stream};
#[cfg(feature = "openai")]
pub(crate) use errors::error_detail;
pub(crate) use errors::{parse, parse_event, status_code_error};

use crate::Error;
use errand_protocol::backoff::Backoff;
use errors::{excerpt, status_error};
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::Value;
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
}
