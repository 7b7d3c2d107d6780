//! `echo`: the LLM-free graph for tests, benchmarks and interop.
//!
//! It behaves as the Python peer's echo graph (`tests/interop/peer/echo_graph.py`), so the same
//! interop suite can run against both servers:
//!
//! - it adds the input messages to the thread's `messages` (by id, as `add_messages` does);
//! - it answers with an AI message `echo: <text of the last message>`;
//! - a last message starting with `sleep=<seconds>` makes it wait that long first, and a cancel
//!   stops the wait at once;
//! - a last message starting with `fail=<text>` makes it fail with `EchoError: <text>`.
//!
//! It streams what a one-node LangGraph graph streams: `values` after the input, the answer as
//! a `messages` chunk, `updates` from the `echo` node, and the final `values`.

use errand_protocol::{JsonObject, Message, MessageChunk, StreamPart};
use errand_runtime::{
    Error as RuntimeError, Graph, GraphOutput, GraphRun, add_messages, async_trait,
    messages_from_value,
};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::time::Duration;
use uuid::Uuid;

/// The echo graph, with no model: it adds the input messages to the thread's `messages` and
/// answers `echo: <text of the last message>`. A last message `sleep=<seconds> ...` waits that
/// long first (a cancel stops the wait), and `fail=<text>` fails with `EchoError: <text>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

/// The node name, as it appears in `updates` and message metadata.
const NODE: &str = "echo";

/// The longest `sleep=` honoured, so a typo cannot park a worker for years.
const MAX_SLEEP: Duration = Duration::from_secs(24 * 60 * 60);

/// What the last message asks of the graph.
#[derive(Debug, PartialEq)]
enum Instruction<'a> {
    Sleep(Duration),
    Fail(&'a str),
    Echo,
}

fn instruction(text: &str) -> Instruction<'_> {
    let text = text.trim_start();
    if let Some(message) = text.strip_prefix("fail=") {
        return Instruction::Fail(message);
    }
    let seconds = text
        .strip_prefix("sleep=")
        .map(|rest| {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            rest.get(..end).unwrap_or_default()
        })
        .and_then(|number| number.parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0);
    match seconds {
        // A number past what a Duration holds is taken as the longest sleep, not a panic.
        Some(seconds) => Instruction::Sleep(
            Duration::try_from_secs_f64(seconds).map_or(MAX_SLEEP, |sleep| sleep.min(MAX_SLEEP)),
        ),
        None => Instruction::Echo,
    }
}

/// The text of the last message, borrowed where it can be.
fn last_text(messages: &[Message]) -> Cow<'_, str> {
    messages.last().map(Message::text).unwrap_or_default()
}

/// The state: `rest` with `messages` put back.
fn state_with_messages(mut rest: JsonObject, messages: &[Message]) -> Result<Value, RuntimeError> {
    let encoded = serde_json::to_value(messages)
        .map_err(|error| RuntimeError::failed("EchoError", error.to_string()))?;
    rest.insert("messages".into(), encoded);
    Ok(Value::Object(rest))
}

#[async_trait]
impl Graph for Echo {
    async fn invoke(&self, run: GraphRun) -> Result<GraphOutput, RuntimeError> {
        // Take the run apart so that while it sleeps it holds its messages once and nothing
        // it does not need (a server may hold thousands of sleeping runs).
        let GraphRun {
            run_id,
            thread_id,
            graph_id,
            input,
            values,
            cancel,
            events,
            ..
        } = run;
        let invalid = |error: errand_protocol::ProtocolError| {
            RuntimeError::failed("InvalidUpdateError", error.to_string())
        };
        let mut messages = messages_from_value(&values).map_err(invalid)?;
        if let Some(input) = &input {
            add_messages(&mut messages, messages_from_value(input).map_err(invalid)?);
        }
        drop(input);
        // The other keys of the state, kept as they were.
        let mut rest = match values {
            Value::Object(mut object) => {
                object.remove("messages");
                object
            }
            _ => JsonObject::new(),
        };
        events.emit(StreamPart::Values(state_with_messages(
            rest.clone(),
            &messages,
        )?));

        // The last message is read where it is, not copied: a sleeping run holds its text once.
        let sleep = match instruction(&last_text(&messages)) {
            Instruction::Fail(message) => return Err(RuntimeError::failed("EchoError", message)),
            Instruction::Sleep(duration) => Some(duration),
            Instruction::Echo => None,
        };
        if let Some(duration) = sleep {
            tokio::select! {
                () = tokio::time::sleep(duration) => {}
                () = cancel.cancelled() => return Err(RuntimeError::Cancelled),
            }
        }
        if cancel.is_cancelled() {
            return Err(RuntimeError::Cancelled);
        }

        let answer = Message::ai(format!("echo: {}", last_text(&messages)))
            .with_id(Uuid::new_v4().to_string());
        let mut metadata = JsonObject::new();
        metadata.insert("graph_id".into(), Value::from(graph_id));
        metadata.insert("thread_id".into(), Value::from(thread_id.to_string()));
        metadata.insert("run_id".into(), Value::from(run_id.to_string()));
        metadata.insert("langgraph_step".into(), Value::from(1));
        metadata.insert("langgraph_node".into(), Value::from(NODE));
        events.emit(StreamPart::Messages(Box::new(MessageChunk(
            answer.clone(),
            metadata,
        ))));
        events.emit(StreamPart::Updates(
            json!({ NODE: { "messages": [&answer] } }),
        ));

        add_messages(&mut messages, vec![answer]);
        let state = state_with_messages(std::mem::take(&mut rest), &messages)?;
        events.emit(StreamPart::Values(state.clone()));
        Ok(GraphOutput::finished(state))
    }

    fn description(&self) -> Option<&str> {
        Some("Echoes the last message; `sleep=<seconds>` waits first, `fail=<text>` fails.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_runtime::EventSink;
    use std::sync::{Arc, Mutex};
    use tokio_util::sync::CancellationToken;

    fn run_on(
        values: Value,
        text: &str,
        cancel: CancellationToken,
    ) -> (GraphRun, Arc<Mutex<Vec<StreamPart>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let seen = Arc::clone(&seen);
            EventSink::new(move |part| seen.lock().unwrap().push(part))
        };
        let run = GraphRun {
            run_id: Uuid::now_v7(),
            thread_id: Uuid::now_v7(),
            graph_id: "echo".into(),
            input: Some(json!({"messages": [{"role": "user", "content": text}]})),
            command: None,
            values,
            config: JsonObject::new(),
            cancel,
            events: sink,
        };
        (run, seen)
    }

    #[test]
    fn reads_instructions() {
        assert_eq!(
            instruction("sleep=1.5 then talk"),
            Instruction::Sleep(Duration::from_millis(1500))
        );
        assert_eq!(instruction("fail=boom"), Instruction::Fail("boom"));
        assert_eq!(instruction("sleep=abc"), Instruction::Echo);
        assert_eq!(instruction("hello"), Instruction::Echo);
        // A sleep past what a Duration holds is the longest sleep (it panicked).
        assert_eq!(
            instruction(&format!("sleep=1{}", "0".repeat(20))),
            Instruction::Sleep(MAX_SLEEP)
        );
    }

    #[tokio::test]
    async fn echoes_after_the_history_and_streams_each_step() {
        let history = json!({"messages": [{"type": "human", "content": "earlier", "id": "h1"}]});
        let (run, seen) = run_on(history, "hi", CancellationToken::new());
        let output = Echo.invoke(run).await.unwrap();
        let messages = output.values["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1]["type"], "human");
        assert_eq!(messages[2]["type"], "ai");
        assert_eq!(messages[2]["content"], "echo: hi");
        let names: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.event_name().to_owned())
            .collect();
        assert_eq!(names, ["values", "messages", "updates", "values"]);
    }

    #[tokio::test]
    async fn fails_on_request() {
        let (run, _) = run_on(Value::Null, "fail=no luck", CancellationToken::new());
        assert_eq!(
            Echo.invoke(run).await.unwrap_err(),
            RuntimeError::failed("EchoError", "no luck")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_stops_the_sleep() {
        let cancel = CancellationToken::new();
        let (run, _) = run_on(Value::Null, "sleep=3600", cancel.clone());
        let task = tokio::spawn(Echo.invoke(run));
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
        assert_eq!(task.await.unwrap().unwrap_err(), RuntimeError::Cancelled);
    }
}
