//! Conversions between PostgreSQL rows and the wire types, and error mapping.
//!
//! Ids are `uuid`, times `bigint` microseconds since the epoch (as in SQLite, so both
//! backends compare and order them the same way), JSON that is searched by containment is
//! `jsonb` (read back as text), and JSON handed back as it is stays `text`.
//!
//! As in SQLite, a thread or run whose stored JSON cannot be read is answered as far as its
//! columns tell, with the reason under [`UNREADABLE`](crate::storage::UNREADABLE), rather than fail every read it takes
//! part in.

use crate::storage::encoding::{RunKeys, decode_run as decode_run_doc};
pub(super) use crate::storage::encoding::{
    ThreadColumns, attempt, event_seq, from_json, namespace_key, namespace_range, run_status,
    sql_int, thread_status, timestamp, to_json,
};
use crate::storage::{CheckpointRecord, StorageError, StorageResult};
use errand_protocol::{JsonObject, Run, StoreItem, Thread};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// Turns tokio-postgres errors into storage errors.
pub(super) trait Pg<T> {
    /// The value, or the error as a storage error.
    fn pg(self) -> StorageResult<T>;
}

impl<T> Pg<T> for Result<T, tokio_postgres::Error> {
    fn pg(self) -> StorageResult<T> {
        self.map_err(storage_error)
    }
}

/// A tokio-postgres error as a storage error: [`StorageError::Full`] on a full disk, a
/// backend failure (keeping the error as its source) otherwise.
pub(super) fn storage_error(error: tokio_postgres::Error) -> StorageError {
    let message = match error.as_db_error() {
        Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
        None => format!("postgres: {error}"),
    };
    if error.code() == Some(&SqlState::DISK_FULL) {
        return StorageError::Full(message);
    }
    StorageError::backend_from(message, error)
}

/// True for a failure that trying the whole transaction again may get past: the connection
/// dropped, or the database chose this transaction to break a serialization conflict or a
/// deadlock.
pub(super) fn transient(error: &StorageError) -> bool {
    let StorageError::Backend(backend) = error else {
        return false;
    };
    let Some(source) = std::error::Error::source(backend) else {
        return false;
    };
    if let Some(error) = source.downcast_ref::<tokio_postgres::Error>() {
        return pg_transient(error);
    }
    if let Some(error) = source.downcast_ref::<deadpool_postgres::PoolError>() {
        return match error {
            deadpool_postgres::PoolError::Backend(error) => pg_transient(error),
            _ => false,
        };
    }
    false
}

fn pg_transient(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CONNECTION_FAILURE
        }
        // No answer from the server at all: the socket failed under the request.
        None => std::error::Error::source(error)
            .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some()),
    }
}

/// Reads column `index` of `row`.
pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> StorageResult<T> {
    row.try_get(index).pg()
}

// ---- threads ----

/// The thread columns, in the order [`decode_thread`] expects.
pub(super) const THREAD_COLUMNS: &str = "thread_id, status, created_at, updated_at, \
    state_updated_at, metadata::text, config, state_values::text, interrupts, error, extra";

/// A thread from [`THREAD_COLUMNS`] starting at column 0; see [`ThreadColumns::decode`]. Only
/// a column of the wrong type is an error.
pub(super) fn decode_thread(row: &Row) -> StorageResult<Thread> {
    let thread_id: Uuid = get(row, 0)?;
    let columns = ThreadColumns {
        status: get(row, 1)?,
        created_at: get(row, 2)?,
        updated_at: get(row, 3)?,
        state_updated_at: get(row, 4)?,
        metadata: get(row, 5)?,
        config: get(row, 6)?,
        values: get(row, 7)?,
        interrupts: get(row, 8)?,
        error: get(row, 9)?,
        extra: get(row, 10)?,
    };
    Ok(columns.decode(thread_id))
}

// ---- runs ----

/// The run columns, in the order [`decode_run`] expects.
pub(super) const RUN_COLUMNS: &str = "status, updated_at, doc, run_id, thread_id, created_at";

/// A run from [`RUN_COLUMNS`] starting at column `first`; see [`decode_run_doc`].
pub(super) fn decode_run(row: &Row, first: usize) -> StorageResult<(Run, Option<String>)> {
    let status: &str = get(row, first)?;
    let updated_at: i64 = get(row, first + 1)?;
    let doc: &str = get(row, first + 2)?;
    decode_run_doc(status, updated_at, doc, || {
        Ok(RunKeys {
            run_id: get(row, first + 3)?,
            thread_id: get(row, first + 4)?,
            created_at: get(row, first + 5)?,
        })
    })
}

// ---- checkpoints ----

/// The checkpoint columns, in the order [`decode_checkpoint`] expects.
pub(super) const CHECKPOINT_COLUMNS: &str = "checkpoint_id, parent_checkpoint_id, thread_id, \
    run_id, state_values, metadata, next, interrupts, created_at";

/// A checkpoint from [`CHECKPOINT_COLUMNS`].
pub(super) fn decode_checkpoint(row: &Row) -> StorageResult<CheckpointRecord> {
    Ok(CheckpointRecord {
        checkpoint_id: get(row, 0)?,
        parent_checkpoint_id: get(row, 1)?,
        thread_id: get(row, 2)?,
        run_id: get(row, 3)?,
        values: from_json(get(row, 4)?, "checkpoints.state_values")?,
        metadata: from_json(get(row, 5)?, "checkpoints.metadata")?,
        next: from_json(get(row, 6)?, "checkpoints.next")?,
        interrupts: from_json(get(row, 7)?, "checkpoints.interrupts")?,
        created_at: timestamp(get(row, 8)?)?,
    })
}

// ---- store ----

/// The store item columns, in the order [`decode_item`] expects.
pub(super) const ITEM_COLUMNS: &str = "namespace, key, value::text, created_at, updated_at";

/// A store item from [`ITEM_COLUMNS`].
pub(super) fn decode_item(row: &Row) -> StorageResult<StoreItem> {
    Ok(StoreItem {
        namespace: from_json(get(row, 0)?, "store_items.namespace")?,
        key: get(row, 1)?,
        value: from_json(get(row, 2)?, "store_items.value")?,
        created_at: timestamp(get(row, 3)?)?,
        updated_at: timestamp(get(row, 4)?)?,
        extra: JsonObject::new(),
    })
}
