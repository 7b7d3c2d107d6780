//! Settings: timeouts, retry policies, the API key and the default headers.

use crate::ClientError;
use http::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use std::time::Duration;

/// The environment variables an API key is read from, in order, as the official client does.
pub const API_KEY_ENV_VARS: [&str; 3] = [
    "LANGGRAPH_API_KEY",
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
];

/// The `User-Agent` every request carries: `errand-client/<version>`.
pub const USER_AGENT_VALUE: &str = concat!("errand-client/", env!("CARGO_PKG_VERSION"));

/// The header the API key is sent in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// How long to wait, with the official client's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection (HTTP only). Default 5 s.
    pub connect: Duration,
    /// For the response to start, and then between two pieces of its body. Servers send
    /// keep-alives every few seconds while a run goes on, so long runs stay within it.
    /// Default 300 s.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(300),
        }
    }
}

/// Capped exponential backoff with jitter, and how many times to try again.
///
/// The delay before try `n` (from 1) is `min(max_backoff, initial_backoff * 2^(n-1))`, plus a
/// random part of up to `jitter` times that.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// How many times to try again after the first try; 0 never repeats. A call is sent at
    /// most `max_retries + 1` times, whatever fails: a refused connection, an error status or
    /// an answer cut off all spend from the same count.
    pub max_retries: u32,
    /// The delay before the first repeat.
    pub initial_backoff: Duration,
    /// The longest delay.
    pub max_backoff: Duration,
    /// The random part, as a fraction of the delay (0.25 adds up to 25%).
    pub jitter: f64,
}

impl RetryPolicy {
    /// Repeating requests: 5 tries more, from 0.5 s to at most 5 s.
    pub const REQUESTS: Self = Self {
        max_retries: 5,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(5),
        jitter: 0.25,
    };

    /// Resuming dropped streams, as the official client does: 5 tries, from 1 s to at most 5 s.
    pub const RECONNECT: Self = Self {
        max_retries: 5,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(5),
        jitter: 0.25,
    };

    /// Never repeat.
    pub const NEVER: Self = Self {
        max_retries: 0,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        jitter: 0.0,
    };

    /// The same policy with short delays, for tests: `max_retries` tries from 10 ms to 50 ms.
    pub fn fast(max_retries: u32) -> Self {
        Self {
            max_retries,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            jitter: 0.25,
        }
    }
}

/// Where the API key comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) enum ApiKey {
    /// From `LANGGRAPH_API_KEY`, `LANGSMITH_API_KEY` or `LANGCHAIN_API_KEY`, the first set.
    #[default]
    FromEnv,
    /// This key.
    Explicit(String),
    /// No key.
    Disabled,
}

impl ApiKey {
    /// The key to send, if any.
    pub(crate) fn resolve(&self) -> Option<String> {
        match self {
            Self::FromEnv => key_from_env(|name| std::env::var(name).ok()),
            Self::Explicit(key) => Some(strip_quotes(key)).filter(|key| !key.is_empty()),
            Self::Disabled => None,
        }
    }
}

/// The first non-empty key among [`API_KEY_ENV_VARS`], with surrounding quotes stripped.
pub(crate) fn key_from_env(read: impl Fn(&str) -> Option<String>) -> Option<String> {
    API_KEY_ENV_VARS
        .iter()
        .filter_map(|name| read(name))
        .map(|value| strip_quotes(&value))
        .find(|value| !value.is_empty())
}

/// Trims whitespace, then double and single quotes, as the official client does.
fn strip_quotes(value: &str) -> String {
    value.trim().trim_matches('"').trim_matches('\'').to_owned()
}

/// The headers every request carries: `User-Agent`, `x-api-key` when there is a key, and the
/// custom ones (which may replace `User-Agent` but not set `x-api-key`).
pub(crate) fn default_headers(
    api_key: Option<&str>,
    custom: &[(String, String)],
) -> Result<HeaderMap, ClientError> {
    let mut headers = HeaderMap::new();
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    if let Some(key) = api_key {
        let mut value = HeaderValue::from_str(key).map_err(|_| {
            ClientError::Config("the API key is not a valid header value".to_owned())
        })?;
        value.set_sensitive(true);
        headers.insert(API_KEY_HEADER, value);
    }
    for (name, value) in custom {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ClientError::Config(format!("`{name}` is not a valid header name")))?;
        if header == API_KEY_HEADER {
            return Err(ClientError::Config(format!(
                "cannot set the reserved header `{API_KEY_HEADER}` among custom headers; \
                 give the key with `api_key` instead"
            )));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            ClientError::Config(format!("the value of header `{name}` is not valid"))
        })?;
        headers.insert(header, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keys_in_order_with_quotes_stripped() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        assert_eq!(key_from_env(env(&[])), None);
        assert_eq!(
            key_from_env(env(&[
                ("LANGCHAIN_API_KEY", "c"),
                ("LANGSMITH_API_KEY", "\"s\"")
            ])),
            Some("s".to_owned())
        );
        assert_eq!(
            key_from_env(env(&[
                ("LANGGRAPH_API_KEY", " 'g' "),
                ("LANGSMITH_API_KEY", "s")
            ])),
            Some("g".to_owned())
        );
        // An empty variable is skipped.
        assert_eq!(
            key_from_env(env(&[
                ("LANGGRAPH_API_KEY", ""),
                ("LANGCHAIN_API_KEY", "c")
            ])),
            Some("c".to_owned())
        );
    }

    #[test]
    fn headers_refuse_x_api_key_and_allow_user_agent_override() {
        let error = default_headers(None, &[("X-Api-Key".into(), "k".into())]).unwrap_err();
        assert!(error.to_string().contains("x-api-key"), "{error}");

        let headers = default_headers(Some("k"), &[("user-agent".into(), "mine".into())])
            .expect("valid headers");
        assert_eq!(headers["user-agent"], "mine");
        assert_eq!(headers["x-api-key"], "k");

        let headers = default_headers(None, &[]).expect("valid headers");
        assert_eq!(headers["user-agent"], USER_AGENT_VALUE);
        assert!(!headers.contains_key("x-api-key"));
    }

    #[test]
    fn explicit_and_disabled_keys() {
        assert_eq!(ApiKey::Explicit("'k'".into()).resolve(), Some("k".into()));
        assert_eq!(ApiKey::Explicit(String::new()).resolve(), None);
        assert_eq!(ApiKey::Disabled.resolve(), None);
    }
}
