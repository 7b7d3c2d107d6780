//! A local HTTP server for provider tests: it answers a script of replies in order and
//! records every request (path, headers, JSON body) so tests can check what was sent.

// Each test file uses its own part of this module.
#![allow(dead_code, clippy::unwrap_used)]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use errand_protocol::{Message, MessageKind, ToolCall};
use errand_runtime::Error;
use errand_runtime::model::{
    ChatModel, MessageBuilder, ModelDelta, ModelRequest, ModelStream, ToolSpec,
};
use errand_runtime::providers::RetryConfig;
use futures::StreamExt;
use serde_json::Value;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// One scripted answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Never answer; report on the server's `dropped` channel when the handler is dropped.
    hang: bool,
}

impl Reply {
    /// A JSON answer.
    pub(crate) fn json(status: u16, body: &Value) -> Self {
        Self::raw(status, "application/json", body.to_string())
    }

    /// A `text/event-stream` answer, sent in small pieces so lines and JSON are split.
    pub(crate) fn sse(text: &str) -> Self {
        Self::raw(200, "text/event-stream", text)
    }

    /// Any answer.
    pub(crate) fn raw(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
            hang: false,
        }
    }

    /// An answer that never comes.
    pub(crate) fn hang() -> Self {
        Self {
            hang: true,
            ..Self::raw(200, "application/json", "")
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

#[derive(Clone)]
struct Shared {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    dropped: mpsc::UnboundedSender<()>,
}

/// The running server.
#[derive(Debug)]
pub(crate) struct MockServer {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    dropped: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
}

impl MockServer {
    /// Starts a server that answers `replies` in order (and 500 once they run out).
    pub(crate) async fn start(replies: impl IntoIterator<Item = Reply>) -> Self {
        let (dropped, dropped_rx) = mpsc::unbounded_channel();
        let shared = Shared {
            replies: Arc::new(Mutex::new(replies.into_iter().collect())),
            requests: Arc::new(Mutex::new(Vec::new())),
            dropped,
        };
        let requests = Arc::clone(&shared.requests);
        let app = axum::Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free local port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("the server runs") });
        Self {
            url,
            requests,
            dropped: tokio::sync::Mutex::new(dropped_rx),
        }
    }

    /// Every request so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("unpoisoned").clone()
    }

    /// The JSON bodies of every request so far.
    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.requests().into_iter().map(|r| r.body).collect()
    }

    /// Waits until the handler of a hanging reply was dropped (its client went away).
    pub(crate) async fn hung_request_dropped(&self) {
        self.dropped
            .lock()
            .await
            .recv()
            .await
            .expect("the server is running");
    }
}

struct DropSignal(mpsc::UnboundedSender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

async fn handle(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.requests.lock().expect("unpoisoned").push(Recorded {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let reply = shared.replies.lock().expect("unpoisoned").pop_front();
    let Some(reply) = reply else {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from("the test script has no more replies"))
            .expect("a valid response");
    };
    if reply.hang {
        let _signal = DropSignal(shared.dropped.clone());
        std::future::pending::<()>().await;
    }
    let mut response = Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = reply
        .body
        .chunks(23)
        .map(|piece| Ok(piece.to_vec()))
        .collect();
    response
        .body(Body::from_stream(futures::stream::iter(pieces)))
        .expect("a valid response")
}

/// Retries that wait a millisecond at most, so tests never sleep for long.
pub(crate) fn fast_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        max_retry_after: Duration::from_millis(1),
    }
}

/// Every delta of a stream, and the message a [`MessageBuilder`] builds from them (or the
/// first error).
pub(crate) async fn collect(
    provider: &str,
    mut stream: ModelStream,
) -> (Vec<ModelDelta>, Result<Message, Error>) {
    let mut deltas = Vec::new();
    let mut builder = MessageBuilder::new(provider);
    while let Some(delta) = stream.next().await {
        match delta {
            Ok(delta) => {
                deltas.push(delta.clone());
                builder.push(delta);
            }
            Err(error) => return (deltas, Err(error)),
        }
    }
    (deltas, builder.finish())
}

/// [`collect`] of `model`'s stream of `request`, which must start.
pub(crate) async fn streamed(
    model: &dyn ChatModel,
    request: &ModelRequest,
) -> (Vec<ModelDelta>, Result<Message, Error>) {
    let stream = model.stream(request).await.unwrap();
    collect(model.provider(), stream).await
}

/// An SSE body in the framing providers use: `event:` and `data:` lines, LF line ends.
pub(crate) fn sse_body(events: &[(Option<&str>, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| match name {
            Some(name) => format!("event: {name}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        })
        .collect()
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct City {
    /// The city.
    city: String,
}

/// The agent loop both providers are checked with: a weather bot asked about Oslo calls its
/// tool once (call `call_id`), reads the answer and replies. The final state, checked for the
/// parts every provider shares.
pub(crate) async fn weather_conversation(
    model: Arc<dyn errand_runtime::model::ChatModel>,
    call_id: &str,
) -> errand_runtime::agent::AgentState {
    use errand_runtime::agent::{Agent, AgentState, RunContext};
    use errand_runtime::tool::FunctionTool;
    let agent = Agent::builder(model)
        .system_prompt("You are a weather bot.")
        .tool(FunctionTool::new(
            "get_weather",
            "The weather in a city now.",
            |args: City, _| async move { Ok(format!("3 C in {}", args.city).into()) },
        ))
        .build()
        .unwrap();
    let state = agent
        .run(
            AgentState::default(),
            vec![Message::human("Weather in Oslo?")],
            &RunContext::detached(),
        )
        .await
        .unwrap();
    let seen: Vec<_> = state
        .messages
        .iter()
        .map(|m| (m.kind.clone(), m.text().into_owned()))
        .collect();
    assert_eq!(
        seen,
        [
            (MessageKind::Human, "Weather in Oslo?".to_owned()),
            (MessageKind::Ai, String::new()),
            (MessageKind::Tool, "3 C in Oslo".to_owned()),
            (MessageKind::Ai, "It is 3 C in Oslo.".to_owned()),
        ]
    );
    let args = serde_json::json!({"city": "Oslo"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        state.messages[1].tool_calls(),
        [ToolCall::new(call_id, "get_weather", args)]
    );
    assert_eq!(state.messages[2].tool_call_id.as_deref(), Some(call_id));
    state
}

/// The tool the provider tests offer: the weather in a city.
pub(crate) fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "The weather in a city now.".into(),
        parameters: serde_json::json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }),
    }
}

/// Tool-call arguments from a JSON object.
pub(crate) fn args(value: &Value) -> errand_protocol::JsonObject {
    value.as_object().cloned().expect("an object")
}

/// A request of the weather bot: its system prompt and [`weather_tool`], with `messages`.
pub(crate) fn weather_request(messages: Vec<Message>) -> ModelRequest {
    ModelRequest {
        system: Some("You are a weather bot.".into()),
        messages,
        tools: vec![weather_tool()],
        ..ModelRequest::default()
    }
}

/// The one-message request most error tests send.
pub(crate) fn hi() -> ModelRequest {
    ModelRequest::new(vec![Message::human("Hi")])
}

/// The conversation up to the question that makes the model call the tool for two cities.
pub(crate) fn weather_question() -> Vec<Message> {
    vec![
        Message::human("Hi"),
        Message::ai("Hello! How can I help?"),
        Message::human("Weather in Paris and Rome?"),
    ]
}

/// [`weather_question`], the model's `call` and the results of its two calls (`ids`).
pub(crate) fn history_with_results(call: &Message, ids: [&str; 2]) -> Vec<Message> {
    let mut history = weather_question();
    history.push(call.clone());
    history.push(Message::tool(ids[0], "18 C, sunny"));
    history.push(Message::tool(ids[1], "24 C, clear"));
    history
}

/// Checks the answer to [`weather_question`]: some text and a call for Paris and one for
/// Rome, with the call ids `ids`. The provider's metadata is the caller's to check.
pub(crate) fn assert_weather_calls(message: &Message, ids: [&str; 2]) {
    assert_eq!(message.kind, MessageKind::Ai);
    assert_eq!(message.text(), "Let me check.");
    assert_eq!(
        message.tool_calls(),
        [
            ToolCall::new(
                ids[0],
                "get_weather",
                args(&serde_json::json!({"city": "Paris"}))
            ),
            ToolCall::new(
                ids[1],
                "get_weather",
                args(&serde_json::json!({"city": "Rome"}))
            ),
        ]
    );
}

/// The argument pieces streamed for the tool call at `index`, in order.
pub(crate) fn argument_pieces(deltas: &[ModelDelta], index: usize) -> Vec<&str> {
    deltas
        .iter()
        .filter_map(|delta| match delta {
            ModelDelta::ToolCall {
                index: at,
                arguments,
                ..
            } if *at == index => Some(arguments.as_str()),
            _ => None,
        })
        .collect()
}

/// Sends [`hi`] `completes` times whole and then `streams` times streamed, each answered by a
/// malformed reply: the details of the `MalformedResponse` errors, in order.
pub(crate) async fn malformed_details(
    model: &dyn ChatModel,
    completes: usize,
    streams: usize,
) -> Vec<String> {
    let request = hi();
    let mut details = Vec::new();
    for _ in 0..completes {
        match model.complete(&request).await.unwrap_err() {
            Error::MalformedResponse { provider, detail } => {
                assert_eq!(provider, model.provider());
                details.push(detail);
            }
            other => panic!("expected MalformedResponse, got {other:?}"),
        }
    }
    for _ in 0..streams {
        match streamed(model, &request).await.1.unwrap_err() {
            Error::MalformedResponse { detail, .. } => details.push(detail),
            other => panic!("expected MalformedResponse, got {other:?}"),
        }
    }
    details
}

/// Checks `error` is the rate limit of `provider`, asking to wait `retry_after`, with `detail`.
pub(crate) fn assert_rate_limited(
    error: Error,
    provider: &str,
    retry_after: Duration,
    detail: &str,
) {
    match error {
        Error::RateLimited {
            provider: named,
            retry_after: asked,
            detail: said,
        } => {
            assert_eq!(named, provider);
            assert_eq!(asked, Some(retry_after));
            assert_eq!(said, detail);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

/// Checks that the server got two requests and that the second (a retry) repeats the first.
pub(crate) fn assert_retried_once_the_same(server: &MockServer) {
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0], bodies[1], "the retry sends the same request");
}

/// Starts `call` against a [`Reply::hang`], drops it while the server still works on it (as a
/// cancelled run drops it), and checks the server saw the connection close.
pub(crate) async fn assert_a_dropped_call_closes_its_request<F: Future>(
    server: &MockServer,
    call: F,
) {
    let _ = tokio::time::timeout(Duration::from_millis(50), call).await;
    tokio::time::timeout(Duration::from_secs(10), server.hung_request_dropped())
        .await
        .expect("the server saw the connection close");
}

/// Streams [`hi`] twice from a server that answers first a stream that reports an error, then
/// one cut off before its end: the first must fail with the provider's `status` and a detail
/// containing `error_says`; the second must hand over `text_before_cut`, then fail as a
/// transport error naming `missing_end`, the end marker that never came.
pub(crate) async fn assert_a_stream_error_then_a_cut_stream(
    model: &dyn ChatModel,
    status: u16,
    error_says: &str,
    text_before_cut: &str,
    missing_end: &str,
) {
    let error = streamed(model, &hi()).await.1.unwrap_err();
    assert!(
        matches!(&error, Error::Provider { status: got, detail, .. }
            if *got == status && detail.contains(error_says)),
        "{error:?}"
    );
    let (deltas, result) = streamed(model, &hi()).await;
    assert_eq!(deltas, [ModelDelta::Text(text_before_cut.into())]);
    assert!(
        matches!(&result, Err(Error::Transport { detail, .. }) if detail.contains(missing_end)),
        "{result:?}"
    );
}
