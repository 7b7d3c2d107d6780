//! Chat messages in the LangChain wire form.
//!
//! Thread values hold messages the way LangChain serialises them: a `type` (`human`, `ai`,
//! `tool`, `system`), `content` as a string or a list of blocks, and `id`, `name`,
//! `additional_kwargs`, `response_metadata` on every message, plus `tool_calls` on AI messages and
//! `tool_call_id` on tool results. Clients usually send the role form instead
//! (`{"role": "user", "content": "hi"}`); reading a [`Message`] accepts both and always writes the
//! `type` form, as LangGraph's `add_messages` reducer stores it.
//!
//! ```
//! use errand_protocol::{Message, MessageKind};
//! let m: Message = serde_json::from_str(r#"{"role": "user", "content": "hi"}"#).unwrap();
//! assert_eq!(m.kind, MessageKind::Human);
//! assert_eq!(m.text(), "hi");
//! let wire = serde_json::to_value(&m).unwrap();
//! assert_eq!(wire["type"], "human");
//! ```

use crate::ProtocolError;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// A JSON object: metadata, state values, tool arguments.
pub type JsonObject = Map<String, Value>;

/// One chat message as LangChain serialises it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Message {
    /// The text, or a list of content blocks.
    pub content: MessageContent,
    /// Provider-specific extras LangChain keeps beside the content.
    #[serde(default)]
    pub additional_kwargs: JsonObject,
    /// What the model provider said about the answer (model name, stop reason...).
    #[serde(default)]
    pub response_metadata: JsonObject,
    /// Who wrote it: `human`, `ai`, `tool`, `system`, ...
    #[serde(rename = "type")]
    pub kind: MessageKind,
    /// An optional author name.
    #[serde(default)]
    pub name: Option<String>,
    /// A stable id; UIs and the `add_messages` reducer dedupe on it.
    #[serde(default)]
    pub id: Option<String>,
    /// Tool calls an AI message asks for. Absent on other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers. Absent on other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Every other key, kept as given (`usage_metadata`, `invalid_tool_calls`, `status`, ...).
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Message {
    /// A message of `kind` with text content and every other field empty.
    pub fn new(kind: MessageKind, text: impl Into<String>) -> Self {
        Self {
            content: MessageContent::Text(text.into()),
            additional_kwargs: JsonObject::new(),
            response_metadata: JsonObject::new(),
            kind,
            name: None,
            id: None,
            tool_calls: None,
            tool_call_id: None,
            extra: JsonObject::new(),
        }
    }

    /// A user message.
    pub fn human(text: impl Into<String>) -> Self {
        Self::new(MessageKind::Human, text)
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::new(MessageKind::System, text)
    }

    /// An assistant message, written the way LangChain writes an `AIMessage`.
    pub fn ai(text: impl Into<String>) -> Self {
        let mut message = Self::new(MessageKind::Ai, text);
        message.tool_calls = Some(Vec::new());
        message
            .extra
            .insert("invalid_tool_calls".into(), Value::Array(Vec::new()));
        message.extra.insert("usage_metadata".into(), Value::Null);
        message
    }

    /// An assistant message that asks for tool calls.
    pub fn ai_with_tool_calls(text: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        let mut message = Self::ai(text);
        message.tool_calls = Some(calls);
        message
    }

    /// A tool result answering `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, text: impl Into<String>) -> Self {
        let mut message = Self::new(MessageKind::Tool, text);
        message.tool_call_id = Some(tool_call_id.into());
        message
    }

    /// Sets the id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the author name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The text of the message: the string content, or its text blocks joined.
    pub fn text(&self) -> Cow<'_, str> {
        self.content.text()
    }

    /// The tool calls of an AI message; empty for other kinds.
    pub fn tool_calls(&self) -> &[ToolCall] {
        self.tool_calls.as_deref().unwrap_or_default()
    }

    /// Reads a message from JSON in either the `type` or the role form.
    pub fn from_value(value: Value) -> Result<Self, ProtocolError> {
        serde_json::from_value(value).map_err(|source| ProtocolError::Json {
            what: "message",
            source,
        })
    }
}

/// The kind of a message, the `type` key of the wire form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `human`: from the user.
    Human,
    /// `ai`: from the model.
    Ai,
    /// `system`: instructions.
    System,
    /// `tool`: a tool's result.
    Tool,
    /// `AIMessageChunk`: a streamed piece of an AI message.
    AiChunk,
    /// Any other kind (`remove`, `function`, `chat`, other chunk kinds), kept as written.
    Other(String),
}

impl MessageKind {
    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Human => "human",
            Self::Ai => "ai",
            Self::System => "system",
            Self::Tool => "tool",
            Self::AiChunk => "AIMessageChunk",
            Self::Other(other) => other,
        }
    }

    /// The kind for a wire name (`type` form).
    pub fn from_type(name: &str) -> Self {
        match name {
            "human" => Self::Human,
            "ai" => Self::Ai,
            "system" => Self::System,
            "tool" => Self::Tool,
            "AIMessageChunk" => Self::AiChunk,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The kind for a chat role (role form), as LangChain maps roles.
    pub fn from_role(role: &str) -> Self {
        match role {
            "user" | "human" => Self::Human,
            "assistant" | "ai" => Self::Ai,
            "system" | "developer" => Self::System,
            "tool" => Self::Tool,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MessageKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Cow::<'de, str>::deserialize(deserializer).map(|name| Self::from_type(&name))
    }
}

impl JsonSchema for MessageKind {
    fn schema_name() -> Cow<'static, str> {
        "MessageKind".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The message type: human, ai, system, tool, AIMessageChunk, or another LangChain type.",
            "type": "string",
            "examples": ["human", "ai", "system", "tool", "AIMessageChunk"]
        })
    }
}

/// The content of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content blocks: text, images, tool use, reasoning...
    Blocks(Vec<ContentBlock>),
}

impl MessageContent {
    /// The text: the string itself, or the `text` blocks joined.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Text(text) => Cow::Borrowed(text),
            Self::Blocks(blocks) => {
                let mut texts = blocks.iter().filter_map(ContentBlock::text);
                match (texts.next(), texts.next()) {
                    (None, _) => Cow::Borrowed(""),
                    (Some(only), None) => Cow::Borrowed(only),
                    (Some(first), Some(second)) => {
                        let mut joined = format!("{first}{second}");
                        texts.for_each(|text| joined.push_str(text));
                        Cow::Owned(joined)
                    }
                }
            }
        }
    }
}

impl Default for MessageContent {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

impl From<String> for MessageContent {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<&str> for MessageContent {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

/// One block of list content, e.g. `{"type": "text", "text": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ContentBlock {
    /// The block type: `text`, `image_url`, `tool_use`, `thinking`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The rest of the block, kept as given.
    #[serde(flatten)]
    pub fields: JsonObject,
}

impl ContentBlock {
    /// A text block.
    pub fn text_block(text: impl Into<String>) -> Self {
        let mut fields = JsonObject::new();
        fields.insert("text".into(), Value::String(text.into()));
        Self {
            kind: "text".into(),
            fields,
        }
    }

    /// The text of a `text` block; `None` for other blocks.
    pub fn text(&self) -> Option<&str> {
        if self.kind == "text" {
            self.fields.get("text").and_then(Value::as_str)
        } else {
            None
        }
    }
}

/// Reads the object form, and a bare string, which LangChain allows in a content list
/// (`list[str | dict]`), as a text block. (Said here rather than on the type, whose doc is its
/// schema's description: the schema gives the form errand writes.)
impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Incoming {
            Text(String),
            Block {
                #[serde(rename = "type")]
                kind: String,
                #[serde(flatten)]
                fields: JsonObject,
            },
        }
        Ok(match Incoming::deserialize(deserializer)? {
            Incoming::Text(text) => Self::text_block(text),
            Incoming::Block { kind, fields } => Self { kind, fields },
        })
    }
}

/// A tool call requested by an AI message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON object.
    #[serde(default)]
    pub args: JsonObject,
    /// The call id, which the tool message answers with `tool_call_id`.
    #[serde(default)]
    pub id: Option<String>,
    /// Always `tool_call` in LangChain's form.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl ToolCall {
    /// A call of `name` with `args`, under the call id `id`.
    pub fn new(id: impl Into<String>, name: impl Into<String>, args: JsonObject) -> Self {
        Self {
            name: name.into(),
            args,
            id: Some(id.into()),
            kind: Some("tool_call".into()),
        }
    }
}

/// What a message may look like on the way in: the `type` form, or the role form with
/// OpenAI-style tool calls.
#[derive(Deserialize)]
struct IncomingMessage {
    #[serde(rename = "type", default)]
    kind: Option<MessageKind>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<MessageContent>,
    #[serde(default)]
    additional_kwargs: JsonObject,
    #[serde(default)]
    response_metadata: JsonObject,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<IncomingToolCall>>,
    #[serde(default)]
    tool_call_id: Option<String>,
    #[serde(flatten)]
    extra: JsonObject,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IncomingToolCall {
    LangChain(ToolCall),
    OpenAi {
        #[serde(default)]
        id: Option<String>,
        function: OpenAiFunctionCall,
    },
}

#[derive(Deserialize)]
struct OpenAiFunctionCall {
    name: String,
    #[serde(default)]
    arguments: Option<String>,
}

impl IncomingToolCall {
    fn into_tool_call(self) -> Result<ToolCall, String> {
        match self {
            Self::LangChain(call) => Ok(call),
            Self::OpenAi { id, function } => {
                let args = match function.arguments.as_deref().map(str::trim) {
                    None | Some("") => JsonObject::new(),
                    Some(text) => serde_json::from_str(text).map_err(|error| {
                        format!(
                            "tool call `{}` has arguments that are not a JSON object: {error}",
                            function.name
                        )
                    })?,
                };
                Ok(ToolCall {
                    name: function.name,
                    args,
                    id,
                    kind: Some("tool_call".into()),
                })
            }
        }
    }
}

impl TryFrom<IncomingMessage> for Message {
    type Error = String;

    fn try_from(incoming: IncomingMessage) -> Result<Self, Self::Error> {
        let had_type = incoming.kind.is_some();
        let kind = match (incoming.kind, incoming.role.as_deref()) {
            (Some(kind), _) => kind,
            (None, Some(role)) => MessageKind::from_role(role),
            (None, None) => {
                return Err("a message needs a `type` (human, ai, tool, system) \
                            or a `role` (user, assistant, tool, system)"
                    .to_owned());
            }
        };
        let tool_calls = incoming
            .tool_calls
            .map(|calls| {
                calls
                    .into_iter()
                    .map(IncomingToolCall::into_tool_call)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let mut extra = incoming.extra;
        // A `role` beside a `type` is not the role form: keep it as an unknown key.
        if had_type && let Some(role) = incoming.role {
            extra.insert("role".into(), Value::String(role));
        }
        Ok(Self {
            content: incoming.content.unwrap_or_default(),
            additional_kwargs: incoming.additional_kwargs,
            response_metadata: incoming.response_metadata,
            kind,
            name: incoming.name,
            id: incoming.id,
            tool_calls,
            tool_call_id: incoming.tool_call_id,
            extra,
        })
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let incoming = IncomingMessage::deserialize(deserializer)?;
        Self::try_from(incoming).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_lists_may_hold_bare_strings_as_langchain_writes_them() {
        // LangChain's content is `str | list[str | dict]`: a string in the list is text.
        let message = Message::from_value(json!({
            "role": "user",
            "content": ["Look at ", {"type": "image_url", "image_url": {"url": "x"}}, "this"],
        }))
        .expect("a LangChain message");
        assert_eq!(message.text(), "Look at this");
        let MessageContent::Blocks(blocks) = &message.content else {
            panic!("blocks: {message:?}");
        };
        assert_eq!(blocks[0], ContentBlock::text_block("Look at "));
        assert_eq!(blocks[1].kind, "image_url");
        // Written back, each string is a text block, which reads the same again.
        let written = serde_json::to_value(&message).expect("writes");
        assert_eq!(
            written["content"][2],
            json!({"type": "text", "text": "this"})
        );
        assert_eq!(Message::from_value(written).expect("reads back"), message);
        // Anything else in the list is still refused.
        assert!(Message::from_value(json!({"role": "user", "content": [1]})).is_err());
        assert!(
            Message::from_value(json!({"role": "user", "content": [{"text": "no type"}]})).is_err()
        );
    }
}
