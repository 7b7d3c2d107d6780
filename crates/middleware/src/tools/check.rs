//! `check_async_task`: a task's live status and, once it has finished, its result or error,
//! a page at a time.

use super::{live, not_found, removed_agent};
use crate::observe::{Observation, page};
use crate::shared::Shared;
use crate::task::{self, TASKS_CHANNEL, TaskStatus};
use errand_protocol::Interrupt;
use errand_runtime::tool::{ToolContext, ToolOutput};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The tool's name.
pub(super) const NAME: &str = "check_async_task";

/// What the tool tells the model.
pub(super) const DESCRIPTION: &str = "Check an async subagent task: its current status and, once it has finished, its result (or its error). Statuses shown earlier in the conversation are always stale, so call this to get the current status rather than reporting one from an earlier tool result. Long results come in pages: pass `offset` to read on. A `waiting` task needs a human: the user answers it directly, not you.";

#[derive(Deserialize, JsonSchema)]
pub(super) struct CheckArgs {
    /// The exact task_id string returned by start_async_task. Pass it verbatim.
    task_id: String,
    /// Where to start reading a long result, in characters; the previous answer says which offset comes next.
    #[serde(default)]
    offset: Option<usize>,
}

/// The answer, as JSON: the status and thread, then what the status calls for.
#[derive(Serialize)]
struct Answer {
    status: TaskStatus,
    thread_id: Uuid,
    /// A page of the final answer, for `success`.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    /// What went wrong, for `error` and `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// What a `waiting` task asks a human.
    #[serde(skip_serializing_if = "Option::is_none")]
    interrupts: Option<Vec<Interrupt>>,
    /// What the model should make of a `pending` or `waiting` task.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

/// Reads the task's current run and answers with its status and what it produced.
pub(super) async fn check(shared: &Shared, args: CheckArgs, context: ToolContext) -> ToolOutput {
    let Some(mut record) = task::find_task(&context.state.channels, &args.task_id) else {
        return not_found(&args.task_id);
    };
    let Some(spec) = shared.spec(&record.agent_name) else {
        return removed_agent(shared, &record, "its status can't be read");
    };
    let observation = match live::observe_task(shared, spec, &record).await {
        Ok(observation) => observation,
        Err(error) => return ToolOutput::text(format!("Failed to get run status: {error}")),
    };
    let answer = answer(
        &observation,
        record.thread_id,
        args.offset.unwrap_or(0),
        shared.settings.max_result_chars,
    );
    live::record_observation(shared, &mut record, &observation);
    ToolOutput::text(serde_json::to_string(&answer).unwrap_or_default())
        .with_update(TASKS_CHANNEL, record.to_update())
}

/// What `check_async_task` says about a task observed as `observation`: a finished task's
/// result from character `offset`, at most `limit` of them.
fn answer(observation: &Observation, thread_id: Uuid, offset: usize, limit: usize) -> Answer {
    let mut answer = Answer {
        status: observation.status,
        thread_id,
        result: None,
        error: None,
        interrupts: None,
        note: None,
    };
    match observation.status {
        TaskStatus::Success => {
            let text = observation.result.as_deref().unwrap_or_default();
            answer.result = Some(page(text, offset, limit));
        }
        TaskStatus::Error | TaskStatus::Timeout => {
            let error = observation
                .error
                .clone()
                .unwrap_or_else(|| "The async subagent encountered an error.".into());
            answer.error = Some(error);
        }
        TaskStatus::Pending => {
            answer.note = Some(
                "The latest run hasn't started yet. If it is a queued follow-up, an earlier run may still be working.",
            );
        }
        TaskStatus::Waiting => {
            answer.interrupts = Some(observation.interrupts.clone());
            answer.note = Some(
                "The subagent is waiting for a human. The user answers it directly; you can't answer or approve it. Keep working; check again later for its result.",
            );
        }
        TaskStatus::Running | TaskStatus::Cancelled => {}
    }
    answer
}
