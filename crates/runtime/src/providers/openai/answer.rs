//! Reading answers, whole or streamed, into the deltas a message is built from, and the
//! response and usage metadata LangChain writes beside them.

use super::wire::{Chunk, Completion, PROVIDER};
use crate::Error;
use crate::model::ModelDelta;
use crate::providers::http::{self, EventDecoder};
use errand_protocol::JsonObject;
use serde_json::{Value, json};

/// Arguments as JSON text: OpenAI sends a string; some compatible servers send the object.
fn arguments_text(arguments: Option<Value>) -> String {
    match arguments {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
    }
}

/// The deltas that make up a whole answer.
pub(super) fn answer_deltas(model: &str, answer: Value) -> Result<Vec<ModelDelta>, Error> {
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

/// Reads the chunks of one streamed answer.
pub(crate) struct StreamDecoder {
    summary: Summary,
    /// The tool calls whose name was already passed on: some servers repeat the name in every
    /// chunk, and the builder would join the copies.
    named: Vec<usize>,
    done: bool,
}

impl StreamDecoder {
    pub(super) fn new(model: &str) -> Self {
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
pub(super) fn stream_error(model: &str, error: &Value) -> Error {
    let (detail, code) = http::error_detail(&json!({ "error": error }).to_string());
    let status = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .unwrap_or(500);
    http::status_code_error(PROVIDER, model, status, None, detail, &code)
}
