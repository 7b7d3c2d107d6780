//! `list_async_tasks`: every task on the board with its live status, optionally filtered by it.

use super::live;
use crate::shared::Shared;
use crate::task::{self, AsyncTask, TASKS_CHANNEL, TaskStatus};
use errand_runtime::tool::{ToolContext, ToolOutput};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

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

/// Which tasks the list shows: all of them, or those with one live status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusFilter {
    All,
    Only(TaskStatus),
}

impl StatusFilter {
    /// The wire name of "every status".
    const ALL: &str = "all";

    /// Every filter's wire name: the statuses in their order, then `all`.
    const NAMES: [&str; TaskStatus::ALL.len() + 1] = {
        let mut names = [Self::ALL; TaskStatus::ALL.len() + 1];
        let mut i = 0;
        while i < TaskStatus::ALL.len() {
            names[i] = TaskStatus::ALL[i].as_str();
            i += 1;
        }
        names
    };

    fn admits(self, status: TaskStatus) -> bool {
        match self {
            Self::All => true,
            Self::Only(only) => status == only,
        }
    }
}

impl fmt::Display for StatusFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str(Self::ALL),
            Self::Only(status) => status.fmt(f),
        }
    }
}

/// Exactly the names in the schema: a status's older alias (`interrupted`) is no filter.
impl<'de> Deserialize<'de> for StatusFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name == Self::ALL {
            return Ok(Self::All);
        }
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == name)
            .map(Self::Only)
            .ok_or_else(|| de::Error::unknown_variant(&name, &Self::NAMES))
    }
}

/// The schema the model sees: one string out of [`StatusFilter::NAMES`].
impl JsonSchema for StatusFilter {
    fn schema_name() -> Cow<'static, str> {
        "StatusFilter".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "enum": Self::NAMES,
        })
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
            filter,
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
