//! Chat models: the one call an agent makes, in a whole and a streamed form.
//!
//! A [`ChatModel`] takes a [`ModelRequest`] (a system prompt, the conversation, the tools it may
//! call and a few settings) and answers one assistant [`Message`] with text and tool calls.
//! Providers speak their own wire formats behind it; the agent loop only sees this trait, so it
//! can hold any model as `Arc<dyn ChatModel>`.

mod builder;
#[cfg(feature = "scripted")]
mod scripted;

pub use builder::MessageBuilder;
#[cfg(feature = "scripted")]
#[cfg_attr(docsrs, doc(cfg(feature = "scripted")))]
pub use scripted::{ScriptedModel, Turn};

use crate::Error;
use async_trait::async_trait;
use errand_protocol::{Message, MessageKind, ToolCall};
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// A tool as a model sees it: a name, what it does, and the JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does and when to use it.
    pub description: String,
    /// The JSON schema of its arguments (an object schema).
    pub parameters: Value,
}

/// Settings for one model call; `None` leaves the provider's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelSettings {
    /// The most tokens the answer may have.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Sequences that end the answer.
    pub stop: Vec<String>,
}

/// What a model is asked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelRequest {
    /// The system prompt. Providers also read `system` messages found in `messages`.
    pub system: Option<String>,
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Settings for this call.
    pub settings: ModelSettings,
}

impl ModelRequest {
    /// A request for `messages` with no system prompt, no tools and default settings.
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }

    /// The text of the latest human message, or `""` when there is none: what a scripted
    /// responder or a test's fake model usually reacts to.
    pub fn last_human_text(&self) -> String {
        self.messages
            .iter()
            .rev()
            .find(|message| message.kind == MessageKind::Human)
            .map(|message| message.text().into_owned())
            .unwrap_or_default()
    }

    /// Adds `text` to the system prompt, after what is there, separated by a blank line.
    pub fn append_system(&mut self, text: &str) {
        match &mut self.system {
            Some(system) if !system.is_empty() => {
                system.push_str("\n\n");
                system.push_str(text);
            }
            _ => self.system = Some(text.to_owned()),
        }
    }
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelDelta {
    /// More text of the answer.
    Text(String),
    /// A piece of tool call number `index`: its id and name come with the first piece, its
    /// arguments as JSON text spread over the pieces.
    ToolCall {
        /// Which tool call of the answer this piece belongs to.
        index: usize,
        /// The call id, when this piece carries it.
        id: Option<String>,
        /// The tool name, when this piece carries it.
        name: Option<String>,
        /// More of the arguments' JSON text.
        arguments: String,
    },
    /// A whole tool call at once, for models that do not stream arguments.
    CompleteToolCall(ToolCall),
    /// What the provider said about the answer: model name, stop reason, token usage. Merged
    /// into the message's `response_metadata` (and `usage` into `usage_metadata`).
    Metadata {
        /// Keys for `response_metadata`.
        response_metadata: serde_json::Map<String, Value>,
        /// Token usage in LangChain's form (`input_tokens`, `output_tokens`, `total_tokens`).
        usage: Option<Value>,
    },
}

/// A streamed answer: deltas until the model is done, or an error.
pub type ModelStream = BoxStream<'static, Result<ModelDelta, Error>>;

/// A chat model: messages, tools and settings in; an assistant message out.
#[async_trait]
pub trait ChatModel: Send + Sync + fmt::Debug {
    /// The provider's name, as in errors and `response_metadata` (`anthropic`, `openai`, ...).
    fn provider(&self) -> &str;

    /// The model's name.
    fn model_name(&self) -> &str;

    /// Answers the request in one piece.
    async fn complete(&self, request: &ModelRequest) -> Result<Message, Error>;

    /// Answers the request as a stream of deltas.
    ///
    /// The default asks [`ChatModel::complete`] and replays its answer as deltas, for models
    /// that have no streaming form.
    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, Error> {
        let message = self.complete(request).await?;
        Ok(stream::iter(deltas_of(message).into_iter().map(Ok)).boxed())
    }
}

/// The deltas that rebuild `message` through a [`MessageBuilder`].
pub fn deltas_of(message: Message) -> Vec<ModelDelta> {
    let mut deltas = Vec::new();
    let text = message.text();
    if !text.is_empty() {
        deltas.push(ModelDelta::Text(text.into_owned()));
    }
    let usage = message
        .extra
        .get("usage_metadata")
        .filter(|usage| !usage.is_null())
        .cloned();
    deltas.extend(
        message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(ModelDelta::CompleteToolCall),
    );
    if !message.response_metadata.is_empty() || usage.is_some() {
        deltas.push(ModelDelta::Metadata {
            response_metadata: message.response_metadata,
            usage,
        });
    }
    deltas
}
