//! `list_async_tasks`: every task on the board with its live status, optionally filtered by it.

use super::live;
use crate::shared::Shared;
use crate::task::{self, AsyncTask, TASKS_CHANNEL, TaskStatus};
use errand_runtime::tool::{ToolContext, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The tool's name.
pub(super) const NAME: &str = "list_async_tasks";

/// What the tool tells the model.
pub(super) const DESCRIPTION: &str = "List the async subagent tasks you started, with their current live statuses (read from their servers now), agents and purposes. Use it to recall task IDs, for example after the conversation was summarised. `status_filter` narrows the list by live status (pending, running, waiting, success, error, timeout, cancelled); all are shown by default. Statuses shown earlier in the conversation are always stale, so call this to read current statuses rather than reporting one from a previous tool result. Use `check_async_task` to get the full result of a finished task.";

#[derive(Deserialize, JsonSchema)]
pub(super) struct ListArgs {
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

/// Reads every task's live status, records it on the board, and lists those the filter admits.
pub(super) async fn list(shared: &Shared, args: ListArgs, context: ToolContext) -> ToolOutput {
    let board = task::board(&context.state.channels);
    if board.is_empty() {
        return ToolOutput::text("No async subagent tasks tracked.");
    }
    let observed =
        futures::future::join_all(board.iter().map(|record| read_live(shared, record))).await;
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
            .map(|(record, note)| line(record, *note))
            .collect();
        format!("{} tracked task(s):\n{}", shown.len(), lines.join("\n"))
    };
    ToolOutput::text(text).with_update(TASKS_CHANNEL, Value::Object(update))
}

/// The task with its live status when its server answers in time; else as last seen, with a
/// note saying why. Finished tasks are not read again: they cannot change by themselves.
async fn read_live(shared: &Shared, record: &AsyncTask) -> (AsyncTask, Option<&'static str>) {
    let mut record = record.clone();
    let mut note = None;
    match shared.spec(&record.agent_name) {
        None => note = Some("agent no longer configured; status as last seen"),
        Some(_) if !record.status.is_unfinished() => {}
        Some(spec) => match live::observe_quickly(shared, spec, &record).await {
            Some(observation) => live::record_observation(shared, &mut record, &observation),
            None => note = Some("server did not answer; status as last seen"),
        },
    }
    (record, note)
}

/// One task's line in the list.
fn line(record: &AsyncTask, note: Option<&str>) -> String {
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
}
