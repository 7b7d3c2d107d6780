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

use super::http::{self, EventDecoder, Http, RetryConfig};
use super::{Env, system_prompt};
use crate::Error;
use crate::model::{ChatModel, ModelDelta, ModelRequest, ModelStream};
use async_trait::async_trait;
use errand_protocol::{ContentBlock, JsonObject, Message, MessageContent, MessageKind};
use serde::Deserialize;
use serde_json::{Value, json};
use std::fmt;

/// Where the Messages API lives unless told otherwise.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// The answer length asked for when the request does not say: the API requires one.
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 4096;

const PROVIDER: &str = "anthropic";
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
        Self::from_lookup(model.into(), &super::process_env)
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

#[async_trait]
impl ChatModel for AnthropicModel {
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

/// The conversation as Messages API turns: alternating roles, tool results in user turns.
fn messages(request: &ModelRequest) -> Vec<Value> {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match &message.kind {
            MessageKind::Human => ("user", content_blocks(&message.content)),
            MessageKind::Ai | MessageKind::AiChunk => ("assistant", assistant_blocks(message)),
            MessageKind::Tool => ("user", vec![tool_result(message)]),
            // Folded into the system prompt.
            MessageKind::System => continue,
            MessageKind::Other(kind) => {
                tracing::debug!(
                    kind,
                    "leaving out a message the Messages API has no role for"
                );
                continue;
            }
        };
        // The API rejects empty turns; a message with nothing to say is left out.
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, previous)) if *last == role => previous.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect()
}

/// The blocks of a user or tool message's content.
fn content_blocks(content: &MessageContent) -> Vec<Value> {
    match content {
        MessageContent::Text(text) if text.is_empty() => Vec::new(),
        MessageContent::Text(text) => vec![json!({"type": "text", "text": text})],
        MessageContent::Blocks(blocks) => blocks.iter().filter_map(content_block).collect(),
    }
}

/// One content block as the API takes it. Text is rebuilt (LangChain adds keys such as `index`
/// that the API refuses), OpenAI-style `image_url` becomes an `image`, `tool_use` blocks are
/// left to the message's `tool_calls`, and other blocks (`image`, `document`, `thinking`...)
/// are Anthropic's own and go as they are.
fn content_block(block: &ContentBlock) -> Option<Value> {
    match block.kind.as_str() {
        "text" => {
            let text = block.text().filter(|text| !text.is_empty())?;
            let mut out = json!({"type": "text", "text": text});
            if let Some(cache_control) = block.fields.get("cache_control") {
                out["cache_control"] = cache_control.clone();
            }
            Some(out)
        }
        "tool_use" => None,
        "image_url" => {
            let image = block.fields.get("image_url")?;
            let url = image.get("url").unwrap_or(image).as_str()?;
            Some(image_block(url))
        }
        _ => serde_json::to_value(block).ok(),
    }
}

fn image_block(url: &str) -> Value {
    if let Some(inline) = url.strip_prefix("data:")
        && let Some((media_type, data)) = inline.split_once(";base64,")
    {
        return json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        });
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// An assistant turn: its text and other blocks, then a `tool_use` block per tool call.
fn assistant_blocks(message: &Message) -> Vec<Value> {
    let mut blocks = content_blocks(&message.content);
    blocks.extend(message.tool_calls().iter().map(|call| {
        json!({
            "type": "tool_use",
            "id": call.id.as_deref().unwrap_or_default(),
            "name": call.name,
            "input": call.args,
        })
    }));
    blocks
}

/// A tool message as a `tool_result` block; a failed call is flagged `is_error`.
fn tool_result(message: &Message) -> Value {
    let content = match &message.content {
        MessageContent::Text(text) => json!(text),
        blocks @ MessageContent::Blocks(_) => Value::Array(content_blocks(blocks)),
    };
    let mut block = json!({
        "type": "tool_result",
        "tool_use_id": message.tool_call_id.as_deref().unwrap_or_default(),
        "content": content,
    });
    if message.extra.get("status").and_then(Value::as_str) == Some("error") {
        block["is_error"] = Value::Bool(true);
    }
    block
}

/// A whole answer of the Messages API.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    content: Vec<AnswerBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<Value>,
    #[serde(default)]
    usage: Option<JsonObject>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnswerBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking and server-tool blocks: not part of a LangChain message's text or calls.
    #[serde(other)]
    Other,
}

/// The deltas that make up a whole answer.
fn answer_deltas(model: &str, answer: Value) -> Result<Vec<ModelDelta>, Error> {
    let answer: Answer = http::parse(PROVIDER, "the message", answer)?;
    let mut deltas = Vec::new();
    for (index, block) in answer.content.into_iter().enumerate() {
        match block {
            AnswerBlock::Text { text } if !text.is_empty() => deltas.push(ModelDelta::Text(text)),
            AnswerBlock::ToolUse { id, name, input } => deltas.push(ModelDelta::ToolCall {
                index,
                id: Some(id),
                name: Some(name),
                // The builder checks that the input is an object, for both paths.
                arguments: input.to_string(),
            }),
            AnswerBlock::Text { .. } | AnswerBlock::Other => {}
        }
    }
    let summary = Summary {
        id: answer.id,
        model: answer.model.unwrap_or_else(|| model.to_owned()),
        stop_reason: answer.stop_reason,
        stop_sequence: answer.stop_sequence.unwrap_or(Value::Null),
        usage: answer.usage.unwrap_or_default(),
    };
    deltas.push(summary.metadata());
    Ok(deltas)
}

/// What the API said about an answer besides its content.
struct Summary {
    id: Option<String>,
    model: String,
    stop_reason: Option<String>,
    stop_sequence: Value,
    /// The API's `usage` object, merged over the stream (`message_delta` updates it).
    usage: JsonObject,
}

impl Summary {
    /// `response_metadata` as LangChain's `ChatAnthropic` writes it, and `usage_metadata`.
    fn metadata(&self) -> ModelDelta {
        let mut metadata = JsonObject::new();
        if let Some(id) = &self.id {
            metadata.insert("id".into(), json!(id));
        }
        metadata.insert("model".into(), json!(self.model));
        metadata.insert("model_name".into(), json!(self.model));
        metadata.insert("stop_reason".into(), json!(self.stop_reason));
        metadata.insert("stop_sequence".into(), self.stop_sequence.clone());
        if !self.usage.is_empty() {
            metadata.insert("usage".into(), Value::Object(self.usage.clone()));
        }
        metadata.insert("model_provider".into(), json!(PROVIDER));
        ModelDelta::Metadata {
            response_metadata: metadata,
            usage: usage_metadata(&self.usage),
        }
    }
}

/// LangChain's `usage_metadata`: cached prompt tokens count as input, as LangChain counts them.
fn usage_metadata(usage: &JsonObject) -> Option<Value> {
    if usage.is_empty() {
        return None;
    }
    let count = |key: &str| usage.get(key).and_then(Value::as_u64);
    let cache_read = count("cache_read_input_tokens");
    let cache_creation = count("cache_creation_input_tokens");
    let input =
        count("input_tokens").unwrap_or(0) + cache_read.unwrap_or(0) + cache_creation.unwrap_or(0);
    let output = count("output_tokens").unwrap_or(0);
    let mut metadata = json!({
        "input_tokens": input,
        "output_tokens": output,
        "total_tokens": input + output,
    });
    if cache_read.is_some() || cache_creation.is_some() {
        metadata["input_token_details"] = json!({
            "cache_read": cache_read.unwrap_or(0),
            "cache_creation": cache_creation.unwrap_or(0),
        });
    }
    Some(metadata)
}

/// One event of a streamed answer.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: StartedBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<JsonObject>,
    },
    MessageStop {},
    Error {
        error: ApiError,
    },
    /// `ping`, `content_block_stop`, and events added after this was written.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartedMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<JsonObject>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartedBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// Thinking, signature and citation deltas.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<Value>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// Reads the events of one streamed answer.
pub(crate) struct StreamDecoder {
    requested_model: String,
    summary: Option<Summary>,
    done: bool,
}

impl StreamDecoder {
    fn new(model: &str) -> Self {
        Self {
            requested_model: model.to_owned(),
            summary: None,
            done: false,
        }
    }

    fn summary(&mut self) -> &mut Summary {
        self.summary.get_or_insert_with(|| Summary {
            id: None,
            model: self.requested_model.clone(),
            stop_reason: None,
            stop_sequence: Value::Null,
            usage: JsonObject::new(),
        })
    }
}

impl EventDecoder for StreamDecoder {
    fn event(
        &mut self,
        _name: Option<&str>,
        data: &str,
        out: &mut Vec<ModelDelta>,
    ) -> Result<(), Error> {
        // The event name repeats the data's `type`, which is what is read.
        match http::parse_event::<Event>(PROVIDER, data)? {
            Event::MessageStart { message } => {
                let summary = self.summary();
                summary.id = message.id;
                if let Some(model) = message.model {
                    summary.model = model;
                }
                summary.usage.extend(message.usage.unwrap_or_default());
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                StartedBlock::Text { text } if !text.is_empty() => out.push(ModelDelta::Text(text)),
                StartedBlock::ToolUse { id, name, input } => {
                    // The input starts as `{}` and comes in `input_json_delta`s; a server that
                    // sends it whole here is read too.
                    let arguments = match input {
                        Value::Object(args) if !args.is_empty() => Value::Object(args).to_string(),
                        _ => String::new(),
                    };
                    out.push(ModelDelta::ToolCall {
                        index,
                        id: Some(id),
                        name: Some(name),
                        arguments,
                    });
                }
                StartedBlock::Text { .. } | StartedBlock::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => {
                    out.push(ModelDelta::Text(text));
                }
                BlockDelta::InputJsonDelta { partial_json } => out.push(ModelDelta::ToolCall {
                    index,
                    id: None,
                    name: None,
                    arguments: partial_json,
                }),
                BlockDelta::TextDelta { .. } | BlockDelta::Other => {}
            },
            Event::MessageDelta { delta, usage } => {
                let summary = self.summary();
                summary.stop_reason = delta.stop_reason.or(summary.stop_reason.take());
                if let Some(stop_sequence) = delta.stop_sequence {
                    summary.stop_sequence = stop_sequence;
                }
                // `usage` here is cumulative: its counts replace the ones from the start.
                summary.usage.extend(
                    usage
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(_, value)| !value.is_null()),
                );
            }
            Event::MessageStop {} => {
                out.push(self.summary().metadata());
                self.done = true;
            }
            Event::Error { error } => return Err(stream_error(&self.requested_model, &error)),
            Event::Other => {}
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn end(&mut self, out: &mut Vec<ModelDelta>) -> Result<(), Error> {
        // Without `message_stop`, an answer that said why it stopped is still whole.
        match &self.summary {
            Some(summary) if summary.stop_reason.is_some() => {
                out.push(summary.metadata());
                Ok(())
            }
            _ => Err(Error::Transport {
                provider: PROVIDER.to_owned(),
                detail: "the streamed answer ended before `message_stop`".to_owned(),
            }),
        }
    }
}

/// An `error` event, mapped through the HTTP status Anthropic documents for its type.
fn stream_error(model: &str, error: &ApiError) -> Error {
    let status = match error.kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 500,
    };
    let detail = if error.kind.is_empty() {
        error.message.clone()
    } else {
        format!("{}: {}", error.kind, error.message)
    };
    http::status_code_error(PROVIDER, model, status, None, detail, &error.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ToolSpec;
    use crate::providers::http::WireFormat;
    use errand_protocol::ToolCall;

    fn args(value: &Value) -> JsonObject {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn turns_merge_and_tool_results_go_in_user_turns() {
        let mut failed = Message::tool("t2", "boom");
        failed.extra.insert("status".into(), json!("error"));
        let request = ModelRequest {
            system: Some("Be brief.".into()),
            messages: vec![
                Message::system("Use metric units."),
                Message::human("Weather in Paris and Rome?"),
                Message::human(""),
                Message::ai_with_tool_calls(
                    "Looking.",
                    vec![
                        ToolCall::new("t1", "weather", args(&json!({"city": "Paris"}))),
                        ToolCall::new("t2", "weather", args(&json!({"city": "Rome"}))),
                    ],
                ),
                Message::tool("t1", "18 C"),
                failed,
                Message::human("Thanks"),
            ],
            tools: vec![ToolSpec {
                name: "weather".into(),
                description: "Weather now.".into(),
                parameters: json!({"type": "object"}),
            }],
            settings: crate::model::ModelSettings {
                max_tokens: None,
                temperature: Some(0.5),
                stop: vec!["END".into()],
            },
        };
        let body = AnthropicModel::new("k", "claude").request_body(&request, true);
        assert_eq!(
            body,
            json!({
                "model": "claude",
                "max_tokens": 4096,
                "system": "Be brief.\n\nUse metric units.",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Looking."},
                        {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "t2", "name": "weather", "input": {"city": "Rome"}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "18 C"},
                        {"type": "tool_result", "tool_use_id": "t2", "content": "boom", "is_error": true},
                        {"type": "text", "text": "Thanks"},
                    ]},
                ],
                "tools": [{"name": "weather", "description": "Weather now.", "input_schema": {"type": "object"}}],
                "temperature": 0.5,
                "stop_sequences": ["END"],
                "stream": true,
            })
        );
    }

    #[test]
    fn blocks_are_cleaned_and_images_converted() {
        let blocks: Vec<ContentBlock> = serde_json::from_value(json!([
            {"type": "text", "text": "see", "index": 0},
            {"type": "text", "text": ""},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "image_url", "image_url": "https://x/y.png"},
            {"type": "tool_use", "id": "t", "name": "n", "input": {}},
            {"type": "document", "source": {"type": "text", "data": "d"}},
        ]))
        .unwrap();
        assert_eq!(
            content_blocks(&MessageContent::Blocks(blocks)),
            vec![
                json!({"type": "text", "text": "see"}),
                json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}),
                json!({"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}),
                json!({"type": "document", "source": {"type": "text", "data": "d"}}),
            ]
        );
    }

    #[test]
    fn usage_counts_cached_input() {
        let usage = args(&json!({
            "input_tokens": 10, "output_tokens": 5,
            "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0
        }));
        assert_eq!(
            usage_metadata(&usage),
            Some(json!({
                "input_tokens": 110, "output_tokens": 5, "total_tokens": 115,
                "input_token_details": {"cache_read": 100, "cache_creation": 0}
            }))
        );
        assert_eq!(usage_metadata(&JsonObject::new()), None);
    }

    #[test]
    fn stream_error_events_map_to_errors() {
        let error = |kind: &str| {
            stream_error(
                "claude",
                &ApiError {
                    kind: kind.into(),
                    message: "m".into(),
                },
            )
        };
        assert!(matches!(
            error("overloaded_error"),
            Error::Provider { status: 529, .. }
        ));
        assert!(matches!(
            error("rate_limit_error"),
            Error::RateLimited { .. }
        ));
        assert!(matches!(
            error("authentication_error"),
            Error::Unauthorized { .. }
        ));
    }
}
