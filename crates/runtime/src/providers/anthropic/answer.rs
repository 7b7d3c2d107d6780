//! Reading answers, whole or streamed, into the deltas a message is built from, and the
//! response and usage metadata LangChain writes beside them.

use super::wire::{Answer, AnswerBlock, ApiError, BlockDelta, Event, PROVIDER, StartedBlock};
use crate::Error;
use crate::model::ModelDelta;
use crate::providers::http::{self, EventDecoder};
use errand_protocol::JsonObject;
use serde_json::{Value, json};

/// The deltas that make up a whole answer.
pub(super) fn answer_deltas(model: &str, answer: Value) -> Result<Vec<ModelDelta>, Error> {
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
pub(super) fn usage_metadata(usage: &JsonObject) -> Option<Value> {
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

/// Reads the events of one streamed answer.
pub(crate) struct StreamDecoder {
    requested_model: String,
    summary: Option<Summary>,
    done: bool,
}

impl StreamDecoder {
    pub(super) fn new(model: &str) -> Self {
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
pub(super) fn stream_error(model: &str, error: &ApiError) -> Error {
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
