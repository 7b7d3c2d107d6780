//! What the chat knows of the supervisor's tasks: the board as of the last turn, refined by
//! what arrived since (notices, and live reads of local runs), for the status line and
//! `/tasks`.

use errand::middleware::{AsyncTask, TaskEvent, TaskStatus};
use std::collections::HashMap;
use uuid::Uuid;

/// The board and the newer statuses seen since it was read.
#[derive(Debug, Default)]
pub(super) struct Tasks {
    /// The supervisor's board, copied after each turn (during a turn the board is the turn's).
    board: Vec<AsyncTask>,
    /// Newer statuses by (task, run).
    seen: HashMap<(Uuid, Uuid), TaskStatus>,
}

impl Tasks {
    /// Takes a fresh copy of the board.
    pub(super) fn set_board(&mut self, board: Vec<AsyncTask>) {
        self.board = board;
    }

    /// Records a status seen for a run. A finished status is never replaced by an unfinished
    /// one: a live read sent before a run ended may come back after its notice.
    pub(super) fn observe(&mut self, task_id: Uuid, run_id: Uuid, status: TaskStatus) {
        let key = (task_id, run_id);
        let known = self.seen.get(&key).copied();
        if known.is_some_and(|known| !known.is_unfinished()) && status.is_unfinished() {
            return;
        }
        self.seen.insert(key, status);
    }

    /// Records a notice's status.
    pub(super) fn notice(&mut self, event: &TaskEvent) {
        self.observe(event.task_id, event.run_id, event.status);
    }

    /// A task's newest known status.
    pub(super) fn status(&self, task: &AsyncTask) -> TaskStatus {
        self.seen
            .get(&(task.task_id, task.run_id))
            .copied()
            .unwrap_or(task.status)
    }

    /// The tasks still going.
    pub(super) fn unfinished(&self) -> impl Iterator<Item = &AsyncTask> {
        self.board
            .iter()
            .filter(|task| self.status(task).is_unfinished())
    }

    /// The status line: each unfinished task with its agent, status and time running; `None`
    /// when none is.
    pub(super) fn status_line(&self, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
        let parts: Vec<String> = self
            .unfinished()
            .map(|task| {
                format!(
                    "{} {} {} {}",
                    task.agent_name,
                    short(&task.task_id.to_string()),
                    self.status(task),
                    running_for(task, now)
                )
            })
            .collect();
        (!parts.is_empty()).then(|| format!("[tasks] {}", parts.join(" | ")))
    }

    /// `/tasks`: every task on the board, newest last.
    pub(super) fn table(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        if self.board.is_empty() {
            return "no tasks yet: ask the supervisor for something long, and it starts one."
                .to_owned();
        }
        let mut out = format!("{} task(s):", self.board.len());
        for task in &self.board {
            let status = self.status(task);
            let time = if status.is_unfinished() {
                running_for(task, now)
            } else {
                format!("since {}", task.created_at.format("%Y-%m-%dT%H:%M:%SZ"))
            };
            out.push_str(&format!(
                "\n  {}  {:<12} {:<9} {:<22} {}",
                task.task_id,
                task.agent_name,
                status,
                time,
                task.purpose.as_deref().map(first_line).unwrap_or_default()
            ));
        }
        out
    }
}

/// How long a task has been running, from its start, as `12s`, `3m05s` or `2h04m`.
pub(super) fn running_for(task: &AsyncTask, now: chrono::DateTime<chrono::Utc>) -> String {
    let seconds = (now - task.created_at).num_seconds().max(0);
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
    }
}

/// The end of a task id, enough to tell tasks apart on one screen. The end, not the start:
/// task ids are UUIDv7, whose first characters are the time and so alike for tasks started
/// within a minute.
pub(super) fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}

/// The first non-empty line of `text`, at most 100 characters.
pub(super) fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    if line.chars().count() > 100 {
        let mut cut: String = line.chars().take(97).collect();
        cut.push_str("...");
        cut
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: Uuid = Uuid::from_u128(0x0195f3c2_aaaa_7000_8000_000000000001);
    const RUN: Uuid = Uuid::from_u128(1);

    fn task(status: TaskStatus) -> AsyncTask {
        AsyncTask {
            task_id: TASK,
            agent_name: "echo".into(),
            thread_id: TASK,
            run_id: RUN,
            status,
            created_at: at("2025-01-01T10:00:00Z"),
            last_checked_at: at("2025-01-01T10:00:00Z"),
            last_updated_at: at("2025-01-01T10:00:00Z"),
            superseded_run_ids: Vec::new(),
            purpose: Some("sleep=3 research rust\nmore".into()),
            deadline: None,
            interrupts: Vec::new(),
        }
    }

    fn at(time: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(time)
            .map(|time| time.with_timezone(&chrono::Utc))
            .unwrap_or_default()
    }

    #[test]
    fn the_status_line_shows_unfinished_tasks_with_their_time() {
        let mut tasks = Tasks::default();
        tasks.set_board(vec![task(TaskStatus::Pending)]);
        assert_eq!(
            tasks.status_line(at("2025-01-01T10:02:05Z")).as_deref(),
            Some("[tasks] echo 00000001 pending 2m05s")
        );
        tasks.observe(TASK, RUN, TaskStatus::Running);
        assert!(
            tasks
                .status_line(at("2025-01-01T10:00:07Z"))
                .is_some_and(|line| line.ends_with("running 7s"))
        );
        tasks.observe(TASK, RUN, TaskStatus::Success);
        // A late live read does not bring a finished task back.
        tasks.observe(TASK, RUN, TaskStatus::Running);
        assert_eq!(tasks.status_line(at("2025-01-01T10:00:09Z")), None);
        assert!(tasks.table(at("2025-01-01T10:00:09Z")).contains("success"));
        assert!(
            tasks
                .table(at("2025-01-01T10:00:09Z"))
                .contains("sleep=3 research rust")
        );
    }

    #[test]
    fn times_and_lines_are_short() {
        let mut long = task(TaskStatus::Running);
        long.created_at = at("2025-01-01T07:55:00Z");
        assert_eq!(running_for(&long, at("2025-01-01T10:00:00Z")), "2h05m");
        assert_eq!(short("abc"), "abc");
        assert_eq!(first_line("\n  hello \nworld"), "hello");
        assert_eq!(first_line(&"x".repeat(200)).len(), 100);
    }
}
