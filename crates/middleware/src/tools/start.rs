//! `start_async_task`: starts a task on a subagent (a new thread and a run on it) and puts it
//! on the board.

use super::{declined, live, run_create};
use crate::approval::{Action, ApprovalRequest};
use crate::shared::Shared;
use crate::spec::{AsyncSubAgent, Mode};
use crate::task::{self, AsyncTask, TASKS_CHANNEL, TaskStatus};
use errand_client::{Client, ClientError};
use errand_protocol::{Message, MessageKind, ThreadCreate};
use errand_runtime::tool::{ToolContext, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The tool's name.
pub(super) const NAME: &str = "start_async_task";

/// How much of a description the board keeps as the task's purpose.
const PURPOSE_CHARS: usize = 200;

const FORK_PREAMBLE: &str = "[The messages above are prior conversation inherited from the parent agent. \
You are the background subagent it started for the task below; do that task.]\n\n";

#[derive(Deserialize, JsonSchema)]
pub(super) struct StartArgs {
    /// A detailed description of the task for the async subagent to perform.
    description: String,
    /// The type of async subagent to use. Must be one of the available types listed in the tool description.
    subagent_type: String,
}

/// What the tool tells the model: the subagents it may start, and how to work with tasks.
pub(super) fn description(specs: &[AsyncSubAgent]) -> String {
    let agents: Vec<String> = specs
        .iter()
        .map(|spec| {
            let fork = if spec.mode == Mode::Fork {
                " (inherits your conversation at launch; uses its own system prompt and tools)"
            } else {
                ""
            };
            format!("- {}: {}{fork}", spec.name, spec.description)
        })
        .collect();
    format!(
        "Start a background task on an async subagent. The subagent works on its own and this tool returns a task ID at once.

Available async agent types:
{}

## Usage notes:
1. After starting a task, briefly tell the user what you delegated and give control back to them. The task ID is for your own bookkeeping: mention it only when it helps. Do NOT check the status right after starting.
2. You will usually be told when a task finishes, fails or needs input, so don't check just to see whether it is done; use `check_async_task` when the user asks, or when a notification tells you to.
3. Use `update_async_task` to give a running task new instructions.
4. Several tasks can run at once: start each one, then let them work in the background.
5. Each subagent has its own tools and context and sees only what you send: describe the task completely.
6. A `waiting` task is waiting for a human. The user answers it directly; you can't answer or approve it. Keep working.",
        agents.join("\n")
    )
}

/// Starts the task: checks the subagent, the cap on unfinished tasks and the approver, then
/// launches it, puts it on the board and watches it.
pub(super) async fn start(shared: &Shared, args: StartArgs, context: ToolContext) -> ToolOutput {
    let name = args.subagent_type.trim();
    let Some(spec) = shared.spec(name) else {
        return ToolOutput::text(format!(
            "Unknown async subagent type `{name}`. Available types: {}",
            shared.names()
        ));
    };
    if let Some(refusal) = over_capacity(shared, &task::board(&context.state.channels)).await {
        return refusal;
    }
    let request = ApprovalRequest {
        action: Action::Start,
        agent_name: spec.name.clone(),
        task_id: None,
        text: Some(args.description.clone()),
    };
    if let Some(reason) = shared.refused(request).await {
        return declined("start this task", &reason);
    }
    let launched = match launch(shared, spec, &args.description, &context).await {
        Ok(launched) => launched,
        Err(error) => {
            return ToolOutput::text(format!("Failed to launch async subagent '{name}': {error}"));
        }
    };
    let record = new_record(shared, spec, &launched, &args.description);
    shared.watch(context.thread_id, &record, spec, launched.client);
    ToolOutput::text(format!(
        "Launched async subagent. task_id: {}",
        record.task_id
    ))
    .with_update(TASKS_CHANNEL, record.to_update())
}

/// The refusal to start one more task when the settings cap unfinished tasks and the cap is
/// reached.
async fn over_capacity(shared: &Shared, board: &[AsyncTask]) -> Option<ToolOutput> {
    let max = shared.settings.max_running_tasks?;
    let cached: Vec<&AsyncTask> = board
        .iter()
        .filter(|task| task.status.is_unfinished())
        .collect();
    let mut unfinished = cached.len();
    if unfinished >= max {
        // The board can be stale (a task may end before the supervisor hears of it): count
        // live statuses. They are not recorded, so the notices still come.
        let reads = cached.iter().map(|record| async move {
            let Some(spec) = shared.spec(&record.agent_name) else {
                return true;
            };
            live::observe_quickly(shared, spec, record)
                .await
                .is_none_or(|observation| observation.status.is_unfinished())
        });
        unfinished = futures::future::join_all(reads)
            .await
            .into_iter()
            .filter(|&live| live)
            .count();
    }
    (unfinished >= max).then(|| {
        ToolOutput::text(format!(
            "Not started: {unfinished} tasks are unfinished, and at most {max} may run at once. \
             Wait for one to finish, or cancel one that is no longer needed, then start this one."
        ))
    })
}

/// A task just launched on its subagent's server.
struct Launched {
    client: Client,
    thread_id: Uuid,
    run_id: Uuid,
}

/// Makes the task's thread, marked with the subagent and the supervisor thread, and its first
/// run. A thread whose run could not be made is deleted again.
async fn launch(
    shared: &Shared,
    spec: &AsyncSubAgent,
    description: &str,
    context: &ToolContext,
) -> Result<Launched, ClientError> {
    let client = shared.client(spec)?;
    let mut metadata = Map::new();
    metadata.insert("subagent_name".into(), Value::from(spec.name.clone()));
    metadata.insert(
        "parent_thread_id".into(),
        Value::from(context.thread_id.to_string()),
    );
    let thread = client
        .threads()
        .create(&ThreadCreate {
            metadata: Some(metadata),
            ..ThreadCreate::default()
        })
        .await?;
    let messages = match spec.mode {
        Mode::Isolated => json!([{"role": "user", "content": description}]),
        Mode::Fork => fork_messages(&context.state.messages, description),
    };
    let run = client
        .runs()
        .create(
            thread.thread_id,
            &run_create(spec, context.thread_id, &messages, None),
        )
        .await;
    match run {
        Ok(run) => Ok(Launched {
            client,
            thread_id: thread.thread_id,
            run_id: run.run_id,
        }),
        Err(error) => {
            // The thread was made only for this run: don't leave it behind.
            if let Err(cleanup) = client.threads().delete(thread.thread_id).await {
                tracing::warn!(thread = %thread.thread_id, %cleanup, "could not delete the thread of a task that failed to start");
            }
            Err(error)
        }
    }
}

/// The board's record of a task just launched: running, stamped now, with its deadline.
fn new_record(
    shared: &Shared,
    spec: &AsyncSubAgent,
    launched: &Launched,
    description: &str,
) -> AsyncTask {
    let now = task::now();
    let deadline = spec
        .deadline_secs
        .map(Duration::from_secs)
        .or(shared.settings.default_deadline)
        .and_then(|deadline| chrono::Duration::from_std(deadline).ok())
        .map(|deadline| now + deadline);
    AsyncTask {
        task_id: launched.thread_id,
        agent_name: spec.name.clone(),
        thread_id: launched.thread_id,
        run_id: launched.run_id,
        status: TaskStatus::Running,
        created_at: now,
        last_checked_at: now,
        last_updated_at: now,
        superseded_run_ids: Vec::new(),
        purpose: Some(shorten(description, PURPOSE_CHARS)),
        deadline,
        interrupts: Vec::new(),
    }
}

/// The supervisor's conversation for a forked task: without the trailing call that starts it,
/// then the task itself.
fn fork_messages(messages: &[Message], description: &str) -> Value {
    let mut inherited: Vec<Message> = messages.to_vec();
    if inherited
        .last()
        .is_some_and(|last| last.kind == MessageKind::Ai && !last.tool_calls().is_empty())
    {
        inherited.pop();
    }
    inherited.push(Message::human(format!("{FORK_PREAMBLE}{description}")));
    serde_json::to_value(inherited).unwrap_or_else(|_| json!([]))
}

/// `text` trimmed and cut to `limit` characters, with an ellipsis when cut.
fn shorten(text: &str, limit: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
