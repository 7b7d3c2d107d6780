//! The types a run's life goes through in storage: the run to insert, the run claimed, the
//! end recorded, and the page of a thread's runs.

use super::{JsonText, NewCheckpoint, ReplicaId, StoredEvent};
use errand_protocol::{
    IfNotExists, Interrupt, JsonObject, Run, RunStatus, ThreadStatus, Timestamp,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// A run to insert, and how to treat its thread.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The run, with status `pending` and `created_at` already moved by `after_seconds`.
    pub run: Run,
    /// What to do when its thread is missing.
    pub if_not_exists: IfNotExists,
    /// Metadata merged into the thread's (`graph_id`, `assistant_id`), and given to a thread
    /// created for the run.
    pub thread_metadata: JsonObject,
    /// Claim the run for this replica in the same transaction when it may start at once (it
    /// is due, and its thread has no other pending or running run): the caller has a free
    /// worker for it. See [`CreatedRun::started`].
    pub start: Option<ReplicaId>,
}

/// The answer to [`Storage::create_run`](super::Storage::create_run).
#[derive(Debug, Clone)]
pub struct CreatedRun {
    /// The run as stored.
    pub run: Run,
    /// `run` as wire JSON, as stored: an answer sends it as it is, without encoding the run a
    /// second time.
    pub json: String,
    /// Runs of the same thread that the new one's strategy (`interrupt` or `rollback`) asks to
    /// cancel. The caller cancels them; until they stop, the new run waits.
    pub to_cancel: Vec<Uuid>,
    /// Set when [`NewRun::start`] asked for it and the run could start: the run is stored
    /// claimed (`running`, attempt 1), and this is what it starts from. The caller must execute
    /// it ([`ClaimedRun::first_attempt`]), as if [`Storage::claim_next_run`](super::Storage::claim_next_run) had answered it.
    /// `run` above still shows it as accepted (`pending`).
    pub started: Option<Start>,
}

/// What a claimed run starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Its thread's values; `null` for a thread that never ran.
    Values(Value),
    /// Storage cannot read the run or its thread's values (a row written by an older errand,
    /// or damaged): the run must end in `error` with this reason, without running, and leave
    /// the thread's values as they are.
    Unreadable(String),
}

/// A run a worker has claimed, with what it needs to execute it.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    /// The run, now `running`, its attempt counted.
    pub run: Run,
    /// Which attempt this is, from 1: the fencing token every later write of the attempt
    /// carries, refused ([`StorageError::Fenced`](super::StorageError::Fenced)) once another attempt took the run.
    pub attempt: u32,
    /// What it starts from.
    pub start: Start,
    /// The size of its stored record in bytes: what the executor counts it as holding.
    pub bytes: usize,
    /// The last `seq` of the run's stream that earlier attempts stored (0 for none): this
    /// attempt's events follow it, so a reader's `Last-Event-ID` stays meaningful across
    /// attempts.
    pub events_stored: u64,
}

impl ClaimedRun {
    /// The run that [`Storage::create_run`](super::Storage::create_run) claimed as it stored it
    /// ([`CreatedRun::started`]), with what it starts from and its [`CreatedRun::json`]'s
    /// length.
    pub fn first_attempt(mut run: Run, start: Start, bytes: usize) -> Self {
        run.status = RunStatus::Running;
        Self {
            run,
            attempt: 1,
            start,
            bytes,
            events_stored: 0,
        }
    }
}

/// How a run ended, and what it leaves on its thread.
#[derive(Debug, Clone)]
pub struct FinishedRun {
    /// The run.
    pub run_id: Uuid,
    /// The attempt that ran it: the end is stored only while this attempt holds the run.
    pub attempt: u32,
    /// Its final status (`success`, `error`, `timeout` or `interrupted`).
    pub status: RunStatus,
    /// The thread's new values, when the run wrote any.
    pub values: Option<JsonText>,
    /// The thread's status once no other run is pending on it: `idle`, `error` or
    /// `interrupted` (waiting for a human).
    pub thread_status: ThreadStatus,
    /// The error to show on the thread, `{"error": kind, "message": text}`.
    pub error: Option<Value>,
    /// Interrupts the graph stopped at, by task id (the thread's `interrupts`).
    pub interrupts: BTreeMap<String, Vec<Interrupt>>,
    /// The events the run streamed that are not stored yet, stored with its end so the two are
    /// one write. Shared, so that a write handed to another thread (SQLite's writer) takes
    /// them without a copy.
    pub events: Arc<[StoredEvent]>,
    /// The checkpoints the run wrote, oldest first (one per step; the last holds the new
    /// values).
    pub checkpoints: Vec<NewCheckpoint>,
    /// When.
    pub at: Timestamp,
}

impl FinishedRun {
    /// The end to record when this one cannot be: the run ends in `error`, saying why, and
    /// leaves its thread's values, its stream and its checkpoints as they were.
    pub fn bare(&self) -> Self {
        Self {
            run_id: self.run_id,
            attempt: self.attempt,
            status: RunStatus::Error,
            values: None,
            thread_status: ThreadStatus::Error,
            error: Some(serde_json::json!({
                "error": "EndNotStored",
                "message": format!(
                    "the run ended in `{}`, but storage could not take what it produced",
                    self.status.as_str()
                ),
            })),
            interrupts: BTreeMap::new(),
            events: Arc::default(),
            checkpoints: Vec::new(),
            at: self.at,
        }
    }
}

/// The answer to [`Storage::finish_run`](super::Storage::finish_run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndedRun {
    /// True when its thread has other pending or running runs: the next may start now.
    pub thread_busy: bool,
}

/// Filters for [`Storage::list_runs`](super::Storage::list_runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunPage {
    /// At most this many, newest first.
    pub limit: u32,
    /// Skip this many.
    pub offset: u32,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
}
