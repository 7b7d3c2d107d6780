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
//!
//! Here is the [`Storage`] trait; the types its calls take and answer are by topic in
//! `error.rs`, `leases.rs` (holders, leases, signals), `runs.rs` (a run's life) and
//! `records.rs` (checkpoints, events), all re-exported here. What both backends do alike is in
//! [`rules`] (the rules across rows) and `encoding.rs` (how values are stored).

mod encoding;
mod error;
mod leases;
#[cfg(feature = "postgres")]
mod postgres;
mod records;
pub mod rules;
mod runs;
mod sqlite;
pub use error::{BackendError, StorageError, StorageResult};
pub use leases::{Leases, Recovery, Renewal, ReplicaId, Signal};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresConfig, PostgresStorage};
pub use records::{CheckpointRecord, EventBatch, JsonText, NewCheckpoint, StoredEvent};
pub use runs::{ClaimedRun, CreatedRun, EndedRun, FinishedRun, NewRun, RunPage, Start};
pub use sqlite::SqliteStorage;

use async_trait::async_trait;
use errand_protocol::{
    CancelAction, IfExists, JsonObject, ListNamespacesResponse, Run, RunStatus, StoreItem,
    StoreListNamespacesRequest, StoreSearchRequest, Thread, ThreadSearchRequest, Timestamp,
    TtlStrategy,
};
use uuid::Uuid;

/// The key, in the `extra` of a thread or run that storage cannot read whole (a row written
/// by an older errand, or damaged), whose value says what could not be read. Such a row is
/// answered from what can be read rather than fail every read it takes part in, and a run of
/// it ends in `error` instead of running ([`Start::Unreadable`]).
pub const UNREADABLE: &str = "errand_unreadable";

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
    /// the run itself: the executor has no use for it, and decoding the stored run at every
    /// end would be work on the hot path for nothing.) [`StorageError::Fenced`] when
    /// `finished.attempt` no longer holds the run.
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
            let appended = self
                .append_events(batch.run_id, batch.attempt, &batch.events)
                .await;
            fenced.extend(rules::refused_append(appended)?);
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
