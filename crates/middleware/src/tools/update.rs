//! `update_async_task`: sends a task follow-up instructions on its thread, interrupting its
//! current run or queueing behind it as its subagent's update strategy says.

use super::{declined, not_found, removed_agent, run_create};
use crate::approval::{Action, ApprovalRequest};
use crate::shared::Shared;
use crate::spec::{AsyncSubAgent, UpdateStrategy};
use crate::task::{self, AsyncTask, TASKS_CHANNEL, TaskStatus};
use errand_protocol::{MessageKind, MultitaskStrategy, Run};
use errand_runtime::tool::{ToolContext, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// The tool's name.
pub(super) const NAME: &str = "update_async_task";

#[derive(Deserialize, JsonSchema)]
pub(super) struct UpdateArgs {
    /// The exact task_id string returned by start_async_task. Pass it verbatim.
    task_id: String,
    /// Follow-up instructions or context to send to the subagent.
    message: String,
}

/// What the tool tells the model: how a follow-up reaches the task, and which subagents queue
/// follow-ups instead of interrupting.
pub(super) fn description(specs: &[AsyncSubAgent]) -> String {
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

/// Sends the follow-up once approved, and moves the task onto the run it started.
pub(super) async fn update(shared: &Shared, args: UpdateArgs, context: ToolContext) -> ToolOutput {
    let Some(mut record) = task::find_task(&context.state.channels, &args.task_id) else {
        return not_found(&args.task_id);
    };
    let Some(spec) = shared.spec(&record.agent_name) else {
        return removed_agent(
            shared,
            &record,
            "it can't be updated; start a new task instead",
        );
    };
    if spec.update_strategy == UpdateStrategy::Enqueue
        && earlier_update_in_turn(&context, record.task_id)
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
        task_id: Some(record.task_id),
        text: Some(args.message.clone()),
    };
    if let Some(reason) = shared.refused(request).await {
        return declined("update this task", &reason);
    }
    let failed = |error: &dyn std::fmt::Display| {
        ToolOutput::text(format!("Failed to update async subagent: {error}"))
    };
    let client = match shared.client(spec) {
        Ok(client) => client,
        Err(error) => return failed(&error),
    };
    let strategy = match spec.update_strategy {
        UpdateStrategy::Interrupt => MultitaskStrategy::Interrupt,
        UpdateStrategy::Enqueue => MultitaskStrategy::Enqueue,
    };
    let messages = json!([{"role": "user", "content": args.message}]);
    if spec.update_strategy == UpdateStrategy::Interrupt {
        // The old run is being replaced on purpose: its end is not news.
        shared.watcher.unwatch(record.task_id, record.run_id);
    }
    let run = match client
        .runs()
        .create(
            record.thread_id,
            &run_create(spec, context.thread_id, &messages, Some(strategy)),
        )
        .await
    {
        Ok(run) => run,
        Err(error) => {
            if spec.update_strategy == UpdateStrategy::Interrupt && record.status.is_unfinished() {
                shared.watch(context.thread_id, &record, spec, client);
            }
            return failed(&error);
        }
    };
    let reply = move_to_run(&mut record, spec, &run);
    shared.watch(context.thread_id, &record, spec, client);
    ToolOutput::text(reply).with_update(TASKS_CHANNEL, record.to_update())
}

/// Moves the record onto the follow-up's run `run`, and says what happened to the task: an
/// interrupted run is replaced; a queued follow-up supersedes the run still going.
fn move_to_run(record: &mut AsyncTask, spec: &AsyncSubAgent, run: &Run) -> String {
    let was = record.status;
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
            if was.is_unfinished() {
                record.superseded_run_ids.push(record.run_id);
            } else {
                record.superseded_run_ids.clear();
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
    record.run_id = run.run_id;
    record.interrupts.clear();
    record.last_updated_at = task::now();
    reply
}

/// True if the supervisor's current turn has an earlier `update_async_task` call for the task.
fn earlier_update_in_turn(context: &ToolContext, task_id: Uuid) -> bool {
    let Some(turn) = context
        .state
        .messages
        .iter()
        .rev()
        .find(|message| message.kind == MessageKind::Ai)
    else {
        return false;
    };
    let task_id = task_id.to_string();
    turn.tool_calls()
        .iter()
        .take_while(|call| call.id.as_deref() != Some(context.call_id.as_str()))
        .any(|call| {
            call.name == NAME
                && call
                    .args
                    .get("task_id")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    == Some(task_id.as_str())
        })
}
