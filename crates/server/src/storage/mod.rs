//! Durable storage behind the server: threads, runs, their stream events, checkpoints and the
//! store.
//!
//! Every call that accepts work commits it before it returns, so a `2xx` answer means the work
//! survives a crash. Each method is one transaction: the rules that must hold across rows (one
//! running run per thread, the multitask strategies, a thread's status following its runs) are
//! kept inside the storage, where no two servers can race on them.
//!
//! [`SqliteStorage`] is the embedded default: a file, or memory for tests. `PostgresStorage`
//! (feature `postgres`) keeps the same contract on a PostgreSQL database that several servers
//! share.

mod encoding;
#[cfg(feature = "postgres")]
mod postgres;
pub mod rules;
mod sqlite;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresStorage};
pub use sqlite::SqliteStorage;

use async_trait::async_trait;
use errand_protocol::{
    CancelAction, IfExists, IfNotExists, Interrupt, JsonObject, ListNamespacesResponse, Run,
    RunStatus, StoreItem, StoreListNamespacesRequest, StoreSearchRequest, Thread,
    ThreadSearchRequest, ThreadStatus, Timestamp, TtlStrategy,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// What can go wrong in storage. The messages are the ones clients see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The thread does not exist.
    #[error("Thread with ID {0} not found")]
    ThreadNotFound(Uuid),
    /// A thread with this id exists and `if_exists` was `raise`.
    #[error("Thread with ID {0} already exists")]
    ThreadExists(Uuid),
    /// The thread has a pending or running run and the strategy was `reject`.
    #[error(
        "Thread is already running a task. Wait for it to finish or choose a different multitask strategy."
    )]
    ThreadBusy,
    /// The database failed.
    #[error("storage failed: {0}")]
    Backend(#[source] BackendError),
    /// The disk, or the database's size limit, is full: nothing more can be written until
    /// space returns. Reads still work.
    #[error("storage is full: {0}")]
    Full(String),
    /// A write of one attempt of a run that no longer holds it: its lease expired and the run
    /// went back to the queue (and maybe to another replica), or it was ended meanwhile. The
    /// attempt's work is dropped; whatever holds the run now carries on.
    #[error("run {run_id}: attempt {attempt} no longer holds it")]
    Fenced {
        /// The run.
        run_id: Uuid,
        /// The attempt that wrote.
        attempt: u32,
    },
}

impl StorageError {
    /// A failure of the database, said in `message`.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::Backend(BackendError {
            message: message.into(),
            source: None,
        })
    }

    /// A failure of the database, said in `message`, caused by `source` (kept, for
    /// [`std::error::Error::source`] and for telling transient failures from lasting ones).
    pub fn backend_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend(BackendError {
            message: message.into(),
            source: Some(Arc::new(source)),
        })
    }
}

/// What failed in the database, and the error of the database's own beneath it.
#[derive(Debug, Clone)]
pub struct BackendError {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// What failed, in words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {
    // The database's error itself, not the `Arc` it is shared in, so that it downcasts.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// The key, in the `extra` of a thread or run that storage cannot read whole (a row written
/// by an older errand, or damaged), whose value says what could not be read. Such a row is
/// answered from what can be read rather than fail every read it takes part in, and a run of
/// it ends in `error` instead of running ([`Start::Unreadable`]).
pub const UNREADABLE: &str = "errand_unreadable";

/// A result of a storage call.
pub type StorageResult<T> = Result<T, StorageError>;

/// One server process working on a storage: what a claim records as a run's holder. A new id
/// is drawn at each start, so a process that restarts never mistakes its predecessor's runs
/// for its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaId(Uuid);

impl ReplicaId {
    /// A fresh id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for ReplicaId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whose leases [`Storage::expire_leases`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leases {
    /// Those of replicas that have not renewed them by this time: the sweeper's.
    DueBy(Timestamp),
    /// Every replica's but this one's: a storage only one process can open, at its start
    /// (whatever held runs before it has stopped).
    AllBut(ReplicaId),
    /// This replica's own, given back as it stops cleanly; the runs do not count it as a
    /// failed attempt.
    Of(ReplicaId),
}

/// What replicas sharing a storage tell each other (through the database, e.g. PostgreSQL's
/// `NOTIFY`), so that none waits for its next poll. A signal may be lost, as a connection may
/// drop; each is also found by polling, only later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A run became pending, or may start because the run before it on its thread ended.
    RunQueued,
    /// A cancel was stored on a running run ([`Storage::request_cancel`]): its holder stops it.
    CancelRequested {
        /// The run.
        run_id: Uuid,
        /// How to stop it.
        action: CancelAction,
    },
    /// Events of a run were stored: readers following its stream on other replicas read them.
    Events {
        /// The run.
        run_id: Uuid,
    },
    /// A run ended (or was deleted): its waiters look at its final status.
    RunEnded {
        /// The run.
        run_id: Uuid,
    },
}

/// What the holder of runs learns when it renews its lease ([`Storage::renew_lease`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// Runs it holds that a cancel was stored on, by any replica, with how to stop them.
    pub cancels: Vec<(Uuid, CancelAction)>,
}

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

/// The answer to [`Storage::create_run`].
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
    /// it ([`ClaimedRun::first_attempt`]), as if [`Storage::claim_next_run`] had answered it.
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
    /// carries, refused ([`StorageError::Fenced`]) once another attempt took the run.
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
    /// The run that [`Storage::create_run`] claimed as it stored it
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
    /// one write.
    pub events: Vec<StoredEvent>,
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
            events: Vec::new(),
            checkpoints: Vec::new(),
            at: self.at,
        }
    }
}

/// The answer to [`Storage::finish_run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndedRun {
    /// True when its thread has other pending or running runs: the next may start now.
    pub thread_busy: bool,
}

/// One recorded state of a thread.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRecord {
    /// Its id (a UUIDv7 string, so ids sort by time).
    pub checkpoint_id: String,
    /// The checkpoint before it on the thread.
    pub parent_checkpoint_id: Option<String>,
    /// The thread.
    pub thread_id: Uuid,
    /// The run that wrote it; none for a state update by hand.
    pub run_id: Option<Uuid>,
    /// The state values.
    pub values: Value,
    /// Checkpoint metadata (`source`, `step`, `run_id`, ...).
    pub metadata: JsonObject,
    /// Nodes to run next; empty when the graph finished.
    pub next: Vec<String>,
    /// Interrupts waiting at it.
    pub interrupts: Vec<Interrupt>,
    /// When it was written.
    pub created_at: Timestamp,
}

/// A JSON value as text, encoded once and shared: the states a run streamed are kept as the
/// text its stream carried, and written to storage as they are, neither decoded nor copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(Arc<str>);

impl JsonText {
    /// The text of `value`.
    pub fn of(value: &Value) -> Self {
        Self(value.to_string().into())
    }

    /// Text that serde_json wrote, kept as it is.
    pub(crate) fn encoded(text: Arc<str>) -> Self {
        Self(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value again.
    pub fn decode(&self) -> StorageResult<Value> {
        serde_json::from_str(&self.0)
            .map_err(|error| StorageError::backend(format!("corrupt JSON: {error}")))
    }
}

/// A checkpoint to write; storage fills in the parent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCheckpoint {
    /// Its id.
    pub checkpoint_id: String,
    /// The run that wrote it.
    pub run_id: Option<Uuid>,
    /// The state values.
    pub values: JsonText,
    /// Checkpoint metadata.
    pub metadata: JsonObject,
    /// Nodes to run next.
    pub next: Vec<String>,
    /// Interrupts waiting at it.
    pub interrupts: Vec<Interrupt>,
    /// When it was written.
    pub created_at: Timestamp,
}

/// One stored event of a run's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its position in the run's stream, from 1.
    pub seq: u64,
    /// The SSE event name (`values`, `updates|child:...`, `error`, ...).
    pub event: String,
    /// The data, one line of JSON; shared, since the same text is kept for live readers,
    /// replayed to each of them, and written to storage.
    pub data: Arc<str>,
}

/// Events of one attempt of a run, for [`Storage::append_event_batches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch {
    /// The run.
    pub run_id: Uuid,
    /// The attempt that streamed them.
    pub attempt: u32,
    /// The events, in order.
    pub events: Vec<StoredEvent>,
}

/// What [`Storage::expire_leases`] did with runs whose holder's lease ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Put back to `pending` for another attempt.
    pub requeued: Vec<Uuid>,
    /// Out of attempts: ended in `error`.
    pub failed: Vec<Uuid>,
    /// A cancel was stored on them: ended as it asked (`interrupted`, or rolled back).
    pub cancelled: Vec<Uuid>,
}

impl Recovery {
    /// True when no run was touched.
    pub fn is_empty(&self) -> bool {
        self.requeued.is_empty() && self.failed.is_empty() && self.cancelled.is_empty()
    }
}

/// Filters for [`Storage::list_runs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunPage {
    /// At most this many, newest first.
    pub limit: u32,
    /// Skip this many.
    pub offset: u32,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
}

/// The server's durable state. Implementations: [`SqliteStorage`].
///
/// Runs are held under leases: a claim records the replica and counts the run's attempt,
/// which every later write of that attempt carries and storage checks ([`StorageError::Fenced`]).
/// A replica's lease covers every run it holds and lasts until it renews it
/// ([`Storage::renew_lease`]); runs of a replica whose lease ran out go back to the queue
/// ([`Storage::expire_leases`]).
#[async_trait]
pub trait Storage: std::fmt::Debug + Send + Sync + 'static {
    /// True when several server processes may use this storage at once (a database server),
    /// false when one process holds it (an SQLite file). A storage held by one process ends
    /// every other replica's lease at start instead of waiting for it to run out.
    fn shared(&self) -> bool {
        false
    }

    /// The signals of other replicas, for a storage that carries them; `None` when it does
    /// not (one process, or polling only).
    fn signals(&self) -> Option<tokio::sync::broadcast::Receiver<Signal>> {
        None
    }

    // ---- leases ----

    /// Records that `replica` holds its runs until `until`, and answers the cancels stored on
    /// them since.
    async fn renew_lease(&self, replica: ReplicaId, until: Timestamp) -> StorageResult<Renewal>;

    /// Ends the leases of `which` replicas: their running runs go back to `pending` (their
    /// attempt counted), or end in `error` once they have had `max_attempts` (not for a
    /// replica giving its runs back, [`Leases::Of`]), or end as a cancel stored on them asks.
    async fn expire_leases(
        &self,
        which: Leases,
        max_attempts: u32,
        at: Timestamp,
    ) -> StorageResult<Recovery>;

    /// Stores a cancel on a running run, for its holder to act on (it learns of it through a
    /// [`Signal::CancelRequested`] or its next [`Storage::renew_lease`]). False when the run is
    /// not running.
    async fn request_cancel(&self, run_id: Uuid, action: CancelAction) -> StorageResult<bool>;

    // ---- threads ----

    /// Inserts a thread, or answers the existing one under [`IfExists::DoNothing`].
    async fn create_thread(&self, thread: Thread, if_exists: IfExists) -> StorageResult<Thread>;

    /// The thread, if it exists.
    async fn get_thread(&self, thread_id: Uuid) -> StorageResult<Option<Thread>>;

    /// Merges `metadata` into the thread's, key by key.
    async fn patch_thread(
        &self,
        thread_id: Uuid,
        metadata: JsonObject,
        at: Timestamp,
    ) -> StorageResult<Thread>;

    /// Deletes the thread with its runs, events and checkpoints; false if it did not exist.
    async fn delete_thread(&self, thread_id: Uuid) -> StorageResult<bool>;

    /// Threads matching the search (metadata and values by containment, status, ids), in the
    /// requested order (default: newest `created_at` first).
    async fn search_threads(&self, search: &ThreadSearchRequest) -> StorageResult<Vec<Thread>>;

    /// Prunes threads that have no pending or running run (the others, and missing ones, are
    /// left as they are): [`TtlStrategy::Delete`] deletes each as [`Storage::delete_thread`]
    /// does; [`TtlStrategy::KeepLatest`] keeps the thread, its values, its latest checkpoint
    /// (now without a parent) and its latest run, and deletes its other checkpoints and runs
    /// with their events. Answers how many threads were pruned.
    async fn prune_threads(&self, thread_ids: &[Uuid], strategy: TtlStrategy)
    -> StorageResult<u64>;

    /// Writes values to a thread by hand (`POST /threads/{id}/state`), with a checkpoint.
    async fn update_thread_state(
        &self,
        thread_id: Uuid,
        checkpoint: NewCheckpoint,
    ) -> StorageResult<CheckpointRecord>;

    /// The thread's checkpoints, newest first, at most `limit`, only those older than
    /// `before` (a checkpoint id) when given.
    async fn list_checkpoints(
        &self,
        thread_id: Uuid,
        limit: u32,
        before: Option<&str>,
    ) -> StorageResult<Vec<CheckpointRecord>>;

    // ---- runs ----

    /// Inserts a pending run under its multitask strategy, in one transaction: creates its
    /// thread if allowed, answers [`StorageError::ThreadBusy`] under `reject` when the thread has
    /// a pending or running run, names the runs to cancel under `interrupt` and `rollback`, and
    /// marks the thread `busy` with `thread_metadata` merged in. With [`NewRun::start`], a run
    /// that may start at once is stored already claimed, saving the claim's own write.
    async fn create_run(&self, new: NewRun) -> StorageResult<CreatedRun>;

    /// Claims the oldest pending run that may start now for `replica`: `created_at` reached,
    /// no running run on its thread, and no older pending run on its thread. It becomes
    /// `running`, held by `replica`, its attempt counted.
    async fn claim_next_run(
        &self,
        now: Timestamp,
        replica: ReplicaId,
    ) -> StorageResult<Option<ClaimedRun>>;

    /// The earliest `created_at` later than `after` of a pending run (a run delayed by
    /// `after_seconds`), for the dispatcher to sleep until. Runs already due are left out: they
    /// either start at once or wait for the run before them on their thread to end.
    async fn next_pending_after(&self, after: Timestamp) -> StorageResult<Option<Timestamp>>;

    /// Records how a run ended, with its stream events, and updates its thread: values, error,
    /// interrupts, checkpoints,
    /// and status (`busy` while another run is pending, else `finished.thread_status`). Answers
    /// whether the thread has runs waiting, or `None` if the run was deleted meanwhile. (Not
    /// the run itself: the executor has no use for it, and decoding it cost a few percent of
    /// the server's CPU per run.) [`StorageError::Fenced`] when `finished.attempt` no longer
    /// holds the run.
    async fn finish_run(&self, finished: &FinishedRun) -> StorageResult<Option<EndedRun>>;

    /// Sets a run's status to `to` if it is one of `from`, and recomputes its thread's status.
    /// Answers the run as it is afterwards, or `None` if it does not exist.
    async fn transition_run(
        &self,
        run_id: Uuid,
        from: &[RunStatus],
        to: RunStatus,
        at: Timestamp,
    ) -> StorageResult<Option<Run>>;

    /// Deletes a run that is being rolled back, with its events and checkpoints, and restores
    /// its thread's values to the latest checkpoint left (or `null`). With `attempt`, only
    /// while that attempt holds the run ([`StorageError::Fenced`] otherwise).
    async fn rollback_run(
        &self,
        run_id: Uuid,
        attempt: Option<u32>,
        at: Timestamp,
    ) -> StorageResult<bool>;

    /// A run of a thread.
    async fn get_run(&self, thread_id: Uuid, run_id: Uuid) -> StorageResult<Option<Run>>;

    /// A thread's runs, newest first.
    async fn list_runs(&self, thread_id: Uuid, page: RunPage) -> StorageResult<Vec<Run>>;

    /// Runs in any of these statuses, oldest first (for cancel-many and start-up).
    async fn runs_with_status(&self, statuses: &[RunStatus]) -> StorageResult<Vec<Run>>;

    /// Deletes a run and its events; false if it did not exist.
    async fn delete_run(&self, thread_id: Uuid, run_id: Uuid) -> StorageResult<bool>;

    // ---- stream events ----

    /// Appends events of `attempt` to a run's stream while that attempt holds the run
    /// ([`StorageError::Fenced`] otherwise). Their `seq` continue the run's sequence. A run
    /// deleted meanwhile keeps none, without an error.
    async fn append_events(
        &self,
        run_id: Uuid,
        attempt: u32,
        events: &[StoredEvent],
    ) -> StorageResult<()>;

    /// Appends the events of several runs at once (one commit where the storage can), as
    /// [`Storage::append_events`] does for each. Answers the runs whose attempt no longer
    /// holds them, whose events were not stored; any other failure fails the whole call.
    async fn append_event_batches(&self, batches: &[EventBatch]) -> StorageResult<Vec<Uuid>> {
        let mut fenced = Vec::new();
        for batch in batches {
            match self
                .append_events(batch.run_id, batch.attempt, &batch.events)
                .await
            {
                Ok(()) => {}
                Err(StorageError::Fenced { run_id, .. }) => fenced.push(run_id),
                Err(error) => return Err(error),
            }
        }
        Ok(fenced)
    }

    /// A run's events with `seq > after`, in order.
    async fn events_after(&self, run_id: Uuid, after: u64) -> StorageResult<Vec<StoredEvent>>;

    // ---- store ----

    /// Puts an item (insert or replace), keeping `created_at` of a replaced one.
    async fn put_item(
        &self,
        namespace: &[String],
        key: &str,
        value: JsonObject,
        at: Timestamp,
    ) -> StorageResult<()>;

    /// An item, if it exists.
    async fn get_item(&self, namespace: &[String], key: &str) -> StorageResult<Option<StoreItem>>;

    /// Deletes an item; false if it did not exist.
    async fn delete_item(&self, namespace: &[String], key: &str) -> StorageResult<bool>;

    /// Items under a namespace prefix whose values contain `filter`, newest update first.
    async fn search_items(&self, search: &StoreSearchRequest) -> StorageResult<Vec<StoreItem>>;

    /// Distinct namespaces by prefix and suffix, cut to `max_depth`, sorted.
    async fn list_namespaces(
        &self,
        request: &StoreListNamespacesRequest,
    ) -> StorageResult<ListNamespacesResponse>;
}
