//! [`PostgresStorage`]: the [`Storage`] contract on a PostgreSQL database, which several server
//! processes (replicas) may share.
//!
//! The tables follow SQLite's (`postgres/schema.rs` says where they differ). How the rules that
//! span rows hold when several replicas write at once:
//!
//! - **One transaction per call**, at READ COMMITTED, with explicit row locks. Every write that
//!   changes which runs of a thread are active (pending or running) locks the thread's row
//!   first, so the thread's `active_runs` count and its runs' statuses move together, and any
//!   statement issued after that lock sees them as they are.
//! - **Claims do not queue behind each other.** A claim takes candidate runs with
//!   `FOR UPDATE SKIP LOCKED` (so two replicas never take the same run), then locks the run's
//!   thread with `SKIP LOCKED` as well (a thread locked by another writer is tried again later)
//!   and checks, in a fresh statement, that the run is still its thread's oldest pending run and
//!   that no run of the thread is running. A claim never waits for a lock, so it takes part in
//!   no deadlock.
//! - **Fencing.** Each write of an attempt checks `status = 'running' AND attempt = n` under the
//!   run's row lock, which a lease's expiry also takes.
//! - **Retries.** A transaction that fails on a dropped connection, a serialization failure or a
//!   deadlock is run again from the start, a few times, unless its `COMMIT` was sent and not
//!   answered (it may have committed). `postgres/tx.rs` holds the transaction and its retries.
//! - **Signals** are gathered by each transaction and, once it has committed, sent with
//!   `pg_notify` by one task per storage, a few milliseconds' worth at a time in a transaction
//!   of their own (`postgres/signals.rs`). A transaction that notifies takes a lock for the
//!   whole database at its commit, which serialises the commits of every such transaction:
//!   with a `NOTIFY` in each run's end, the ends of all runs, on every replica, would commit
//!   one at a time. A signal lost when the server
//!   dies between a commit and its announcement is found by polling, as one lost with a
//!   connection. One connection per storage `LISTEN`s.
//! - **Few round trips.** A statement of a transaction is sent without waiting for the one
//!   before when it does not need its answer (tokio-postgres pipelines requests issued together
//!   on one connection), `BEGIN` goes with the first statement and `COMMIT` with the last
//!   writes. Creating a run (claimed at once) and finishing it are two round trips each.

mod codec;
mod runs;
mod schema;
mod signals;
mod store;
mod threads;
mod tls;
mod tx;

use super::encoding;
use super::{
    CheckpointRecord, ClaimedRun, CreatedRun, EndedRun, EventBatch, FinishedRun, Leases,
    NewCheckpoint, NewRun, Recovery, Renewal, ReplicaId, RunPage, Signal, Storage, StorageError,
    StorageResult, StoredEvent,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use errand_protocol::{
    CancelAction, IfExists, JsonObject, ListNamespacesResponse, Run, RunStatus, StoreItem,
    StoreListNamespacesRequest, StoreSearchRequest, Thread, ThreadSearchRequest, Timestamp,
    TtlStrategy,
};
use signals::Channel;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tx::{Tx, pool_error, transact};
use uuid::Uuid;

/// Sends each payload of `$2` on channel `$1`.
pub(super) const NOTIFY: &str = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p";

/// How a [`PostgresStorage`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The database, as a libpq URL or key=value string (`postgres://user@host:5432/db`);
    /// `sslmode` may be `disable`, `prefer` (the default), `require`, `verify-ca` or
    /// `verify-full`.
    pub url: String,
    /// The schema errand's tables live in, made if missing; `None` for the connection's
    /// default search path (usually `public`). Letters, digits and `_` only.
    pub schema: Option<String>,
    /// The most connections the storage opens, besides the one that listens for signals.
    pub pool_size: usize,
}

impl PostgresConfig {
    /// The database at `url`, its default schema, and 16 connections.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            pool_size: 16,
        }
    }
}

/// The [`Storage`] on PostgreSQL. Cloning it shares the connections.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    channel: Channel,
    signals: broadcast::Sender<Signal>,
    /// The task that keeps the `LISTEN` connection; stopped when the storage goes.
    listener: tokio::task::JoinHandle<()>,
    /// Sends the signals of committed transactions.
    announcer: signals::Announcer,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// An identifier, quoted for SQL.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Refuses a schema name that could not go into a connection's startup options as it is.
fn check_schema(schema: &str) -> StorageResult<()> {
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        Ok(())
    } else {
        Err(StorageError::backend(format!(
            "postgres: the schema name {schema:?} must be 1 to 63 ASCII letters, digits or `_`"
        )))
    }
}

impl PostgresStorage {
    /// Connects to the database, creates the schema if it is missing, brings its tables up to
    /// date, and starts listening for other replicas' signals.
    ///
    /// Fails when the database was migrated by a newer errand (a higher schema version).
    pub async fn connect(config: PostgresConfig) -> StorageResult<Self> {
        if let Some(schema) = &config.schema {
            check_schema(schema)?;
        }
        let (url, verify) = tls::checked_mode(&config.url);
        let mut pg = tokio_postgres::Config::from_str(&url)
            .map_err(|error| StorageError::backend_from("postgres: invalid database URL", error))?;
        if let Some(schema) = &config.schema {
            // A startup option rather than a `SET` on each connection: it costs no round trip.
            let path = format!("-c search_path={}", quote_ident(schema));
            let options = match pg.get_options() {
                Some(given) if !given.is_empty() => format!("{given} {path}"),
                _ => path,
            };
            pg.options(options);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("errand");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        let tls = tls::connector(verify)?;
        let manager = Manager::from_config(
            pg.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .build()
            .map_err(|error| StorageError::backend_from("postgres: building the pool", error))?;
        {
            let client = pool.get().await.map_err(pool_error)?;
            schema::migrate(&client, config.schema.as_deref()).await?;
        }
        let channel = Channel::new(config.schema.as_deref());
        let (signals, _) = broadcast::channel(1024);
        let listener = signals::listen(pg, tls, channel.clone(), signals.clone()).await?;
        let announcer = signals::Announcer::start(pool.clone(), channel.name.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                channel,
                signals,
                listener,
                announcer,
            }),
        })
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    fn shared(&self) -> bool {
        true
    }

    fn signals(&self) -> Option<broadcast::Receiver<Signal>> {
        Some(self.inner.signals.subscribe())
    }

    async fn renew_lease(&self, replica: ReplicaId, until: Timestamp) -> StorageResult<Renewal> {
        transact!(self, |tx| runs::renew_lease(&tx, replica, until))
    }

    async fn expire_leases(
        &self,
        which: Leases,
        max_attempts: u32,
        at: Timestamp,
    ) -> StorageResult<Recovery> {
        transact!(self, |tx| runs::expire_leases(&tx, which, max_attempts, at))
    }

    async fn request_cancel(&self, run_id: Uuid, action: CancelAction) -> StorageResult<bool> {
        transact!(self, |tx| runs::request_cancel(&tx, run_id, action))
    }

    async fn create_thread(&self, thread: Thread, if_exists: IfExists) -> StorageResult<Thread> {
        transact!(self, |tx| threads::create_thread(&tx, &thread, if_exists))
    }

    async fn get_thread(&self, thread_id: Uuid) -> StorageResult<Option<Thread>> {
        transact!(self, |tx| threads::get_thread(&tx, thread_id))
    }

    async fn patch_thread(
        &self,
        thread_id: Uuid,
        metadata: JsonObject,
        at: Timestamp,
    ) -> StorageResult<Thread> {
        transact!(self, |tx| threads::patch_thread(
            &tx, thread_id, &metadata, at
        ))
    }

    async fn delete_thread(&self, thread_id: Uuid) -> StorageResult<bool> {
        transact!(self, |tx| threads::delete_thread(&tx, thread_id))
    }

    async fn search_threads(&self, search: &ThreadSearchRequest) -> StorageResult<Vec<Thread>> {
        transact!(self, |tx| threads::search_threads(&tx, search))
    }

    async fn prune_threads(
        &self,
        thread_ids: &[Uuid],
        strategy: TtlStrategy,
    ) -> StorageResult<u64> {
        transact!(self, |tx| threads::prune_threads(&tx, thread_ids, strategy))
    }

    async fn update_thread_state(
        &self,
        thread_id: Uuid,
        checkpoint: NewCheckpoint,
    ) -> StorageResult<CheckpointRecord> {
        transact!(self, |tx| threads::update_thread_state(
            &tx,
            thread_id,
            &checkpoint
        ))
    }

    async fn list_checkpoints(
        &self,
        thread_id: Uuid,
        limit: u32,
        before: Option<&str>,
    ) -> StorageResult<Vec<CheckpointRecord>> {
        transact!(self, |tx| threads::list_checkpoints(
            &tx, thread_id, limit, before
        ))
    }

    async fn create_run(&self, new: NewRun) -> StorageResult<CreatedRun> {
        let mut new = new;
        let doc = encoding::encode_new_run(&mut new)?;
        transact!(self, |tx| runs::create_run(&tx, &new, &doc))
    }

    async fn claim_next_run(
        &self,
        now: Timestamp,
        replica: ReplicaId,
    ) -> StorageResult<Option<ClaimedRun>> {
        transact!(self, |tx| runs::claim_next_run(&tx, now, replica))
    }

    async fn next_pending_after(&self, after: Timestamp) -> StorageResult<Option<Timestamp>> {
        transact!(self, |tx| runs::next_pending_after(&tx, after))
    }

    async fn finish_run(&self, finished: &FinishedRun) -> StorageResult<Option<EndedRun>> {
        let encoded = runs::EncodedFinish::new(finished)?;
        transact!(self, |tx| runs::finish_run(&tx, &encoded))
    }

    async fn transition_run(
        &self,
        run_id: Uuid,
        from: &[RunStatus],
        to: RunStatus,
        at: Timestamp,
    ) -> StorageResult<Option<Run>> {
        transact!(self, |tx| runs::transition_run(&tx, run_id, from, to, at))
    }

    async fn rollback_run(
        &self,
        run_id: Uuid,
        attempt: Option<u32>,
        at: Timestamp,
    ) -> StorageResult<bool> {
        transact!(self, |tx| runs::rollback_run(&tx, run_id, attempt, at))
    }

    async fn get_run(&self, thread_id: Uuid, run_id: Uuid) -> StorageResult<Option<Run>> {
        transact!(self, |tx| runs::get_run(&tx, thread_id, run_id))
    }

    async fn list_runs(&self, thread_id: Uuid, page: RunPage) -> StorageResult<Vec<Run>> {
        transact!(self, |tx| runs::list_runs(&tx, thread_id, page))
    }

    async fn runs_with_status(&self, statuses: &[RunStatus]) -> StorageResult<Vec<Run>> {
        transact!(self, |tx| runs::runs_with_status(&tx, statuses))
    }

    async fn delete_run(&self, thread_id: Uuid, run_id: Uuid) -> StorageResult<bool> {
        let at = Timestamp::now();
        transact!(self, |tx| runs::delete_run(&tx, thread_id, run_id, at))
    }

    async fn append_events(
        &self,
        run_id: Uuid,
        attempt: u32,
        events: &[StoredEvent],
    ) -> StorageResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        transact!(self, |tx| runs::append_events(&tx, run_id, attempt, events))
    }

    async fn append_event_batches(&self, batches: &[EventBatch]) -> StorageResult<Vec<Uuid>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        transact!(self, |tx| runs::append_event_batches(&tx, batches))
    }

    async fn events_after(&self, run_id: Uuid, after: u64) -> StorageResult<Vec<StoredEvent>> {
        transact!(self, |tx| runs::events_after(&tx, run_id, after))
    }

    async fn put_item(
        &self,
        namespace: &[String],
        key: &str,
        value: JsonObject,
        at: Timestamp,
    ) -> StorageResult<()> {
        transact!(self, |tx| store::put_item(&tx, namespace, key, &value, at))
    }

    async fn get_item(&self, namespace: &[String], key: &str) -> StorageResult<Option<StoreItem>> {
        transact!(self, |tx| store::get_item(&tx, namespace, key))
    }

    async fn delete_item(&self, namespace: &[String], key: &str) -> StorageResult<bool> {
        transact!(self, |tx| store::delete_item(&tx, namespace, key))
    }

    async fn search_items(&self, search: &StoreSearchRequest) -> StorageResult<Vec<StoreItem>> {
        transact!(self, |tx| store::search_items(&tx, search))
    }

    async fn list_namespaces(
        &self,
        request: &StoreListNamespacesRequest,
    ) -> StorageResult<ListNamespacesResponse> {
        transact!(self, |tx| store::list_namespaces(&tx, request))
    }
}
