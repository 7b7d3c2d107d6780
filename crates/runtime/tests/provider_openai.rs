//! The OpenAI-compatible provider against a local server that answers in the Chat Completions
//! wire format, whole and streamed, with the request bodies checked.

#![cfg(feature = "openai")]
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
use errand_runtime::model::{ChatModel, ModelRequest, ModelSettings};
use errand_runtime::providers::OpenAiModel;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const MODEL: &str = "gpt-test";

fn model(server: &MockServer) -> OpenAiModel {
    OpenAiModel::new(Some("sk-test".into()), MODEL)
        .with_base_url(format!("{}/v1", server.url))
        .with_retry(fast_retry(3))
}

fn completion(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_741_569_952,
        "model": "gpt-test-2025-01-01",
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason
        }],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 20,
            "total_tokens": 70,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_44709d6fcb"
    })
}

fn text_completion(text: &str) -> Value {
    completion(
        json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}),
        "stop",
    )
}

fn error_body(message: &str, kind: &str, code: Value) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// [`weather_request`] with settings, which OpenAI-compatible servers take as fields.
fn request(messages: Vec<Message>) -> ModelRequest {
    ModelRequest {
        settings: ModelSettings {
            max_tokens: Some(256),
            temperature: Some(0.0),
            stop: Vec::new(),
        },
        ..weather_request(messages)
    }
}

/// The body the API must get for the last turn.
fn expected_final_body(stream: bool) -> Value {
    let mut body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24 C, clear"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather",
            "description": "The weather in a city now.",
            "parameters": weather_tool().parameters,
        }}],
        // Not OpenAI's own URL, so the name every compatible server knows.
        "max_tokens": 256,
        "temperature": 0.0,
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// [`assert_weather_calls`] with this provider's ids and metadata.
fn assert_tool_call_message(message: &Message) {
    assert_weather_calls(message, ["call_1", "call_2"]);
    assert_eq!(message.response_metadata["finish_reason"], "tool_calls");
    assert_eq!(
        message.response_metadata["model_name"],
        "gpt-test-2025-01-01"
    );
    assert_eq!(message.response_metadata["model_provider"], "openai");
    assert_eq!(
        message.response_metadata["system_fingerprint"],
        "fp_44709d6fcb"
    );
    assert_eq!(
        message.extra["usage_metadata"],
        json!({
            "input_tokens": 50, "output_tokens": 20, "total_tokens": 70,
            "input_token_details": {"cache_read": 0},
            "output_token_details": {"reasoning": 0}
        })
    );
}

#[tokio::test]
async fn tool_conversation_in_whole_answers() {
    let server = MockServer::start([
        Reply::json(200, &text_completion("Hello! How can I help?")),
        Reply::json(
            200,
            &completion(
                json!({
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
                    ],
                    "refusal": null,
                    "annotations": []
                }),
                "tool_calls",
            ),
        ),
        Reply::json(200, &text_completion("Paris: 18 C, Rome: 24 C.")),
    ])
    .await;
    let model = model(&server);

    let greeting = model
        .complete(&request(vec![Message::human("Hi")]))
        .await
        .unwrap();
    assert_eq!(greeting.text(), "Hello! How can I help?");
    assert!(greeting.tool_calls().is_empty());
    assert_eq!(greeting.response_metadata["finish_reason"], "stop");
    assert_eq!(greeting.response_metadata["id"], "chatcmpl-123");

    let call = model.complete(&request(weather_question())).await.unwrap();
    assert_tool_call_message(&call);

    let last = model
        .complete(&request(history_with_results(&call, ["call_1", "call_2"])))
        .await
        .unwrap();
    assert_eq!(last.text(), "Paris: 18 C, Rome: 24 C.");

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for recorded in &requests {
        assert_eq!(recorded.path, "/v1/chat/completions");
        assert_eq!(recorded.headers["authorization"], "Bearer sk-test");
    }
    assert_eq!(
        requests[0].body["messages"],
        json!([
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Hi"},
        ])
    );
    assert_eq!(requests[2].body, expected_final_body(false));
}

fn chunk(delta: Value, finish_reason: Value) -> (Option<&'static str>, Value) {
    (
        None,
        json!({
            "id": "chatcmpl-456",
            "object": "chat.completion.chunk",
            "created": 1_741_569_952,
            "model": "gpt-test-2025-01-01",
            "service_tier": "default",
            "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
            "usage": null
        }),
    )
}

fn usage_chunk() -> (Option<&'static str>, Value) {
    (
        None,
        json!({
            "id": "chatcmpl-456",
            "object": "chat.completion.chunk",
            "created": 1_741_569_952,
            "model": "gpt-test-2025-01-01",
            "system_fingerprint": "fp_44709d6fcb",
            "choices": [],
            "usage": {
                "prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}
            }
        }),
    )
}

fn done() -> String {
    "data: [DONE]\n\n".to_owned()
}

fn arguments(index: u32, piece: &str) -> (Option<&'static str>, Value) {
    chunk(
        json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
        Value::Null,
    )
}

/// Two tool calls as OpenAI streams them: each call's id and name first, its arguments split
/// over the chunks after it, then the finish reason, the usage, and `[DONE]`.
fn streamed_tool_call() -> String {
    let start = |index: u32, id: &str| {
        chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        )
    };
    sse_body(&[
        chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
        ),
        chunk(json!({"content": "Let me"}), Value::Null),
        chunk(json!({"content": " check."}), Value::Null),
        start(0, "call_1"),
        arguments(0, "{\"ci"),
        arguments(0, "ty\": \"Pa"),
        arguments(0, "ris\"}"),
        start(1, "call_2"),
        arguments(1, "{\"city\""),
        arguments(1, ": \"Rome\"}"),
        chunk(json!({}), json!("tool_calls")),
        usage_chunk(),
    ]) + &done()
}

fn streamed_text(text: &str) -> String {
    sse_body(&[
        chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
        ),
        chunk(json!({"content": text}), Value::Null),
        chunk(json!({}), json!("stop")),
        usage_chunk(),
    ]) + &done()
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

    let greeting = streamed(&model, &request(vec![Message::human("Hi")]))
        .await
        .1
        .unwrap();
    assert_eq!(greeting.text(), "Hello! How can I help?");
    assert_eq!(greeting.response_metadata["finish_reason"], "stop");

    let (deltas, call) = streamed(&model, &request(weather_question())).await;
    let call = call.unwrap();
    assert_tool_call_message(&call);
    let pieces = argument_pieces(&deltas, 0);
    assert_eq!(pieces, ["", "{\"ci", "ty\": \"Pa", "ris\"}"]);

    let last = streamed(
        &model,
        &request(history_with_results(&call, ["call_1", "call_2"])),
    )
    .await
    .1
    .unwrap();
    assert_eq!(last.text(), "Paris: 18 C, Rome: 24 C.");

    let bodies = server.bodies();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[2], expected_final_body(true));
}

#[tokio::test]
async fn a_local_server_needs_no_key() {
    let server = MockServer::start([Reply::json(200, &text_completion("Hello"))]).await;
    let model = OpenAiModel::new(None, "llama3.1:8b").with_base_url(format!("{}/v1/", server.url));
    let answer = model.complete(&hi()).await.unwrap();
    assert_eq!(answer.text(), "Hello");
    let requests = server.requests();
    assert!(!requests[0].headers.contains_key("authorization"));
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(
        requests[0].body,
        json!({"model": "llama3.1:8b", "messages": [{"role": "user", "content": "Hi"}]})
    );
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_wait_asked_for() {
    let server = MockServer::start([
        Reply::json(
            429,
            &error_body(
                "Rate limit reached for gpt-test on requests per min (RPM)",
                "requests",
                json!("rate_limit_exceeded"),
            ),
        )
        .header("retry-after", "2")
        .header("retry-after-ms", "1500"),
        Reply::json(200, &text_completion("Hello")),
    ])
    .await;
    let answer = model(&server).complete(&hi()).await.unwrap();
    assert_eq!(answer.text(), "Hello");
    assert_retried_once_the_same(&server);
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = MockServer::start([
        Reply::json(
            500,
            &error_body(
                "The server had an error while processing your request.",
                "server_error",
                Value::Null,
            ),
        ),
        Reply::raw(503, "text/plain", "upstream connect error"),
        Reply::sse(&streamed_text("Hello")),
    ])
    .await;
    assert_eq!(
        streamed(&model(&server), &hi()).await.1.unwrap().text(),
        "Hello"
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_rate_limit_that_outlasts_the_retries_is_rate_limited() {
    let limited = || {
        Reply::json(
            429,
            &error_body(
                "You exceeded your current quota",
                "insufficient_quota",
                json!("insufficient_quota"),
            ),
        )
        .header("retry-after", "20")
    };
    let server = MockServer::start([limited(), limited(), limited()]).await;
    let error = model(&server).stream(&hi()).await.err().expect("an error");
    assert_rate_limited(
        error,
        "openai",
        Duration::from_secs(20),
        "insufficient_quota: You exceeded your current quota",
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_refused_key_is_unauthorized_at_once() {
    let server = MockServer::start([Reply::json(
        401,
        &error_body(
            "Incorrect API key provided: sk-test. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            json!("invalid_api_key"),
        ),
    )])
    .await;
    let error = model(&server).complete(&hi()).await.unwrap_err();
    assert!(
        matches!(&error, Error::Unauthorized { provider, detail }
            if provider == "openai" && detail.contains("Incorrect API key")),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_unknown_model_is_named() {
    let server = MockServer::start([
        // OpenAI.
        Reply::json(
            404,
            &error_body(
                "The model `gpt-test` does not exist or you do not have access to it.",
                "invalid_request_error",
                json!("model_not_found"),
            ),
        ),
        // Ollama answers 404 too, in its own words.
        Reply::json(
            404,
            &json!({"error": {"message": "model \"gpt-test\" not found, try pulling it first", "type": "api_error", "param": null, "code": null}}),
        ),
        // vLLM.
        Reply::json(
            400,
            &json!({"object": "error", "message": "The model `gpt-test` does not exist.", "type": "NotFoundError", "param": null, "code": 404}),
        ),
    ])
    .await;
    let model = model(&server);
    for _ in 0..3 {
        let error = model.complete(&hi()).await.unwrap_err();
        assert!(
            matches!(&error, Error::UnknownModel { model, .. } if model == MODEL),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn malformed_answers_are_clear_errors() {
    let not_json = Reply::raw(200, "application/json", "Bad Gateway");
    let no_choices = Reply::json(
        200,
        &json!({"id": "chatcmpl-1", "object": "chat.completion"}),
    );
    let empty_choices = Reply::json(200, &json!({"id": "chatcmpl-1", "choices": []}));
    let bad_arguments = Reply::json(
        200,
        &completion(
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": "}}
            ]}),
            "tool_calls",
        ),
    );
    let bad_chunk = Reply::sse("data: {\"choices\": [\n\n");
    let array_arguments = Reply::sse(
        &(sse_body(&[
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "[\"Pa"}}]}),
                Value::Null,
            ),
            arguments(0, "ris\"]"),
            chunk(json!({}), json!("tool_calls")),
        ]) + &done()),
    );
    let server = MockServer::start([
        not_json,
        no_choices,
        empty_choices,
        bad_arguments,
        bad_chunk,
        array_arguments,
    ])
    .await;
    let model = model(&server);

    let details = malformed_details(&model, 4, 2).await;
    assert!(details[0].contains("not JSON"), "{}", details[0]);
    assert!(
        details[1].contains("missing field `choices`"),
        "{}",
        details[1]
    );
    assert!(details[2].contains("no choices"), "{}", details[2]);
    assert!(details[3].contains("not JSON"), "{}", details[3]);
    assert!(details[4].contains("streamed event"), "{}", details[4]);
    assert!(details[5].contains("not a JSON object"), "{}", details[5]);
}

#[tokio::test]
async fn stream_errors_and_cut_streams_are_errors() {
    let failed = sse_body(&[
        chunk(json!({"content": "Hel"}), Value::Null),
        (
            None,
            json!({"error": {"message": "The server had an error", "type": "server_error", "code": null}}),
        ),
    ]);
    let cut = sse_body(&[chunk(json!({"content": "Hel"}), Value::Null)]);
    let server = MockServer::start([Reply::sse(&failed), Reply::sse(&cut)]).await;
    assert_a_stream_error_then_a_cut_stream(
        &model(&server),
        500,
        "server had an error",
        "Hel",
        "[DONE]",
    )
    .await;
}

#[tokio::test]
async fn dropping_a_stream_call_closes_its_request() {
    let server = MockServer::start([Reply::hang()]).await;
    let model = model(&server);
    assert_a_dropped_call_closes_its_request(&server, model.stream(&hi())).await;
}

#[tokio::test]
async fn the_agent_loop_runs_on_openai() {
    let call = sse_body(&[
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        arguments(0, "{\"city\":"),
        arguments(0, " \"Oslo\"}"),
        chunk(json!({}), json!("tool_calls")),
        usage_chunk(),
    ]) + &done();
    let server = MockServer::start([
        Reply::sse(&call),
        Reply::sse(&streamed_text("It is 3 C in Oslo.")),
    ])
    .await;
    let state = common::weather_conversation(Arc::new(model(&server)), "call_9").await;
    assert_eq!(state.messages[3].response_metadata["finish_reason"], "stop");

    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        bodies[1]["messages"],
        json!([
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_9", "content": "3 C in Oslo"},
        ])
    );
}
