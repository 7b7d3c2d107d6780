//! Conversions between rows and the wire types, and the helpers every query uses.
//!
//! Rows are first read into plain structs of SQL values inside rusqlite's callbacks, then
//! decoded into wire types outside them, so that a corrupt value becomes an error rather than
//! a panic or a rusqlite conversion error.
//!
//! A thread or run whose stored JSON cannot be read (a row written by an older errand, or
//! damaged on disk) is not an error for the reads it takes part in: it is answered as far as
//! its columns tell, with the reason under [`UNREADABLE`](crate::storage::UNREADABLE), so that one bad row never takes a
//! list, a search, a bulk cancel or the run queue down with it. The queue ends such a run in
//! `error` rather than run it.

use crate::storage::encoding::{RunKeys, decode_run};
pub(super) use crate::storage::encoding::{
    ThreadColumns, attempt, event_seq, from_json, namespace_key, namespace_range, run_status,
    sql_int, thread_status, timestamp, to_json,
};
use crate::storage::{CheckpointRecord, StorageError, StorageResult};
use errand_protocol::{JsonObject, Run, StoreItem, Thread};
use rusqlite::{Connection, OptionalExtension, Row};
use uuid::Uuid;

/// Turns rusqlite errors into [`StorageError::Backend`].
pub(super) trait Db<T> {
    /// The value, or the error as a backend failure.
    fn db(self) -> StorageResult<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> StorageResult<T> {
        self.map_err(storage_error)
    }
}

/// A SQLite error as a storage error: [`StorageError::Full`] when the disk or the size limit
/// is full (SQLite reports both as `SQLITE_FULL`), a backend failure otherwise.
pub(super) fn storage_error(error: rusqlite::Error) -> StorageError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == rusqlite::ErrorCode::DiskFull =>
        {
            StorageError::Full(format!("sqlite: {error}"))
        }
        _ => StorageError::backend_from(format!("sqlite: {error}"), error),
    }
}

/// A uuid from its stored text.
pub(super) fn uuid(text: &str) -> StorageResult<Uuid> {
    Uuid::parse_str(text)
        .map_err(|error| StorageError::backend(format!("corrupt id {text:?}: {error}")))
}

/// A thread's stored metadata, to merge more into; metadata that cannot be read is replaced
/// (and the loss logged) rather than block every later write to the thread.
pub(super) fn readable_metadata(text: &str, thread_id: &str) -> JsonObject {
    from_json(text, "threads.metadata").unwrap_or_else(|error| {
        tracing::warn!(%thread_id, %error, "a thread's stored metadata cannot be read; it is replaced");
        JsonObject::new()
    })
}

// ---- threads ----

/// The thread columns, in the order [`ThreadRow::read`] expects.
pub(super) const THREAD_COLUMNS: &str = "thread_id, status, created_at, updated_at, \
    state_updated_at, metadata, config, state_values, interrupts, error, extra";

/// A thread row as read.
#[derive(Debug)]
pub(super) struct ThreadRow {
    thread_id: String,
    columns: ThreadColumns,
}

impl ThreadRow {
    /// Reads [`THREAD_COLUMNS`].
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            thread_id: row.get(0)?,
            columns: ThreadColumns {
                status: row.get(1)?,
                created_at: row.get(2)?,
                updated_at: row.get(3)?,
                state_updated_at: row.get(4)?,
                metadata: row.get(5)?,
                config: row.get(6)?,
                values: row.get(7)?,
                interrupts: row.get(8)?,
                error: row.get(9)?,
                extra: row.get(10)?,
            },
        })
    }

    /// The thread; see [`ThreadColumns::decode`]. Only an unreadable id is an error.
    pub(super) fn decode(self) -> StorageResult<Thread> {
        Ok(self.columns.decode(uuid(&self.thread_id)?))
    }
}

/// The thread, if it exists.
pub(super) fn load_thread(conn: &Connection, thread_id: Uuid) -> StorageResult<Option<Thread>> {
    let sql = format!("SELECT {THREAD_COLUMNS} FROM threads WHERE thread_id = ?1");
    conn.prepare_cached(&sql)
        .db()?
        .query_row([thread_id.to_string()], ThreadRow::read)
        .optional()
        .db()?
        .map(ThreadRow::decode)
        .transpose()
}

// ---- runs ----

/// The run columns, in the order [`RunRow::read`] expects.
pub(super) const RUN_COLUMNS: &str = "status, updated_at, doc, run_id, thread_id, created_at";

/// A run row as read: the stored document, the columns that change after insert, and those
/// a run that cannot be read whole is answered from.
#[derive(Debug)]
pub(super) struct RunRow {
    status: String,
    updated_at: i64,
    doc: String,
    run_id: String,
    thread_id: String,
    created_at: i64,
}

impl RunRow {
    /// Reads [`RUN_COLUMNS`] starting at column `first`.
    pub(super) fn read_at(row: &Row<'_>, first: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            status: row.get(first)?,
            updated_at: row.get(first + 1)?,
            doc: row.get(first + 2)?,
            run_id: row.get(first + 3)?,
            thread_id: row.get(first + 4)?,
            created_at: row.get(first + 5)?,
        })
    }

    /// Reads [`RUN_COLUMNS`].
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Self::read_at(row, 0)
    }

    /// The run, with its current status and `updated_at`; see [`RunRow::decode_or_salvage`].
    pub(super) fn decode(self) -> StorageResult<Run> {
        self.decode_or_salvage().map(|(run, _)| run)
    }

    /// The run, with its current status and `updated_at`, and none; or, when it cannot be
    /// read whole, the run as its columns tell with the problems; see [`decode_run`]. Only
    /// unreadable ids are an error.
    pub(super) fn decode_or_salvage(self) -> StorageResult<(Run, Option<String>)> {
        let (run_id, thread_id, created_at) = (&self.run_id, &self.thread_id, self.created_at);
        decode_run(&self.status, self.updated_at, &self.doc, || {
            Ok(RunKeys {
                run_id: uuid(run_id)?,
                thread_id: uuid(thread_id)?,
                created_at,
            })
        })
    }
}

/// A run by id, if it exists.
pub(super) fn load_run(conn: &Connection, run_id: Uuid) -> StorageResult<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1");
    conn.prepare_cached(&sql)
        .db()?
        .query_row([run_id.to_string()], RunRow::read)
        .optional()
        .db()?
        .map(RunRow::decode)
        .transpose()
}

// ---- checkpoints ----

/// The checkpoint columns, in the order [`CheckpointRow::read`] expects.
pub(super) const CHECKPOINT_COLUMNS: &str = "checkpoint_id, parent_checkpoint_id, thread_id, \
    run_id, state_values, metadata, next, interrupts, created_at";

/// A checkpoint row as read.
#[derive(Debug)]
pub(super) struct CheckpointRow {
    checkpoint_id: String,
    parent_checkpoint_id: Option<String>,
    thread_id: String,
    run_id: Option<String>,
    values: String,
    metadata: String,
    next: String,
    interrupts: String,
    created_at: i64,
}

impl CheckpointRow {
    /// Reads [`CHECKPOINT_COLUMNS`].
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            checkpoint_id: row.get(0)?,
            parent_checkpoint_id: row.get(1)?,
            thread_id: row.get(2)?,
            run_id: row.get(3)?,
            values: row.get(4)?,
            metadata: row.get(5)?,
            next: row.get(6)?,
            interrupts: row.get(7)?,
            created_at: row.get(8)?,
        })
    }

    /// The checkpoint.
    pub(super) fn decode(self) -> StorageResult<CheckpointRecord> {
        Ok(CheckpointRecord {
            checkpoint_id: self.checkpoint_id,
            parent_checkpoint_id: self.parent_checkpoint_id,
            thread_id: uuid(&self.thread_id)?,
            run_id: self.run_id.as_deref().map(uuid).transpose()?,
            values: from_json(&self.values, "checkpoints.state_values")?,
            metadata: from_json(&self.metadata, "checkpoints.metadata")?,
            next: from_json(&self.next, "checkpoints.next")?,
            interrupts: from_json(&self.interrupts, "checkpoints.interrupts")?,
            created_at: timestamp(self.created_at)?,
        })
    }
}

// ---- store ----

/// The store item columns, in the order [`ItemRow::read`] expects.
pub(super) const ITEM_COLUMNS: &str = "namespace, key, value, created_at, updated_at";

/// A store item row as read.
#[derive(Debug)]
pub(super) struct ItemRow {
    namespace: String,
    key: String,
    value: String,
    created_at: i64,
    updated_at: i64,
}

impl ItemRow {
    /// Reads [`ITEM_COLUMNS`].
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            namespace: row.get(0)?,
            key: row.get(1)?,
            value: row.get(2)?,
            created_at: row.get(3)?,
            updated_at: row.get(4)?,
        })
    }

    /// The item.
    pub(super) fn decode(self) -> StorageResult<StoreItem> {
        Ok(StoreItem {
            namespace: from_json(&self.namespace, "store_items.namespace")?,
            key: self.key,
            value: from_json(&self.value, "store_items.value")?,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
            extra: JsonObject::new(),
        })
    }
}
