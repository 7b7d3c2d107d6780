//! The agent loop on the Scripted model: tools in parallel, failures the model can read,
//! the step limit, cancellation, middleware hooks, and summarisation.

// Helpers here run only inside tests: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "scripted")]

use errand_protocol::{JsonObject, Message, MessageKind, StreamPart};
use errand_runtime::agent::{Agent, AgentState, Channel, RunContext};
use errand_runtime::hooks::{Middleware, SUMMARY_PREFIX, Summarization, ToolNext};
use errand_runtime::model::{ModelRequest, ScriptedModel, Turn};
use errand_runtime::tool::{FunctionTool, ToolContext, ToolOutput};
use errand_runtime::{Error, EventSink, async_trait};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Barrier;

#[derive(Deserialize, JsonSchema)]
struct Lookup {
    /// What to look up.
    topic: String,
}

/// A lookup tool that only answers once `parties` calls are in flight together, so a loop that
/// ran calls one after another would never get past the first.
fn rendezvous_tool(parties: usize) -> FunctionTool<Lookup> {
    let barrier = Arc::new(Barrier::new(parties));
    FunctionTool::new("lookup", "Looks a topic up.", move |args: Lookup, _| {
        let barrier = Arc::clone(&barrier);
        async move {
            barrier.wait().await;
            Ok(format!("facts about {}", args.topic).into())
        }
    })
}

/// A tool named `slow` that says when it has started, then runs until its run is cancelled.
fn slow_tool(started: &Arc<tokio::sync::Notify>) -> FunctionTool<Lookup> {
    let started = Arc::clone(started);
    FunctionTool::new(
        "slow",
        "Takes forever.",
        move |_: Lookup, context: ToolContext| {
            let started = Arc::clone(&started);
            async move {
                started.notify_one();
                // A well-behaved long tool watches its token; the loop drops it anyway.
                context.cancel.cancelled().await;
                Ok(ToolOutput::text("stopped"))
            }
        },
    )
}

/// Cancels `cancel` once `started` is notified (a [`slow_tool`] call has begun), and answers
/// what the run in `task` ended with, for at most 30 s.
async fn cancelled_once_started<T>(
    started: &tokio::sync::Notify,
    cancel: &tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<T>,
) -> T {
    started.notified().await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
}

fn failing_tool() -> FunctionTool<Lookup> {
    FunctionTool::new("flaky", "Always fails.", |args: Lookup, _| async move {
        Err(Error::failed(
            "ToolException",
            format!("the {} service is down", args.topic),
        ))
    })
}

fn texts(state: &AgentState) -> Vec<(MessageKind, String)> {
    state
        .messages
        .iter()
        .map(|m| (m.kind.clone(), m.text().into_owned()))
        .collect()
}

fn recording_context() -> (RunContext, Arc<Mutex<Vec<StreamPart>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let mut run = RunContext::detached();
    run.events = EventSink::new(move |part| sink.lock().unwrap().push(part));
    (run, events)
}

#[tokio::test]
async fn parallel_tool_calls_run_together_and_the_model_sees_every_answer() {
    let model = ScriptedModel::new([
        Turn::tool_calls([
            ("lookup", json!({"topic": "rust"})),
            ("lookup", json!({"topic": "tokio"})),
            ("lookup", json!({"topic": "serde"})),
        ]),
        Turn::text("Rust, tokio and serde, summarised."),
    ]);
    let agent = Agent::builder(Arc::new(model.clone()))
        .system_prompt("You research.")
        .tool(rendezvous_tool(3))
        .build()
        .unwrap();
    let (run, events) = recording_context();
    let state = tokio::time::timeout(
        Duration::from_secs(30),
        agent.run(
            AgentState::default(),
            vec![Message::human("research")],
            &run,
        ),
    )
    .await
    .expect("three calls waiting on each other finish only when run together")
    .unwrap();

    let kinds: Vec<_> = texts(&state).into_iter().map(|(kind, _)| kind).collect();
    use MessageKind::{Ai, Human, Tool};
    assert_eq!(kinds, [Human, Ai, Tool, Tool, Tool, Ai]);
    // Tool answers come back in the order of the calls, each naming its call.
    let calls = state.messages[1].tool_calls().to_vec();
    for (call, answer) in calls.iter().zip(&state.messages[2..5]) {
        assert_eq!(answer.tool_call_id, call.id);
        assert_eq!(
            answer.text(),
            format!("facts about {}", call.args["topic"].as_str().unwrap())
        );
    }
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].system.as_deref(), Some("You research."));
    assert_eq!(requests[0].tools[0].name, "lookup");
    assert_eq!(
        requests[0].tools[0].parameters["required"],
        json!(["topic"])
    );
    assert_eq!(requests[1].messages.len(), 5);

    // What a server streams: values first and after each node, updates per node, and the
    // final answer as chunks with one id.
    let events = events.lock().unwrap();
    let names: Vec<_> = events.iter().map(StreamPart::event_name).collect();
    assert_eq!(names.first(), Some(&"values"));
    assert_eq!(names.iter().filter(|n| **n == "updates").count(), 3);
    let chunk_ids: Vec<_> = events
        .iter()
        .filter_map(|part| match part {
            StreamPart::Messages(chunk) => Some(chunk.0.id.clone()),
            _ => None,
        })
        .collect();
    let final_id = state.messages[5].id.clone();
    assert!(
        chunk_ids.iter().filter(|id| **id == final_id).count() > 1,
        "{chunk_ids:?}"
    );
    match events.last() {
        Some(StreamPart::Values(values)) => {
            assert_eq!(values["messages"].as_array().unwrap().len(), 6);
        }
        other => panic!("the last event should be the final values, not {other:?}"),
    }
}

#[tokio::test]
async fn failures_and_misfits_answer_the_model_and_the_loop_goes_on() {
    let model = ScriptedModel::new([
        Turn::tool_calls([
            ("flaky", json!({"topic": "weather"})),
            ("lookup", json!({"topic": 42})),
            ("lookup", json!({})),
            ("teleport", json!({"to": "mars"})),
        ]),
        Turn::text("Everything failed; here is what I know anyway."),
    ]);
    let agent = Agent::builder(Arc::new(model.clone()))
        .tool(failing_tool())
        .tool(rendezvous_tool(1))
        .build()
        .unwrap();
    let state = agent
        .run(
            AgentState::default(),
            vec![Message::human("go")],
            &RunContext::detached(),
        )
        .await
        .unwrap();
    let answers: Vec<_> = state.messages[2..6]
        .iter()
        .map(|m| m.text().into_owned())
        .collect();
    assert!(
        answers[0].contains("the weather service is down"),
        "{answers:?}"
    );
    assert!(
        answers[1].contains("`topic` must be a string, not a number"),
        "{answers:?}"
    );
    assert!(answers[2].contains("`topic` is required"), "{answers:?}");
    assert!(
        answers[3].contains("`teleport` is not a valid tool"),
        "{answers:?}"
    );
    assert!(answers[3].contains("flaky, lookup"), "{answers:?}");
    for answer in &state.messages[2..6] {
        assert_eq!(answer.extra["status"], "error");
    }
    assert_eq!(
        state.messages[6].text(),
        "Everything failed; here is what I know anyway."
    );
    // The model was asked again with the four error answers.
    assert_eq!(model.requests()[1].messages.len(), 6);
}

#[tokio::test]
async fn the_step_limit_ends_a_model_that_never_stops_calling_tools() {
    let model = ScriptedModel::responder(|_| Turn::tool_call("lookup", json!({"topic": "more"})));
    let agent = Agent::builder(Arc::new(model.clone()))
        .tool(rendezvous_tool(1))
        .max_steps(3)
        .build()
        .unwrap();
    let error = agent
        .run(
            AgentState::default(),
            vec![Message::human("loop")],
            &RunContext::detached(),
        )
        .await
        .unwrap_err();
    assert_eq!(error, Error::StepLimit { steps: 3 });
    assert_eq!(error.kind(), "GraphRecursionError");
    assert_eq!(model.requests().len(), 3);
}

#[tokio::test]
async fn cancelling_during_a_model_call_stops_the_run() {
    let model = ScriptedModel::new([Turn::text("too late").after(Duration::from_secs(600))]);
    let agent = Agent::builder(Arc::new(model.clone())).build().unwrap();
    let run = RunContext::detached();
    let cancel = run.cancel.clone();
    let task = tokio::spawn(async move {
        agent
            .run(AgentState::default(), vec![Message::human("hi")], &run)
            .await
    });
    while model.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.unwrap_err(), Error::Cancelled);
}

#[tokio::test]
async fn cancelling_during_a_tool_call_stops_the_tool_and_the_run() {
    let started = Arc::new(tokio::sync::Notify::new());
    let tool = slow_tool(&started);
    let model = ScriptedModel::new([
        Turn::tool_call("slow", json!({"topic": "x"})),
        Turn::text("never asked"),
    ]);
    let agent = Agent::builder(Arc::new(model.clone()))
        .tool(tool)
        .build()
        .unwrap();
    let run = RunContext::detached();
    let cancel = run.cancel.clone();
    let task = tokio::spawn(async move {
        agent
            .run(AgentState::default(), vec![Message::human("hi")], &run)
            .await
    });
    let result = cancelled_once_started(&started, &cancel, task).await;
    assert_eq!(result.unwrap_err(), Error::Cancelled);
    assert_eq!(
        model.requests().len(),
        1,
        "the model is not asked again after a cancel"
    );
}

/// A middleware that uses every hook: a channel, a tool writing to it, a prompt addition, a
/// tool-call wrapper, a notice before the model and a mark after the run.
#[derive(Debug)]
struct Notes;

#[derive(Deserialize, JsonSchema)]
struct Note {
    /// The note's key.
    key: String,
    /// Its text.
    text: String,
}

#[async_trait]
impl Middleware for Notes {
    fn name(&self) -> &str {
        "notes"
    }

    fn tools(&self) -> Vec<errand_runtime::tool::SharedTool> {
        vec![Arc::new(FunctionTool::new(
            "note",
            "Keeps a note.",
            |note: Note, _| async move {
                Ok(ToolOutput::text("noted").with_update("notes", json!({ note.key: note.text })))
            },
        ))]
    }

    fn channels(&self) -> Vec<Channel> {
        vec![Channel::merge_by_key("notes")]
    }

    async fn before_model(&self, state: &mut AgentState, _: &RunContext) -> Result<(), Error> {
        let count = state
            .channels
            .get("notes")
            .and_then(Value::as_object)
            .map_or(0, JsonObject::len);
        state
            .messages
            .push(Message::human(format!("[{count} notes kept]")));
        Ok(())
    }

    async fn modify_request(
        &self,
        request: &mut ModelRequest,
        _: &AgentState,
    ) -> Result<(), Error> {
        request.append_system("Keep notes.");
        Ok(())
    }

    async fn around_tool(
        &self,
        call: &errand_protocol::ToolCall,
        context: ToolContext,
        next: ToolNext<'_>,
    ) -> Result<ToolOutput, Error> {
        let mut output = next.run(call, context).await?;
        output.content = format!("{} (via middleware)", output.content);
        Ok(output)
    }

    async fn after_run(&self, state: &mut AgentState, _: &RunContext) -> Result<(), Error> {
        state.channels.insert("finished".into(), Value::Bool(true));
        Ok(())
    }
}

#[tokio::test]
async fn middleware_hooks_tools_and_channels_shape_the_run() {
    let model = ScriptedModel::new([
        Turn::tool_calls([
            ("note", json!({"key": "a", "text": "first"})),
            ("note", json!({"key": "b", "text": "second"})),
        ]),
        Turn::text("done"),
    ]);
    let agent = Agent::builder(Arc::new(model.clone()))
        .system_prompt("Base.")
        .middleware(Notes)
        .build()
        .unwrap();
    let state = agent
        .run(
            AgentState::default(),
            vec![Message::human("note two things")],
            &RunContext::detached(),
        )
        .await
        .unwrap();
    assert_eq!(
        state.channels["notes"],
        json!({"a": "first", "b": "second"})
    );
    assert_eq!(state.channels["finished"], true);
    let requests = model.requests();
    assert_eq!(requests[0].system.as_deref(), Some("Base.\n\nKeep notes."));
    assert_eq!(
        requests[0].messages.last().unwrap().text(),
        "[0 notes kept]"
    );
    assert_eq!(
        requests[1].messages.last().unwrap().text(),
        "[2 notes kept]"
    );
    assert!(
        requests[1]
            .messages
            .iter()
            .any(|m| m.text() == "noted (via middleware)")
    );

    let duplicate = Agent::builder(Arc::new(ScriptedModel::new([])))
        .middleware(Notes)
        .middleware(Notes)
        .build();
    assert!(matches!(duplicate, Err(Error::Config(_))));
}

#[tokio::test]
async fn summarisation_keeps_channels_and_the_latest_turns_and_the_conversation_goes_on() {
    let summarizer = ScriptedModel::new([Turn::text("The user asked about rust and tokio.")]);
    let model = ScriptedModel::new([Turn::text("Noted, carrying on.")]);
    let agent = Agent::builder(Arc::new(model.clone()))
        .middleware(Summarization::new(Arc::new(summarizer.clone()), 200).keep_last(3))
        .build()
        .unwrap();
    let long = "word ".repeat(100);
    let mut history = Vec::new();
    for turn in 0..6 {
        history.push(Message::human(format!("question {turn}: {long}")));
        history.push(Message::ai(format!("answer {turn}")));
    }
    let mut state = AgentState::with_messages(history);
    state
        .channels
        .insert("async_tasks".into(), json!({"t1": {"status": "running"}}));
    let state = agent
        .run(
            state,
            vec![Message::human("and now?")],
            &RunContext::detached(),
        )
        .await
        .unwrap();

    assert_eq!(
        state.channels["async_tasks"],
        json!({"t1": {"status": "running"}})
    );
    let texts = texts(&state);
    assert!(texts[0].1.starts_with(SUMMARY_PREFIX), "{texts:?}");
    assert!(texts[0].1.ends_with("The user asked about rust and tokio."));
    // The latest three messages before the call are kept as they were, then the answer.
    assert_eq!(texts[1].1, format!("question 5: {long}"));
    assert_eq!(texts[2].1, "answer 5");
    assert_eq!(texts[3].1, "and now?");
    assert_eq!(texts[4], (MessageKind::Ai, "Noted, carrying on.".into()));
    assert_eq!(texts.len(), 5);
    // The summariser saw the older turns; the model saw the summary, not them.
    assert!(
        summarizer.requests()[0].messages[0]
            .text()
            .contains("question 0")
    );
    let asked = &model.requests()[0].messages;
    assert_eq!(asked.len(), 4);
    assert!(!asked.iter().any(|m| m.text().starts_with("question 0")));
}

#[tokio::test]
async fn summarisation_never_keeps_a_tool_answer_without_its_call() {
    let summarizer = ScriptedModel::new([Turn::text("Earlier: a lookup was made.")]);
    let model = ScriptedModel::new([Turn::text("ok")]);
    let agent = Agent::builder(Arc::new(model))
        .middleware(Summarization::new(Arc::new(summarizer), 50).keep_last(2))
        .build()
        .unwrap();
    let call = errand_protocol::ToolCall::new("c1", "lookup", JsonObject::new());
    let history = vec![
        Message::human("x ".repeat(200)),
        Message::ai_with_tool_calls("", vec![call]),
        Message::tool("c1", "y ".repeat(200)),
    ];
    let state = agent
        .run(
            AgentState::with_messages(history),
            vec![Message::human("next")],
            &RunContext::detached(),
        )
        .await
        .unwrap();
    let kinds: Vec<_> = state.messages.iter().map(|m| m.kind.clone()).collect();
    use MessageKind::{Ai, Human, Tool};
    // Keeping the last two would start at the tool answer; the cut moves back to its call.
    assert_eq!(kinds, [Human, Ai, Tool, Human, Ai]);
    assert!(state.messages[0].text().starts_with(SUMMARY_PREFIX));
}

#[tokio::test]
async fn a_cancelled_run_keeps_what_it_finished_and_answers_every_call() {
    let started = Arc::new(tokio::sync::Notify::new());
    let slow = slow_tool(&started);
    let model = ScriptedModel::new([Turn::tool_calls([
        ("note", json!({"key": "a", "text": "kept"})),
        ("slow", json!({"topic": "x"})),
    ])]);
    let agent = Agent::builder(Arc::new(model))
        .middleware(Notes)
        .tool(slow)
        .build()
        .unwrap();
    let run = RunContext::detached();
    let cancel = run.cancel.clone();
    let task = tokio::spawn(async move {
        agent
            .run_keeping(AgentState::default(), vec![Message::human("go")], &run)
            .await
    });
    let outcome = cancelled_once_started(&started, &cancel, task).await;
    assert_eq!(outcome.result, Err(Error::Cancelled));
    let state = outcome.state;
    assert_eq!(state.channels["notes"], json!({"a": "kept"}));
    let answers: Vec<_> = state
        .messages
        .iter()
        .filter(|m| m.kind == MessageKind::Tool)
        .map(|m| m.text().into_owned())
        .collect();
    assert_eq!(answers.len(), 2, "every call has an answer: {answers:?}");
    assert!(
        answers[1].contains("cancelled before it finished"),
        "{answers:?}"
    );
}
