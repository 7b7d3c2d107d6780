//! The steps that set a chat up before its loop runs: the supervisor's options, the greeting,
//! the live reads of local tasks, the approver, the Ctrl-C handler and the history file.

use super::{ChatArgs, Event};
use crate::agents;
use crate::config::{Config, ModelConfig};
use crate::supervisor::{self, Options, Supervisor};
use anyhow::Context;
use errand::client::Client;
use errand::middleware::{Approval, ApprovalRequest, Approver, Settings, TaskEvent};
use errand::runtime::model::ChatModel;
use errand::server::graphs::Echo;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// What the built-in `echo` subagent is, as the supervisor's model reads it.
const ECHO_DESCRIPTION: &str = "A test subagent: it answers with the task's description. A \
description starting with `sleep=<seconds>` makes it wait that long first (e.g. `sleep=5 \
research tides`), and `fail=<text>` makes it fail.";

/// The approver: sends each request to the chat's loop and waits for the user's answer.
fn approver(events: mpsc::UnboundedSender<Event>) -> Approver {
    Arc::new(move |request: ApprovalRequest| {
        let events = events.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            if events.send(Event::Approval(request, reply)).is_err() {
                return Approval::Reject(Some("the chat is closing".into()));
            }
            answer
                .await
                .unwrap_or_else(|_| Approval::Reject(Some("the user did not answer".into())))
        })
    })
}

/// Forwards SIGINT to the loop instead of ending the process: while the line editor reads,
/// the terminal is raw and Ctrl-C is a key; while a turn runs it is a signal, and cancels it.
pub(super) fn spawn_interrupts(events: mpsc::UnboundedSender<Event>) -> anyhow::Result<()> {
    // Registered here, not in the task: the handler is in place when this returns.
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("handling Ctrl-C")?;
    tokio::spawn(async move {
        while interrupts.recv().await.is_some() {
            if events.send(Event::Interrupt).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Where the history is kept: the user's data folder, else the working folder.
fn history_file() -> PathBuf {
    let data = supervisor::env("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| supervisor::env("HOME").map(|home| PathBuf::from(home).join(".local/share")));
    match data {
        Some(data) if std::fs::create_dir_all(data.join("errand")).is_ok() => {
            data.join("errand").join("history")
        }
        _ => PathBuf::from(".errand_history"),
    }
}

/// Whether the chat hosts the built-in `echo` subagent: when the config names no agent, so
/// there is something to try.
pub(super) fn hosts_echo(config: &Config) -> bool {
    config.agents.is_empty() && config.async_subagents.is_empty()
}

/// The supervisor's options: its model, the `echo` subagent when it is hosted, the approver
/// unless `--yes`, and each task's notice sent to the loop.
pub(super) fn supervisor_options(
    args: &ChatArgs,
    model_config: &ModelConfig,
    model: Arc<dyn ChatModel>,
    builtin_echo: bool,
    events: &mpsc::UnboundedSender<Event>,
) -> Options {
    let notices = events.clone();
    Options {
        model,
        settings: agents::settings(model_config),
        extra_graphs: if builtin_echo {
            vec![("echo".into(), Arc::new(Echo), ECHO_DESCRIPTION.into())]
        } else {
            Vec::new()
        },
        db: args.db.clone(),
        middleware: Settings::default(),
        approver: (!args.yes).then(|| approver(events.clone())),
        on_notice: Some(Arc::new(move |_thread: Uuid, event: &TaskEvent| {
            // The loop may be gone while a watcher ends: nobody is left to tell.
            let _ = notices.send(Event::Notice(event.clone()));
        })),
        summarize_after_tokens: 60_000,
    }
}

/// The first lines the chat prints: the model, the subagents, and what the flags and the
/// config changed.
pub(super) fn greeting(
    args: &ChatArgs,
    config: &Config,
    model_config: &ModelConfig,
    supervisor: &Supervisor,
    builtin_echo: bool,
) -> String {
    let mut hello = format!("errand chat: supervisor model {}", model_config.name);
    if let Some(url) = &model_config.base_url {
        hello.push_str(&format!(" at {url}"));
    }
    let subagents: Vec<String> = supervisor
        .middleware
        .subagents()
        .iter()
        .map(|spec| match &spec.url {
            Some(url) => format!("{} ({url})", spec.name),
            None => format!("{} (in this process)", spec.name),
        })
        .collect();
    hello.push_str(&format!("\nsubagents: {}", subagents.join(", ")));
    if builtin_echo {
        hello.push_str(
            "\nno agents in the config, so the built-in `echo` subagent is hosted: it echoes a \
             task back, after `sleep=N` seconds if asked. Add [agents.NAME] or \
             [async_subagents.NAME] tables to errand.toml for real ones.",
        );
    }
    if args.yes {
        hello.push_str("\nstarts, updates and cancels are approved without asking (--yes)");
    }
    if let (Some(path), false) = (&args.config, config.skipped.is_empty()) {
        hello.push_str(&format!(
            "\n{}: skipped tables errand does not read: {}",
            path.display(),
            config.skipped.join(", ")
        ));
    }
    hello.push_str("\n/help for help, /tasks lists tasks, /quit or Ctrl-D leaves.");
    hello
}

/// A client of the in-process server and the names of the subagents it hosts, to read the
/// live status of local tasks; `None` when no server runs in this process.
pub(super) fn live_reads(supervisor: &Supervisor) -> Option<(Client, HashSet<String>)> {
    let server = supervisor.server.as_ref()?;
    let local: HashSet<String> = supervisor
        .middleware
        .subagents()
        .iter()
        .filter(|spec| spec.url.is_none())
        .map(|spec| spec.name.clone())
        .collect();
    Client::in_process(server.router())
        .ok()
        .map(|client| (client, local))
}

/// The history file, unless `--no-history`.
pub(super) fn history(args: &ChatArgs) -> Option<PathBuf> {
    (!args.no_history).then(|| args.history.clone().unwrap_or_else(history_file))
}
