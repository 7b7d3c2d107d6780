//! The runtime's one error type.

use std::time::Duration;

/// Everything that can go wrong in a graph, an agent, a model call or a tool set-up.
///
/// A hosted graph answers it to the server, which shows clients [`Error::kind`] and
/// [`Error::message`] as `{"error": kind, "message": message}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The run's cancellation token fired and the graph stopped.
    #[error("the run was cancelled")]
    Cancelled,
    /// A graph failed in its own way. `kind` names the error as the Python server names
    /// exception classes.
    #[error("{kind}: {message}")]
    Failed {
        /// The kind of error, e.g. `ValueError`.
        kind: String,
        /// What went wrong.
        message: String,
    },
    /// The provider refused the API key (401/403), or none was given.
    #[error("{provider} refused the request as unauthorized: {detail}")]
    Unauthorized {
        /// The provider, e.g. `anthropic`.
        provider: String,
        /// What the provider said.
        detail: String,
    },
    /// The provider does not know the model.
    #[error("{provider} has no model `{model}`: {detail}")]
    UnknownModel {
        /// The provider.
        provider: String,
        /// The model that was asked for.
        model: String,
        /// What the provider said.
        detail: String,
    },
    /// The provider kept answering 429 after every retry.
    #[error("{provider} is rate limiting this key{}: {detail}", retry_hint(*.retry_after))]
    RateLimited {
        /// The provider.
        provider: String,
        /// How long it asked to wait, when it said.
        retry_after: Option<Duration>,
        /// What the provider said.
        detail: String,
    },
    /// The provider answered with another error status (5xx after every retry, or a 4xx).
    #[error("{provider} answered HTTP {status}: {detail}")]
    Provider {
        /// The provider.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// What the provider said.
        detail: String,
    },
    /// The provider's answer did not have the shape its API promises.
    #[error("{provider} sent an answer that could not be read: {detail}")]
    MalformedResponse {
        /// The provider.
        provider: String,
        /// What was wrong with it.
        detail: String,
    },
    /// The provider could not be reached, or the connection broke.
    #[error("could not reach {provider}: {detail}")]
    Transport {
        /// The provider.
        provider: String,
        /// The underlying failure.
        detail: String,
    },
    /// A scripted model was asked for more turns than its script holds.
    #[error("the scripted model was asked for turn {turn} but its script has {len}")]
    ScriptExhausted {
        /// The 1-based turn that was asked for.
        turn: usize,
        /// How many turns the script holds.
        len: usize,
    },
    /// The agent reached its step limit while the model still asked for tools.
    #[error("the agent stopped after {steps} model calls without a final answer")]
    StepLimit {
        /// The limit that was reached.
        steps: usize,
    },
    /// A model, tool or agent was set up wrongly: a missing key, a bad spec, a duplicate tool.
    #[error("{0}")]
    Config(String),
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    retry_after
        .map(|wait| format!(" (it asked to retry after {} s)", wait.as_secs_f64()))
        .unwrap_or_default()
}

impl Error {
    /// A failure of `kind` with `message`.
    pub fn failed(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Failed {
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// The error's kind as clients see it in a failed run: the graph's own kind, or a name in
    /// the style of the Python clients' exception classes.
    pub fn kind(&self) -> &str {
        match self {
            Self::Cancelled => "CancelledError",
            Self::Failed { kind, .. } => kind,
            Self::Unauthorized { .. } => "AuthenticationError",
            Self::UnknownModel { .. } => "NotFoundError",
            Self::RateLimited { .. } => "RateLimitError",
            Self::Provider { .. } => "APIStatusError",
            Self::MalformedResponse { .. } => "APIResponseValidationError",
            Self::Transport { .. } => "APIConnectionError",
            Self::ScriptExhausted { .. } => "ScriptExhausted",
            Self::StepLimit { .. } => "GraphRecursionError",
            Self::Config(_) => "ConfigError",
        }
    }

    /// The message clients see beside [`Error::kind`].
    pub fn message(&self) -> String {
        match self {
            Self::Failed { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// Whether repeating the same model call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Transport { .. }
                | Self::Provider { status: 500.., .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages_read_as_clients_expect() {
        let failed = Error::failed("ValueError", "bad input");
        assert_eq!(
            (failed.kind(), failed.message().as_str()),
            ("ValueError", "bad input")
        );
        let limited = Error::RateLimited {
            provider: "openai".into(),
            retry_after: Some(Duration::from_millis(1500)),
            detail: "slow down".into(),
        };
        assert_eq!(limited.kind(), "RateLimitError");
        assert!(
            limited.message().contains("retry after 1.5 s"),
            "{}",
            limited.message()
        );
        assert!(limited.is_retryable());
        assert!(
            !Error::Unauthorized {
                provider: "anthropic".into(),
                detail: "no key".into()
            }
            .is_retryable()
        );
        assert!(
            Error::Provider {
                provider: "openai".into(),
                status: 503,
                detail: String::new()
            }
            .is_retryable()
        );
    }
}
