//! The Anthropic provider against a local server that answers in the Messages API's wire
//! format, whole and streamed, with the request bodies checked.

#![cfg(feature = "anthropic")]
// The fixtures take `json!` values as they are written at the call.
#![allow(clippy::needless_pass_by_value)]

mod common;

use common::{
    MockServer, Reply, argument_pieces, assert_a_dropped_call_closes_its_request,
    assert_a_stream_error_then_a_cut_stream, assert_rate_limited, assert_retried_once_the_same,
    assert_weather_calls, fast_retry, hi, history_with_results, malformed_details, sse_body,
    streamed, weather_question, weather_request, weather_tool,
};
use errand_protocol::Message;
use errand_runtime::Error;
use errand_runtime::model::ChatModel;
use errand_runtime::providers::AnthropicModel;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const MODEL: &str = "claude-test";

fn model(server: &MockServer) -> AnthropicModel {
    AnthropicModel::new("test-key", MODEL)
        .with_base_url(&server.url)
        .with_retry(fast_retry(3))
}

fn answer(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-20250101",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {
            "input_tokens": 120,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 40
        }
    })
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// The body the API must get for the last turn: tool uses and their results, results merged
/// into one user turn.
fn expected_final_body(stream: bool) -> Value {
    let mut body = json!({
        "model": MODEL,
        "max_tokens": 4096,
        "system": "You are a weather bot.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello! How can I help?"}]},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18 C, sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "24 C, clear"},
            ]},
        ],
        "tools": [{
            "name": "get_weather",
            "description": "The weather in a city now.",
            "input_schema": weather_tool().parameters,
        }],
    });
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// [`assert_weather_calls`] with this provider's ids and metadata.
fn assert_tool_call_message(message: &Message) {
    assert_weather_calls(message, ["toolu_01", "toolu_02"]);
    assert_eq!(message.response_metadata["stop_reason"], "tool_use");
    assert_eq!(
        message.response_metadata["model_name"],
        "claude-test-20250101"
    );
    assert_eq!(message.response_metadata["model_provider"], "anthropic");
    assert_eq!(
        message.response_metadata["id"],
        "msg_01XFDUDYJgAACzvnptvVoYEL"
    );
}

#[tokio::test]
async fn tool_conversation_in_whole_answers() {
    let server = MockServer::start([
        Reply::json(
            200,
            &answer(
                json!([{"type": "text", "text": "Hello! How can I help?"}]),
                "end_turn",
            ),
        ),
        Reply::json(
            200,
            &answer(
                json!([
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"}},
                ]),
                "tool_use",
            ),
        ),
        Reply::json(
            200,
            &answer(
                json!([{"type": "text", "text": "Paris: 18 C, Rome: 24 C."}]),
                "end_turn",
            ),
        ),
    ])
    .await;
    let model = model(&server);

    let greeting = model
        .complete(&weather_request(vec![Message::human("Hi")]))
        .await
        .unwrap();
    assert_eq!(greeting.text(), "Hello! How can I help?");
    assert!(greeting.tool_calls().is_empty());
    assert_eq!(greeting.response_metadata["stop_reason"], "end_turn");
    assert_eq!(
        greeting.extra["usage_metadata"],
        json!({
            "input_tokens": 120, "output_tokens": 40, "total_tokens": 160,
            "input_token_details": {"cache_read": 0, "cache_creation": 0}
        })
    );

    let mut messages = weather_question();
    let call = model
        .complete(&weather_request(messages.clone()))
        .await
        .unwrap();
    assert_tool_call_message(&call);

    messages = history_with_results(&call, ["toolu_01", "toolu_02"]);
    let last = model.complete(&weather_request(messages)).await.unwrap();
    assert_eq!(last.text(), "Paris: 18 C, Rome: 24 C.");

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for recorded in &requests {
        assert_eq!(recorded.path, "/v1/messages");
        assert_eq!(recorded.headers["x-api-key"], "test-key");
        assert_eq!(recorded.headers["anthropic-version"], "2023-06-01");
    }
    assert_eq!(
        requests[0].body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    );
    assert_eq!(requests[2].body, expected_final_body(false));
}

/// The streamed form of the second answer above, as the API sends it: a ping, text in two
/// deltas, two tool uses whose input JSON is split across deltas, then the stop.
fn streamed_tool_call() -> String {
    let delta = |index: u32, delta: Value| {
        (
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        )
    };
    let json_piece = |index: u32, piece: &str| {
        delta(
            index,
            json!({"type": "input_json_delta", "partial_json": piece}),
        )
    };
    sse_body(&[
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
                "content": [], "model": "claude-test-20250101", "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": 120, "output_tokens": 1}
            }}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (Some("ping"), json!({"type": "ping"})),
        delta(0, json!({"type": "text_delta", "text": "Let me"})),
        delta(0, json!({"type": "text_delta", "text": " check."})),
        (
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}),
        ),
        json_piece(1, ""),
        json_piece(1, "{\"ci"),
        json_piece(1, "ty\": \"Par"),
        json_piece(1, "is\"}"),
        (
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {}}}),
        ),
        json_piece(2, "{\"city\":"),
        json_piece(2, " \"Rome\"}"),
        (
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 2}),
        ),
        (
            Some("message_delta"),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 40}}),
        ),
        (Some("message_stop"), json!({"type": "message_stop"})),
    ])
}

fn streamed_text(text: &str) -> String {
    sse_body(&[
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {
                "id": "msg_02", "type": "message", "role": "assistant", "content": [],
                "model": "claude-test-20250101", "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 200, "output_tokens": 1}
            }}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ),
        (
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            Some("message_delta"),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 12}}),
        ),
        (Some("message_stop"), json!({"type": "message_stop"})),
    ])
}

#[tokio::test]
async fn tool_conversation_streamed() {
    let server = MockServer::start([
        Reply::sse(&streamed_text("Hello! How can I help?")),
        Reply::sse(&streamed_tool_call()),
        Reply::sse(&streamed_text("Paris: 18 C, Rome: 24 C.")),
    ])
    .await;
    let model = model(&server);

    let (_, greeting) = streamed(&model, &weather_request(vec![Message::human("Hi")])).await;
    let greeting = greeting.unwrap();
    assert_eq!(greeting.text(), "Hello! How can I help?");
    assert_eq!(
        greeting.extra["usage_metadata"],
        json!({"input_tokens": 200, "output_tokens": 12, "total_tokens": 212})
    );

    let (deltas, call) = streamed(&model, &weather_request(weather_question())).await;
    let call = call.unwrap();
    assert_tool_call_message(&call);
    assert_eq!(
        call.extra["usage_metadata"],
        json!({"input_tokens": 120, "output_tokens": 40, "total_tokens": 160})
    );
    // The pieces arrive as pieces, for clients that show tool calls as they are written.
    let pieces = argument_pieces(&deltas, 1);
    assert_eq!(pieces, ["", "", "{\"ci", "ty\": \"Par", "is\"}"]);

    let (_, last) = streamed(
        &model,
        &weather_request(history_with_results(&call, ["toolu_01", "toolu_02"])),
    )
    .await;
    assert_eq!(last.unwrap().text(), "Paris: 18 C, Rome: 24 C.");

    let bodies = server.bodies();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[2], expected_final_body(true));
}

fn hello() -> Reply {
    Reply::json(
        200,
        &answer(json!([{"type": "text", "text": "Hello"}]), "end_turn"),
    )
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_wait_asked_for() {
    let server = MockServer::start([
        Reply::json(
            429,
            &error_body(
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            ),
        )
        .header("retry-after", "1"),
        hello(),
    ])
    .await;
    let answer = model(&server).complete(&hi()).await.unwrap();
    assert_eq!(answer.text(), "Hello");
    assert_retried_once_the_same(&server);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = MockServer::start([
        Reply::json(500, &error_body("api_error", "Internal server error")),
        Reply::json(529, &error_body("overloaded_error", "Overloaded")),
        Reply::raw(503, "text/html", "<html>Service Unavailable</html>"),
        Reply::sse(&streamed_text("Hello")),
    ])
    .await;
    let model = model(&server).with_retry(fast_retry(4));
    assert_eq!(streamed(&model, &hi()).await.1.unwrap().text(), "Hello");
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn a_rate_limit_that_outlasts_the_retries_is_rate_limited() {
    let limited = || {
        Reply::json(429, &error_body("rate_limit_error", "slow down")).header("retry-after", "7")
    };
    let server = MockServer::start([limited(), limited(), limited(), hello()]).await;
    let error = model(&server).complete(&hi()).await.unwrap_err();
    assert_rate_limited(
        error,
        "anthropic",
        Duration::from_secs(7),
        "rate_limit_error: slow down",
    );
    assert_eq!(server.requests().len(), 3, "three attempts, then the error");
}

#[tokio::test]
async fn a_refused_key_is_unauthorized_at_once() {
    let server = MockServer::start([
        Reply::json(
            401,
            &error_body("authentication_error", "invalid x-api-key"),
        ),
        hello(),
    ])
    .await;
    let error = model(&server).complete(&hi()).await.unwrap_err();
    assert_eq!(
        error,
        Error::Unauthorized {
            provider: "anthropic".into(),
            detail: "authentication_error: invalid x-api-key".into()
        }
    );
    assert_eq!(server.requests().len(), 1, "a refused key is not retried");
}

#[tokio::test]
async fn an_unknown_model_is_named() {
    let server = MockServer::start([Reply::json(
        404,
        &error_body("not_found_error", "model: claude-test"),
    )])
    .await;
    let error = model(&server).stream(&hi()).await.err().expect("an error");
    assert!(
        matches!(&error, Error::UnknownModel { model, detail, .. }
            if model == MODEL && detail.contains("model: claude-test")),
        "{error:?}"
    );
}

#[tokio::test]
async fn malformed_answers_are_clear_errors() {
    let not_json = Reply::raw(200, "application/json", "<html>oops</html>");
    let no_content = Reply::json(
        200,
        &json!({"id": "msg", "type": "message", "role": "assistant"}),
    );
    let bad_input = Reply::json(
        200,
        &answer(
            json!([{"type": "tool_use", "id": "t", "name": "get_weather", "input": "Paris"}]),
            "tool_use",
        ),
    );
    let bad_event = Reply::sse("event: message_start\ndata: {not json\n\n");
    let bad_stream_input = Reply::sse(&sse_body(&[
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "get_weather", "input": {}}}),
        ),
        (
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "[1, 2]"}}),
        ),
        (
            Some("message_delta"),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
        ),
        (Some("message_stop"), json!({"type": "message_stop"})),
    ]));
    let server =
        MockServer::start([not_json, no_content, bad_input, bad_event, bad_stream_input]).await;
    let model = model(&server);

    let details = malformed_details(&model, 3, 2).await;
    assert!(details[0].contains("not JSON"), "{}", details[0]);
    assert!(
        details[1].contains("missing field `content`"),
        "{}",
        details[1]
    );
    assert!(details[2].contains("not a JSON object"), "{}", details[2]);
    assert!(details[3].contains("streamed event"), "{}", details[3]);
    assert!(details[4].contains("not a JSON object"), "{}", details[4]);
}

#[tokio::test]
async fn stream_errors_and_cut_streams_are_errors() {
    let overloaded = sse_body(&[
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {"id": "m", "model": MODEL, "usage": {"input_tokens": 1}}}),
        ),
        (
            Some("error"),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    ]);
    let cut = streamed_text("Hello").replace("event: message_delta", "event: x-cut");
    let cut = &cut[..cut.find("event: x-cut").unwrap()];
    let server = MockServer::start([Reply::sse(&overloaded), Reply::sse(cut)]).await;
    assert_a_stream_error_then_a_cut_stream(
        &model(&server),
        529,
        "Overloaded",
        "Hello",
        "message_stop",
    )
    .await;
}

#[tokio::test]
async fn dropping_a_call_closes_its_request() {
    let server = MockServer::start([Reply::hang()]).await;
    let model = model(&server);
    assert_a_dropped_call_closes_its_request(&server, model.complete(&hi())).await;
}

#[tokio::test]
async fn the_agent_loop_runs_on_anthropic() {
    let call = sse_body(&[
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {"id": "msg_a", "type": "message", "role": "assistant", "content": [], "model": MODEL, "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 50, "output_tokens": 1}}}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}}}),
        ),
        (
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        ),
        (
            Some("content_block_delta"),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}}),
        ),
        (
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            Some("message_delta"),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 20}}),
        ),
        (Some("message_stop"), json!({"type": "message_stop"})),
    ]);
    let server = MockServer::start([
        Reply::sse(&call),
        Reply::sse(&streamed_text("It is 3 C in Oslo.")),
    ])
    .await;
    let state = common::weather_conversation(Arc::new(model(&server)), "toolu_9").await;
    assert_eq!(
        state.messages[3].response_metadata["stop_reason"],
        "end_turn"
    );

    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["system"], "You are a weather bot.");
    assert_eq!(bodies[0]["tools"][0]["name"], "get_weather");
    assert_eq!(
        bodies[0]["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert_eq!(
        bodies[1]["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_9", "content": "3 C in Oslo"},
            ]},
        ])
    );
}
