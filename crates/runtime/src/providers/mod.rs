//! Model providers over HTTP: Anthropic's Messages API and OpenAI-compatible Chat Completions.
//!
//! Each is a [`ChatModel`] behind a feature (`anthropic`, `openai`). Both retry rate limits
//! (429, honouring `retry-after`), server errors (5xx) and connection failures with capped
//! exponential backoff and jitter ([`RetryConfig`]), and answer the crate's [`Error`]:
//! [`Error::Unauthorized`] for a refused key, [`Error::UnknownModel`] for a model the provider
//! does not have, [`Error::RateLimited`] when the limit outlasts the retries,
//! [`Error::Provider`] with the provider's own message for other statuses, and
//! [`Error::MalformedResponse`] for an answer that is not what the API promises (including tool
//! arguments that are not a JSON object). Dropping a call's future or stream closes its
//! connection, so a cancelled agent stops the provider's work too.
//!
//! [`from_spec`] builds a model from a `provider:model` string with keys from the environment,
//! as agent configs name their models:
//!
//! ```no_run
//! use errand_runtime::providers::from_spec;
//! let model = from_spec("anthropic:claude-sonnet-4-5")?;
//! let local = from_spec("openai:llama3.1:8b")?; // with OPENAI_BASE_URL=http://localhost:11434/v1
//! # Ok::<(), errand_runtime::Error>(())
//! ```
//!
//! [`ChatModel`]: crate::model::ChatModel

#[cfg(feature = "anthropic")]
mod anthropic;
mod http;
#[cfg(feature = "openai")]
mod openai;
mod shared;

#[cfg(feature = "anthropic")]
#[cfg_attr(docsrs, doc(cfg(feature = "anthropic")))]
pub use anthropic::{ANTHROPIC_BASE_URL, ANTHROPIC_DEFAULT_MAX_TOKENS, AnthropicModel};
pub use http::RetryConfig;
#[cfg(feature = "openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai")))]
pub use openai::{OPENAI_BASE_URL, OpenAiModel};

use crate::Error;
use crate::model::ChatModel;
use shared::{Env, process_env};
use std::sync::Arc;

/// The provider prefixes [`from_spec`] knows in this build.
pub const PROVIDERS: &[&str] = &[
    #[cfg(feature = "anthropic")]
    "anthropic",
    #[cfg(feature = "openai")]
    "openai",
];

/// A model from a spec `PROVIDER:MODEL`, e.g. `anthropic:claude-sonnet-4-5` or
/// `openai:gpt-4o`, with its key (and base URL) from the environment: `ANTHROPIC_API_KEY`,
/// `ANTHROPIC_BASE_URL`; `OPENAI_API_KEY`, `OPENAI_BASE_URL`.
///
/// Everything after the first `:` is the model, so `openai:llama3.1:8b` names Ollama's
/// `llama3.1:8b`. A missing key or an unknown provider is an [`Error::Config`] that says what
/// to set or which providers there are.
pub fn from_spec(spec: &str) -> Result<Arc<dyn ChatModel>, Error> {
    from_spec_with(spec, &process_env)
}

/// A model as [`from_spec`] makes it, with the API key and base URL given here taking the place
/// of the environment's: what a config file's model table asks for.
pub fn from_spec_with_overrides(
    spec: &str,
    api_key: Option<&str>,
    base_url: Option<&str>,
) -> Result<Arc<dyn ChatModel>, Error> {
    let lookup = |name: &str| {
        let given = if name.ends_with("_API_KEY") {
            api_key
        } else if name.ends_with("_BASE_URL") {
            base_url
        } else {
            None
        };
        given.map(str::to_owned).or_else(|| process_env(name))
    };
    from_spec_with(spec, &lookup)
}

fn from_spec_with(spec: &str, env: Env<'_>) -> Result<Arc<dyn ChatModel>, Error> {
    let Some((provider, model)) = spec.split_once(':') else {
        return Err(Error::Config(format!(
            "the model `{spec}` names no provider: write it as PROVIDER:MODEL, \
             with PROVIDER one of {}",
            PROVIDERS.join(", ")
        )));
    };
    let (provider, model) = (provider.trim(), model.trim());
    if model.is_empty() {
        return Err(Error::Config(format!(
            "the model spec `{spec}` names no model after `{provider}:`"
        )));
    }
    #[cfg(not(all(feature = "anthropic", feature = "openai")))]
    let not_built = || {
        Error::Config(format!(
            "the `{provider}` provider is not built in: enable errand-runtime's `{provider}` \
             feature"
        ))
    };
    match provider {
        #[cfg(feature = "anthropic")]
        "anthropic" => Ok(Arc::new(AnthropicModel::from_lookup(
            model.to_owned(),
            env,
        )?)),
        #[cfg(feature = "openai")]
        "openai" => Ok(Arc::new(OpenAiModel::from_lookup(model.to_owned(), env)?)),
        #[cfg(not(feature = "anthropic"))]
        "anthropic" => Err(not_built()),
        #[cfg(not(feature = "openai"))]
        "openai" => Err(not_built()),
        other => Err(Error::Config(format!(
            "unknown model provider `{other}` in `{spec}`: known providers are {}",
            PROVIDERS.join(", ")
        ))),
    }
}

#[cfg(all(test, feature = "anthropic", feature = "openai"))]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            vars.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        }
    }

    fn config_error(result: Result<Arc<dyn ChatModel>, Error>) -> String {
        match result {
            Err(Error::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn specs_name_provider_and_model() {
        let no_env = env(&[]);
        let message = config_error(from_spec_with("mistral:large", &no_env));
        assert!(
            message.contains("unknown model provider `mistral`"),
            "{message}"
        );
        assert!(message.contains("anthropic, openai"), "{message}");
        let message = config_error(from_spec_with("gpt-4o", &no_env));
        assert!(message.contains("PROVIDER:MODEL"), "{message}");
        let message = config_error(from_spec_with("openai: ", &no_env));
        assert!(message.contains("names no model"), "{message}");
    }

    #[test]
    fn missing_keys_name_the_variable() {
        let no_env = env(&[]);
        let message = config_error(from_spec_with("anthropic:claude-x", &no_env));
        assert!(message.contains("ANTHROPIC_API_KEY"), "{message}");
        let message = config_error(from_spec_with("openai:gpt-4o", &no_env));
        assert!(message.contains("OPENAI_API_KEY"), "{message}");

        let keys = env(&[("ANTHROPIC_API_KEY", "k"), ("OPENAI_API_KEY", "k")]);
        let model = from_spec_with("anthropic:claude-x", &keys).unwrap();
        assert_eq!(
            (model.provider(), model.model_name()),
            ("anthropic", "claude-x")
        );
        // A local server needs no key; the model keeps its own colons.
        let local = env(&[("OPENAI_BASE_URL", "http://localhost:11434/v1")]);
        let model = from_spec_with("openai:llama3.1:8b", &local).unwrap();
        assert_eq!(
            (model.provider(), model.model_name()),
            ("openai", "llama3.1:8b")
        );
        assert!(format!("{model:?}").contains("localhost:11434"));
    }

    #[test]
    fn keys_stay_out_of_debug_output() {
        let model = AnthropicModel::new("sk-secret", "claude-x");
        assert!(!format!("{model:?}").contains("sk-secret"));
        let model = OpenAiModel::new(Some("sk-secret".into()), "gpt");
        assert!(!format!("{model:?}").contains("sk-secret"));
    }
}
