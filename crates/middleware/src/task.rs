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

/// The board's form of a time: `%Y-%m-%dT%H:%M:%SZ`, as Deep Agents writes it.
mod stamp {
    use chrono::{DateTime, NaiveDateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    const FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

    pub(super) fn serialize<S: Serializer>(
        at: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&at.format(FORMAT))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not a time: {text:?}")))
    }

    /// The board's form, or any RFC 3339 time (with fractions or an offset) a board may hold.
    fn parse(text: &str) -> Option<DateTime<Utc>> {
        NaiveDateTime::parse_from_str(text, FORMAT)
            .map(|at| at.and_utc())
            .or_else(|_| DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)))
            .ok()
    }

    /// The same form for a time that may be absent.
    pub(super) mod optional {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            at: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(deserializer)? {
                None => Ok(None),
                Some(text) => super::parse(&text)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom(format!("not a time: {text:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The task id numbered `n`.
    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn task(n: u128, status: TaskStatus, updated: &str) -> AsyncTask {
        AsyncTask {
            task_id: id(n),
            agent_name: "researcher".into(),
            thread_id: id(n),
            run_id: id(1_000 + n),
            status,
            created_at: at(updated),
            last_checked_at: at(updated),
            last_updated_at: at(updated),
            superseded_run_ids: Vec::new(),
            purpose: None,
            deadline: None,
            interrupts: Vec::new(),
        }
    }

    #[test]
    fn statuses_come_from_the_run_and_the_thread_together() {
        use RunStatus as R;
        use ThreadStatus as T;
        assert_eq!(
            TaskStatus::observe(R::Interrupted, None),
            TaskStatus::Cancelled
        );
        assert_eq!(
            TaskStatus::observe(R::Success, Some(T::Interrupted)),
            TaskStatus::Waiting
        );
        assert_eq!(
            TaskStatus::observe(R::Success, Some(T::Busy)),
            TaskStatus::Running
        );
        assert_eq!(
            TaskStatus::observe(R::Success, Some(T::Error)),
            TaskStatus::Error
        );
        assert_eq!(
            TaskStatus::observe(R::Success, Some(T::Idle)),
            TaskStatus::Success
        );
        assert_eq!(TaskStatus::observe(R::Pending, None), TaskStatus::Pending);
        assert_eq!(TaskStatus::observe(R::Timeout, None), TaskStatus::Timeout);
        let legacy: TaskStatus = serde_json::from_value(json!("interrupted")).unwrap();
        assert_eq!(legacy, TaskStatus::Cancelled);
        assert!(TaskStatus::Waiting.is_unfinished() && !TaskStatus::Timeout.is_unfinished());
    }

    /// Deep Agents' reducer tests: merge into empty, update an entry whole, keep other keys.
    #[test]
    fn the_board_merges_by_task_id() {
        let channel = board_channel(100);
        let a = task(1, TaskStatus::Running, "2026-01-01T00:00:00Z");
        let b = task(2, TaskStatus::Running, "2026-01-01T00:00:01Z");
        let (key_a, key_b) = (a.task_id.to_string(), b.task_id.to_string());
        let merged = channel.reduce(None, a.to_update());
        assert_eq!(merged[&key_a]["status"], "running");
        let merged = channel.reduce(Some(&merged), b.to_update());
        let mut a2 = a.clone();
        a2.status = TaskStatus::Success;
        let merged = channel.reduce(Some(&merged), a2.to_update());
        assert_eq!(merged[&key_a]["status"], "success");
        assert_eq!(merged[&key_b]["status"], "running");
        assert_eq!(merged.as_object().unwrap().len(), 2);
    }

    #[test]
    fn finished_tasks_past_the_cap_are_pruned_oldest_first_and_unfinished_never() {
        let channel = board_channel(2);
        let mut value = None;
        for (i, status) in [
            TaskStatus::Success,
            TaskStatus::Running,
            TaskStatus::Error,
            TaskStatus::Cancelled,
            TaskStatus::Waiting,
        ]
        .into_iter()
        .enumerate()
        {
            let record = task(i as u128, status, &format!("2026-01-01T00:00:0{i}Z"));
            value = Some(channel.reduce(value.as_ref(), record.to_update()));
        }
        let board = board(
            &[(TASKS_CHANNEL.to_owned(), value.unwrap())]
                .into_iter()
                .collect(),
        );
        let ids: Vec<_> = board.iter().map(|t| t.task_id).collect();
        assert_eq!(ids, [id(1), id(2), id(3), id(4)]);
    }

    #[test]
    fn observing_moves_last_updated_only_on_a_change() {
        let mut record = task(1, TaskStatus::Running, "2026-01-01T00:00:00Z");
        record.observed(TaskStatus::Running, None, at("2026-01-01T00:01:00Z"));
        assert_eq!(record.last_updated_at, at("2026-01-01T00:00:00Z"));
        assert_eq!(record.last_checked_at, at("2026-01-01T00:01:00Z"));
        record.observed(
            TaskStatus::Running,
            Some(id(2_000)),
            at("2026-01-01T00:02:00Z"),
        );
        assert_eq!(record.last_updated_at, at("2026-01-01T00:02:00Z"));
        record.observed(TaskStatus::Success, None, at("2026-01-01T00:03:00Z"));
        assert_eq!(record.last_updated_at, at("2026-01-01T00:03:00Z"));
    }

    /// A record as Deep Agents writes it reads, and writes back in the very same form: ids as
    /// hyphenated lowercase strings, times as `%Y-%m-%dT%H:%M:%SZ`.
    #[test]
    fn a_record_keeps_the_board_form_byte_for_byte() {
        let written = r#"{"task_id":"0195f3c2-aaaa-7000-8000-000000000001","agent_name":"researcher","thread_id":"0195f3c2-aaaa-7000-8000-000000000001","run_id":"0195f3c2-bbbb-7000-8000-000000000002","status":"running","created_at":"2026-01-01T10:00:00Z","last_checked_at":"2026-01-01T10:00:05Z","last_updated_at":"2026-01-01T10:00:05Z"}"#;
        let record: AsyncTask = serde_json::from_str(written).unwrap();
        assert_eq!(record.created_at, at("2026-01-01T10:00:00Z"));
        assert_eq!(serde_json::to_string(&record).unwrap(), written);

        let with_errand_fields = r#"{"task_id":"0195f3c2-aaaa-7000-8000-000000000001","agent_name":"researcher","thread_id":"0195f3c2-aaaa-7000-8000-000000000001","run_id":"0195f3c2-bbbb-7000-8000-000000000002","status":"pending","created_at":"2026-01-01T10:00:00Z","last_checked_at":"2026-01-01T10:00:05Z","last_updated_at":"2026-01-01T10:00:05Z","superseded_run_ids":["0195f3c2-cccc-7000-8000-000000000003"],"purpose":"research","deadline":"2026-01-01T11:00:00Z"}"#;
        let record: AsyncTask = serde_json::from_str(with_errand_fields).unwrap();
        assert_eq!(record.deadline, Some(at("2026-01-01T11:00:00Z")));
        assert_eq!(serde_json::to_string(&record).unwrap(), with_errand_fields);
    }

    #[test]
    fn records_that_do_not_parse_are_skipped() {
        let good = task(1, TaskStatus::Running, "2026-01-01T00:00:00Z");
        let mut tasks = JsonObject::new();
        tasks.insert(
            good.task_id.to_string(),
            serde_json::to_value(&good).unwrap(),
        );
        let mut bad_id = serde_json::to_value(&good).unwrap();
        bad_id["task_id"] = json!("not-a-uuid");
        tasks.insert("not-a-uuid".into(), bad_id);
        let mut bad_time =
            serde_json::to_value(task(2, TaskStatus::Running, "2026-01-01T00:00:00Z")).unwrap();
        bad_time["created_at"] = json!("yesterday");
        tasks.insert(id(2).to_string(), bad_time);
        let channels: JsonObject = [(TASKS_CHANNEL.to_owned(), Value::Object(tasks))]
            .into_iter()
            .collect();
        assert_eq!(board(&channels), [good]);
        assert_eq!(find_task(&channels, &id(2).to_string()), None);
    }
}
