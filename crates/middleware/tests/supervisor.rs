//! End to end: a supervisor agent on the Scripted model hands tasks to subagents hosted by
//! errand-server (the echo graph and a runtime agent), in-process and over HTTP, and keeps
//! talking to its user while they run.

// Helpers here run only inside tests: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

mod support;

use errand_client::Client;
use errand_middleware::{
    AsyncSubAgent, AsyncSubAgentMiddleware, NOTIFICATION_KEY, Settings, TaskEvent, TaskStatus,
    Timing, UpdateStrategy, board, is_notification,
};
use errand_protocol::{Message, MessageKind, RunStatus};
use errand_runtime::agent::{Agent, AgentState, RunContext};
use errand_runtime::hooks::Summarization;
use errand_runtime::model::{ModelRequest, ScriptedModel, Turn};
use errand_runtime::tool::FunctionTool;
use errand_server::Server;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{launched, local, run_of, server_with, wait_until};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Where the subagents are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    InProcess,
    Http,
}

/// A server hosting `echo` and a `researcher` agent that answers after a pause.
struct Subagents {
    server: Server,
    client: Client,
    url: Option<String>,
    stop: CancellationToken,
}

async fn subagents(transport: Transport, researcher_pause: Duration) -> Subagents {
    let researcher_model = ScriptedModel::responder(move |request: &ModelRequest| {
        let task = request
            .messages
            .last()
            .map(|m| m.text().into_owned())
            .unwrap_or_default();
        Turn::text(format!("Report: {task} is well documented.")).after(researcher_pause)
    });
    let researcher = Agent::builder(Arc::new(researcher_model))
        .name("researcher")
        .build()
        .unwrap();
    let server = server_with(|builder| builder.graph("researcher", researcher)).await;
    let client = local(&server);
    let stop = CancellationToken::new();
    let url = match transport {
        Transport::InProcess => None,
        Transport::Http => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            // Served over HTTP is the same router the in-process client calls, so the test
            // sees on one server what the middleware did over the wire.
            let router = server.router();
            let stopping = stop.clone();
            tokio::spawn(async move {
                axum_serve(listener, router, stopping).await;
            });
            Some(url)
        }
    };
    Subagents {
        server,
        client,
        url,
        stop,
    }
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: CancellationToken,
) {
    let _ = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}

fn spec(name: &str, graph: &str, url: Option<&str>) -> AsyncSubAgent {
    let spec = AsyncSubAgent::new(name, format!("The {graph} subagent."), graph);
    match url {
        Some(url) => spec.url(url),
        None => spec,
    }
}

fn fast_timing() -> Settings {
    Settings {
        timing: Timing {
            check_every: Duration::from_millis(300),
            read_timeout: Duration::from_secs(2),
            unreachable_after: Duration::from_secs(2),
        },
        ..Settings::default()
    }
}

/// The supervisor's script: it reacts to the user's last words, to tool answers and to notices.
fn supervisor_model() -> ScriptedModel {
    ScriptedModel::responder(|request: &ModelRequest| {
        let Some(last) = request.messages.last() else {
            return Turn::text("Hello.");
        };
        if last.kind == MessageKind::Tool {
            return Turn::text(format!("Done: {}", last.text()));
        }
        // The user's latest words, which a notice may follow; once answered, a notice is
        // only acknowledged.
        let messages = &request.messages;
        let Some(at) = messages
            .iter()
            .rposition(|m| m.kind == MessageKind::Human && !is_notification(m))
        else {
            return Turn::text("Hello.");
        };
        if messages[at + 1..].iter().any(|m| m.kind == MessageKind::Ai) {
            return Turn::text("A task reported back; noted.");
        }
        let last = &messages[at];
        let ids = launched(&request.messages);
        match last.text().as_ref() {
            "start three" => Turn::tool_calls([
                (
                    "start_async_task",
                    json!({"subagent_type": "echo", "description": "sleep=30"}),
                ),
                (
                    "start_async_task",
                    json!({"subagent_type": "researcher", "description": "the history of Rust"}),
                ),
                (
                    "start_async_task",
                    json!({"subagent_type": "queued", "description": "sleep=2"}),
                ),
            ]),
            "how is it going?" => Turn::text("They are working; I'll tell you when one is done."),
            "steer them" => Turn::tool_calls([
                (
                    "update_async_task",
                    json!({"task_id": ids[0], "message": "sleep=30"}),
                ),
                (
                    "update_async_task",
                    json!({"task_id": ids[2], "message": "follow-up"}),
                ),
            ]),
            "cancel the first" => Turn::tool_call("cancel_async_task", json!({"task_id": ids[0]})),
            "list them" => Turn::tool_call("list_async_tasks", json!({})),
            other => Turn::text(format!("I don't follow: {other}")),
        }
    })
}

/// Runs one user turn of the supervisor.
async fn turn(agent: &Agent, state: AgentState, run: &RunContext, text: &str) -> AgentState {
    tokio::time::timeout(
        Duration::from_secs(60),
        agent.run(state, vec![Message::human(text)], run),
    )
    .await
    .expect("a supervisor turn never waits on its subagents")
    .unwrap()
}
async fn fire_and_steer(transport: Transport) {
    let subagents = subagents(transport, Duration::from_secs(1)).await;
    let url = subagents.url.as_deref();
    let events: Arc<Mutex<Vec<TaskEvent>>> = Arc::default();
    let seen = Arc::clone(&events);
    let middleware = AsyncSubAgentMiddleware::builder([
        spec("echo", "echo", url),
        spec("researcher", "researcher", url),
        spec("queued", "echo", url).update_strategy(UpdateStrategy::Enqueue),
    ])
    .local_client(subagents.client.clone())
    .settings(fast_timing())
    .on_notice(move |_, event| seen.lock().unwrap().push(event.clone()))
    .build()
    .unwrap();
    let model = supervisor_model();
    let supervisor = Agent::builder(Arc::new(model.clone()))
        .middleware(middleware.clone())
        .build()
        .unwrap();
    let run = RunContext::detached();
    let client = &subagents.client;

    // The user's turn ends as soon as the tasks are started, while they still run.
    let state = turn(&supervisor, AgentState::default(), &run, "start three").await;
    let ids = launched(&state.messages);
    assert_eq!(ids.len(), 3, "{:?}", state.messages);
    let tasks = board(&state.channels);
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|task| task.status == TaskStatus::Running));
    let echo_run = tasks
        .iter()
        .find(|t| t.task_id.to_string() == ids[0])
        .unwrap()
        .run_id;
    assert!(!run_of(client, &ids[0], echo_run).await.status.is_terminal());

    // A second user turn is answered while all of them still run.
    let state = turn(&supervisor, state, &run, "how is it going?").await;
    assert_eq!(
        state.messages.last().unwrap().text(),
        "They are working; I'll tell you when one is done."
    );
    assert!(!run_of(client, &ids[0], echo_run).await.status.is_terminal());

    // The researcher finishes: its notice is pushed, no check call needed.
    wait_until("the researcher's notice", || async {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.task_id.to_string() == ids[1])
    })
    .await;

    // Steer two tasks: the echo task is interrupted, the queued one gets a follow-up behind
    // its current run. The notice rides into this turn's first model call.
    let state = turn(&supervisor, state, &run, "steer them").await;
    let notices: Vec<&Message> = state
        .messages
        .iter()
        .filter(|m| is_notification(m))
        .collect();
    assert_eq!(notices.len(), 1, "one notice, for the researcher");
    assert_eq!(
        notices[0].additional_kwargs[NOTIFICATION_KEY]["task_id"],
        ids[1]
    );
    assert!(
        notices[0]
            .text()
            .contains("Report: the history of Rust is well documented.")
    );
    let calls: Vec<String> = state
        .messages
        .iter()
        .flat_map(|m| m.tool_calls().iter().map(|c| c.name.clone()))
        .collect();
    assert!(!calls.contains(&"check_async_task".to_owned()), "{calls:?}");
    let texts: Vec<String> = state
        .messages
        .iter()
        .map(|m| m.text().into_owned())
        .collect();
    assert!(
        texts.contains(&format!("Updated async subagent. task_id: {}", ids[0])),
        "{texts:?}"
    );
    assert!(
        texts.contains(&format!(
            "Queued follow-up to async subagent without interrupting its current run. task_id: {}",
            ids[2]
        )),
        "{texts:?}"
    );
    let tasks = board(&state.channels);
    let echo = tasks
        .iter()
        .find(|t| t.task_id.to_string() == ids[0])
        .unwrap();
    assert_ne!(echo.run_id, echo_run, "an update starts a new run");
    let queued = tasks
        .iter()
        .find(|t| t.task_id.to_string() == ids[2])
        .unwrap();
    assert_eq!(queued.superseded_run_ids.len(), 1);

    // Cancel the echo task: the answer reads back what happened on the server.
    let state = turn(&supervisor, state, &run, "cancel the first").await;
    assert!(
        state
            .messages
            .iter()
            .any(|m| m.text() == format!("Cancelled async subagent task: {}", ids[0])),
    );
    let echo = board(&state.channels)
        .into_iter()
        .find(|t| t.task_id.to_string() == ids[0])
        .unwrap();
    assert_eq!(echo.status, TaskStatus::Cancelled);
    assert_eq!(
        run_of(client, &ids[0], echo.run_id).await.status,
        RunStatus::Interrupted
    );

    // The queued task's original run and its follow-up both end; the earlier run's notice is
    // marked as superseded, never taken for the follow-up's result.
    wait_until("both runs of the queued task", || async {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.task_id.to_string() == ids[2])
            .count()
            == 2
    })
    .await;
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.task_id.to_string() == ids[0]),
        "no notice for runs the supervisor replaced or cancelled itself"
    );

    // After a summarisation drops every message that named a task, the board still lists all.
    let summarizer = ScriptedModel::responder(|_| Turn::text("Summary: three tasks were started."));
    let compacting = Agent::builder(Arc::new(model.clone()))
        .middleware(Summarization::new(Arc::new(summarizer), 1).keep_last(1))
        .middleware(middleware.clone())
        .build()
        .unwrap();
    let state = turn(&compacting, state, &run, "list them").await;
    assert!(state.messages[0].text().starts_with("Here is a summary"));
    let listing = state
        .messages
        .iter()
        .find(|m| m.kind == MessageKind::Tool)
        .expect("the list tool answered")
        .text()
        .into_owned();
    assert!(listing.starts_with("3 tracked task(s):"), "{listing}");
    for id in &ids {
        assert!(listing.contains(id.as_str()), "{listing}");
    }
    // The queued task's notices reached the model (the summary has since folded them in):
    // one per run, the earlier one marked as superseded.
    let mut queued_notices: Vec<Message> = model
        .requests()
        .iter()
        .flat_map(|request| request.messages.clone())
        .filter(|m| {
            is_notification(m)
                && m.additional_kwargs[NOTIFICATION_KEY]["task_id"] == ids[2].as_str()
        })
        .collect();
    queued_notices.sort_by(|a, b| a.id.cmp(&b.id));
    queued_notices.dedup_by(|a, b| a.id == b.id);
    assert_eq!(
        queued_notices.len(),
        2,
        "both runs of the queued task were reported once each"
    );
    assert_eq!(
        queued_notices
            .iter()
            .filter(|m| m.text().contains("It is not the result of the follow-up."))
            .count(),
        1
    );
    middleware.shutdown().await;
    subagents.stop.cancel();
    subagents.server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_steer_in_process() {
    fire_and_steer(Transport::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fire_and_steer_over_http() {
    fire_and_steer(Transport::Http).await;
}

/// A remote subagent that finishes while the supervisor is in the middle of a turn is noticed
/// at the supervisor's next model call in that same turn: no polling loop, no check call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_task_that_ends_mid_turn_is_noticed_at_the_next_model_call() {
    let subagents = subagents(Transport::Http, Duration::from_millis(200)).await;
    let finished = Arc::new(Notify::new());
    let signal = Arc::clone(&finished);
    let middleware = AsyncSubAgentMiddleware::builder([spec(
        "researcher",
        "researcher",
        subagents.url.as_deref(),
    )])
    .settings(fast_timing())
    .on_notice(move |_, _| signal.notify_one())
    .build()
    .unwrap();
    // A tool that keeps the supervisor busy until the subagent has finished.
    let busy = FunctionTool::new("draft_outline", "Drafts an outline.", move |_: Value, _| {
        let finished = Arc::clone(&finished);
        async move {
            finished.notified().await;
            Ok("outline drafted".into())
        }
    });
    let model = ScriptedModel::new([
        Turn::tool_call(
            "start_async_task",
            json!({"subagent_type": "researcher", "description": "tokio"}),
        ),
        Turn::tool_call("draft_outline", json!({})),
        Turn::text("Outline done, and the research is in."),
    ]);
    let supervisor = Agent::builder(Arc::new(model.clone()))
        .middleware(middleware.clone())
        .tool(busy)
        .build()
        .unwrap();
    let run = RunContext::detached();
    let state = turn(
        &supervisor,
        AgentState::default(),
        &run,
        "research and outline",
    )
    .await;
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    let third = &requests[2].messages;
    let notice = third
        .iter()
        .find(|m| is_notification(m))
        .expect("the notice reached the next call");
    assert!(
        notice.text().contains("<status>success</status>"),
        "{}",
        notice.text()
    );
    assert!(notice.text().contains("Report: tokio is well documented."));
    assert_eq!(
        state.messages.last().unwrap().text(),
        "Outline done, and the research is in."
    );
    middleware.shutdown().await;
    subagents.stop.cancel();
}

/// A task on a server that stops answering ends with a clear status and message, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_a_server_that_stops_answering_ends_in_error_with_a_reason() {
    let subagents = subagents(Transport::Http, Duration::from_secs(1)).await;
    let events: Arc<Mutex<Vec<TaskEvent>>> = Arc::default();
    let seen = Arc::clone(&events);
    let middleware =
        AsyncSubAgentMiddleware::builder([spec("echo", "echo", subagents.url.as_deref())])
            .settings(fast_timing())
            .on_notice(move |_, event| seen.lock().unwrap().push(event.clone()))
            .build()
            .unwrap();
    let model = ScriptedModel::new([
        Turn::tool_call(
            "start_async_task",
            json!({"subagent_type": "echo", "description": "sleep=60"}),
        ),
        Turn::text("Started."),
        Turn::text("It failed; its server went away."),
    ]);
    let supervisor = Agent::builder(Arc::new(model))
        .middleware(middleware.clone())
        .build()
        .unwrap();
    let run = RunContext::detached();
    let state = turn(&supervisor, AgentState::default(), &run, "start it").await;

    // The server goes away: the listener closes and nothing answers any more.
    subagents.stop.cancel();
    wait_until("the unreachable notice", || async {
        !events.lock().unwrap().is_empty()
    })
    .await;
    let event = events.lock().unwrap()[0].clone();
    assert_eq!(event.status, TaskStatus::Error);
    let reason = event.error.unwrap_or_default();
    assert!(reason.contains("has not answered for 2 s"), "{reason}");

    let state = turn(&supervisor, state, &run, "how is it?").await;
    let task = board(&state.channels).remove(0);
    assert_eq!(task.status, TaskStatus::Error);
    assert!(
        state
            .messages
            .iter()
            .any(|m| is_notification(m) && m.text().contains("has not answered"))
    );
    middleware.shutdown().await;
    subagents.server.shutdown(Duration::from_secs(1)).await;
}
