//! The limits Deep Agents lacks: per-task deadlines, a cap on running tasks, cancel-on-exit,
//! capped text-only results read in pages, and approval of the tools that act.

#![allow(clippy::unwrap_used)]

mod support;

use errand_middleware::{
    Action, Approval, ApprovalRequest, AsyncSubAgent, AsyncSubAgentMiddleware, Settings, TaskEvent,
    TaskStatus, Timing,
};
use errand_protocol::RunStatus;
use futures::FutureExt as _;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{
    Supervisor, echoer, json_of, local, middleware_with, run_of, server, server_run, task_id_of,
    threads_of, wait_run_status,
};

/// Checks often, so a deadline shows within a second.
fn quick_timing() -> Timing {
    Timing {
        check_every: Duration::from_millis(200),
        read_timeout: Duration::from_secs(5),
        unreachable_after: Duration::from_secs(30),
    }
}

/// The middleware for `specs` on `server` with `settings`, checking runs at [`quick_timing`].
fn build(
    server: &errand_server::Server,
    specs: Vec<AsyncSubAgent>,
    settings: Settings,
) -> AsyncSubAgentMiddleware {
    let timing = quick_timing();
    middleware_with(server, specs, Settings { timing, ..settings })
}

#[tokio::test]
async fn a_task_past_its_deadline_is_cancelled_and_ends_as_timeout() {
    let server = server().await;
    let client = local(&server);
    let events: Arc<Mutex<Vec<TaskEvent>>> = Arc::default();
    let seen = Arc::clone(&events);
    let middleware = AsyncSubAgentMiddleware::builder([
        AsyncSubAgent::new("quick", "Has its own short deadline.", "echo")
            .deadline(Duration::from_secs(1)),
        AsyncSubAgent::new("plain", "Takes the default deadline.", "echo"),
        AsyncSubAgent::new("patient", "Has its own long deadline.", "echo")
            .deadline(Duration::from_secs(3600)),
    ])
    .local_client(local(&server))
    .settings(Settings {
        default_deadline: Some(Duration::from_secs(1)),
        timing: quick_timing(),
        ..Settings::default()
    })
    .on_notice(move |_, event| seen.lock().unwrap().push(event.clone()))
    .build()
    .unwrap();
    let mut supervisor = Supervisor::new(middleware);
    let mut ids = Vec::new();
    for name in ["quick", "plain", "patient"] {
        let output = supervisor
            .call(
                "start_async_task",
                json!({"description": "sleep=30", "subagent_type": name}),
            )
            .await;
        ids.push(task_id_of(&output));
    }
    let patient = supervisor.task(ids[2]);
    assert_eq!(
        patient.deadline.unwrap() - patient.created_at,
        chrono::Duration::hours(1),
        "the spec's own deadline wins over the default"
    );
    for id in &ids[..2] {
        let task = supervisor.task(id);
        assert_eq!(
            task.deadline.unwrap() - task.created_at,
            chrono::Duration::seconds(1)
        );
    }

    supervisor.wait_notices(2).await;
    let mut ended: Vec<TaskEvent> = events.lock().unwrap().clone();
    ended.sort_by_key(|event| ids.iter().position(|id| *id == event.task_id));
    assert_eq!(ended.len(), 2, "{ended:?}");
    for (event, id) in ended.iter().zip(&ids) {
        assert_eq!(&event.task_id, id);
        assert_eq!(event.status, TaskStatus::Timeout);
        assert_eq!(
            event.error.as_deref(),
            Some("The task passed its deadline and was cancelled.")
        );
    }
    supervisor.before_model().await;
    let notices = supervisor.notices();
    assert_eq!(notices.len(), 2);
    for notice in &notices {
        let text = notice.text();
        assert!(text.contains("<status>timeout</status>"), "{text}");
        assert!(
            text.contains("The task ran too long and was stopped."),
            "{text}"
        );
    }
    for id in &ids[..2] {
        let task = supervisor.task(id);
        assert_eq!(task.status, TaskStatus::Timeout);
        wait_run_status(
            &client,
            &task.thread_id,
            &task.run_id,
            RunStatus::Interrupted,
        )
        .await;
        // A check afterwards still says why it ended.
        let answer = json_of(
            &supervisor
                .call("check_async_task", json!({"task_id": id}))
                .await,
        );
        assert_eq!(answer["status"], "timeout", "{answer}");
        assert_eq!(
            answer["error"],
            "The task passed its deadline and was cancelled."
        );
        assert_eq!(supervisor.task(id).status, TaskStatus::Timeout);
    }
    let listed = supervisor.call("list_async_tasks", json!({})).await;
    assert_eq!(
        listed.content.matches("status: timeout").count(),
        2,
        "{}",
        listed.content
    );
    assert_eq!(
        server_run(&client, &patient).await.status,
        RunStatus::Running,
        "the patient task goes on"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn one_start_past_max_running_tasks_is_refused_with_the_reason() {
    let server = server().await;
    let client = local(&server);
    let mut supervisor = Supervisor::new(build(
        &server,
        vec![echoer()],
        Settings {
            max_running_tasks: Some(2),
            ..Settings::default()
        },
    ));
    let start = json!({"description": "sleep=30", "subagent_type": "echoer"});
    let first = task_id_of(&supervisor.call("start_async_task", start.clone()).await);
    task_id_of(&supervisor.call("start_async_task", start.clone()).await);
    let refused = supervisor.call("start_async_task", start.clone()).await;
    assert_eq!(
        refused.content,
        "Not started: 2 tasks are unfinished, and at most 2 may run at once. \
         Wait for one to finish, or cancel one that is no longer needed, then start this one."
    );
    assert!(refused.update.is_empty());
    assert_eq!(threads_of(&client, "echoer").await.len(), 2, "nothing sent");

    // A finished task frees its place.
    let cancelled = supervisor
        .call("cancel_async_task", json!({"task_id": first}))
        .await;
    assert!(
        cancelled.content.starts_with("Cancelled"),
        "{}",
        cancelled.content
    );
    let third = supervisor.call("start_async_task", start).await;
    task_id_of(&third);
    assert_eq!(threads_of(&client, "echoer").await.len(), 3);
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn cancel_on_exit_cancels_the_runs_still_going_at_shutdown() {
    let server = server().await;
    let client = local(&server);
    let start = json!({"description": "sleep=30", "subagent_type": "echoer"});

    let mut keeper = Supervisor::new(build(&server, vec![echoer()], Settings::default()));
    let kept = task_id_of(&keeper.call("start_async_task", start.clone()).await);
    let kept = keeper.task(kept);

    let mut leaver = Supervisor::new(build(
        &server,
        vec![echoer()],
        Settings {
            cancel_on_exit: true,
            ..Settings::default()
        },
    ));
    let mut left = Vec::new();
    for _ in 0..2 {
        let id = task_id_of(&leaver.call("start_async_task", start.clone()).await);
        left.push(leaver.task(id));
    }
    for task in left.iter().chain([&kept]) {
        wait_run_status(&client, &task.thread_id, &task.run_id, RunStatus::Running).await;
    }

    keeper.middleware.shutdown().await;
    leaver.middleware.shutdown().await;
    for task in &left {
        wait_run_status(
            &client,
            &task.thread_id,
            &task.run_id,
            RunStatus::Interrupted,
        )
        .await;
    }
    assert_eq!(
        run_of(&client, &kept.thread_id, &kept.run_id).await.status,
        RunStatus::Running,
        "without cancel_on_exit, runs outlive the supervisor"
    );
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn results_are_text_only_capped_with_a_marker_and_read_on_with_offset() {
    let server = server().await;
    let client = local(&server);
    let mut supervisor = Supervisor::new(build(
        &server,
        vec![AsyncSubAgent::new("thinker", "Thinks aloud.", "thinker")],
        Settings {
            max_result_chars: 10,
            ..Settings::default()
        },
    ));
    let id = supervisor.start("thinker", "think").await;
    supervisor.wait_run(&client, id, RunStatus::Success).await;
    let full = "The answer is 42.\nChecked twice.";

    // The notice carries the text only (not capped by max_result_chars: notices have their
    // own, larger limit).
    supervisor.wait_notices(1).await;
    supervisor.before_model().await;
    let notice = supervisor.notices()[0].text().into_owned();
    assert!(
        notice.contains(&format!("<result>\n{full}\n</result>")),
        "{notice}"
    );
    assert!(!notice.contains("private chain of thought"));
    assert!(!notice.contains("calc"));

    let total = full.chars().count();
    let first = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id}))
            .await,
    );
    assert_eq!(
        first["result"],
        format!(
            "The answer\n\n[... {} more characters not shown; call check_async_task with offset=10 to read on]",
            total - 10
        )
    );
    let mut read = String::new();
    let mut offset = 0;
    while offset < total {
        let page = json_of(
            &supervisor
                .call("check_async_task", json!({"task_id": id, "offset": offset}))
                .await,
        );
        let text = page["result"].as_str().unwrap();
        let shown = text.split("\n\n[... ").next().unwrap();
        assert!(shown.chars().count() <= 10);
        read.push_str(shown);
        offset += shown.chars().count();
    }
    assert_eq!(
        read, full,
        "the pages add up to the text, and only the text"
    );
    let past = json_of(
        &supervisor
            .call("check_async_task", json!({"task_id": id, "offset": 500}))
            .await,
    );
    assert!(
        past["result"].as_str().unwrap().contains("past its end"),
        "{past}"
    );

    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_approval_hook_refuses_a_start_and_approves_an_update() {
    let server = server().await;
    let client = local(&server);
    let asked: Arc<Mutex<Vec<ApprovalRequest>>> = Arc::default();
    let log = Arc::clone(&asked);
    let middleware = AsyncSubAgentMiddleware::builder([echoer()])
        .local_client(local(&server))
        .approver(Arc::new(move |request: ApprovalRequest| {
            log.lock().unwrap().push(request.clone());
            async move {
                match request.action {
                    Action::Start if request.text.as_deref() == Some("delete everything") => {
                        Approval::Reject(Some("too risky".into()))
                    }
                    Action::Cancel => Approval::Reject(None),
                    _ => Approval::Approve,
                }
            }
            .boxed()
        }))
        .build()
        .unwrap();
    let mut supervisor = Supervisor::new(middleware);

    let refused = supervisor
        .call(
            "start_async_task",
            json!({"description": "delete everything", "subagent_type": "echoer"}),
        )
        .await;
    assert!(
        refused.content.starts_with(
            "The user did not approve: you may not start this task. Their reason: too risky"
        ),
        "{}",
        refused.content
    );
    assert!(refused.update.is_empty());
    assert!(
        threads_of(&client, "echoer").await.is_empty(),
        "no thread created"
    );

    let id = supervisor.start("echoer", "sleep=30").await;
    let before = supervisor.task(id);
    let updated = supervisor
        .call(
            "update_async_task",
            json!({"task_id": id, "message": "say hi instead"}),
        )
        .await;
    assert_eq!(
        updated.content,
        format!("Updated async subagent. task_id: {id}")
    );
    let after = supervisor.task(id);
    assert_ne!(after.run_id, before.run_id);
    wait_run_status(&client, &after.thread_id, &after.run_id, RunStatus::Success).await;

    let kept = supervisor
        .call("cancel_async_task", json!({"task_id": id}))
        .await;
    assert_eq!(
        kept.content,
        "The user did not approve: you may not cancel this task. Don't try again unless they ask for it."
    );

    let asked = asked.lock().unwrap().clone();
    let seen: Vec<(Action, Option<uuid::Uuid>, Option<&str>)> = asked
        .iter()
        .map(|r| (r.action, r.task_id, r.text.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (Action::Start, None, Some("delete everything")),
            (Action::Start, None, Some("sleep=30")),
            (Action::Update, Some(id), Some("say hi instead")),
            (Action::Cancel, Some(id), None),
        ]
    );
    assert!(asked.iter().all(|r| r.agent_name == "echoer"));
    server.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_running_task_cap_counts_live_statuses_not_cached_ones() {
    let server = server().await;
    let client = local(&server);
    // No notices: nothing but the tools refreshes the board.
    let mut supervisor = Supervisor::new(build(
        &server,
        vec![echoer().notify_parent(false)],
        Settings {
            max_running_tasks: Some(1),
            ..Settings::default()
        },
    ));
    let id = supervisor.start("echoer", "hello").await;
    supervisor.wait_run(&client, id, RunStatus::Success).await;
    assert_eq!(supervisor.task(id).status, TaskStatus::Running, "cached");
    let second = supervisor
        .call(
            "start_async_task",
            json!({"description": "sleep=30", "subagent_type": "echoer"}),
        )
        .await;
    task_id_of(&second);
    assert_eq!(threads_of(&client, "echoer").await.len(), 2);
    // One live task now: the cap holds.
    let third = supervisor
        .call(
            "start_async_task",
            json!({"description": "sleep=30", "subagent_type": "echoer"}),
        )
        .await;
    assert!(
        third.content.starts_with("Not started"),
        "{}",
        third.content
    );
    server.shutdown(Duration::from_secs(1)).await;
}
