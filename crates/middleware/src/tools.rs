//! The five tools, with Deep Agents' names, arguments and answers.

use crate::approval::{Action, ApprovalRequest};
use crate::observe::{Observation, observe, page};
use crate::shared::Shared;
use crate::spec::{AsyncSubAgent, Mode, UpdateStrategy};
use crate::task::{self, AsyncTask, TASKS_CHANNEL, TaskStatus};
use errand_client::{CancelOptions, Client};
use errand_protocol::{
    Message, MessageKind, MultitaskStrategy, RunConfig, RunCreate, ThreadCreate,
};
use errand_runtime::Error as RuntimeError;
use errand_runtime::tool::{FunctionTool, SharedTool, ToolContext, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The tool names, in Deep Agents' order.
pub const TOOL_NAMES: [&str; 5] = [
    "start_async_task",
    "check_async_task",
    "update_async_task",
    "cancel_async_task",
    "list_async_tasks",
];

/// How long `list_async_tasks` waits for one task's server before showing its cached status.
const LIST_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of a description the board keeps as the task's purpose.
const PURPOSE_CHARS: usize = 200;

const FORK_PREAMBLE: &str = "[The messages above are prior conversation inherited from the parent agent. \
You are the background subagent it started for the task below; do that task.]\n\n";

#[derive(Deserialize, JsonSchema)]
struct StartArgs {
    /// A detailed description of the task for the async subagent to perform.
    description: String,
    /// The type of async subagent to use. Must be one of the available types listed in the tool description.
    subagent_type: String,
}

#[derive(Deserialize, JsonSchema)]
struct CheckArgs {
    /// The exact task_id string returned by start_async_task. Pass it verbatim.
    task_id: String,
    /// Where to start reading a long result, in characters; the previous answer says which offset comes next.
    #[serde(default)]
    offset: Option<usize>,
}

#[derive(Deserialize, JsonSchema)]
struct UpdateArgs {
    /// The exact task_id string returned by start_async_task. Pass it verbatim.
    task_id: String,
    /// Follow-up instructions or context to send to the subagent.
    message: String,
}

#[derive(Deserialize, JsonSchema)]
struct CancelArgs {
    /// The exact task_id string returned by start_async_task. Pass it verbatim.
    task_id: String,
}

#[derive(Deserialize, JsonSchema)]
struct ListArgs {
    /// Filter tasks by live status: pending, running, waiting, success, error, timeout, cancelled, or all. Defaults to all.
    #[serde(default)]
    status_filter: Option<StatusFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum StatusFilter {
    Pending,
    Running,
    Waiting,
    Success,
    Error,
    Timeout,
    Cancelled,
    All,
}

impl StatusFilter {
    fn admits(self, status: TaskStatus) -> bool {
        match self {
            Self::All => true,
            Self::Pending => status == TaskStatus::Pending,
            Self::Running => status == TaskStatus::Running,
            Self::Waiting => status == TaskStatus::Waiting,
            Self::Success => status == TaskStatus::Success,
            Self::Error => status == TaskStatus::Error,
            Self::Timeout => status == TaskStatus::Timeout,
            Self::Cancelled => status == TaskStatus::Cancelled,
        }
    }
}

/// A tool whose handler is a method of the middleware's shared state.
fn tool<A, F, Fut>(shared: &Arc<Shared>, name: &str, description: String, handler: F) -> SharedTool
where
    A: for<'de> Deserialize<'de> + JsonSchema + Send + 'static,
    F: Fn(Arc<Shared>, A, ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ToolOutput> + Send + 'static,
{
    let shared = Arc::clone(shared);
    let handler = Arc::new(handler);
    Arc::new(FunctionTool::new(
        name,
        description,
        move |args: A, context| {
            let shared = Arc::clone(&shared);
            let handler = Arc::clone(&handler);
            async move { Ok::<_, RuntimeError>(handler(shared, args, context).await) }
        },
    ))
}

/// The five tools over the middleware's state.
pub(crate) fn all(shared: &Arc<Shared>) -> Vec<SharedTool> {
    vec![
        tool(
            shared,
            TOOL_NAMES[0],
            start_description(&shared.specs),
            |shared, args, context| async move { shared.start(args, context).await },
        ),
        tool(
            shared,
            TOOL_NAMES[1],
            CHECK_DESCRIPTION.into(),
            |shared, args, context| async move { shared.check(args, context).await },
        ),
        tool(
            shared,
            TOOL_NAMES[2],
            update_description(&shared.specs),
            |shared, args, context| async move { shared.update(args, context).await },
        ),
        tool(
            shared,
            TOOL_NAMES[3],
            CANCEL_DESCRIPTION.into(),
            |shared, args, context| async move { shared.cancel(args, context).await },
        ),
        tool(
            shared,
            TOOL_NAMES[4],
            LIST_DESCRIPTION.into(),
            |shared, args, context| async move { shared.list(args, context).await },
        ),
    ]
}

fn start_description(specs: &[AsyncSubAgent]) -> String {
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

fn update_description(specs: &[AsyncSubAgent]) -> String {
    let mut description = String::from(
        "Send new instructions to an async subagent task. The subagent gets your message on the same thread, so it sees its whole history plus your new message; the task_id stays the same. The current run is stopped and a new one starts at once.",
    );
    let queued: Vec<String> = specs
        .iter()
        .filter(|spec| spec.update_strategy == UpdateStrategy::Enqueue)
        .map(|spec| format!("`{}`", spec.name))
        .collect();
    if !queued.is_empty() {
        description.push_str(&format!(
            "\n\nException: for {}, follow-ups queue behind the current run instead of stopping it. Send at most one follow-up per task per turn; put everything into that one message.",
            queued.join(", ")
        ));
    }
    description
}

const CHECK_DESCRIPTION: &str = "Check an async subagent task: its current status and, once it has finished, its result (or its error). Statuses shown earlier in the conversation are always stale, so call this to get the current status rather than reporting one from an earlier tool result. Long results come in pages: pass `offset` to read on. A `waiting` task needs a human: the user answers it directly, not you.";

const CANCEL_DESCRIPTION: &str = "Cancel an async subagent task that is running, pending or waiting, when it is no longer needed. The answer says what really happened: a task that had already finished stays finished, with its result.";

const LIST_DESCRIPTION: &str = "List the async subagent tasks you started, with their current live statuses (read from their servers now), agents and purposes. Use it to recall task IDs, for example after the conversation was summarised. `status_filter` narrows the list by live status (pending, running, waiting, success, error, timeout, cancelled); all are shown by default. Statuses shown earlier in the conversation are always stale, so call this to read current statuses rather than reporting one from a previous tool result. Use `check_async_task` to get the full result of a finished task.";

fn not_found(task_id: &str) -> ToolOutput {
    ToolOutput::text(format!(
        "No tracked task found for task_id: '{}'",
        task_id.trim()
    ))
}

impl Shared {
    fn removed_agent(&self, task: &AsyncTask, what: &str) -> ToolOutput {
        ToolOutput::text(format!(
            "Task {} was started on the async subagent `{}`, which is no longer configured, so {what}. \
             Its last known status was {}. The subagents available now are {}.",
            task.task_id,
            task.agent_name,
            task.status,
            self.names()
        ))
    }

    async fn start(&self, args: StartArgs, context: ToolContext) -> ToolOutput {
        let name = args.subagent_type.trim();
        let Some(spec) = self.spec(name) else {
            return ToolOutput::text(format!(
                "Unknown async subagent type `{name}`. Available types: {}",
                self.names()
            ));
        };
        let board = task::board(&context.state.channels);
        if let Some(max) = self.settings.max_running_tasks {
            let cached: Vec<&AsyncTask> = board
                .iter()
                .filter(|task| task.status.is_unfinished())
                .collect();
            let mut unfinished = cached.len();
            if unfinished >= max {
                // The board can be stale (a task may end before the supervisor hears of it):
                // count live statuses. They are not recorded, so the notices still come.
                let reads = cached.iter().map(|record| async move {
                    let Some(spec) = self.spec(&record.agent_name) else {
                        return true;
                    };
                    match tokio::time::timeout(LIST_READ_TIMEOUT, self.observe_task(spec, record))
                        .await
                    {
                        Ok(Ok(observation)) => observation.status.is_unfinished(),
                        _ => true,
                    }
                });
                unfinished = futures::future::join_all(reads)
                    .await
                    .into_iter()
                    .filter(|&live| live)
                    .count();
            }
            if unfinished >= max {
                return ToolOutput::text(format!(
                    "Not started: {unfinished} tasks are unfinished, and at most {max} may run at once. \
                     Wait for one to finish, or cancel one that is no longer needed, then start this one."
                ));
            }
        }
        let request = ApprovalRequest {
            action: Action::Start,
            agent_name: spec.name.clone(),
            task_id: None,
            text: Some(args.description.clone()),
        };
        if let Some(reason) = self.refused(request).await {
            return declined("start this task", &reason);
        }
        let failed = |error: &dyn std::fmt::Display| {
            ToolOutput::text(format!("Failed to launch async subagent '{name}': {error}"))
        };
        let client = match self.client(spec) {
            Ok(client) => client,
            Err(error) => return failed(&error),
        };
        let mut metadata = Map::new();
        metadata.insert("subagent_name".into(), Value::from(spec.name.clone()));
        metadata.insert(
            "parent_thread_id".into(),
            Value::from(context.thread_id.to_string()),
        );
        let thread = match client
            .threads()
            .create(&ThreadCreate {
                metadata: Some(metadata),
                ..ThreadCreate::default()
            })
            .await
        {
            Ok(thread) => thread,
            Err(error) => return failed(&error),
        };
        let messages = match spec.mode {
            Mode::Isolated => json!([{"role": "user", "content": args.description}]),
            Mode::Fork => fork_messages(&context.state.messages, &args.description),
        };
        let run = match client
            .runs()
            .create(
                thread.thread_id,
                &run_create(spec, context.thread_id, &messages, None),
            )
            .await
        {
            Ok(run) => run,
            Err(error) => {
                // The thread was made only for this run: don't leave it behind.
                if let Err(cleanup) = client.threads().delete(thread.thread_id).await {
                    tracing::warn!(thread = %thread.thread_id, %cleanup, "could not delete the thread of a task that failed to start");
                }
                return failed(&error);
            }
        };
        let now = chrono::Utc::now();
        let deadline = spec
            .deadline_secs
            .map(Duration::from_secs)
            .or(self.settings.default_deadline)
            .and_then(|deadline| chrono::Duration::from_std(deadline).ok())
            .map(|deadline| task::stamp(now + deadline));
        let record = AsyncTask {
            task_id: thread.thread_id.to_string(),
            agent_name: spec.name.clone(),
            thread_id: thread.thread_id.to_string(),
            run_id: run.run_id.to_string(),
            status: TaskStatus::Running,
            created_at: task::stamp(now),
            last_checked_at: task::stamp(now),
            last_updated_at: task::stamp(now),
            superseded_run_ids: Vec::new(),
            purpose: Some(shorten(&args.description, PURPOSE_CHARS)),
            deadline,
            interrupts: Vec::new(),
        };
        self.watch(context.thread_id, &record, spec, client);
        ToolOutput::text(format!(
            "Launched async subagent. task_id: {}",
            record.task_id
        ))
        .with_update(TASKS_CHANNEL, record.to_update())
    }

    async fn check(&self, args: CheckArgs, context: ToolContext) -> ToolOutput {
        let Some(mut record) = task::find_task(&context.state.channels, &args.task_id) else {
            return not_found(&args.task_id);
        };
        let Some(spec) = self.spec(&record.agent_name) else {
            return self.removed_agent(&record, "its status can't be read");
        };
        let observation = match self.observe_task(spec, &record).await {
            Ok(observation) => observation,
            Err(error) => return ToolOutput::text(format!("Failed to get run status: {error}")),
        };
        let mut result = Map::new();
        result.insert("status".into(), json!(observation.status));
        result.insert("thread_id".into(), json!(record.thread_id));
        match observation.status {
            TaskStatus::Success => {
                let text = observation.result.clone().unwrap_or_default();
                let offset = args.offset.unwrap_or(0);
                result.insert(
                    "result".into(),
                    json!(page(&text, offset, self.settings.max_result_chars)),
                );
            }
            TaskStatus::Error | TaskStatus::Timeout => {
                let error = observation
                    .error
                    .clone()
                    .unwrap_or_else(|| "The async subagent encountered an error.".into());
                result.insert("error".into(), json!(error));
            }
            TaskStatus::Pending => {
                result.insert("note".into(), json!("The latest run hasn't started yet. If it is a queued follow-up, an earlier run may still be working."));
            }
            TaskStatus::Waiting => {
                result.insert("interrupts".into(), json!(observation.interrupts));
                result.insert("note".into(), json!("The subagent is waiting for a human. The user answers it directly; you can't answer or approve it. Keep working; check again later for its result."));
            }
            TaskStatus::Running | TaskStatus::Cancelled => {}
        }
        self.record_observation(&mut record, &observation);
        ToolOutput::text(Value::Object(result).to_string())
            .with_update(TASKS_CHANNEL, record.to_update())
    }

    async fn update(&self, args: UpdateArgs, context: ToolContext) -> ToolOutput {
        let Some(mut record) = task::find_task(&context.state.channels, &args.task_id) else {
            return not_found(&args.task_id);
        };
        let Some(spec) = self.spec(&record.agent_name) else {
            return self.removed_agent(&record, "it can't be updated; start a new task instead");
        };
        if spec.update_strategy == UpdateStrategy::Enqueue
            && earlier_update_in_turn(&context, &record.task_id)
        {
            return ToolOutput::text(format!(
                "Not sent: an earlier `update_async_task` call in this turn already queues a follow-up for task {}. \
                 Send this follow-up in a later turn, or combine the two into one message.",
                record.task_id
            ));
        }
        let request = ApprovalRequest {
            action: Action::Update,
            agent_name: spec.name.clone(),
            task_id: Some(record.task_id.clone()),
            text: Some(args.message.clone()),
        };
        if let Some(reason) = self.refused(request).await {
            return declined("update this task", &reason);
        }
        let failed = |error: &dyn std::fmt::Display| {
            ToolOutput::text(format!("Failed to update async subagent: {error}"))
        };
        let client = match self.client(spec) {
            Ok(client) => client,
            Err(error) => return failed(&error),
        };
        let Ok(thread_id) = Uuid::parse_str(&record.thread_id) else {
            return failed(&format!(
                "the task's thread id `{}` is not a UUID",
                record.thread_id
            ));
        };
        let strategy = match spec.update_strategy {
            UpdateStrategy::Interrupt => MultitaskStrategy::Interrupt,
            UpdateStrategy::Enqueue => MultitaskStrategy::Enqueue,
        };
        let messages = json!([{"role": "user", "content": args.message}]);
        let was = record.status;
        let old_run = record.run_id.clone();
        if spec.update_strategy == UpdateStrategy::Interrupt {
            // The old run is being replaced on purpose: its end is not news.
            self.watcher.unwatch(&record.task_id, &old_run);
        }
        let run = match client
            .runs()
            .create(
                thread_id,
                &run_create(spec, context.thread_id, &messages, Some(strategy)),
            )
            .await
        {
            Ok(run) => run,
            Err(error) => {
                if spec.update_strategy == UpdateStrategy::Interrupt && was.is_unfinished() {
                    self.watch(context.thread_id, &record, spec, client);
                }
                return failed(&error);
            }
        };
        let now = task::now();
        let reply = match spec.update_strategy {
            UpdateStrategy::Interrupt => {
                record.status = TaskStatus::Running;
                let dropped = if was == TaskStatus::Waiting {
                    ". It was waiting for a human; that request was dropped."
                } else {
                    ""
                };
                format!(
                    "Updated async subagent. task_id: {}{dropped}",
                    record.task_id
                )
            }
            UpdateStrategy::Enqueue => {
                if !was.is_unfinished() {
                    record.superseded_run_ids.clear();
                }
                if was.is_unfinished() {
                    record.superseded_run_ids.push(old_run);
                }
                record.status = TaskStatus::observe(run.status, None);
                if was.is_unfinished() {
                    format!(
                        "Queued follow-up to async subagent without interrupting its current run. task_id: {}",
                        record.task_id
                    )
                } else {
                    format!("Updated async subagent. task_id: {}", record.task_id)
                }
            }
        };
        record.run_id = run.run_id.to_string();
        record.interrupts.clear();
        record.last_updated_at = now;
        self.watch(context.thread_id, &record, spec, client);
        ToolOutput::text(reply).with_update(TASKS_CHANNEL, record.to_update())
    }

    async fn cancel(&self, args: CancelArgs, context: ToolContext) -> ToolOutput {
        let Some(mut record) = task::find_task(&context.state.channels, &args.task_id) else {
            return not_found(&args.task_id);
        };
        let Some(spec) = self.spec(&record.agent_name) else {
            return self.removed_agent(&record, "it can't be cancelled from here");
        };
        let request = ApprovalRequest {
            action: Action::Cancel,
            agent_name: spec.name.clone(),
            task_id: Some(record.task_id.clone()),
            text: None,
        };
        if let Some(reason) = self.refused(request).await {
            return declined("cancel this task", &reason);
        }
        if record.status == TaskStatus::Waiting {
            // Its run has ended; only a human's answer would start it again.
            record.observed(TaskStatus::Cancelled, None, &task::now());
            self.watcher
                .mark_seen(&record.task_id, &record.run_id, TaskStatus::Cancelled);
            return ToolOutput::text(format!("Cancelled async subagent task: {}", record.task_id))
                .with_update(TASKS_CHANNEL, record.to_update());
        }
        let failed = |error: &dyn std::fmt::Display| {
            ToolOutput::text(format!("Failed to cancel run: {error}"))
        };
        let client = match self.client(spec) {
            Ok(client) => client,
            Err(error) => return failed(&error),
        };
        let (Ok(thread_id), Ok(run_id)) = (
            Uuid::parse_str(&record.thread_id),
            Uuid::parse_str(&record.run_id),
        ) else {
            return failed(&"the task's ids are not UUIDs");
        };
        self.watcher.unwatch(&record.task_id, &record.run_id);
        let options = CancelOptions {
            wait: true,
            ..CancelOptions::default()
        };
        // A server refuses to cancel a run that already ended (404): that is no failure, the
        // read-back below tells what happened.
        let refused = client.runs().cancel(thread_id, run_id, options).await.err();
        if refused.is_none() {
            // Newest first: cancelling an earlier run first would start the follow-up queued
            // behind it.
            for superseded in record.superseded_run_ids.iter().rev() {
                cancel_if_unfinished(&client, thread_id, superseded).await;
            }
        }
        // Read back what really happened: a run that had already finished stays finished.
        let observation = match (observe(&client, thread_id, run_id).await, refused) {
            (Ok(observation), None) => observation,
            (Ok(observation), Some(_)) if !observation.status.is_unfinished() => observation,
            (_, Some(error)) => {
                if record.status.is_unfinished() {
                    self.watch(context.thread_id, &record, spec, client);
                }
                return failed(&error);
            }
            (Err(error), None) => {
                return ToolOutput::text(format!(
                    "Cancel requested for task {}, but its status could not be read back: {error}",
                    record.task_id
                ));
            }
        };
        self.record_observation(&mut record, &observation);
        let reply = match observation.status {
            TaskStatus::Cancelled => format!("Cancelled async subagent task: {}", record.task_id),
            status if status.is_unfinished() => {
                self.watch(context.thread_id, &record, spec, client);
                format!(
                    "Cancel requested for task {}; it is still {status}. You'll be told when it stops.",
                    record.task_id
                )
            }
            status => format!(
                "Task {} had already finished ({status}) before the cancel reached it, so nothing was cancelled. \
                 Use `check_async_task` to read its result.",
                record.task_id
            ),
        };
        ToolOutput::text(reply).with_update(TASKS_CHANNEL, record.to_update())
    }

    async fn list(&self, args: ListArgs, context: ToolContext) -> ToolOutput {
        let board = task::board(&context.state.channels);
        if board.is_empty() {
            return ToolOutput::text("No async subagent tasks tracked.");
        }
        let reads = board.iter().map(|record| async move {
            let mut record = record.clone();
            let mut note = None;
            match self.spec(&record.agent_name) {
                None => note = Some("agent no longer configured; status as last seen"),
                Some(_) if !record.status.is_unfinished() => {}
                Some(spec) => {
                    match tokio::time::timeout(LIST_READ_TIMEOUT, self.observe_task(spec, &record))
                        .await
                    {
                        Ok(Ok(observation)) => self.record_observation(&mut record, &observation),
                        _ => note = Some("server did not answer; status as last seen"),
                    }
                }
            }
            (record, note)
        });
        let observed = futures::future::join_all(reads).await;
        // Filter on the live status, not the cached one (Deep Agents #5243).
        let filter = args.status_filter.unwrap_or(StatusFilter::All);
        let shown: Vec<_> = observed
            .iter()
            .filter(|(record, _)| filter.admits(record.status))
            .collect();
        let mut update = Map::new();
        for (record, _) in &observed {
            if let Value::Object(write) = record.to_update() {
                update.extend(write);
            }
        }
        let text = if shown.is_empty() {
            format!(
                "No async subagent tasks have the status {}; {} tracked in all.",
                format!("{filter:?}").to_lowercase(),
                observed.len()
            )
        } else {
            let lines: Vec<String> = shown
                .iter()
                .map(|(record, note)| {
                    let mut line = format!(
                        "- task_id: {}  agent: {}  status: {}",
                        record.task_id, record.agent_name, record.status
                    );
                    if let Some(purpose) = &record.purpose {
                        line.push_str(&format!("  purpose: {purpose}"));
                    }
                    if let Some(note) = note {
                        line.push_str(&format!("  ({note})"));
                    }
                    line
                })
                .collect();
            format!("{} tracked task(s):\n{}", shown.len(), lines.join("\n"))
        };
        ToolOutput::text(text).with_update(TASKS_CHANNEL, Value::Object(update))
    }

    async fn observe_task(
        &self,
        spec: &AsyncSubAgent,
        record: &AsyncTask,
    ) -> Result<Observation, String> {
        let client = self.client(spec).map_err(|error| error.to_string())?;
        let (Ok(thread_id), Ok(run_id)) = (
            Uuid::parse_str(&record.thread_id),
            Uuid::parse_str(&record.run_id),
        ) else {
            return Err(format!(
                "the task's ids are not UUIDs: {} / {}",
                record.thread_id, record.run_id
            ));
        };
        let mut observation = observe(&client, thread_id, run_id)
            .await
            .map_err(|error| error.to_string())?;
        // Cancelled at its deadline: the server says `interrupted`, but the task timed out.
        if record.status == TaskStatus::Timeout && observation.status == TaskStatus::Cancelled {
            observation.status = TaskStatus::Timeout;
            observation.error = Some("The task passed its deadline and was cancelled.".into());
        }
        // Cancelled by the supervisor: it stays cancelled while its run winds down, or when it
        // was cancelled while waiting for a human (its thread still shows the interrupt).
        if record.status == TaskStatus::Cancelled && observation.status.is_unfinished() {
            observation.status = TaskStatus::Cancelled;
            observation.interrupts.clear();
        }
        Ok(observation)
    }

    /// Puts what a tool read onto the record, and tells the watcher the supervisor saw it.
    fn record_observation(&self, record: &mut AsyncTask, observation: &Observation) {
        // A task the supervisor cancelled stays cancelled while its run winds down.
        let status = if record.status == TaskStatus::Cancelled && observation.status.is_unfinished()
        {
            TaskStatus::Cancelled
        } else {
            observation.status
        };
        record.observed(status, None, &task::now());
        record.interrupts = observation.interrupts.clone();
        self.watcher
            .mark_seen(&record.task_id, &record.run_id, status);
    }
}

/// The run a tool creates for `spec` on behalf of the supervisor thread `parent`.
fn run_create(
    spec: &AsyncSubAgent,
    parent: Uuid,
    messages: &Value,
    strategy: Option<MultitaskStrategy>,
) -> RunCreate {
    let mut configurable = Map::new();
    configurable.insert(
        "deepagents_parent".into(),
        json!({ "thread_id": parent.to_string() }),
    );
    let mut run = RunCreate::new(spec.graph_id.clone(), json!({ "messages": messages }));
    run.multitask_strategy = strategy;
    run.webhook = spec.webhook.clone();
    run.config = Some(RunConfig {
        configurable: Some(configurable),
        ..RunConfig::default()
    });
    run
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

/// True if the supervisor's current turn has an earlier `update_async_task` call for the task.
fn earlier_update_in_turn(context: &ToolContext, task_id: &str) -> bool {
    let Some(turn) = context
        .state
        .messages
        .iter()
        .rev()
        .find(|message| message.kind == MessageKind::Ai)
    else {
        return false;
    };
    turn.tool_calls()
        .iter()
        .take_while(|call| call.id.as_deref() != Some(context.call_id.as_str()))
        .any(|call| {
            call.name == TOOL_NAMES[2]
                && call
                    .args
                    .get("task_id")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    == Some(task_id.trim())
        })
}

async fn cancel_if_unfinished(client: &Client, thread_id: Uuid, run: &str) {
    let Ok(run_id) = Uuid::parse_str(run) else {
        return;
    };
    match client.runs().get(thread_id, run_id).await {
        Ok(run) if !run.status.is_terminal() => {
            if let Err(error) = client
                .runs()
                .cancel(thread_id, run_id, CancelOptions::default())
                .await
            {
                tracing::warn!(run = %run_id, %error, "could not cancel a superseded run");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(run = %run_id, %error, "could not read a superseded run"),
    }
}

fn declined(what: &str, reason: &str) -> ToolOutput {
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(" Their reason: {}.", reason.trim_end_matches('.'))
    };
    ToolOutput::text(format!(
        "The user did not approve: you may not {what}.{reason} Don't try again unless they ask for it."
    ))
}

fn shorten(text: &str, limit: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
