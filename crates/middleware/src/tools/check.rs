//! `check_async_task`: a task's live status and, once it has finished, its result or error,
//! a page at a time.

use super::{live, not_found, removed_agent};
use crate::observe::page;
use crate::shared::Shared;
use crate::task::{self, TASKS_CHANNEL, TaskStatus};
use errand_runtime::tool::{ToolContext, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

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
    let mut result = Map::new();
    result.insert("status".into(), json!(observation.status));
    result.insert("thread_id".into(), json!(record.thread_id));
    match observation.status {
        TaskStatus::Success => {
            let text = observation.result.clone().unwrap_or_default();
            let offset = args.offset.unwrap_or(0);
            result.insert(
                "result".into(),
                json!(page(&text, offset, shared.settings.max_result_chars)),
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
    live::record_observation(shared, &mut record, &observation);
    ToolOutput::text(Value::Object(result).to_string())
        .with_update(TASKS_CHANNEL, record.to_update())
}
