//! The tables, their indexes, and the settings every connection gets.

use super::checkpoint::WAL_BACKSTOP_PAGES;
use super::codec::Db;
use crate::storage::{StorageError, StorageResult};
use rusqlite::{Connection, TransactionBehavior};
use std::time::Duration;

/// The schema version this code writes, kept in `PRAGMA user_version`.
pub(super) const SCHEMA_VERSION: i64 = 4;

/// How long a connection waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; more than the storage has, so none is re-prepared.
const STATEMENT_CACHE: usize = 128;

/// The schema. Ids are hyphenated UUID text, times are integer microseconds since the epoch,
/// JSON is text.
///
/// - `threads`: one column per field of the wire `Thread`, so that updates touch only what
///   changed. `state_values` and `error` are SQL `NULL` when the key is absent and JSON text
///   (possibly `null`) when present; `interrupts` and `config` are `NULL` when absent; `extra`
///   holds the unknown keys, `ttl` and `extracted`. `active_runs` counts the thread's pending
///   and running runs; every write that inserts a run, changes its status or deletes it keeps
///   the count in the same transaction. The thread row changes in those writes anyway, so the
///   count costs no page, where an index of the active runs cost one at every start and end.
/// - `runs`: the wire `Run` as JSON in `doc`, plus the columns queried or changed after insert
///   (`status`, `updated_at`, `attempt`), which win over the copies in `doc`. The run's rowid
///   breaks ties between runs created in the same microsecond, in insertion order.
/// - `run_events`: the stream of each run, by `(run_id, seq)`.
/// - `checkpoints`: `seq` orders a thread's checkpoints (the latest is the highest).
/// - `store_items`: `namespace` is the JSON array of labels, so a prefix ends on a label
///   boundary: `["a"` followed by `,` or `]`.
///
/// Every index is a b-tree that a write copies a page of into the WAL, and a run's life is
/// several writes, so the indexes are the few the hot paths need, and none changes when it
/// need not:
///
/// - `threads` has no index of its own beyond its key: a search sorted by `created_at` walks
///   the table in rowid order, which is the order the threads were stored in, so the order of
///   their `created_at` (the server's clock when it stored them). Status and update time, which
///   change on every run, are not indexed either (a search filtering or sorting on them scans).
/// - `runs_thread` lists a thread's runs and finds them when the thread is deleted; it never
///   changes after the insert.
/// - `runs_pending` is the queue, in start order, and `runs_waiting` the same runs by thread,
///   for the rule that a thread's runs start one at a time, oldest first. A run that starts as
///   it is created enters neither. A query uses a partial index by repeating its `WHERE` term
///   `status = 'pending'` word for word.
/// - A thread's running run is found from its count (`active_runs` minus its waiting runs)
///   and, when it must be named (to interrupt it, or at recovery), among the thread's runs.
/// - `checkpoints_thread` finds a thread's latest checkpoint and pages its history; a
///   checkpoint is looked up by id only there, within its thread.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS threads (
    thread_id TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL,
    active_runs INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    state_updated_at INTEGER,
    metadata TEXT NOT NULL,
    config TEXT,
    state_values TEXT,
    interrupts TEXT,
    error TEXT,
    extra TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY NOT NULL,
    thread_id TEXT NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL,
    lease_owner TEXT,
    cancel_action TEXT
);
CREATE INDEX IF NOT EXISTS runs_thread ON runs (thread_id, created_at);
CREATE INDEX IF NOT EXISTS runs_pending ON runs (created_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS runs_waiting ON runs (thread_id, created_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    run_id TEXT,
    state_values TEXT NOT NULL,
    metadata TEXT NOT NULL,
    next TEXT NOT NULL,
    interrupts TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_thread ON checkpoints (thread_id, seq);

CREATE TABLE IF NOT EXISTS replicas (
    replica_id TEXT PRIMARY KEY NOT NULL,
    lease_until INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS store_items (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
"#;

/// From version 1 to 2, before [`SCHEMA`]: the indexes that every status change rewrote go,
/// and `checkpoints` is set aside, so that [`SCHEMA`] makes it anew without its
/// `UNIQUE (thread_id, checkpoint_id)` index (a table constraint, which only a rebuild drops).
/// [`SCHEMA`] then adds the new indexes, and [`MIGRATE_1_TO_2_AFTER`] moves the rows over.
const MIGRATE_1_TO_2_BEFORE: &str = r#"
DROP INDEX IF EXISTS threads_updated;
DROP INDEX IF EXISTS threads_status;
DROP INDEX IF EXISTS runs_status;
DROP INDEX IF EXISTS runs_thread_status;
DROP INDEX IF EXISTS runs_thread_created;
DROP INDEX IF EXISTS checkpoints_run;
DROP INDEX IF EXISTS checkpoints_thread;
ALTER TABLE checkpoints RENAME TO checkpoints_v1;
"#;

/// From version 1 to 2, after [`SCHEMA`]: the checkpoints move into the new table.
const MIGRATE_1_TO_2_AFTER: &str = r#"
INSERT INTO checkpoints SELECT seq, thread_id, checkpoint_id, parent_checkpoint_id, run_id,
    state_values, metadata, next, interrupts, created_at FROM checkpoints_v1;
DROP TABLE checkpoints_v1;
"#;

/// From version 2 (or 1) to 3, after [`SCHEMA`]: two indexes that cost a page in hot commits
/// go. Thread searches sorted by creation follow the rowid instead of `threads_created`, and
/// each thread counts its active runs (counted here once) instead of `runs_active`.
const MIGRATE_TO_3: &str = r#"
DROP INDEX IF EXISTS threads_created;
DROP INDEX IF EXISTS runs_active;
ALTER TABLE threads ADD COLUMN active_runs INTEGER NOT NULL DEFAULT 0;
UPDATE threads SET active_runs = (SELECT COUNT(*) FROM runs
    WHERE runs.thread_id = threads.thread_id AND runs.status IN ('pending', 'running'));
"#;

/// From version 3 (or older) to 4, after [`SCHEMA`]: runs record their holder and a cancel
/// stored for it. Runs left `running` by an older server have no holder; the start of the
/// next server ends their lease as any other.
const MIGRATE_TO_4: &str = r#"
ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE runs ADD COLUMN cancel_action TEXT;
"#;

/// Indexes on columns that a migration may have just added, so made after it.
const LATE_INDEXES: &str = r#"
CREATE INDEX IF NOT EXISTS runs_cancelling ON runs (lease_owner)
    WHERE cancel_action IS NOT NULL AND status = 'running';
"#;

/// Settings of every connection.
fn configure(conn: &Connection) -> StorageResult<()> {
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The writer runs each request of a batch in its own savepoint, whose undo pages go to a
    // statement journal. On disk, SQLite spills that journal to a fresh temporary file past 64
    // KiB: a file created and deleted on many commits. In memory it is a few page copies.
    conn.pragma_update(None, "temp_store", "MEMORY").db()?;
    Ok(())
}

/// Sets up the connection that writes: WAL (for a file), foreign keys, the schema.
pub(super) fn prepare_writer(conn: &mut Connection, file: bool) -> StorageResult<()> {
    configure(conn)?;
    if file {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::backend(format!(
                "sqlite: cannot switch the database to WAL (journal mode is {mode})"
            )));
        }
        // In WAL mode, NORMAL loses no committed transaction when the process dies; only a
        // power cut or OS crash can lose the last ones.
        conn.pragma_update(None, "synchronous", "NORMAL").db()?;
        // The checkpointer thread does this work; the writer only as a backstop.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)
            .db()?;
    }
    conn.pragma_update(None, "foreign_keys", true).db()?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .db()?;
    if version > SCHEMA_VERSION {
        return Err(StorageError::backend(format!(
            "the database has schema version {version}, newer than the {SCHEMA_VERSION} this \
             errand understands; open it with a newer errand"
        )));
    }
    if version == 1 {
        tx.execute_batch(MIGRATE_1_TO_2_BEFORE).db()?;
    }
    tx.execute_batch(SCHEMA).db()?;
    if version == 1 {
        tx.execute_batch(MIGRATE_1_TO_2_AFTER).db()?;
    }
    if (1..3).contains(&version) {
        tx.execute_batch(MIGRATE_TO_3).db()?;
    }
    if (1..4).contains(&version) {
        tx.execute_batch(MIGRATE_TO_4).db()?;
    }
    tx.execute_batch(LATE_INDEXES).db()?;
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .db()?;
    }
    tx.commit().db()
}

/// Sets up the connection that checkpoints: it never writes rows, and it must not checkpoint
/// on close while the writer works (the last connection to close does that).
pub(super) fn prepare_checkpointer(conn: &Connection) -> StorageResult<()> {
    configure(conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL").db()
}

/// Sets up a read-only connection of the pool.
pub(super) fn prepare_reader(conn: &Connection) -> StorageResult<()> {
    configure(conn)?;
    conn.pragma_update(None, "query_only", true).db()
}
