//! Anthropic's Messages API.
//!
//! Requests go to `POST {base}/v1/messages` with the `x-api-key` and `anthropic-version`
//! headers. The conversation is written the way the API requires it: the system prompt (and
//! every system message) in the top-level `system` field; AI tool calls as `tool_use` blocks;
//! tool results as `tool_result` blocks in a user turn; consecutive turns of one role merged
//! into one message, so the several results of one parallel tool call go back together.
//!
//! Answers, whole or streamed (`message_start`, `content_block_start`, `content_block_delta`,
//! `message_delta`, `message_stop`), are read into [`ModelDelta`]s, so [`ChatModel::complete`]
//! and [`ChatModel::stream`] build their message the same way.
//!
//! This file holds the model and the request it sends; `request.rs` writes the conversation,
//! `wire.rs` declares the answers as the API sends them, and `answer.rs` reads them.

mod answer;
mod request;
#[cfg(test)]
mod tests;
mod wire;

use answer::{StreamDecoder, answer_deltas};
use request::messages;
use wire::PROVIDER;

use crate::Error;
use crate::model::{ModelDelta, ModelRequest};
use crate::providers::http::{self, Http, RetryConfig};
use crate::providers::shared::{Env, process_env, system_prompt};
use async_trait::async_trait;
use errand_protocol::JsonObject;
use serde_json::{Value, json};
use std::fmt;

/// Where the Messages API lives unless told otherwise.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// The answer length asked for when the request does not say: the API requires one.
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 4096;

const API_VERSION: &str = "2023-06-01";

/// A Claude model behind Anthropic's Messages API, with tool use and streaming.
///
/// ```no_run
/// use errand_runtime::model::{ChatModel, ModelRequest};
/// use errand_runtime::providers::{AnthropicModel, RetryConfig};
/// use errand_protocol::Message;
///
/// # async fn ask() -> Result<(), errand_runtime::Error> {
/// let model = AnthropicModel::from_env("claude-sonnet-4-5")?.with_retry(RetryConfig::default());
/// let answer = model.complete(&ModelRequest::new(vec![Message::human("Hello")])).await?;
/// println!("{}", answer.text());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AnthropicModel {
    api_key: String,
    model: String,
    base_url: String,
    max_tokens: u32,
    http: Http,
}

impl fmt::Debug for AnthropicModel {
    /// Shows everything but the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicModel")
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("max_tokens", &self.max_tokens)
            .field("retry", &self.http.retry)
            .finish_non_exhaustive()
    }
}

impl AnthropicModel {
    /// `model` (e.g. `claude-sonnet-4-5`) on the public API with `api_key`.
    pub fn new(api_key: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            model: model.into(),
            base_url: ANTHROPIC_BASE_URL.to_owned(),
            max_tokens: ANTHROPIC_DEFAULT_MAX_TOKENS,
            http: Http::new(PROVIDER),
        }
    }

    /// `model` with the key in `ANTHROPIC_API_KEY`, and the base URL in `ANTHROPIC_BASE_URL`
    /// when it is set.
    pub fn from_env(model: impl Into<String>) -> Result<Self, Error> {
        Self::from_lookup(model.into(), &process_env)
    }

    pub(crate) fn from_lookup(model: String, env: Env<'_>) -> Result<Self, Error> {
        let Some(key) = env("ANTHROPIC_API_KEY") else {
            return Err(Error::Config(format!(
                "the anthropic model `{model}` needs an API key: set ANTHROPIC_API_KEY"
            )));
        };
        let mut this = Self::new(key, model);
        if let Some(base_url) = env("ANTHROPIC_BASE_URL") {
            this = this.with_base_url(base_url);
        }
        Ok(this)
    }

    /// Sends requests to `base_url` (without `/v1`), e.g. a proxy or a local test server.
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_owned();
        self
    }

    /// Retries as `retry` says.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.http.retry = retry;
        self
    }

    /// Asks for at most `max_tokens` when the request's settings do not say
    /// (default [`ANTHROPIC_DEFAULT_MAX_TOKENS`]).
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

http::chat_model_by_wire_format!(AnthropicModel);

#[async_trait]
impl http::WireFormat for AnthropicModel {
    const PROVIDER: &'static str = PROVIDER;
    type Decoder = StreamDecoder;

    fn model(&self) -> &str {
        &self.model
    }

    fn http(&self) -> &http::Http {
        &self.http
    }

    fn request_body(&self, request: &ModelRequest, stream: bool) -> Value {
        let mut body = JsonObject::new();
        body.insert("model".into(), json!(self.model));
        body.insert(
            "max_tokens".into(),
            json!(request.settings.max_tokens.unwrap_or(self.max_tokens)),
        );
        if let Some(system) = system_prompt(request) {
            body.insert("system".into(), json!(system));
        }
        body.insert("messages".into(), Value::Array(messages(request)));
        if !request.tools.is_empty() {
            let tools = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "name": tool.name,
                        "description": tool.description,
                        "input_schema": tool.parameters,
                    })
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        if let Some(temperature) = request.settings.temperature {
            body.insert("temperature".into(), json!(temperature));
        }
        if !request.settings.stop.is_empty() {
            body.insert("stop_sequences".into(), json!(request.settings.stop));
        }
        if stream {
            body.insert("stream".into(), Value::Bool(true));
        }
        Value::Object(body)
    }

    async fn post(&self, body: &Value) -> Result<reqwest::Response, Error> {
        let url = format!("{}/v1/messages", self.base_url);
        self.http
            .send(&self.model, |client| {
                client
                    .post(&url)
                    .header("x-api-key", &self.api_key)
                    .header("anthropic-version", API_VERSION)
                    .json(body)
            })
            .await
    }

    fn answer_deltas(model: &str, answer: Value) -> Result<Vec<ModelDelta>, Error> {
        answer_deltas(model, answer)
    }

    fn decoder(model: &str) -> StreamDecoder {
        StreamDecoder::new(model)
    }
}
