//! The conversation written as Messages API turns: alternating roles, tool calls as `tool_use`
//! blocks, tool results as `tool_result` blocks in user turns.

use crate::model::ModelRequest;
use errand_protocol::{ContentBlock, Message, MessageContent, MessageKind};
use serde_json::{Value, json};

/// The conversation as Messages API turns: alternating roles, tool results in user turns.
pub(super) fn messages(request: &ModelRequest) -> Vec<Value> {
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
pub(super) fn content_blocks(content: &MessageContent) -> Vec<Value> {
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
