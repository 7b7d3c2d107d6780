//! Chat Completions answers as they come over the wire: a whole completion, and the chunks of
//! a streamed one. Only what the runtime reads is declared; the rest is ignored.

use errand_protocol::JsonObject;
use serde::Deserialize;
use serde_json::Value;

/// The provider name in errors and metadata.
pub(super) const PROVIDER: &str = "openai";

/// A whole Chat Completions answer.
#[derive(Deserialize)]
pub(super) struct Completion {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) system_fingerprint: Option<String>,
    pub(super) choices: Vec<Choice>,
    #[serde(default)]
    pub(super) usage: Option<JsonObject>,
}

#[derive(Deserialize)]
pub(super) struct Choice {
    pub(super) message: ChoiceMessage,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ChoiceMessage {
    #[serde(default)]
    pub(super) content: Option<Value>,
    #[serde(default)]
    pub(super) refusal: Option<String>,
    #[serde(default)]
    pub(super) tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
pub(super) struct WireToolCall {
    #[serde(default)]
    pub(super) id: Option<String>,
    pub(super) function: WireFunction,
}

#[derive(Deserialize)]
pub(super) struct WireFunction {
    pub(super) name: String,
    #[serde(default)]
    pub(super) arguments: Option<Value>,
}

/// One `data:` chunk of a streamed answer.
#[derive(Deserialize)]
pub(super) struct Chunk {
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) model: Option<String>,
    #[serde(default)]
    pub(super) system_fingerprint: Option<String>,
    #[serde(default)]
    pub(super) choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub(super) usage: Option<JsonObject>,
    /// Sent instead of choices when the server fails mid-answer.
    #[serde(default)]
    pub(super) error: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct ChunkChoice {
    #[serde(default)]
    pub(super) index: usize,
    #[serde(default)]
    pub(super) delta: Option<ChunkDelta>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ChunkDelta {
    #[serde(default)]
    pub(super) content: Option<String>,
    #[serde(default)]
    pub(super) refusal: Option<String>,
    #[serde(default)]
    pub(super) tool_calls: Option<Vec<ChunkToolCall>>,
}

#[derive(Deserialize)]
pub(super) struct ChunkToolCall {
    #[serde(default)]
    pub(super) index: Option<usize>,
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) function: Option<ChunkFunction>,
}

#[derive(Deserialize)]
pub(super) struct ChunkFunction {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) arguments: Option<Value>,
}
