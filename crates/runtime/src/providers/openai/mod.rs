//! OpenAI-compatible Chat Completions: OpenAI itself, and the servers that speak its API
//! (Ollama, vLLM, llama.cpp's server, LM Studio...).
//!
//! Requests go to `POST {base}/chat/completions`, with `Authorization: Bearer KEY` when there
//! is a key (local servers usually need none). The system prompt (and every system message)
//! goes first as one system message; AI tool calls are written as `tool_calls` with their
//! arguments as JSON text; tool results as `tool` messages answering a `tool_call_id`.
//!
//! Answers, whole or streamed (`data:` chunks until `data: [DONE]`, usage in a last chunk), are
//! read into [`ModelDelta`]s, so [`ChatModel::complete`] and [`ChatModel::stream`] build their
//! message the same way.
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
use crate::providers::shared::{Env, process_env};
use async_trait::async_trait;
use errand_protocol::JsonObject;
use serde_json::{Value, json};
use std::fmt;

/// Where the Chat Completions API lives unless told otherwise.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// A model behind an OpenAI-compatible Chat Completions API, with tools and streaming.
///
/// ```no_run
/// use errand_runtime::model::{ChatModel, ModelRequest};
/// use errand_runtime::providers::OpenAiModel;
/// use errand_protocol::Message;
///
/// # async fn ask() -> Result<(), errand_runtime::Error> {
/// // A local Ollama server: no key needed.
/// let model = OpenAiModel::new(None, "llama3.1").with_base_url("http://localhost:11434/v1");
/// let answer = model.complete(&ModelRequest::new(vec![Message::human("Hello")])).await?;
/// println!("{}", answer.text());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OpenAiModel {
    api_key: Option<String>,
    model: String,
    base_url: String,
    http: Http,
}

impl fmt::Debug for OpenAiModel {
    /// Shows everything but the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiModel")
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("has_api_key", &self.api_key.is_some())
            .field("retry", &self.http.retry)
            .finish_non_exhaustive()
    }
}

impl OpenAiModel {
    /// `model` on the OpenAI API, with `api_key` if there is one. Without a key no
    /// `Authorization` header is sent, which is what local servers expect.
    pub fn new(api_key: Option<String>, model: impl Into<String>) -> Self {
        Self {
            api_key,
            model: model.into(),
            base_url: OPENAI_BASE_URL.to_owned(),
            http: Http::new(PROVIDER),
        }
    }

    /// `model` with the key in `OPENAI_API_KEY` and the base URL in `OPENAI_BASE_URL`.
    ///
    /// The key may only be missing when `OPENAI_BASE_URL` points somewhere else than OpenAI,
    /// e.g. at a local server.
    pub fn from_env(model: impl Into<String>) -> Result<Self, Error> {
        Self::from_lookup(model.into(), &process_env)
    }

    pub(crate) fn from_lookup(model: String, env: Env<'_>) -> Result<Self, Error> {
        let key = env("OPENAI_API_KEY");
        let base_url = env("OPENAI_BASE_URL");
        if key.is_none() && base_url.is_none() {
            return Err(Error::Config(format!(
                "the openai model `{model}` needs an API key: set OPENAI_API_KEY \
                 (or OPENAI_BASE_URL for a compatible server that needs none)"
            )));
        }
        let this = Self::new(key, model);
        Ok(match base_url {
            Some(base_url) => this.with_base_url(base_url),
            None => this,
        })
    }

    /// Sends requests to `base_url`, the part before `/chat/completions`
    /// (e.g. `http://localhost:11434/v1` for Ollama).
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

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

http::chat_model_by_wire_format!(OpenAiModel);

#[async_trait]
impl http::WireFormat for OpenAiModel {
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
        body.insert("messages".into(), Value::Array(messages(request)));
        if !request.tools.is_empty() {
            let tools = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        },
                    })
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        if let Some(max_tokens) = request.settings.max_tokens {
            // OpenAI replaced `max_tokens` (which its reasoning models refuse); compatible
            // servers do not all know the new name yet.
            let key = if self.base_url == OPENAI_BASE_URL {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            body.insert(key.into(), json!(max_tokens));
        }
        if let Some(temperature) = request.settings.temperature {
            body.insert("temperature".into(), json!(temperature));
        }
        if !request.settings.stop.is_empty() {
            body.insert("stop".into(), json!(request.settings.stop));
        }
        if stream {
            body.insert("stream".into(), Value::Bool(true));
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Value::Object(body)
    }

    async fn post(&self, body: &Value) -> Result<reqwest::Response, Error> {
        let url = format!("{}/chat/completions", self.base_url);
        self.http
            .send(&self.model, |client| {
                let request = client.post(&url).json(body);
                match &self.api_key {
                    Some(key) => request.bearer_auth(key),
                    None => request,
                }
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
