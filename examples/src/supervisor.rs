//! The supervisor the examples share, and the conversation its user has with it.
//!
//! A supervisor is an ordinary [`Agent`] with [`AsyncSubAgentMiddleware`]: its model gets the
//! tools `start_async_task`, `check_async_task`, `update_async_task`, `cancel_async_task` and
//! `list_async_tasks`. Here the model is Scripted: asked to research, it starts one task per
//! topic and answers at once; when a task ends, the middleware's watcher calls the
//! [`on_notice`](errand::middleware::AsyncSubAgentMiddlewareBuilder::on_notice) hook, and the
//! next supervisor turn (one with no user input) finds the notice in its conversation and
//! reports the result. No polling, no `check_async_task`.
//!
//! [`converse`] plays the user's side and prints each step; the examples differ only in
//! where their subagents run.

use crate::Transcript;
use anyhow::Context;
use errand::client::Client;
use errand::middleware::{
    AsyncSubAgent, AsyncSubAgentMiddleware, Settings, TaskEvent, Timing, board, is_notification,
    notice_field,
};
use errand::protocol::{Message, MessageKind};
use errand::runtime::agent::{Agent, AgentState, RunContext};
use errand::runtime::model::{ModelRequest, ScriptedModel, Turn};
use serde_json::json;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The longest [`converse`] waits for its tasks before it gives up.
pub const RESULTS_LIMIT: Duration = Duration::from_secs(30);

/// One research task the supervisor hands out: which subagent, and the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The subagent's name (the `subagent_type` of `start_async_task`).
    pub subagent: String,
    /// What to research.
    pub topic: String,
}

impl Assignment {
    /// `topic` for `subagent`.
    pub fn new(subagent: &str, topic: &str) -> Self {
        Self {
            subagent: subagent.into(),
            topic: topic.into(),
        }
    }
}

/// What happened in a conversation, for the caller (and the tests) to check.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The tasks the supervisor started: (task id, subagent).
    pub started: Vec<(String, String)>,
    /// Each task's end as the notice hook reported it, and how long after the start.
    pub notices: Vec<(TaskEvent, Duration)>,
    /// The supervisor's answers, in order.
    pub answers: Vec<String>,
    /// Every line printed.
    pub transcript: Vec<String>,
}

/// A supervisor agent, its middleware, and its conversation so far.
#[derive(Debug)]
pub struct Supervisor {
    agent: Agent,
    middleware: AsyncSubAgentMiddleware,
    run: RunContext,
    state: AgentState,
    arrived: Arc<Notify>,
    notices: Arc<Mutex<Vec<(TaskEvent, Duration)>>>,
}

impl Supervisor {
    /// A supervisor that can start tasks on `subagents` and will research `assignments` when
    /// asked. `local` reaches the subagents without a `url` (an in-process server's client).
    pub fn new(
        subagents: Vec<AsyncSubAgent>,
        local: Option<Client>,
        assignments: Vec<Assignment>,
        transcript: &Transcript,
    ) -> anyhow::Result<Self> {
        let arrived = Arc::new(Notify::new());
        let notices: Arc<Mutex<Vec<(TaskEvent, Duration)>>> = Arc::default();
        let started = Instant::now();
        let (hook_arrived, hook_notices, hook_transcript) = (
            Arc::clone(&arrived),
            Arc::clone(&notices),
            transcript.clone(),
        );
        let mut builder = AsyncSubAgentMiddleware::builder(subagents)
            .settings(Settings {
                // The watcher follows each run's stream and learns of its end at once; this is
                // only how often it also reads the status while the stream stays open.
                timing: Timing {
                    check_every: Duration::from_secs(1),
                    ..Timing::default()
                },
                ..Settings::default()
            })
            // Called from the watcher as soon as a task ends, while the supervisor may be idle:
            // the place to show the change, and to wake the supervisor.
            .on_notice(move |_supervisor_thread, event| {
                hook_transcript.say(format!(
                    "notice: task {} ({}) ended: {}",
                    short(&event.task_id.to_string()),
                    event.agent_name,
                    event.status
                ));
                hook_notices
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((event.clone(), started.elapsed()));
                hook_arrived.notify_one();
            });
        if let Some(local) = local {
            builder = builder.local_client(local);
        }
        let middleware = builder.build().context("setting up the subagents")?;
        let agent = Agent::builder(Arc::new(supervisor_model(assignments)))
            .name("supervisor")
            .system_prompt("You delegate research to background subagents.")
            .middleware(middleware.clone())
            .build()?;
        Ok(Self {
            agent,
            middleware,
            run: RunContext::detached(),
            state: AgentState::default(),
            arrived,
            notices,
        })
    }

    /// One supervisor turn: the user's words (or none, to let it read the notices that
    /// arrived), then its loop until it answers. Answers its last message's text.
    pub async fn turn(&mut self, words: Option<&str>) -> anyhow::Result<String> {
        let input = words.map(Message::human).into_iter().collect();
        self.state = self.agent.run(self.state.clone(), input, &self.run).await?;
        Ok(self
            .state
            .messages
            .last()
            .map(|m| m.text().into_owned())
            .unwrap_or_default())
    }

    /// How many notices wait for the supervisor's next turn.
    pub fn pending_notices(&self) -> usize {
        self.middleware.pending_notices(self.run.thread_id)
    }

    /// True when some task on the board has not ended yet (as far as the supervisor knows).
    pub fn tasks_unfinished(&self) -> bool {
        board(&self.state.channels)
            .iter()
            .any(|task| task.status.is_unfinished())
    }

    /// Waits until a notice arrives, or `limit` passes.
    pub async fn next_notice(&self, limit: Duration) {
        // A notice that arrived before this call left a permit, so none is missed.
        let _ = tokio::time::timeout(limit, self.arrived.notified()).await;
    }

    /// Stops watching the tasks (they keep running on their servers).
    pub async fn stop(self) {
        self.middleware.shutdown().await;
    }
}

/// The user's side: asks for research, asks something else while it runs, then lets the
/// supervisor report each result as its notice arrives. Prints every step.
pub async fn converse(
    mut supervisor: Supervisor,
    transcript: &Transcript,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    for words in [
        "Please research these topics for me.",
        "While that runs: what is a background subagent?",
    ] {
        transcript.say(format!("user: {words}"));
        let asked = Instant::now();
        let answer = supervisor.turn(Some(words)).await?;
        transcript.say(format!(
            "supervisor ({} ms): {answer}",
            asked.elapsed().as_millis()
        ));
        if outcome.answers.is_empty() {
            for task in board(&supervisor.state.channels) {
                transcript.say(format!(
                    "task started: {} on {}: {} ({})",
                    short(&task.task_id.to_string()),
                    task.agent_name,
                    task.purpose.as_deref().unwrap_or_default(),
                    task.status
                ));
                outcome
                    .started
                    .push((task.task_id.to_string(), task.agent_name));
            }
            if outcome.started.is_empty() {
                anyhow::bail!("no task was started: {answer}");
            }
        }
        outcome.answers.push(answer);
    }

    // The results come as notices; each wakes the supervisor for a turn without user input.
    transcript.say("waiting for the results (no polling: the watcher pushes them)");
    let deadline = Instant::now() + RESULTS_LIMIT;
    while supervisor.tasks_unfinished() || supervisor.pending_notices() > 0 {
        if supervisor.pending_notices() > 0 {
            let answer = supervisor.turn(None).await?;
            transcript.say(format!("supervisor: {answer}"));
            outcome.answers.push(answer);
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            anyhow::bail!(
                "the tasks did not finish within {} s",
                RESULTS_LIMIT.as_secs()
            );
        }
        supervisor
            .next_notice(left.min(Duration::from_secs(1)))
            .await;
    }

    outcome.notices = supervisor
        .notices
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (event, after) in &outcome.notices {
        transcript.say(format!(
            "result of {} ({}, {}, after {:.1} s): {}",
            short(&event.task_id.to_string()),
            event.agent_name,
            event.status,
            after.as_secs_f64(),
            event
                .result
                .as_deref()
                .or(event.error.as_deref())
                .unwrap_or("(nothing)")
        ));
    }
    supervisor.stop().await;
    outcome.transcript = transcript.lines();
    Ok(outcome)
}

/// The last eight characters of an id: ids made close together share their first ones.
pub fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}

/// The supervisor's Scripted model: it reacts to the latest messages since its last answer.
fn supervisor_model(assignments: Vec<Assignment>) -> ScriptedModel {
    ScriptedModel::responder(move |request: &ModelRequest| {
        let messages = &request.messages;
        let since = messages
            .iter()
            .rposition(|m| m.kind == MessageKind::Ai)
            .map_or(&messages[..], |at| &messages[at + 1..]);

        // Its start calls were answered: tell the user, and hand control back.
        let (started, failed): (Vec<String>, Vec<String>) = since
            .iter()
            .filter(|m| m.kind == MessageKind::Tool)
            .map(|m| m.text().into_owned())
            .partition(|text| text.starts_with("Launched async subagent. task_id: "));
        if !failed.is_empty() {
            return Turn::text(format!(
                "I could not start the research: {}",
                failed.join(" ")
            ));
        }
        if !started.is_empty() {
            let ids: Vec<&str> = started
                .iter()
                .filter_map(|text| text.rsplit(' ').next())
                .map(short)
                .collect();
            return Turn::text(format!(
                "I've handed {} research task(s) to my subagents (task ids {}). They work in \
                 the background; I'll report each result when it arrives.",
                ids.len(),
                ids.join(", ")
            ));
        }

        // The user's latest words, if any (notices are user messages too, but marked).
        let said = since
            .iter()
            .rev()
            .find(|m| m.kind == MessageKind::Human && !is_notification(m))
            .map(|m| m.text().into_owned())
            .unwrap_or_default();
        if said.contains("research") {
            return Turn::tool_calls(assignments.iter().map(|a| {
                (
                    "start_async_task",
                    json!({"subagent_type": a.subagent, "description": a.topic}),
                )
            }));
        }
        let mut answer = Vec::new();
        if !said.is_empty() {
            answer.push(
                "One that works on its own while I keep talking to you, like the researchers \
                 now. I'll share their findings as soon as they arrive."
                    .to_owned(),
            );
        }
        // Notices arrived: report each result.
        for notice in since.iter().filter(|m| is_notification(m)) {
            answer.push(summarise_notice(&notice.text()));
        }
        Turn::text(answer.join(" "))
    })
}

/// One sentence for a notice: whose task, its status, and its result.
fn summarise_notice(text: &str) -> String {
    let field = |tag: &str| notice_field(text, tag).unwrap_or_default();
    format!(
        "Result from {} (task {}, {}): {}",
        field("agent-name"),
        short(&field("task-id")),
        field("status"),
        field("result")
    )
}
