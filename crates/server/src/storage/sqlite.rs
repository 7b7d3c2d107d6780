//! [`SqliteStorage`]: the [`Storage`] contract on an embedded SQLite database.
//!
//! It keeps threads (one column per field of the wire object, so an absent key and a `null` one
//! stay apart), runs (the wire object as JSON plus the columns that are queried or change),
//! the events of each run's stream, the checkpoints of each thread, and the store's items. The
//! tables are described in `schema.rs`.
//!
//! Why it is built the way it is:
//!
//! - **One writer.** Every method that changes something runs on a single connection behind a
//!   mutex, inside one `BEGIN IMMEDIATE` transaction. SQLite allows one writer at a time anyway;
//!   doing it in one place means the rules that span rows (a run claimed once, one running run
//!   per thread, the multitask strategies, a thread's status following its runs) are checked
//!   and applied atomically, with no retry loops. `BEGIN IMMEDIATE` takes the write lock at the
//!   start, so no statement of a transaction waits for it half-way.
//! - **One process per file.** A file database is opened with SQLite's `unix-excl` VFS: this
//!   process holds the file, and its connections share the WAL index in memory, without the
//!   `fcntl` calls that let several processes share it. Another process is refused at open.
//! - **Committed means durable.** A file database runs in WAL mode with `synchronous=NORMAL`: a
//!   transaction that returned survives the process being killed (only an OS crash or power
//!   cut can lose the last ones).
//! - **Checkpoints off the write path.** A thread of its own copies the WAL into the database
//!   file (`checkpoint.rs`), so that no write waits for that copy and its two syncs.
//! - **Few indexes.** Each index a write touches is one more page copied into the WAL at its
//!   commit; the schema keeps the ones the hot paths need (`schema.rs`).
//! - **Readers beside the writer.** For a file, reads go to a small pool of read-only
//!   connections, which WAL lets proceed while a write is in progress. An in-memory database
//!   has one connection for everything.
//! - **Little handing between threads.** A write runs in place when the writer is free, else
//!   it queues for the writer thread, which commits what has queued together (`writer.rs`); a
//!   read runs in place on a free reader. Statements are prepared once per connection
//!   (`prepare_cached`).

mod checkpoint;
mod codec;
mod runs;
mod schema;
mod store;
mod threads;
mod writer;

use super::{
    CheckpointRecord, ClaimedRun, CreatedRun, EndedRun, EventBatch, FinishedRun, Leases,
    NewCheckpoint, NewRun, Recovery, Renewal, ReplicaId, RunPage, Storage, StorageError,
    StorageResult, StoredEvent,
};
use super::{encoding, rules};
use async_trait::async_trait;
use checkpoint::{Checkpointer, Commits};
use codec::Db;
use errand_protocol::{
    CancelAction, IfExists, JsonObject, ListNamespacesResponse, Run, RunStatus, StoreItem,
    StoreListNamespacesRequest, StoreSearchRequest, Thread, ThreadSearchRequest, Timestamp,
    TtlStrategy,
};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use uuid::Uuid;
use writer::Writer;

/// Read-only connections of a file database.
const READERS: usize = 4;

/// The [`Storage`] on SQLite: a file, or memory for tests. Cloning it shares the database.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The thread that owns the one connection that writes.
    writer: Writer,
    /// The thread that copies the WAL into the database file; none in memory.
    _checkpointer: Option<Checkpointer>,
    /// Read-only connections; empty for an in-memory database, whose reads go to the writer.
    readers: Vec<Mutex<Connection>>,
    /// Where the next read starts looking for a free reader.
    next_reader: AtomicUsize,
}

/// The SQLite VFS a file database is opened with. `unix-excl` locks the file for this process
/// alone, once, and keeps the WAL index in this process's memory: the connections of one
/// process coordinate among themselves without a system call, where the default VFS makes six
/// `fcntl` calls per write transaction and two to four per read, to let other processes share
/// a file that this one alone uses. Another process cannot open the database while it is open
/// here, which also keeps a second server from taking up the runs this one is executing.
#[cfg(unix)]
const FILE_VFS: &std::ffi::CStr = c"unix-excl";

/// Opens a connection to the database file at `path`.
fn open_file(path: &Path, flags: OpenFlags) -> StorageResult<Connection> {
    #[cfg(unix)]
    let connection = Connection::open_with_flags_and_vfs(path, flags, FILE_VFS);
    #[cfg(not(unix))]
    let connection = Connection::open_with_flags(path, flags);
    connection.db()
}

/// Takes the file for this process with a first read, so that a database held by another
/// process is reported as such.
fn claim(connection: &Connection, path: &Path) -> StorageResult<()> {
    let read = connection.query_row("PRAGMA schema_version", [], |row| row.get::<_, i64>(0));
    if let Err(rusqlite::Error::SqliteFailure(error, _)) = &read
        && error.code == rusqlite::ErrorCode::DatabaseBusy
    {
        return Err(StorageError::backend(format!(
            "the database {} is in use by another process: an errand server keeps its \
             database to itself while it runs, so give each process a file of its own",
            path.display()
        )));
    }
    read.map(drop).db()
}

/// Locks a connection, recovering it from a panic of a previous holder: a transaction left
/// open by the panic was rolled back when it was dropped.
fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SqliteStorage {
    /// Opens the database file at `path`, creating it and its tables if needed.
    ///
    /// Fails when the file was written by a newer errand (a higher schema version).
    pub fn open(path: impl AsRef<Path>) -> StorageResult<Self> {
        let path = path.as_ref();
        let mut writer = open_file(path, OpenFlags::default())?;
        claim(&writer, path)?;
        schema::prepare_writer(&mut writer, true)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = open_file(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )?;
                schema::prepare_reader(&reader)?;
                Ok(Mutex::new(reader))
            })
            .collect::<StorageResult<Vec<_>>>()?;
        let checkpointing = open_file(path, OpenFlags::default())?;
        schema::prepare_checkpointer(&checkpointing)?;
        let commits = Arc::new(Commits::default());
        let checkpointer = Checkpointer::start(checkpointing, Arc::clone(&commits))?;
        Self::from_parts(writer, readers, commits, Some(checkpointer))
    }

    /// A fresh database in memory, gone when the last clone is dropped.
    pub fn in_memory() -> StorageResult<Self> {
        let mut writer = Connection::open_in_memory().db()?;
        schema::prepare_writer(&mut writer, false)?;
        Self::from_parts(writer, Vec::new(), Arc::default(), None)
    }

    fn from_parts(
        writer: Connection,
        readers: Vec<Mutex<Connection>>,
        commits: Arc<Commits>,
        checkpointer: Option<Checkpointer>,
    ) -> StorageResult<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Writer::start(writer, commits)?,
                _checkpointer: checkpointer,
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        })
    }

    /// Caps the database at about `bytes` (SQLite's `max_page_count`; never below what it
    /// holds already), or lifts the cap with `None`; answers the cap in bytes. Past the cap,
    /// writes fail with [`StorageError::Full`] as on a full disk, reads go on, and the server
    /// behaves as it does when the disk fills: for an operator who wants errand to stop short
    /// of filling a shared disk.
    pub async fn limit_size(&self, bytes: Option<u64>) -> StorageResult<u64> {
        self.write(move |conn| {
            let page_size: i64 = conn
                .query_row("PRAGMA page_size", [], |row| row.get(0))
                .db()?;
            let page_size = u64::try_from(page_size).unwrap_or(4096).max(1);
            // SQLite's own largest page count is what no cap means; 0 would only ask.
            let pages = bytes.map_or(4_294_967_294, |bytes| (bytes / page_size).max(1));
            let pages: i64 = conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| {
                    row.get(0)
                })
                .db()?;
            Ok(u64::try_from(pages).unwrap_or(0).saturating_mul(page_size))
        })
        .await
    }

    /// Runs `work` in a write transaction on the writer thread; answers once it is committed.
    async fn write<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    {
        self.inner.writer.write(work).await
    }

    /// Runs `work` on a free reader, right here: reads take microseconds, less than a trip to
    /// another thread. An in-memory database has no readers; its reads queue at the writer.
    async fn read<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    {
        let readers = &self.inner.readers;
        if readers.is_empty() {
            return self.inner.writer.write(work).await;
        }
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        for reader in readers.iter().cycle().skip(start).take(readers.len()) {
            match reader.try_lock() {
                Ok(connection) => return work(&connection),
                Err(TryLockError::Poisoned(poisoned)) => return work(&poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        // Every reader is busy (more readers than runtime threads is the usual case, so this
        // is rare): wait for one off the runtime.
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let reader = inner.readers.get(start).map(lock);
            match reader {
                Some(connection) => work(&connection),
                None => Err(StorageError::backend("no reader connection")),
            }
        })
        .await
        .map_err(|error| StorageError::backend(format!("storage task failed: {error}")))?
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn renew_lease(&self, replica: ReplicaId, until: Timestamp) -> StorageResult<Renewal> {
        self.write(move |conn| runs::renew_lease(conn, replica, until))
            .await
    }

    async fn expire_leases(
        &self,
        which: Leases,
        max_attempts: u32,
        at: Timestamp,
    ) -> StorageResult<Recovery> {
        self.write(move |conn| runs::expire_leases(conn, which, max_attempts, at))
            .await
    }

    async fn request_cancel(&self, run_id: Uuid, action: CancelAction) -> StorageResult<bool> {
        self.write(move |conn| runs::request_cancel(conn, run_id, action))
            .await
    }

    async fn create_thread(&self, thread: Thread, if_exists: IfExists) -> StorageResult<Thread> {
        self.write(move |conn| threads::create_thread(conn, thread, if_exists))
            .await
    }

    async fn get_thread(&self, thread_id: Uuid) -> StorageResult<Option<Thread>> {
        self.read(move |conn| codec::load_thread(conn, thread_id))
            .await
    }

    async fn patch_thread(
        &self,
        thread_id: Uuid,
        metadata: JsonObject,
        at: Timestamp,
    ) -> StorageResult<Thread> {
        self.write(move |conn| threads::patch_thread(conn, thread_id, metadata, at))
            .await
    }

    async fn delete_thread(&self, thread_id: Uuid) -> StorageResult<bool> {
        self.write(move |conn| threads::delete_thread(conn, thread_id))
            .await
    }

    async fn prune_threads(
        &self,
        thread_ids: &[Uuid],
        strategy: TtlStrategy,
    ) -> StorageResult<u64> {
        let thread_ids = thread_ids.to_vec();
        self.write(move |conn| threads::prune_threads(conn, &thread_ids, strategy))
            .await
    }

    async fn search_threads(&self, search: &ThreadSearchRequest) -> StorageResult<Vec<Thread>> {
        let search = search.clone();
        self.read(move |conn| threads::search_threads(conn, &search))
            .await
    }

    async fn update_thread_state(
        &self,
        thread_id: Uuid,
        checkpoint: NewCheckpoint,
    ) -> StorageResult<CheckpointRecord> {
        self.write(move |conn| threads::update_thread_state(conn, thread_id, checkpoint))
            .await
    }

    async fn list_checkpoints(
        &self,
        thread_id: Uuid,
        limit: u32,
        before: Option<&str>,
    ) -> StorageResult<Vec<CheckpointRecord>> {
        let before = before.map(str::to_owned);
        self.read(move |conn| threads::list_checkpoints(conn, thread_id, limit, before.as_deref()))
            .await
    }

    async fn create_run(&self, new: NewRun) -> StorageResult<CreatedRun> {
        // Encoded and decoded here, outside the write transaction (see `finish_run`).
        let mut new = new;
        let doc = encoding::encode_new_run(&mut new)?;
        // The write hands the encoded run back, for the answer.
        let (stored, doc) = self
            .write(move |conn| runs::create_run(conn, new, &doc).map(|stored| (stored, doc)))
            .await?;
        Ok(CreatedRun {
            started: stored
                .started
                .map(|values| encoding::start_from(values.as_deref(), None)),
            run: stored.run,
            json: doc,
            to_cancel: stored.to_cancel,
        })
    }

    async fn claim_next_run(
        &self,
        now: Timestamp,
        replica: ReplicaId,
    ) -> StorageResult<Option<ClaimedRun>> {
        self.write(move |conn| runs::claim_next_run(conn, now, replica))
            .await
    }

    async fn next_pending_after(&self, after: Timestamp) -> StorageResult<Option<Timestamp>> {
        self.read(move |conn| runs::next_pending_after(conn, after))
            .await
    }

    async fn finish_run(&self, finished: &FinishedRun) -> StorageResult<Option<EndedRun>> {
        // Encoded here, on the caller's thread: the write transaction holds the one
        // connection that every write in the server waits for.
        let finished = runs::EncodedFinish::new(finished)?;
        self.write(move |conn| runs::finish_run(conn, &finished))
            .await
    }

    async fn transition_run(
        &self,
        run_id: Uuid,
        from: &[RunStatus],
        to: RunStatus,
        at: Timestamp,
    ) -> StorageResult<Option<Run>> {
        let from = from.to_vec();
        self.write(move |conn| runs::transition_run(conn, run_id, &from, to, at))
            .await
    }

    async fn rollback_run(
        &self,
        run_id: Uuid,
        attempt: Option<u32>,
        at: Timestamp,
    ) -> StorageResult<bool> {
        self.write(move |conn| runs::rollback_run(conn, run_id, attempt, at))
            .await
    }

    async fn get_run(&self, thread_id: Uuid, run_id: Uuid) -> StorageResult<Option<Run>> {
        self.read(move |conn| runs::get_run(conn, thread_id, run_id))
            .await
    }

    async fn list_runs(&self, thread_id: Uuid, page: RunPage) -> StorageResult<Vec<Run>> {
        self.read(move |conn| runs::list_runs(conn, thread_id, page))
            .await
    }

    async fn runs_with_status(&self, statuses: &[RunStatus]) -> StorageResult<Vec<Run>> {
        let statuses = statuses.to_vec();
        self.read(move |conn| runs::runs_with_status(conn, &statuses))
            .await
    }

    async fn delete_run(&self, thread_id: Uuid, run_id: Uuid) -> StorageResult<bool> {
        let at = Timestamp::now();
        self.write(move |conn| runs::delete_run(conn, thread_id, run_id, at))
            .await
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
        let events = events.to_vec();
        self.write(move |conn| runs::append_events(conn, run_id, attempt, &events))
            .await
    }

    async fn append_event_batches(&self, batches: &[EventBatch]) -> StorageResult<Vec<Uuid>> {
        let batches = batches.to_vec();
        self.write(move |conn| {
            let mut fenced = Vec::new();
            for batch in &batches {
                let appended =
                    runs::append_events(conn, batch.run_id, batch.attempt, &batch.events);
                fenced.extend(rules::refused_append(appended)?);
            }
            Ok(fenced)
        })
        .await
    }

    async fn events_after(&self, run_id: Uuid, after: u64) -> StorageResult<Vec<StoredEvent>> {
        self.read(move |conn| runs::events_after(conn, run_id, after))
            .await
    }

    async fn put_item(
        &self,
        namespace: &[String],
        key: &str,
        value: JsonObject,
        at: Timestamp,
    ) -> StorageResult<()> {
        let (namespace, key) = (namespace.to_vec(), key.to_owned());
        self.write(move |conn| store::put_item(conn, &namespace, &key, &value, at))
            .await
    }

    async fn get_item(&self, namespace: &[String], key: &str) -> StorageResult<Option<StoreItem>> {
        let (namespace, key) = (namespace.to_vec(), key.to_owned());
        self.read(move |conn| store::get_item(conn, &namespace, &key))
            .await
    }

    async fn delete_item(&self, namespace: &[String], key: &str) -> StorageResult<bool> {
        let (namespace, key) = (namespace.to_vec(), key.to_owned());
        self.write(move |conn| store::delete_item(conn, &namespace, &key))
            .await
    }

    async fn search_items(&self, search: &StoreSearchRequest) -> StorageResult<Vec<StoreItem>> {
        let search = search.clone();
        self.read(move |conn| store::search_items(conn, &search))
            .await
    }

    async fn list_namespaces(
        &self,
        request: &StoreListNamespacesRequest,
    ) -> StorageResult<ListNamespacesResponse> {
        let request = request.clone();
        self.read(move |conn| store::list_namespaces(conn, &request))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::{runs, schema};
    use rusqlite::Connection;

    /// The query plan of `sql`, one step per line.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut statement = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("the query prepares");
        // Unbound parameters are null: the plan depends on the query, not on the values.
        let nulls = vec![rusqlite::types::Null; statement.parameter_count()];
        let steps = statement
            .query_map(rusqlite::params_from_iter(nulls), |row| {
                row.get::<_, String>(3)
            })
            .expect("the plan runs")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("the plan reads");
        steps.join("\n")
    }

    /// The queries of every run's life search the small indexes made for them. A partial index
    /// is used only when the query repeats its `WHERE` term, which an edit can easily lose;
    /// a scan of `runs` would then grow with the whole history. Recovery alone walks a table,
    /// `threads` (as `t`), once at start.
    #[test]
    fn hot_queries_search_their_indexes() {
        let mut conn = Connection::open_in_memory().expect("an in-memory database");
        schema::prepare_writer(&mut conn, false).expect("the schema");
        let claim = runs::claim_sql();
        let cases = [
            (runs::ACTIVE_RUNS, vec!["runs_thread"], None),
            (runs::NEXT_PENDING, vec!["runs_pending"], None),
            (
                claim.as_str(),
                vec!["runs_pending", "runs_waiting", "sqlite_autoindex_threads_1"],
                None,
            ),
            (runs::RUNNING_RUNS, vec!["runs_thread"], Some("t")),
        ];
        for (sql, indexes, walked) in cases {
            let plan = plan(&conn, sql);
            for index in indexes {
                assert!(plan.contains(index), "{sql}\nshould use {index}:\n{plan}");
            }
            for step in plan.lines() {
                if let Some(table) = step.trim().strip_prefix("SCAN ") {
                    let table = table.split_whitespace().next();
                    assert_eq!(table, walked, "{sql}\nscans:\n{plan}");
                }
            }
        }
    }
}
