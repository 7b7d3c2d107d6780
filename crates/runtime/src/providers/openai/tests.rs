//! The Chat Completions request and answers, read and written without a server.

use super::answer::{StreamDecoder, stream_error};
use super::*;
use crate::model::{MessageBuilder, ToolSpec};
use crate::providers::http::EventDecoder;
use crate::providers::http::WireFormat;
use errand_protocol::Message;
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
