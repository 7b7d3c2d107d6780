//! The task board: one record per task in the supervisor's `async_tasks` state channel.
//!
//! The board lives beside the conversation, not in it, so summarisation never drops a task id:
//! `list_async_tasks` recalls every task after the messages that started them are gone.

use chrono::{DateTime, SubsecRound, Utc};
use errand_protocol::{Interrupt, JsonObject, RunStatus, ThreadStatus};
use errand_runtime::agent::Channel;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use uuid::Uuid;

/// The state channel holding the board.
pub const TASKS_CHANNEL: &str = "async_tasks";

/// A task's status, from its run's status and its thread's together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Accepted, not started yet (a queued follow-up, or a busy server).
    Pending,
    /// Working.
    Running,
    /// Stopped at an interrupt, waiting for a human to answer the subagent.
    Waiting,
    /// Finished with a result.
    Success,
    /// Failed.
    Error,
    /// Ran past its deadline or the server's timeout, and was stopped.
    Timeout,
    /// Cancelled, by the supervisor or on the server. Deep Agents' older `interrupted` reads as
    /// this.
    #[serde(alias = "interrupted")]
    Cancelled,
}

impl TaskStatus {
    /// Every status, in the order tools list them.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Running,
        Self::Waiting,
        Self::Success,
        Self::Error,
        Self::Timeout,
        Self::Cancelled,
    ];

    /// The status of a task whose current run is `run` on a thread that is `thread` (when
    /// read): a cancelled run is `cancelled`; a finished run on a thread stopped at an
    /// interrupt is `waiting`, on a busy thread `running` (a newer run took over), on a thread
    /// in error `error`.
    pub fn observe(run: RunStatus, thread: Option<ThreadStatus>) -> Self {
        match run {
            RunStatus::Pending => Self::Pending,
            RunStatus::Running => Self::Running,
            RunStatus::Error => Self::Error,
            RunStatus::Timeout => Self::Timeout,
            RunStatus::Interrupted => Self::Cancelled,
            RunStatus::Success => match thread {
                Some(ThreadStatus::Interrupted) => Self::Waiting,
                Some(ThreadStatus::Busy) => Self::Running,
                Some(ThreadStatus::Error) => Self::Error,
                _ => Self::Success,
            },
        }
    }

    /// True while the task may still change by itself: pending, running or waiting.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Waiting)
    }

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Success => "success",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task on the board, in Deep Agents' record form plus what errand adds.
///
/// On the board ids are hyphenated lowercase UUID strings and times are `%Y-%m-%dT%H:%M:%SZ`
/// (UTC, whole seconds), as Deep Agents writes them, so a board either one wrote reads in both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsyncTask {
    /// The task's id: the subagent's thread id.
    pub task_id: Uuid,
    /// The subagent's name.
    pub agent_name: String,
    /// The subagent's thread.
    pub thread_id: Uuid,
    /// The newest run on that thread known to the supervisor.
    pub run_id: Uuid,
    /// The status when last observed.
    pub status: TaskStatus,
    /// When it started.
    #[serde(with = "stamp")]
    pub created_at: DateTime<Utc>,
    /// When its status was last read from its server.
    #[serde(with = "stamp")]
    pub last_checked_at: DateTime<Utc>,
    /// When its status, run or instructions last changed.
    #[serde(with = "stamp")]
    pub last_updated_at: DateTime<Utc>,
    /// Earlier runs, oldest first, that a queued follow-up came after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded_run_ids: Vec<Uuid>,
    /// What the task is for: its description, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// When it is cancelled if still unfinished.
    #[serde(
        default,
        with = "stamp::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub deadline: Option<DateTime<Utc>>,
    /// The interrupts a `waiting` task stopped at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interrupts: Vec<Interrupt>,
}

impl AsyncTask {
    /// Records a newly observed status and run: `last_checked_at` is now; `last_updated_at`
    /// moves only when the status or run changed.
    pub(crate) fn observed(
        &mut self,
        status: TaskStatus,
        run_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) {
        let run_changed = run_id.is_some_and(|run| run != self.run_id);
        if status != self.status || run_changed {
            self.last_updated_at = now;
        }
        self.status = status;
        if let Some(run) = run_id {
            self.run_id = run;
        }
        self.last_checked_at = now;
    }

    /// The record as a write to the board.
    pub(crate) fn to_update(&self) -> Value {
        let mut write = JsonObject::new();
        write.insert(
            self.task_id.to_string(),
            serde_json::to_value(self).unwrap_or(Value::Null),
        );
        Value::Object(write)
    }
}

/// Reads the board from a state's channels; records that do not parse are skipped.
pub fn board(channels: &JsonObject) -> Vec<AsyncTask> {
    let Some(Value::Object(tasks)) = channels.get(TASKS_CHANNEL) else {
        return Vec::new();
    };
    let mut board: Vec<AsyncTask> = tasks
        .values()
        .filter_map(|record| serde_json::from_value(record.clone()).ok())
        .collect();
    board.sort_by_key(|task| task.created_at);
    board
}

/// Finds a task by the id the model gave, tolerating surrounding whitespace as Deep Agents does.
pub fn find_task(channels: &JsonObject, task_id: &str) -> Option<AsyncTask> {
    let record = channels
        .get(TASKS_CHANNEL)
        .and_then(|tasks| tasks.get(task_id.trim()))?;
    serde_json::from_value(record.clone()).ok()
}

/// The board's channel: writes merge by task id, a whole record replacing the old one, and
/// finished tasks beyond the newest `keep_finished` are dropped, so the board cannot grow
/// without bound. Unfinished tasks are never dropped.
pub fn board_channel(keep_finished: usize) -> Channel {
    Channel::with_reducer(TASKS_CHANNEL, move |old, write| {
        let mut tasks = old.and_then(Value::as_object).cloned().unwrap_or_default();
        if let Value::Object(write) = write {
            tasks.extend(write);
        }
        prune(&mut tasks, keep_finished);
        Value::Object(tasks)
    })
}

fn prune(tasks: &mut JsonObject, keep_finished: usize) {
    let mut finished: Vec<(DateTime<Utc>, String)> = tasks
        .iter()
        .filter_map(|(id, record)| {
            let task: AsyncTask = serde_json::from_value(record.clone()).ok()?;
            (!task.status.is_unfinished()).then(|| (task.last_updated_at, id.clone()))
        })
        .collect();
    if finished.len() <= keep_finished {
        return;
    }
    finished.sort();
    let excess = finished.len() - keep_finished;
    for (_, id) in finished.into_iter().take(excess) {
        tasks.remove(&id);
    }
}

/// Now, to the whole second, as the board keeps times: a record reads back equal to the one
/// written.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

mod stamp;

#[cfg(test)]
mod tests;
