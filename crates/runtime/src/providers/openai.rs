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

use super::http::{self, EventDecoder, Http, RetryConfig};
use super::{Env, system_prompt};
use crate::Error;
use crate::model::{ChatModel, ModelDelta, ModelRequest, ModelStream};
use async_trait::async_trait;
use errand_protocol::{ContentBlock, JsonObject, Message, MessageContent, MessageKind};
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt;

/// Where the Chat Completions API lives unless told otherwise.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

const PROVIDER: &str = "openai";

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
        Self::from_lookup(model.into(), &super::process_env)
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

#[async_trait]
impl ChatModel for OpenAiModel {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model_name(&self) -> &str {
        &self.model
    }

    async fn complete(&self, request: &ModelRequest) -> Result<Message, Error> {
        http::complete(self, request).await
    }

    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, Error> {
        http::stream(self, request).await
    }
}

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

/// The conversation as Chat Completions messages, the system prompt first.
fn messages(request: &ModelRequest) -> Vec<Value> {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = system_prompt(request) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        match &message.kind {
            MessageKind::Human => {
                messages.push(json!({"role": "user", "content": content(&message.content)}));
            }
            MessageKind::Ai | MessageKind::AiChunk => messages.push(assistant(message)),
            MessageKind::Tool => messages.push(json!({
                "role": "tool",
                "tool_call_id": message.tool_call_id.as_deref().unwrap_or_default(),
                "content": message.text(),
            })),
            MessageKind::System => {}
            MessageKind::Other(kind) => {
                tracing::debug!(
                    kind,
                    "leaving out a message Chat Completions has no role for"
                );
            }
        }
    }
    messages
}

/// A user message's content: its text, or its parts (LangChain's blocks are mostly OpenAI's).
fn content(content: &MessageContent) -> Value {
    match content {
        MessageContent::Text(text) => json!(text),
        MessageContent::Blocks(blocks) => Value::Array(blocks.iter().filter_map(part).collect()),
    }
}

/// One content part. Text is rebuilt (LangChain adds keys such as `index`), Anthropic-style
/// base64 `image` blocks become `image_url` data URLs, other parts go as they are.
fn part(block: &ContentBlock) -> Option<Value> {
    match block.kind.as_str() {
        "text" => Some(json!({"type": "text", "text": block.text().unwrap_or_default()})),
        "tool_use" => None,
        "image" => {
            let source = block.fields.get("source")?;
            let url = match source.get("type").and_then(Value::as_str) {
                Some("base64") => format!(
                    "data:{};base64,{}",
                    source.get("media_type")?.as_str()?,
                    source.get("data")?.as_str()?
                ),
                _ => source.get("url")?.as_str()?.to_owned(),
            };
            Some(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        _ => serde_json::to_value(block).ok(),
    }
}

/// An assistant message: its text (`null` when it only calls tools) and its tool calls.
fn assistant(message: &Message) -> Value {
    let text = message.text();
    let calls = message.tool_calls();
    let mut out = json!({"role": "assistant"});
    out["content"] = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        json!(text)
    };
    if !calls.is_empty() {
        out["tool_calls"] = calls
            .iter()
            .map(|call| {
                json!({
                    "id": call.id.as_deref().unwrap_or_default(),
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": Value::Object(call.args.clone()).to_string(),
                    },
                })
            })
            .collect();
    }
    out
}

/// A whole Chat Completions answer.
#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system_fingerprint: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<JsonObject>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Arguments as JSON text: OpenAI sends a string; some compatible servers send the object.
fn arguments_text(arguments: Option<Value>) -> String {
    match arguments {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
    }
}

/// The deltas that make up a whole answer.
fn answer_deltas(model: &str, answer: Value) -> Result<Vec<ModelDelta>, Error> {
    let completion: Completion = http::parse(PROVIDER, "the completion", answer)?;
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(Error::MalformedResponse {
            provider: PROVIDER.to_owned(),
            detail: "the completion has no choices".to_owned(),
        });
    };
    let mut deltas = Vec::new();
    let text = match choice.message.content {
        Some(Value::String(text)) => text,
        // Content parts, as some compatible servers answer.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    // A refusal is the model's answer in words; without it the message would be empty.
    let text = match choice.message.refusal {
        Some(refusal) if text.is_empty() => refusal,
        _ => text,
    };
    if !text.is_empty() {
        deltas.push(ModelDelta::Text(text));
    }
    for (index, call) in choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        deltas.push(ModelDelta::ToolCall {
            index,
            id: call.id,
            name: Some(call.function.name),
            arguments: arguments_text(call.function.arguments),
        });
    }
    let summary = Summary {
        id: completion.id,
        model: completion.model.unwrap_or_else(|| model.to_owned()),
        system_fingerprint: completion.system_fingerprint,
        finish_reason: choice.finish_reason,
        usage: completion.usage,
    };
    deltas.push(summary.metadata());
    Ok(deltas)
}

/// What the API said about an answer besides its content.
struct Summary {
    id: Option<String>,
    model: String,
    system_fingerprint: Option<String>,
    finish_reason: Option<String>,
    usage: Option<JsonObject>,
}

impl Summary {
    /// `response_metadata` as LangChain's `ChatOpenAI` writes it, and `usage_metadata`.
    fn metadata(&self) -> ModelDelta {
        let mut metadata = JsonObject::new();
        if let Some(usage) = &self.usage {
            metadata.insert("token_usage".into(), Value::Object(usage.clone()));
        }
        metadata.insert("model_name".into(), json!(self.model));
        if let Some(fingerprint) = &self.system_fingerprint {
            metadata.insert("system_fingerprint".into(), json!(fingerprint));
        }
        if let Some(id) = &self.id {
            metadata.insert("id".into(), json!(id));
        }
        metadata.insert("finish_reason".into(), json!(self.finish_reason));
        metadata.insert("model_provider".into(), json!(PROVIDER));
        ModelDelta::Metadata {
            response_metadata: metadata,
            usage: self.usage.as_ref().map(usage_metadata),
        }
    }
}

/// LangChain's `usage_metadata` from OpenAI's `usage`.
fn usage_metadata(usage: &JsonObject) -> Value {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64);
    let detail = |key: &str, inner: &str| {
        usage
            .get(key)
            .and_then(|details| details.get(inner))
            .and_then(Value::as_u64)
    };
    let input = count("prompt_tokens").unwrap_or(0);
    let output = count("completion_tokens").unwrap_or(0);
    let mut metadata = json!({
        "input_tokens": input,
        "output_tokens": output,
        "total_tokens": count("total_tokens").unwrap_or(input + output),
    });
    if let Some(cached) = detail("prompt_tokens_details", "cached_tokens") {
        metadata["input_token_details"] = json!({"cache_read": cached});
    }
    if let Some(reasoning) = detail("completion_tokens_details", "reasoning_tokens") {
        metadata["output_token_details"] = json!({"reasoning": reasoning});
    }
    metadata
}

/// One `data:` chunk of a streamed answer.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system_fingerprint: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<JsonObject>,
    /// Sent instead of choices when the server fails mid-answer.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    delta: Option<ChunkDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ChunkToolCall>>,
}

#[derive(Deserialize)]
struct ChunkToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<ChunkFunction>,
}

#[derive(Deserialize)]
struct ChunkFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Reads the chunks of one streamed answer.
pub(crate) struct StreamDecoder {
    summary: Summary,
    /// The tool calls whose name was already passed on: some servers repeat the name in every
    /// chunk, and the builder would join the copies.
    named: Vec<usize>,
    done: bool,
}

impl StreamDecoder {
    fn new(model: &str) -> Self {
        Self {
            summary: Summary {
                id: None,
                model: model.to_owned(),
                system_fingerprint: None,
                finish_reason: None,
                usage: None,
            },
            named: Vec::new(),
            done: false,
        }
    }
}

impl EventDecoder for StreamDecoder {
    fn event(
        &mut self,
        _name: Option<&str>,
        data: &str,
        out: &mut Vec<ModelDelta>,
    ) -> Result<(), Error> {
        if data.trim() == "[DONE]" {
            out.push(self.summary.metadata());
            self.done = true;
            return Ok(());
        }
        let chunk: Chunk = http::parse_event(PROVIDER, data)?;
        if let Some(error) = chunk.error {
            return Err(stream_error(&self.summary.model, &error));
        }
        if let Some(id) = chunk.id {
            self.summary.id = Some(id);
        }
        if let Some(model) = chunk.model {
            self.summary.model = model;
        }
        if chunk.system_fingerprint.is_some() {
            self.summary.system_fingerprint = chunk.system_fingerprint;
        }
        if chunk.usage.is_some() {
            self.summary.usage = chunk.usage;
        }
        // Only one answer is asked for (`n` is never set), so only choice 0 is read.
        for choice in chunk.choices.into_iter().filter(|choice| choice.index == 0) {
            if let Some(reason) = choice.finish_reason {
                self.summary.finish_reason = Some(reason);
            }
            let Some(delta) = choice.delta else { continue };
            for text in [delta.content, delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    out.push(ModelDelta::Text(text));
                }
            }
            for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let index = call.index.unwrap_or(position);
                let (name, arguments) = match call.function {
                    Some(function) => (function.name, arguments_text(function.arguments)),
                    None => (None, String::new()),
                };
                let name = name.filter(|name| !name.is_empty() && !self.named.contains(&index));
                if name.is_some() {
                    self.named.push(index);
                }
                out.push(ModelDelta::ToolCall {
                    index,
                    id: call.id.filter(|id| !id.is_empty()),
                    name,
                    arguments,
                });
            }
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn end(&mut self, out: &mut Vec<ModelDelta>) -> Result<(), Error> {
        // Without `[DONE]`, an answer that said why it finished is still whole.
        if self.summary.finish_reason.is_some() {
            out.push(self.summary.metadata());
            Ok(())
        } else {
            Err(Error::Transport {
                provider: PROVIDER.to_owned(),
                detail: "the streamed answer ended before `data: [DONE]`".to_owned(),
            })
        }
    }
}

/// An error chunk: its numeric `code` is the status when it has one; otherwise a server error.
fn stream_error(model: &str, error: &Value) -> Error {
    let (detail, code) = http::error_detail(&json!({ "error": error }).to_string());
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .unwrap_or(500);
    http::status_code_error(PROVIDER, model, status, None, detail, &code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MessageBuilder, ToolSpec};
    use crate::providers::http::WireFormat;
    use errand_protocol::ToolCall;

    #[test]
    fn conversation_is_written_in_chat_completions_form() {
        let request = ModelRequest {
            system: Some("Be brief.".into()),
            messages: vec![
                Message::human("Weather in Paris?"),
                Message::system("Use metric units."),
                Message::ai_with_tool_calls(
                    "",
                    vec![ToolCall::new(
                        "c1",
                        "weather",
                        json!({"city": "Paris"}).as_object().cloned().unwrap(),
                    )],
                ),
                Message::tool("c1", "18 C"),
                Message::ai("18 C."),
            ],
            tools: vec![ToolSpec {
                name: "weather".into(),
                description: "Weather now.".into(),
                parameters: json!({"type": "object"}),
            }],
            settings: crate::model::ModelSettings {
                max_tokens: Some(100),
                temperature: None,
                stop: Vec::new(),
            },
        };
        let model = OpenAiModel::new(None, "gpt");
        let body = model.request_body(&request, false);
        assert_eq!(
            body,
            json!({
                "model": "gpt",
                "messages": [
                    {"role": "system", "content": "Be brief.\n\nUse metric units."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
                    {"role": "assistant", "content": "18 C."},
                ],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now.", "parameters": {"type": "object"}}}],
                "max_completion_tokens": 100,
            })
        );
        let local = model.with_base_url("http://localhost:11434/v1/");
        assert_eq!(local.base_url(), "http://localhost:11434/v1");
        assert_eq!(local.request_body(&request, true)["max_tokens"], 100);
        assert_eq!(
            local.request_body(&request, true)["stream_options"],
            json!({"include_usage": true})
        );
    }

    #[test]
    fn repeated_names_are_passed_on_once() {
        let mut decoder = StreamDecoder::new("m");
        let mut out = Vec::new();
        for data in [
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"ls","arguments":"{\"a\""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"ls","arguments":":1}"}}]},"finish_reason":"tool_calls"}]}"#,
        ] {
            decoder.event(None, data, &mut out).unwrap();
        }
        decoder.end(&mut out).unwrap();
        let mut builder = MessageBuilder::new("openai");
        out.into_iter().for_each(|delta| builder.push(delta));
        let message = builder.finish().unwrap();
        assert_eq!(message.tool_calls()[0].name, "ls");
        assert_eq!(message.tool_calls()[0].args["a"], 1);
        assert_eq!(message.response_metadata["finish_reason"], "tool_calls");
    }

    #[test]
    fn error_chunks_map_to_errors() {
        assert!(matches!(
            stream_error("m", &json!({"message": "slow down", "code": 429})),
            Error::RateLimited { .. }
        ));
        assert!(matches!(
            stream_error("m", &json!({"message": "oops", "type": "server_error"})),
            Error::Provider { status: 500, .. }
        ));
    }
}
