//! `errand demo`: the whole mission in one process, offline, in well under a minute.
//!
//! An in-process server on a SQLite file in a temporary folder hosts a `researcher` agent; a
//! supervisor hands it three research tasks at once, steers one with a new instruction, cancels
//! another, keeps talking to its user, and reports each result as its notice arrives. Both run
//! on the Scripted model unless a model key is in the environment (and `--offline` is not
//! given), in which case they run on that model.

use crate::agents;
use crate::config::Config;
use crate::supervisor::{self, Options, Supervisor};
use errand::middleware::{AsyncTask, Settings, TaskEvent, Timing, board, notice_field};
use errand::protocol::{Message, MessageKind};
use errand::runtime::agent::Agent;
use errand::runtime::model::{ChatModel, ModelRequest, ModelSettings, ScriptedModel, Turn};
use errand::runtime::tool::FunctionTool;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Flags of `errand demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Use the Scripted model even when a model key is in the environment.
    #[arg(long)]
    offline: bool,
}

/// The longest the demo waits for its tasks before giving up.
const DEMO_LIMIT: Duration = Duration::from_secs(50);

/// What the user says, in order.
const USER_TURNS: [&str; 3] = [
    "Research three topics in parallel: async runtimes in Rust, SQLite durability, and the Agent Protocol.",
    "For the SQLite research, focus on WAL mode and fsync.",
    "Drop the Agent Protocol research; we have enough on it.",
];

const RESEARCHER_PROMPT: &str = "You are a research assistant. Call search_notes once for the \
topic you are given, then answer with three short numbered findings.";

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct SearchNotes {
    /// The topic to look up.
    topic: String,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let clock = Clock(Instant::now());
    let folder = tempfile::tempdir()?;
    let db = folder.path().join("errand.db");
    let real = if args.offline {
        None
    } else {
        supervisor::model_config(&Config::default()).ok()
    };
    let (supervisor_model, researcher_model, settings, label): (
        Arc<dyn ChatModel>,
        Arc<dyn ChatModel>,
        ModelSettings,
        String,
    ) = match &real {
        Some(config) => {
            let model = agents::model(config)?;
            (
                Arc::clone(&model),
                model,
                agents::settings(config),
                config.name.clone(),
            )
        }
        None => (
            Arc::new(scripted_supervisor()),
            Arc::new(scripted_researcher()),
            ModelSettings::default(),
            "scripted (offline; set ANTHROPIC_API_KEY or OPENAI_API_KEY to use a real model)"
                .into(),
        ),
    };
    println!("errand demo: a supervisor hands research to background subagents.");
    println!("  model:  {label}");
    println!("  server: in-process, SQLite at {}", db.display());
    println!();

    let researcher = Agent::builder(researcher_model)
        .name("researcher")
        .system_prompt(RESEARCHER_PROMPT)
        .settings(settings.clone())
        .tool(search_notes())
        .max_steps(6)
        .build()?;
    let arrived = Arc::new(Notify::new());
    let signal = Arc::clone(&arrived);
    let mut supervisor = Supervisor::start(
        &Config::default(),
        Options {
            model: supervisor_model,
            settings,
            extra_graphs: vec![(
                "researcher".into(),
                Arc::new(researcher),
                "Researches a topic and reports three findings.".into(),
            )],
            db,
            middleware: Settings {
                timing: Timing {
                    check_every: Duration::from_secs(2),
                    ..Timing::default()
                },
                ..Settings::default()
            },
            approver: None,
            on_notice: Some(Arc::new(move |_, event: &TaskEvent| {
                println!(
                    "{} notice: task {} ({}) is {}",
                    clock.now(),
                    short(&event.task_id.to_string()),
                    event.agent_name,
                    event.status
                );
                signal.notify_one();
            })),
            summarize_after_tokens: 60_000,
        },
    )
    .await?;

    for words in USER_TURNS {
        println!("{} user: {words}", clock.now());
        let started = Instant::now();
        let answer = supervisor.turn(Some(words)).await?;
        println!(
            "{} supervisor ({} ms): {answer}",
            clock.now(),
            started.elapsed().as_millis()
        );
        print_board(&clock, &board(&supervisor.state.channels));
    }

    // Results arrive as notices; the supervisor reads each in a turn of its own.
    let deadline = Instant::now() + DEMO_LIMIT;
    let mut last_status = Instant::now();
    loop {
        if supervisor.pending_notices() > 0 {
            let started = Instant::now();
            let answer = supervisor.turn(None).await?;
            println!(
                "{} supervisor ({} ms): {answer}",
                clock.now(),
                started.elapsed().as_millis()
            );
        }
        let tasks = board(&supervisor.state.channels);
        if supervisor.pending_notices() == 0 && tasks.iter().all(|t| !t.status.is_unfinished()) {
            break;
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the demo's tasks did not finish within {} s",
                DEMO_LIMIT.as_secs()
            );
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            print_running(&clock, &tasks);
            last_status = Instant::now();
        }
        tokio::select! {
            () = arrived.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }

    println!();
    println!("{} done. The task board:", clock.now());
    print_board(&clock, &board(&supervisor.state.channels));
    supervisor.stop().await;
    Ok(())
}

/// Seconds since the demo started, as a prefix.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> String {
        format!("[{:>5.1}s]", self.0.elapsed().as_secs_f64())
    }
}

/// The last eight characters of an id: time-ordered ids share their first ones.
fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}

fn print_board(clock: &Clock, tasks: &[AsyncTask]) {
    for task in tasks {
        println!(
            "{}   task {} {:<10} {:<9} {}",
            clock.now(),
            short(&task.task_id.to_string()),
            task.agent_name,
            task.status.as_str(),
            task.purpose.as_deref().unwrap_or_default()
        );
    }
}

/// One progress line: what is still running, and for how long.
fn print_running(clock: &Clock, tasks: &[AsyncTask]) {
    let now = chrono::Utc::now();
    let running: Vec<String> = tasks
        .iter()
        .filter(|task| task.status.is_unfinished())
        .map(|task| {
            let since = (now - task.created_at).num_seconds();
            format!(
                "{} {} {} s",
                short(&task.task_id.to_string()),
                task.status,
                since
            )
        })
        .collect();
    if !running.is_empty() {
        println!("{}   working: {}", clock.now(), running.join(", "));
    }
}

fn search_notes() -> FunctionTool<SearchNotes> {
    FunctionTool::new(
        "search_notes",
        "Searches the team's research notes for a topic.",
        |args: SearchNotes, _| async move {
            let topic = args.topic.to_lowercase();
            let notes = if topic.contains("sqlite") || topic.contains("wal") {
                "WAL lets readers run beside one writer; synchronous=NORMAL fsyncs at checkpoints; \
                 a commit is durable once its WAL frame is synced."
            } else if topic.contains("runtime") {
                "tokio is the common choice: work-stealing scheduler, timers, I/O drivers; \
                 smol and glommio trade features for size or thread-per-core."
            } else {
                "The Agent Protocol (LangGraph server API) has threads, runs, streams and a store."
            };
            Ok(notes.into())
        },
    )
}

/// The researcher's script: look the topic up, then answer; some topics take longer.
fn scripted_researcher() -> ScriptedModel {
    ScriptedModel::responder(|request: &ModelRequest| {
        let Some(last) = request.messages.last() else {
            return Turn::text("Nothing to research.");
        };
        let task = request.last_human_text();
        if last.kind != MessageKind::Tool {
            return Turn::tool_call("search_notes", json!({ "topic": task }))
                .after(Duration::from_millis(300));
        }
        let pause = if task.contains("Agent Protocol") {
            Duration::from_secs(8)
        } else if task.contains("WAL") {
            Duration::from_millis(2_500)
        } else {
            Duration::from_millis(1_500 + 100 * (task.len() as u64 % 10))
        };
        Turn::text(format!(
            "Findings on \"{task}\":\n1. {}\n2. It is well documented.\n3. It is in production use.",
            last.text()
        ))
        .after(pause)
    })
}

/// Task ids in the order the supervisor's start calls launched them.
fn launched(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| {
            m.text()
                .strip_prefix("Launched async subagent. task_id: ")
                .map(str::to_owned)
        })
        .collect()
}

/// The supervisor's script: delegate, steer, cancel, and report each notice.
fn scripted_supervisor() -> ScriptedModel {
    ScriptedModel::responder(|request: &ModelRequest| {
        let messages = &request.messages;
        let last_answer = messages.iter().rposition(|m| m.kind == MessageKind::Ai);
        let since: Vec<&Message> = match last_answer {
            Some(at) => messages[at + 1..].iter().collect(),
            None => messages.iter().collect(),
        };
        let tool_answers: Vec<String> = since
            .iter()
            .filter(|m| m.kind == MessageKind::Tool)
            .map(|m| m.text().into_owned())
            .collect();
        if !tool_answers.is_empty() {
            return Turn::text(match tool_answers.len() {
                3 => "I've started three research tasks in the background: async runtimes, SQLite \
                      durability and the Agent Protocol. I'll report each result as it comes in."
                    .to_owned(),
                _ if since
                    .iter()
                    .any(|m| m.name.as_deref() == Some("update_async_task")) =>
                {
                    format!(
                        "I've told the SQLite task to focus on WAL mode and fsync. ({})",
                        tool_answers.join(" ")
                    )
                }
                _ => format!("Done. ({})", tool_answers.join(" ")),
            });
        }
        let notices: Vec<String> = since
            .iter()
            .filter(|m| errand::middleware::is_notification(m))
            .map(|m| summarise_notice(&m.text()))
            .collect();
        if !notices.is_empty() {
            return Turn::text(notices.join("\n"));
        }
        let said = since
            .iter()
            .rev()
            .find(|m| m.kind == MessageKind::Human)
            .map(|m| m.text().into_owned())
            .unwrap_or_default();
        let ids = launched(messages);
        if said.contains("in parallel") {
            return Turn::tool_calls([
                (
                    "start_async_task",
                    json!({"subagent_type": "researcher", "description": "async runtimes in Rust"}),
                ),
                (
                    "start_async_task",
                    json!({"subagent_type": "researcher", "description": "SQLite durability"}),
                ),
                (
                    "start_async_task",
                    json!({"subagent_type": "researcher", "description": "the Agent Protocol"}),
                ),
            ]);
        }
        if let (true, Some(id)) = (said.contains("focus on"), ids.get(1)) {
            return Turn::tool_call(
                "update_async_task",
                json!({"task_id": id, "message": "SQLite durability: focus on WAL mode and fsync."}),
            );
        }
        if let (true, Some(id)) = (said.contains("Drop"), ids.get(2)) {
            return Turn::tool_call("cancel_async_task", json!({"task_id": id}));
        }
        Turn::text("Noted.")
    })
}

/// One line for a notice: the task's status and the first line of its result.
fn summarise_notice(text: &str) -> String {
    let field = |tag: &str| notice_field(text, tag).unwrap_or_default();
    let result = field("result")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut gist: String = result.chars().take(110).collect();
    if gist.len() < result.len() {
        gist.push('…');
    }
    format!(
        "Task {} is {}: {}",
        short(&field("task-id")),
        field("status"),
        if gist.is_empty() {
            "no result text".into()
        } else {
            gist
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand::middleware::TaskStatus;

    #[test]
    fn a_notice_is_summarised_in_one_line() {
        let event = TaskEvent {
            task_id: uuid::Uuid::from_u128(0x0123456789),
            agent_name: "researcher".into(),
            run_id: uuid::Uuid::from_u128(1),
            status: TaskStatus::Success,
            result: Some("Findings on x:\n1. y".into()),
            error: None,
            interrupts: Vec::new(),
        };
        let notice = errand::middleware::notification(&event, false);
        assert_eq!(
            summarise_notice(&notice.text()),
            "Task 23456789 is success: Findings on x: 1. y"
        );
    }
}
