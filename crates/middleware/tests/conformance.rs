//! Deep Agents' conformance list for async subagents (`test_async_subagents.py`, the end-to-end
//! tests and `async_subagents.test.ts`), ported against a real errand server hosting the echo
//! graph and updated for the current release (0.7.32): `waiting`, `cancelled` for a cancelled
//! run, `superseded_run_ids`, the enqueue strategy.

#![allow(clippy::unwrap_used)]

mod support;

use chrono::{DateTime, Utc};
use errand_middleware::runtime::agent::{Agent, AgentState, RunContext};
use errand_middleware::runtime::hooks::Middleware;
use errand_middleware::runtime::model::{ModelRequest, ScriptedModel, Turn};
use errand_middleware::{
    AsyncSubAgent, AsyncSubAgentMiddleware, Error, Mode, Settings, TASKS_CHANNEL, TOOL_NAMES,
    TaskStatus, UpdateStrategy,
};
use errand_protocol::{Message, MessageKind, MultitaskStrategy, RunStatus};
use serde_json::{Value, json};
use support::{
    Supervisor, echo_supervisor, echoer, json_of, launched_task, local, middleware, run_of, serve,
    server, server_run, task_id_of, thread_messages, threads_of, wait_run_status, wait_until,
};
use uuid::Uuid;

/// 2020-01-01T00:00:00Z.
const OLD: DateTime<Utc> = DateTime::from_timestamp(1_577_836_800, 0).unwrap();

/// Puts old timestamps on a task so a change of `last_updated_at` shows.
fn age(supervisor: &mut Supervisor, task_id: &Uuid) {
    supervisor.edit_task(task_id, |task| {
        task.last_checked_at = OLD;
        task.last_updated_at = OLD;
    });
}

/// Starts a task that runs for 30 s, waits until its run is running, and ages it: a live
/// task whose next change of `last_updated_at` shows.
async fn start_aged_slow_task(supervisor: &mut Supervisor, client: &errand_client::Client) -> Uuid {
    let id = supervisor.start("echoer", "sleep=30").await;
    supervisor.wait_run(client, id, RunStatus::Running).await;
    age(supervisor, &id);
    id
}

fn is_stamp(text: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%SZ").is_ok()
}

// ---- construction ----------------------------------------------------------------------

#[tokio::test]
async fn init_refuses_no_subagents_duplicates_and_bad_values() {
    let server = server().await;
    let none = AsyncSubAgentMiddleware::builder(Vec::new())
        .local_client(local(&server))
        .build()
        .unwrap_err();
    assert_eq!(none, Error::NoSubagents);
    assert!(none.to_string().contains("At least one async subagent"));

    let dupes = AsyncSubAgentMiddleware::builder([echoer(), echoer(), echoer()])
        .local_client(local(&server))
        .build()
        .unwrap_err();
    assert_eq!(
        dupes.to_string(),
        "Duplicate async subagent names: echoer",
        "each duplicate is named once"
    );

    for (key, value) in [("update_strategy", "sometimes"), ("mode", "clone")] {
        let mut table = json!({"description": "d", "graph_id": "echo"});
        table[key] = json!(value);
        let error = serde_json::from_value::<AsyncSubAgent>(table).unwrap_err();
        assert!(error.to_string().contains(value), "{key}: {error}");
    }
    let spec: AsyncSubAgent = serde_json::from_value(json!({
        "name": "r", "description": "d", "graph_id": "echo",
        "update_strategy": "enqueue", "mode": "fork", "notify_parent": false,
        "webhook": "https://hooks.example/done"
    }))
    .unwrap();
    assert_eq!(spec.update_strategy, UpdateStrategy::Enqueue);
    assert_eq!(spec.mode, Mode::Fork);
    assert!(!spec.notify_parent);

    let no_server = AsyncSubAgentMiddleware::builder([echoer()])
        .build()
        .unwrap_err();
    assert_eq!(no_server, Error::NoLocalServer("echoer".into()));
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn exactly_five_tools_in_order_with_the_schemas_deep_agents_has() {
    let server = server().await;
    let middleware = middleware(&server, vec![echoer()]);
    let names: Vec<String> = middleware
        .tools()
        .iter()
        .map(|tool| tool.name().to_owned())
        .collect();
    assert_eq!(names, TOOL_NAMES);
    assert_eq!(
        TOOL_NAMES,
        [
            "start_async_task",
            "check_async_task",
            "update_async_task",
            "cancel_async_task",
            "list_async_tasks"
        ]
    );
    let required: Vec<Value> = middleware
        .tools()
        .iter()
        .map(|tool| tool.parameters()["required"].clone())
        .collect();
    assert_eq!(required[0], json!(["description", "subagent_type"]));
    assert_eq!(required[1], json!(["task_id"]));
    assert_eq!(required[2], json!(["task_id", "message"]));
    assert_eq!(required[3], json!(["task_id"]));
    assert!(
        required[4].as_array().is_none_or(Vec::is_empty),
        "status_filter is optional: {}",
        required[4]
    );
    // The state schema: the board is a channel of its own.
    let channels: Vec<String> = middleware
        .channels()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert_eq!(channels, [TASKS_CHANNEL]);
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn descriptions_list_the_agents_and_teach_the_current_rules() {
    let server = server().await;
    let middleware = middleware(
        &server,
        vec![
            AsyncSubAgent::new("researcher", "Researches a topic in depth.", "echo"),
            AsyncSubAgent::new("coder", "Writes code.", "echo")
                .update_strategy(UpdateStrategy::Enqueue)
                .mode(Mode::Fork),
        ],
    );
    let tools = middleware.tools();
    let start = tools[0].description();
    assert!(start.contains("- researcher: Researches a topic in depth."));
    assert!(start.contains("- coder: Writes code. (inherits your conversation at launch"));
    assert!(start.contains("Do NOT check the status right after starting"));
    assert!(start.contains("`waiting`"));
    // Statuses in the history are stale: check and list say so (0.7.0 moved this rule there).
    assert!(tools[1].description().contains("stale"));
    assert!(tools[4].description().contains("stale"));
    assert!(tools[1].description().contains("waiting"));
    // Update names the agents whose follow-ups queue.
    let update = tools[2].description();
    assert!(update.contains("Exception: for `coder`"), "{update}");
    assert!(!update.contains("`researcher`"));
    let cancel = tools[3].description();
    assert!(cancel.contains("running, pending or waiting"));
    assert!(tools[4].description().contains("pending"));
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn no_system_prompt_by_default_and_a_given_one_lists_the_agents() {
    let server = server().await;
    let plain = middleware(&server, vec![echoer()]);
    let mut request = ModelRequest::new(vec![Message::human("hi")]);
    plain
        .modify_request(&mut request, &AgentState::default())
        .await
        .unwrap();
    assert_eq!(request.system, None);

    let prompted = AsyncSubAgentMiddleware::builder([echoer()])
        .local_client(local(&server))
        .settings(Settings {
            system_prompt: Some("Delegate long work.".into()),
            ..Settings::default()
        })
        .build()
        .unwrap();
    let mut request = ModelRequest::new(vec![Message::human("hi")]);
    prompted
        .modify_request(&mut request, &AgentState::default())
        .await
        .unwrap();
    let system = request.system.unwrap();
    assert!(system.starts_with("Delegate long work."));
    assert!(
        system.contains("Available async subagent types:\n\n- echoer: Repeats what it is told.")
    );
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

#[test]
fn headers_add_the_langsmith_auth_scheme_unless_set() {
    let auth = ("x-auth-scheme".to_owned(), "langsmith".to_owned());
    assert_eq!(echoer().resolved_headers(), std::slice::from_ref(&auth));
    let custom = echoer().header("X-Team", "blue");
    let headers = custom.resolved_headers();
    assert!(headers.contains(&("X-Team".to_owned(), "blue".to_owned())));
    assert!(headers.contains(&auth));
    let explicit = echoer().header("x-auth-scheme", "custom");
    assert_eq!(
        explicit.resolved_headers(),
        [("x-auth-scheme".to_owned(), "custom".to_owned())]
    );
}

// ---- start -----------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_subagent_type_is_refused_with_the_available_ones() {
    let server = server().await;
    let client = local(&server);
    let mut supervisor = Supervisor::new(middleware(
        &server,
        vec![
            AsyncSubAgent::new("alpha", "A.", "echo"),
            AsyncSubAgent::new("beta", "B.", "echo"),
        ],
    ));
    let output = supervisor
        .call(
            "start_async_task",
            json!({"description": "x", "subagent_type": "gamma"}),
        )
        .await;
    assert_eq!(
        output.content,
        "Unknown async subagent type `gamma`. Available types: `alpha`, `beta`"
    );
    assert!(output.update.is_empty());
    assert!(threads_of(&client, "gamma").await.is_empty());
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn start_creates_a_thread_and_a_run_of_the_graph_with_the_description() {
    let (server, client, mut supervisor) = echo_supervisor().await;
    let output = supervisor
        .call(
            "start_async_task",
            json!({"description": "Summarise the report.", "subagent_type": "echoer"}),
        )
        .await;
    let task_id = task_id_of(&output);
    assert_eq!(
        output.content,
        format!("Launched async subagent. task_id: {task_id}")
    );

    let task = supervisor.task(task_id);
    assert_eq!(task.task_id, task_id);
    assert_eq!(task.thread_id, task_id, "the task id is the thread id");
    assert_eq!(task.agent_name, "echoer");
    assert_eq!(
        task.status,
        TaskStatus::Running,
        "running, as Deep Agents records it"
    );
    let record = &supervisor.state.channels[TASKS_CHANNEL][&task_id.to_string()];
    assert!(Uuid::parse_str(record["run_id"].as_str().unwrap()).is_ok());
    assert!(
        is_stamp(record["created_at"].as_str().unwrap()),
        "{}",
        record["created_at"]
    );
    assert_eq!(task.created_at, task.last_checked_at);
    assert_eq!(task.created_at, task.last_updated_at);
    assert!(task.superseded_run_ids.is_empty());
    assert_eq!(task.purpose.as_deref(), Some("Summarise the report."));
    assert_eq!(task.deadline, None);
    for key in [
        "task_id",
        "agent_name",
        "thread_id",
        "run_id",
        "status",
        "created_at",
        "last_checked_at",
        "last_updated_at",
    ] {
        assert!(
            record.get(key).is_some(),
            "the record has `{key}`: {record}"
        );
    }

    // On the server: the thread, tagged with the subagent, and one run of the spec's graph
    // with the description as a user message.
    let threads = threads_of(&client, "echoer").await;
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].thread_id, task_id);
    assert_eq!(
        threads[0].metadata["parent_thread_id"],
        supervisor.thread_id.to_string()
    );
    let run = server_run(&client, &task).await;
    let assistant = client
        .assistants()
        .get(&run.assistant_id.to_string())
        .await
        .unwrap();
    assert_eq!(assistant.graph_id, "echo", "assistant_id = graph_id");
    assert_eq!(
        run.kwargs.input.as_option(),
        Some(&json!({"messages": [{"role": "user", "content": "Summarise the report."}]}))
    );
    wait_run_status(&client, &task.thread_id, &task.run_id, RunStatus::Success).await;
    let messages = thread_messages(&client, &task_id).await;
    assert_eq!(messages[0].kind, MessageKind::Human);
    assert_eq!(messages[0].text(), "Summarise the report.");
    assert_eq!(messages[1].text(), "echo: Summarise the report.");
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

// ---- check -----------------------------------------------------------------------------

#[tokio::test]
async fn check_reports_running_then_the_last_message_and_moves_last_updated_only_on_change() {
    let (server, client, mut supervisor) = echo_supervisor().await;
    let slow = start_aged_slow_task(&mut supervisor, &client).await;
    let output = supervisor
        .call("check_async_task", json!({"task_id": slow}))
        .await;
    assert_eq!(
        json_of(&output),
        json!({"status": "running", "thread_id": slow})
    );
    let task = supervisor.task(slow);
    assert_eq!(task.last_updated_at, OLD, "no change, no update stamp");
    assert_ne!(task.last_checked_at, OLD);

    let quick = supervisor.start("echoer", "hello").await;
    supervisor
        .wait_run(&client, quick, RunStatus::Success)
        .await;
    age(&mut supervisor, &quick);
    // The id is taken verbatim, surrounding whitespace tolerated.
    let output = supervisor
        .call(
            "check_async_task",
            json!({"task_id": format!("  {quick}\n")}),
        )
        .await;
    assert_eq!(
        json_of(&output),
        json!({"status": "success", "thread_id": quick, "result": "echo: hello"})
    );
    let task = supervisor.task(quick);
    assert_eq!(task.status, TaskStatus::Success);
    assert_ne!(task.last_updated_at, OLD, "the status changed");
    assert_ne!(task.last_checked_at, OLD);
    assert_eq!(supervisor.task(slow).status, TaskStatus::Running);
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn check_surfaces_the_error_of_a_failed_run() {
    let (server, client, mut supervisor) = echo_supervisor().await;
    let id = supervisor.start("echoer", "fail=the disk is full").await;
    supervisor.wait_run(&client, id, RunStatus::Error).await;
    age(&mut supervisor, &id);
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["status"], "error");
    assert_eq!(answer["thread_id"], json!(id));
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("the disk is full"), "{error}");
    assert!(error.contains("EchoError"), "{error}");
    assert!(answer.get("result").is_none());
    let task = supervisor.task(id);
    assert_eq!(task.status, TaskStatus::Error);
    assert_ne!(task.last_updated_at, OLD);
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn check_of_a_run_that_ended_without_messages_says_so() {
    let server = server().await;
    let client = local(&server);
    let mut supervisor = Supervisor::new(middleware(
        &server,
        vec![AsyncSubAgent::new("mute", "Says nothing.", "silent")],
    ));
    let id = supervisor.start("mute", "anything").await;
    supervisor.wait_run(&client, id, RunStatus::Success).await;
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["result"], "(completed with no output messages)");
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn unknown_task_ids_are_refused_by_check_update_and_cancel() {
    let server = server().await;
    let mut supervisor = Supervisor::new(middleware(&server, vec![echoer()]));
    for (tool, args) in [
        ("check_async_task", json!({"task_id": "nope"})),
        (
            "update_async_task",
            json!({"task_id": "nope", "message": "m"}),
        ),
        ("cancel_async_task", json!({"task_id": "nope"})),
    ] {
        let output = supervisor.call(tool, args).await;
        assert_eq!(
            output.content, "No tracked task found for task_id: 'nope'",
            "{tool}"
        );
        assert!(output.update.is_empty(), "{tool} leaves the board alone");
    }
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

// ---- update ----------------------------------------------------------------------------

#[tokio::test]
async fn update_interrupts_the_current_run_and_keeps_the_task_id() {
    let (server, client, mut supervisor) = echo_supervisor().await;
    let id = start_aged_slow_task(&mut supervisor, &client).await;
    let before = supervisor.task(id);

    let output = supervisor
        .call(
            "update_async_task",
            json!({"task_id": id, "message": "Stop sleeping and say hi."}),
        )
        .await;
    assert_eq!(
        output.content,
        format!("Updated async subagent. task_id: {id}")
    );
    let after = supervisor.task(id);
    assert_eq!(after.task_id, id);
    assert_eq!(after.thread_id, before.thread_id);
    assert_ne!(after.run_id, before.run_id, "a new run");
    assert_eq!(after.status, TaskStatus::Running);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.last_checked_at, OLD, "kept");
    assert_ne!(after.last_updated_at, OLD, "moved");
    assert_eq!(
        supervisor.state.channels[TASKS_CHANNEL]
            .as_object()
            .unwrap()
            .len(),
        1
    );

    let run = server_run(&client, &after).await;
    assert_eq!(run.multitask_strategy, MultitaskStrategy::Interrupt);
    assert_eq!(
        run.kwargs.input.as_option(),
        Some(&json!({"messages": [{"role": "user", "content": "Stop sleeping and say hi."}]}))
    );
    wait_run_status(
        &client,
        &before.thread_id,
        &before.run_id,
        RunStatus::Interrupted,
    )
    .await;
    wait_run_status(&client, &after.thread_id, &after.run_id, RunStatus::Success).await;
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["result"], "echo: Stop sleeping and say hi.");
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

#[tokio::test]
async fn update_with_enqueue_queues_behind_the_current_run_once_per_turn() {
    let server = server().await;
    let client = local(&server);
    let mut supervisor = Supervisor::new(middleware(
        &server,
        vec![echoer().update_strategy(UpdateStrategy::Enqueue)],
    ));
    let id = supervisor.start("echoer", "sleep=30").await;
    let first = supervisor.wait_run(&client, id, RunStatus::Running).await;

    let output = supervisor
        .call(
            "update_async_task",
            json!({"task_id": id, "message": "then this"}),
        )
        .await;
    assert_eq!(
        output.content,
        format!(
            "Queued follow-up to async subagent without interrupting its current run. task_id: {id}"
        )
    );
    let queued = supervisor.task(id);
    assert_ne!(queued.run_id, first.run_id);
    assert_eq!(queued.status, TaskStatus::Pending, "the server's status");
    assert_eq!(queued.superseded_run_ids, [first.run_id]);
    let run = server_run(&client, &queued).await;
    assert_eq!(run.multitask_strategy, MultitaskStrategy::Enqueue);
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(
        run_of(&client, &first.thread_id, &first.run_id)
            .await
            .status,
        RunStatus::Running,
        "the first run goes on"
    );
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["status"], "pending");
    assert!(
        answer["note"]
            .as_str()
            .unwrap()
            .contains("hasn't started yet")
    );

    // Two follow-ups for one task in one AI message: the second is refused.
    let outputs = supervisor
        .turn(vec![
            (
                "update_async_task",
                json!({"task_id": id, "message": "and this"}),
            ),
            (
                "update_async_task",
                json!({"task_id": id, "message": "and that"}),
            ),
        ])
        .await;
    assert!(
        outputs[0].content.starts_with("Queued follow-up"),
        "{}",
        outputs[0].content
    );
    assert_eq!(
        outputs[1].content,
        format!(
            "Not sent: an earlier `update_async_task` call in this turn already queues a follow-up for task {id}. \
             Send this follow-up in a later turn, or combine the two into one message."
        )
    );
    assert!(outputs[1].update.is_empty());
    let task = supervisor.task(id);
    assert_eq!(task.superseded_run_ids, [first.run_id, queued.run_id]);
    let runs = client.runs().list(id, Default::default()).await.unwrap();
    assert_eq!(runs.len(), 3, "the refused follow-up was never sent");

    // Cancel stops the current run and the earlier ones still going.
    let output = supervisor
        .call("cancel_async_task", json!({"task_id": id}))
        .await;
    assert_eq!(
        output.content,
        format!("Cancelled async subagent task: {id}")
    );
    for run in [&first.run_id, &queued.run_id, &task.run_id] {
        wait_run_status(&client, &id, run, RunStatus::Interrupted).await;
    }
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

// ---- cancel ----------------------------------------------------------------------------

#[tokio::test]
async fn cancel_stops_a_running_task_and_records_cancelled() {
    let (server, client, mut supervisor) = echo_supervisor().await;
    let id = start_aged_slow_task(&mut supervisor, &client).await;
    let output = supervisor
        .call("cancel_async_task", json!({"task_id": id}))
        .await;
    assert_eq!(
        output.content,
        format!("Cancelled async subagent task: {id}")
    );
    let task = supervisor.task(id);
    assert_eq!(task.status, TaskStatus::Cancelled);
    assert_ne!(task.last_updated_at, OLD);
    assert_ne!(task.last_checked_at, OLD);
    assert_eq!(
        server_run(&client, &task).await.status,
        RunStatus::Interrupted,
        "the server recorded the cancel"
    );
    // A later check reports `cancelled` too (0.7.32 maps the run's `interrupted` to it).
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["status"], "cancelled");
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

// ---- list ------------------------------------------------------------------------------

#[tokio::test]
async fn list_shows_every_task_with_its_live_status() {
    let (server, client, mut supervisor) = echo_supervisor().await;
    let output = supervisor.call("list_async_tasks", json!({})).await;
    assert_eq!(output.content, "No async subagent tasks tracked.");

    // Two starts in one AI message: both land on the board.
    let outputs = supervisor
        .turn(vec![
            (
                "start_async_task",
                json!({"description": "hello", "subagent_type": "echoer"}),
            ),
            (
                "start_async_task",
                json!({"description": "sleep=30", "subagent_type": "echoer"}),
            ),
        ])
        .await;
    let (quick, slow) = (task_id_of(&outputs[0]), task_id_of(&outputs[1]));
    supervisor
        .wait_run(&client, quick, RunStatus::Success)
        .await;
    supervisor.wait_run(&client, slow, RunStatus::Running).await;
    age(&mut supervisor, &quick);
    age(&mut supervisor, &slow);

    let output = supervisor.call("list_async_tasks", json!({})).await;
    let lines: Vec<&str> = output.content.lines().collect();
    assert_eq!(lines[0], "2 tracked task(s):");
    assert_eq!(lines.len(), 3);
    assert!(
        lines.contains(
            &format!("- task_id: {quick}  agent: echoer  status: success  purpose: hello").as_str()
        ),
        "{}",
        output.content
    );
    assert!(
        lines.contains(
            &format!("- task_id: {slow}  agent: echoer  status: running  purpose: sleep=30")
                .as_str()
        ),
        "{}",
        output.content
    );
    let (q, s) = (supervisor.task(quick), supervisor.task(slow));
    assert_eq!(q.status, TaskStatus::Success, "the live status is recorded");
    assert_ne!(q.last_updated_at, OLD, "changed");
    assert_eq!(s.last_updated_at, OLD, "unchanged");
    assert_ne!(s.last_checked_at, OLD);

    let running = supervisor
        .call("list_async_tasks", json!({"status_filter": "running"}))
        .await;
    assert!(
        running.content.starts_with("1 tracked task(s):\n"),
        "{}",
        running.content
    );
    assert!(
        running.content.contains(&slow.to_string())
            && !running.content.contains(&quick.to_string())
    );
    let all = supervisor
        .call("list_async_tasks", json!({"status_filter": "all"}))
        .await;
    assert!(all.content.starts_with("2 tracked task(s):"));
    let none = supervisor
        .call("list_async_tasks", json!({"status_filter": "cancelled"}))
        .await;
    assert!(!none.content.contains("task_id:"), "{}", none.content);
    assert!(none.content.contains("2 tracked"), "{}", none.content);
    let bad = supervisor
        .tool("list_async_tasks")
        .call(
            json!({"status_filter": "finished"})
                .as_object()
                .unwrap()
                .clone(),
            errand_middleware::runtime::tool::ToolContext::detached("x"),
        )
        .await;
    assert!(bad.is_err(), "an unknown filter is refused: {bad:?}");
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

// ---- over HTTP, and in a real agent loop --------------------------------------------------

#[tokio::test]
async fn the_tools_work_over_http() {
    let server = server().await;
    let client = local(&server);
    let served = serve(&server).await;
    let remote = echoer().url(served.url());
    let mut supervisor =
        Supervisor::new(AsyncSubAgentMiddleware::builder([remote]).build().unwrap());
    let id = supervisor.start("echoer", "sleep=30").await;
    supervisor.wait_run(&client, id, RunStatus::Running).await;
    let output = supervisor
        .call(
            "update_async_task",
            json!({"task_id": id, "message": "over the wire"}),
        )
        .await;
    assert_eq!(
        output.content,
        format!("Updated async subagent. task_id: {id}")
    );
    supervisor.wait_run(&client, id, RunStatus::Success).await;
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["result"], "echo: over the wire");
    let listed = supervisor.call("list_async_tasks", json!({})).await;
    assert!(
        listed.content.contains("status: success"),
        "{}",
        listed.content
    );
    let cancelled = supervisor
        .call("cancel_async_task", json!({"task_id": id}))
        .await;
    assert!(
        cancelled.content.contains("had already finished (success)"),
        "{}",
        cancelled.content
    );
    drop(served);
}

#[tokio::test]
async fn a_supervisor_agent_starts_then_checks_a_finished_task() {
    let server = server().await;
    let client = local(&server);
    let model = ScriptedModel::responder(|request| {
        // Notices are read, not answered: the model reacts to the last other message.
        let last = request
            .messages
            .iter()
            .rev()
            .find(|message| !errand_middleware::is_notification(message))
            .unwrap();
        let text = last.text().into_owned();
        match (last.kind.clone(), text.as_str()) {
            (MessageKind::Human, "start") => Turn::tool_call(
                "start_async_task",
                json!({"description": "hello", "subagent_type": "echoer"}),
            ),
            (MessageKind::Human, "check") => Turn::tool_call(
                "check_async_task",
                json!({"task_id": launched_task(&request.messages).unwrap()}),
            ),
            (MessageKind::Tool, text) if text.starts_with("Launched") => {
                Turn::text("I started the task.")
            }
            (MessageKind::Tool, text) => Turn::text(format!("Result: {text}")),
            _ => Turn::text("ok"),
        }
    });
    let middleware = middleware(&server, vec![echoer()]);
    let agent = Agent::builder(std::sync::Arc::new(model))
        .middleware(middleware.clone())
        .build()
        .unwrap();
    let run = RunContext::detached();
    let state = agent
        .run(AgentState::default(), vec![Message::human("start")], &run)
        .await
        .unwrap();
    assert_eq!(state.messages.last().unwrap().text(), "I started the task.");
    let id = launched_task(&state.messages).unwrap();
    let task = errand_middleware::find_task(&state.channels, &id).unwrap();
    wait_run_status(&client, &task.thread_id, &task.run_id, RunStatus::Success).await;
    wait_until("the task's notice", || async {
        middleware.pending_notices(run.thread_id) == 1
    })
    .await;
    let state = agent
        .run(state, vec![Message::human("check")], &run)
        .await
        .unwrap();
    let answer = state.messages.last().unwrap().text().into_owned();
    assert!(answer.contains("\"result\":\"echo: hello\""), "{answer}");
    // The notice reached the model's second call, before the check.
    let notices: Vec<&Message> = state
        .messages
        .iter()
        .filter(|message| errand_middleware::is_notification(message))
        .collect();
    assert_eq!(notices.len(), 1);
    assert!(
        notices[0]
            .text()
            .contains("<result>\necho: hello\n</result>")
    );
    assert_eq!(
        errand_middleware::find_task(&state.channels, &id)
            .unwrap()
            .status,
        TaskStatus::Success
    );
    server.shutdown(std::time::Duration::from_secs(1)).await;
}

// ---- waiting (0.7.32) ------------------------------------------------------------------

#[tokio::test]
async fn a_task_stopped_at_an_interrupt_is_waiting_with_its_interrupts() {
    let server = server().await;
    let client = local(&server);
    let mut supervisor = Supervisor::new(middleware(
        &server,
        vec![AsyncSubAgent::new("buyer", "Buys things.", "asks")],
    ));
    let id = supervisor.start("buyer", "buy a lamp").await;
    supervisor.wait_run(&client, id, RunStatus::Success).await;

    // The notice says so, with what the subagent asks.
    supervisor.wait_notices(1).await;
    supervisor.before_model().await;
    let notice = supervisor.notices()[0].text().into_owned();
    assert!(notice.contains("<status>waiting</status>"), "{notice}");
    assert!(notice.contains("Approve the purchase?"), "{notice}");
    assert!(
        notice.contains("you can't answer or approve it"),
        "{notice}"
    );
    let task = supervisor.task(id);
    assert_eq!(task.status, TaskStatus::Waiting);
    assert_eq!(task.interrupts.len(), 1);

    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["status"], "waiting");
    assert_eq!(
        answer["interrupts"][0]["value"]["question"],
        "Approve the purchase?"
    );
    assert!(
        answer["note"]
            .as_str()
            .unwrap()
            .contains("waiting for a human")
    );
    let listed = supervisor
        .call("list_async_tasks", json!({"status_filter": "waiting"}))
        .await;
    assert!(
        listed.content.starts_with("1 tracked task(s):"),
        "{}",
        listed.content
    );

    // A follow-up drops the request.
    let output = supervisor
        .call(
            "update_async_task",
            json!({"task_id": id, "message": "buy a chair instead"}),
        )
        .await;
    assert_eq!(
        output.content,
        format!(
            "Updated async subagent. task_id: {id}. It was waiting for a human; that request was dropped."
        )
    );
    let task = supervisor.task(id);
    assert!(task.interrupts.is_empty());
    wait_run_status(&client, &task.thread_id, &task.run_id, RunStatus::Success).await;
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["status"], "waiting");

    // Cancelling a waiting task sends nothing (its run has ended) and it stays cancelled.
    let runs_before = client.runs().list(id, Default::default()).await.unwrap();
    let output = supervisor
        .call("cancel_async_task", json!({"task_id": id}))
        .await;
    assert_eq!(
        output.content,
        format!("Cancelled async subagent task: {id}")
    );
    assert_eq!(supervisor.task(id).status, TaskStatus::Cancelled);
    let runs_after = client.runs().list(id, Default::default()).await.unwrap();
    assert_eq!(runs_before, runs_after);
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["status"], "cancelled", "{answer}");
    assert_eq!(supervisor.task(id).status, TaskStatus::Cancelled);
    server.shutdown(std::time::Duration::from_secs(1)).await;
}
