//! `cancel_async_task`: cancels a task's run (and the runs queued before it), then reads back
//! what really happened.

use super::{declined, live, not_found, removed_agent};
use crate::approval::{Action, ApprovalRequest};
use crate::observe::observe;
use crate::shared::Shared;
use crate::task::{self, AsyncTask, TASKS_CHANNEL, TaskStatus};
use errand_client::{CancelOptions, Client, ClientError};
use errand_runtime::tool::{ToolContext, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use uuid::Uuid;

/// The tool's name.
pub(super) const NAME: &str = "cancel_async_task";

/// What the tool tells the model.
pub(super) const DESCRIPTION: &str = "Cancel an async subagent task that is running, pending or waiting, when it is no longer needed. The answer says what really happened: a task that had already finished stays finished, with its result.";

#[derive(Deserialize, JsonSchema)]
pub(super) struct CancelArgs {
    /// The exact task_id string returned by start_async_task. Pass it verbatim.
    task_id: String,
}

/// Cancels the task once approved. A waiting task's run has ended already, so it is only
/// marked cancelled; otherwise its runs are cancelled on its server and the answer says what
/// the server then reports.
pub(super) async fn cancel(shared: &Shared, args: CancelArgs, context: ToolContext) -> ToolOutput {
    let Some(mut record) = task::find_task(&context.state.channels, &args.task_id) else {
        return not_found(&args.task_id);
    };
    let Some(spec) = shared.spec(&record.agent_name) else {
        return removed_agent(shared, &record, "it can't be cancelled from here");
    };
    let request = ApprovalRequest {
        action: Action::Cancel,
        agent_name: spec.name.clone(),
        task_id: Some(record.task_id),
        text: None,
    };
    if let Some(reason) = shared.refused(request).await {
        return declined("cancel this task", &reason);
    }
    if record.status == TaskStatus::Waiting {
        // Its run has ended; only a human's answer would start it again.
        record.observed(TaskStatus::Cancelled, None, task::now());
        shared
            .watcher
            .mark_seen(record.task_id, record.run_id, TaskStatus::Cancelled);
        return ToolOutput::text(format!("Cancelled async subagent task: {}", record.task_id))
            .with_update(TASKS_CHANNEL, record.to_update());
    }
    let failed =
        |error: &dyn std::fmt::Display| ToolOutput::text(format!("Failed to cancel run: {error}"));
    let client = match shared.client(spec) {
        Ok(client) => client,
        Err(error) => return failed(&error),
    };
    shared.watcher.unwatch(record.task_id, record.run_id);
    let refused = cancel_runs(&client, &record).await;
    // Read back what really happened: a run that had already finished stays finished.
    let read_back = observe(&client, record.thread_id, record.run_id).await;
    let observation = match (read_back, refused) {
        (Ok(observation), None) => observation,
        (Ok(observation), Some(_)) if !observation.status.is_unfinished() => observation,
        (_, Some(error)) => {
            if record.status.is_unfinished() {
                shared.watch(context.thread_id, &record, spec, client);
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
    live::record_observation(shared, &mut record, &observation);
    let reply = match observation.status {
        TaskStatus::Cancelled => format!("Cancelled async subagent task: {}", record.task_id),
        status if status.is_unfinished() => {
            shared.watch(context.thread_id, &record, spec, client);
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

/// Cancels the task's current run and, once that worked, the runs queued before it; the
/// server's refusal, if it refused.
async fn cancel_runs(client: &Client, record: &AsyncTask) -> Option<ClientError> {
    let options = CancelOptions {
        wait: true,
        ..CancelOptions::default()
    };
    // A server refuses to cancel a run that already ended (404): that is no failure, the
    // read-back tells what happened.
    let refused = client
        .runs()
        .cancel(record.thread_id, record.run_id, options)
        .await
        .err();
    if refused.is_none() {
        // Newest first: cancelling an earlier run first would start the follow-up queued
        // behind it.
        for &superseded in record.superseded_run_ids.iter().rev() {
            cancel_if_unfinished(client, record.thread_id, superseded).await;
        }
    }
    refused
}

/// Cancels a run queued before the task's current one, unless it has ended already.
async fn cancel_if_unfinished(client: &Client, thread_id: Uuid, run_id: Uuid) {
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
