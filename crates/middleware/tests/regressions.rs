//! Where Deep Agents is still wrong (0.7.32), errand is right: one test for each open bug.

#![allow(clippy::unwrap_used)]

mod support;

use errand_middleware::runtime::agent::Agent;
use errand_middleware::runtime::model::{ScriptedModel, Turn};
use errand_middleware::runtime::{Graph, GraphOutput, GraphRun, async_trait};
use errand_middleware::{
    AsyncSubAgent, NOTIFICATION_KEY, TaskStatus, UpdateStrategy, board, find_task, is_notification,
};
use errand_protocol::{MessageKind, RunCreate, RunResult, RunStatus, ThreadCreate};
use serde_json::json;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use support::{
    Supervisor, echo_supervisor, echoer, json_of, launched_task, local, middleware, server,
    server_run, server_with, thread_messages, threads_of, wait_run_status, wait_until,
};
use uuid::Uuid;

/// Deep Agents #6234: cancel records `cancelled` even when the run had already finished.
#[tokio::test]
async fn cancel_of_a_finished_run_says_it_finished_and_the_board_keeps_success() {
    let (server, client, mut supervisor) = echo_supervisor().await;
    let id = supervisor.start("echoer", "hello").await;
    let task = supervisor.wait_run(&client, id, RunStatus::Success).await;

    let output = supervisor
        .call("cancel_async_task", json!({"task_id": id}))
        .await;
    assert_eq!(
        output.content,
        format!(
            "Task {id} had already finished (success) before the cancel reached it, so nothing was cancelled. \
             Use `check_async_task` to read its result."
        )
    );
    assert_eq!(supervisor.task(id).status, TaskStatus::Success);
    assert_eq!(server_run(&client, &task).await.status, RunStatus::Success);
    let listed = supervisor.call("list_async_tasks", json!({})).await;
    assert!(
        listed.content.contains("status: success"),
        "{}",
        listed.content
    );
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["result"], "echo: hello");
    server.shutdown(Duration::from_secs(1)).await;
}

/// Deep Agents #5243: `list_async_tasks` filters on the cached status, so a task cached as
/// running that has since finished is missing from `status_filter="success"`.
#[tokio::test]
async fn list_filters_on_the_live_status_not_the_cached_one() {
    let (server, client, mut supervisor) = echo_supervisor().await;
    let id = supervisor.start("echoer", "hello").await;
    supervisor.wait_run(&client, id, RunStatus::Success).await;
    assert_eq!(
        supervisor.task(id).status,
        TaskStatus::Running,
        "cached as running"
    );

    let running = supervisor
        .call("list_async_tasks", json!({"status_filter": "running"}))
        .await;
    assert!(
        !running.content.contains(&id.to_string()),
        "{}",
        running.content
    );
    let success = supervisor
        .call("list_async_tasks", json!({"status_filter": "success"}))
        .await;
    assert_eq!(
        success.content,
        format!(
            "1 tracked task(s):\n- task_id: {id}  agent: echoer  status: success  purpose: hello"
        )
    );
    assert_eq!(supervisor.task(id).status, TaskStatus::Success);
    server.shutdown(Duration::from_secs(1)).await;
}

/// Deep Agents #5640: a task whose subagent was renamed or removed from the config crashes
/// `update_async_task` (and, before 0.7.32, check and cancel too).
#[tokio::test]
async fn a_task_whose_subagent_was_removed_gets_a_clear_message_from_every_tool() {
    let server = server().await;
    let client = local(&server);
    let before = middleware(&server, vec![echoer()]);
    let mut supervisor = Supervisor::new(before.clone());
    let id = supervisor.start("echoer", "sleep=30").await;
    let task = supervisor.task(id);

    // The config changes: `echoer` is gone; the board stays.
    let after = middleware(
        &server,
        vec![AsyncSubAgent::new("writer", "Writes.", "echo")],
    );
    let mut supervisor =
        Supervisor::with_state(after, supervisor.state.clone(), supervisor.thread_id);
    supervisor.before_model().await;
    for (tool, args, what) in [
        (
            "check_async_task",
            json!({"task_id": id}),
            "its status can't be read",
        ),
        (
            "update_async_task",
            json!({"task_id": id, "message": "more"}),
            "it can't be updated; start a new task instead",
        ),
        (
            "cancel_async_task",
            json!({"task_id": id}),
            "it can't be cancelled from here",
        ),
    ] {
        let output = supervisor.call(tool, args).await;
        assert_eq!(
            output.content,
            format!(
                "Task {id} was started on the async subagent `echoer`, which is no longer configured, so {what}. \
                 Its last known status was running. The subagents available now are `writer`."
            ),
            "{tool}"
        );
        assert!(output.update.is_empty(), "{tool}");
    }
    let listed = supervisor.call("list_async_tasks", json!({})).await;
    assert_eq!(
        listed.content,
        format!(
            "1 tracked task(s):\n- task_id: {id}  agent: echoer  status: running  purpose: sleep=30  \
             (agent no longer configured; status as last seen)"
        )
    );
    let runs = client.runs().list(id, Default::default()).await.unwrap();
    assert_eq!(runs.len(), 1, "the update sent nothing");
    assert!(!runs[0].status.is_terminal(), "the cancel sent nothing");

    // The middleware that still knows the subagent can cancel it.
    let mut old = Supervisor::with_state(before, supervisor.state.clone(), supervisor.thread_id);
    let output = old.call("cancel_async_task", json!({"task_id": id})).await;
    assert_eq!(
        output.content,
        format!("Cancelled async subagent task: {id}")
    );
    wait_run_status(
        &client,
        &task.thread_id,
        &task.run_id,
        RunStatus::Interrupted,
    )
    .await;
    server.shutdown(Duration::from_secs(1)).await;
}

/// Deep Agents orphans the thread it made when `runs.create` then fails.
#[tokio::test]
async fn the_thread_made_for_a_run_that_could_not_be_created_is_deleted() {
    let server = server().await;
    let client = local(&server);
    let unknown_assistant = Uuid::new_v4().to_string();
    let mut supervisor = Supervisor::new(middleware(
        &server,
        vec![
            AsyncSubAgent::new("ghost", "Is not hosted.", "no-such-graph"),
            AsyncSubAgent::new("phantom", "Has no assistant.", unknown_assistant),
        ],
    ));
    // An unknown graph name (422) and an unknown assistant id (404).
    for (name, status) in [("ghost", "(422)"), ("phantom", "(404)")] {
        let output = supervisor
            .call(
                "start_async_task",
                json!({"description": "boo", "subagent_type": name}),
            )
            .await;
        assert!(
            output
                .content
                .starts_with(&format!("Failed to launch async subagent '{name}': ")),
            "{}",
            output.content
        );
        assert!(output.content.ends_with(status), "{}", output.content);
        assert!(output.update.is_empty());
        assert!(
            threads_of(&client, name).await.is_empty(),
            "no thread left behind for {name}"
        );
    }
    assert!(board(&supervisor.state.channels).is_empty());
    let all = client.threads().search(&Default::default()).await.unwrap();
    assert!(all.is_empty(), "{all:?}");
    server.shutdown(Duration::from_secs(1)).await;
}

/// Deep Agents #3958: the in-process (ASGI) transport only works in async code inside a
/// LangGraph server; here it works from a plain current-thread runtime.
#[tokio::test(flavor = "current_thread")]
async fn the_in_process_transport_works_from_a_current_thread_runtime() {
    let (server, client, mut supervisor) = echo_supervisor().await;
    let id = supervisor.start("echoer", "hi there").await;
    supervisor.wait_run(&client, id, RunStatus::Success).await;
    // The watcher, spawned on this runtime, followed the run too.
    supervisor.wait_notices(1).await;
    let answer = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(answer["result"], "echo: hi there");
    let listed = supervisor.call("list_async_tasks", json!({})).await;
    assert!(listed.content.contains("status: success"));
    server.shutdown(Duration::from_secs(1)).await;
}

/// A graph whose agent is set once the server that hosts it has started: the supervisor needs
/// a client of the very server it runs on.
#[derive(Debug, Clone, Default)]
struct Late(Arc<OnceLock<Agent>>);

#[async_trait]
impl Graph for Late {
    async fn invoke(
        &self,
        run: GraphRun,
    ) -> Result<GraphOutput, errand_middleware::runtime::Error> {
        self.0.get().unwrap().invoke(run).await
    }
}

/// Runs the `supervisor` graph on `thread_id` with the user's `text` to its end: its values.
/// Panics with `failed` when the run does not end with values.
async fn run_supervisor(
    client: &errand_client::Client,
    thread_id: Uuid,
    text: &str,
    failed: &str,
) -> serde_json::Value {
    let input = json!({"messages": [{"role": "user", "content": text}]});
    let run = client
        .runs()
        .create(thread_id, &RunCreate::new("supervisor", input))
        .await
        .unwrap();
    let RunResult::Values(values) = client.runs().join(thread_id, run.run_id).await.unwrap() else {
        panic!("{failed}");
    };
    values
}

/// Deep Agents #4173: a supervisor hosted by a server starts a task in-process on that same
/// server, from inside its own run; the task's notice then reaches its next run.
#[tokio::test]
async fn a_supervisor_hosted_by_the_server_starts_a_task_in_process_on_that_server() {
    let late = Late::default();
    let hosted = late.clone();
    let server = server_with(move |builder| builder.graph("supervisor", hosted)).await;
    let client = local(&server);
    let middleware = middleware(&server, vec![echoer()]);
    let model = ScriptedModel::responder(|request| {
        let last = request
            .messages
            .iter()
            .rev()
            .find(|message| !is_notification(message))
            .unwrap();
        let notices = request
            .messages
            .iter()
            .filter(|message| is_notification(message))
            .count();
        match (last.kind.clone(), last.text().as_ref()) {
            (MessageKind::Human, "start") => Turn::tool_call(
                "start_async_task",
                json!({"description": "from inside", "subagent_type": "echoer"}),
            ),
            (MessageKind::Tool, _) => Turn::text("Started it."),
            _ => Turn::text(format!("{notices} notice(s).")),
        }
    });
    let supervisor = Agent::builder(Arc::new(model))
        .middleware(middleware.clone())
        .build()
        .unwrap();
    late.0.set(supervisor).unwrap();

    let thread = client
        .threads()
        .create(&ThreadCreate::default())
        .await
        .unwrap();
    let values = run_supervisor(
        &client,
        thread.thread_id,
        "start",
        "the supervisor's run failed",
    )
    .await;
    let messages = errand_middleware::runtime::messages_from_value(&values).unwrap();
    assert_eq!(messages.last().unwrap().text(), "Started it.");
    let id = launched_task(&messages).unwrap();
    let channels = values.as_object().unwrap().clone();
    let task = find_task(&channels, &id).expect("the board is in the thread's values");
    assert_eq!(task.agent_name, "echoer");
    wait_run_status(&client, &task.thread_id, &task.run_id, RunStatus::Success).await;
    assert_eq!(
        thread_messages(&client, &id).await[1].text(),
        "echo: from inside"
    );

    // The watcher started inside the run queued the task's notice for the supervisor's thread.
    wait_until("the notice", || async {
        middleware.pending_notices(thread.thread_id) == 1
    })
    .await;
    let values = run_supervisor(
        &client,
        thread.thread_id,
        "news?",
        "the supervisor's second run failed",
    )
    .await;
    let messages = errand_middleware::runtime::messages_from_value(&values).unwrap();
    assert_eq!(messages.last().unwrap().text(), "1 notice(s).");
    let notice = messages.iter().find(|m| is_notification(m)).unwrap();
    assert!(
        notice
            .text()
            .contains("<result>\necho: from inside\n</result>")
    );
    let channels = values.as_object().unwrap().clone();
    assert_eq!(
        find_task(&channels, &id).unwrap().status,
        TaskStatus::Success,
        "the notice moved the board"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

/// Deep Agents marks a notice about a run that a queued follow-up superseded, so the model
/// does not take the earlier run's result for the follow-up's.
#[tokio::test]
async fn a_notice_for_a_superseded_run_is_marked_as_such() {
    let server = server().await;
    let mut supervisor = Supervisor::new(middleware(
        &server,
        vec![echoer().update_strategy(UpdateStrategy::Enqueue)],
    ));
    let id = supervisor.start("echoer", "sleep=0.5").await;
    let first = supervisor.task(id).run_id;
    let output = supervisor
        .call(
            "update_async_task",
            json!({"task_id": id, "message": "the follow-up"}),
        )
        .await;
    assert!(
        output.content.starts_with("Queued follow-up"),
        "{}",
        output.content
    );
    let follow_up = supervisor.task(id).run_id;

    supervisor.wait_notices(2).await;
    supervisor.before_model().await;
    let notices = supervisor.notices();
    assert_eq!(notices.len(), 2, "one notice per run");
    let of = |run: &str| {
        notices
            .iter()
            .find(|notice| notice.additional_kwargs[NOTIFICATION_KEY]["run_id"] == run)
            .unwrap_or_else(|| panic!("no notice for run {run}"))
            .text()
            .into_owned()
    };
    let earlier = of(&first.to_string());
    assert!(
        earlier.contains("<result>\necho: sleep=0.5\n</result>"),
        "{earlier}"
    );
    assert!(
        earlier.contains(
            "This update is from an earlier run of this task, before your latest follow-up. \
             It is not the result of the follow-up."
        ),
        "{earlier}"
    );
    let latest = of(&follow_up.to_string());
    assert!(
        latest.contains("<result>\necho: the follow-up\n</result>"),
        "{latest}"
    );
    assert!(!latest.contains("It is not the result of the follow-up"));
    let task = supervisor.task(id);
    assert_eq!(task.run_id, follow_up);
    assert_eq!(task.status, TaskStatus::Success);
    server.shutdown(Duration::from_secs(1)).await;
}
