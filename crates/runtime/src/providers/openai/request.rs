//! The conversation written as Chat Completions messages: the system prompt first, tool calls
//! with their arguments as JSON text, tool results as `tool` messages.

use crate::model::ModelRequest;
use crate::providers::shared::system_prompt;
use errand_protocol::{ContentBlock, Message, MessageContent, MessageKind};
use serde_json::{Value, json};

/// The conversation as Chat Completions messages, the system prompt first.
pub(super) fn messages(request: &ModelRequest) -> Vec<Value> {
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
