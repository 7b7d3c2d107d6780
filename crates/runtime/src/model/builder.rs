//! Building one assistant message from streamed deltas.

use super::ModelDelta;
use crate::Error;
use errand_protocol::{JsonObject, Message, ToolCall};
use serde_json::Value;

/// Accumulates [`ModelDelta`]s into the finished assistant [`Message`].
///
/// Providers use it to build the answer of [`super::ChatModel::complete`] from their stream, and
/// the agent loop uses it to build what it stores while it forwards the deltas to clients.
///
/// ```
/// use errand_runtime::model::{MessageBuilder, ModelDelta};
/// let mut builder = MessageBuilder::new("openai");
/// builder.push(ModelDelta::Text("Let me look".into()));
/// builder.push(ModelDelta::ToolCall { index: 0, id: Some("c1".into()), name: Some("ls".into()), arguments: "{\"pa".into() });
/// builder.push(ModelDelta::ToolCall { index: 0, id: None, name: None, arguments: "th\": \"/\"}".into() });
/// let message = builder.finish().unwrap();
/// assert_eq!(message.text(), "Let me look");
/// assert_eq!(message.tool_calls()[0].args["path"], "/");
/// ```
#[derive(Debug)]
pub struct MessageBuilder {
    provider: String,
    text: String,
    calls: Vec<PartialCall>,
    response_metadata: JsonObject,
    usage: Option<Value>,
}

#[derive(Debug, Default)]
struct PartialCall {
    index: usize,
    id: Option<String>,
    name: String,
    arguments: String,
    complete: Option<ToolCall>,
}

impl MessageBuilder {
    /// An empty answer from `provider` (named in errors).
    pub fn new(provider: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            text: String::new(),
            calls: Vec::new(),
            response_metadata: JsonObject::new(),
            usage: None,
        }
    }

    /// Takes in one delta.
    pub fn push(&mut self, delta: ModelDelta) {
        match delta {
            ModelDelta::Text(text) => self.text.push_str(&text),
            ModelDelta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                let call = match self
                    .calls
                    .iter_mut()
                    .position(|c| c.complete.is_none() && c.index == index)
                {
                    Some(at) => &mut self.calls[at],
                    None => {
                        self.calls.push(PartialCall {
                            index,
                            ..PartialCall::default()
                        });
                        let last = self.calls.len() - 1;
                        &mut self.calls[last]
                    }
                };
                if id.is_some() {
                    call.id = id;
                }
                if let Some(name) = name {
                    call.name.push_str(&name);
                }
                call.arguments.push_str(&arguments);
            }
            ModelDelta::CompleteToolCall(call) => {
                self.calls.push(PartialCall {
                    complete: Some(call),
                    ..PartialCall::default()
                });
            }
            ModelDelta::Metadata {
                response_metadata,
                usage,
            } => {
                self.response_metadata.extend(response_metadata);
                if usage.is_some() {
                    self.usage = usage;
                }
            }
        }
    }

    /// The finished message, or an error when a tool call's arguments are not a JSON object.
    pub fn finish(mut self) -> Result<Message, Error> {
        let partials = std::mem::take(&mut self.calls);
        let mut calls = Vec::with_capacity(partials.len());
        for partial in partials {
            if let Some(call) = partial.complete {
                calls.push(call);
                continue;
            }
            if partial.name.is_empty() {
                return Err(self.malformed(format!("tool call {} has no name", partial.index)));
            }
            let args = match partial.arguments.trim() {
                "" => JsonObject::new(),
                text => match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(args)) => args,
                    Ok(other) => {
                        return Err(self.malformed(format!(
                            "the arguments of tool call `{}` are not a JSON object: {other}",
                            partial.name
                        )));
                    }
                    Err(error) => {
                        return Err(self.malformed(format!(
                            "the arguments of tool call `{}` are not JSON ({error}): {text}",
                            partial.name
                        )));
                    }
                },
            };
            let id = partial
                .id
                .unwrap_or_else(|| format!("call_{}", uuid::Uuid::new_v4().simple()));
            calls.push(ToolCall::new(id, partial.name, args));
        }
        let mut message = Message::ai_with_tool_calls(self.text, calls);
        message.response_metadata = self.response_metadata;
        if let Some(usage) = self.usage {
            message.extra.insert("usage_metadata".into(), usage);
        }
        Ok(message)
    }

    fn malformed(&self, detail: String) -> Error {
        Error::MalformedResponse {
            provider: self.provider.clone(),
            detail,
        }
    }
}
