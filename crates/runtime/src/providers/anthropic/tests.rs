//! The Messages API request and answers, read and written without a server.

use super::answer::{stream_error, usage_metadata};
use super::request::content_blocks;
use super::wire::ApiError;
use super::*;
use crate::model::ToolSpec;
use crate::providers::http::WireFormat;
use errand_protocol::ToolCall;
use errand_protocol::{ContentBlock, JsonObject, Message, MessageContent};
use serde_json::{Value, json};

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
