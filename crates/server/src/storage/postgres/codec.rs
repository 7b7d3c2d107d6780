//! Conversions between PostgreSQL rows and the wire types, and error mapping.
//!
//! Ids are `uuid`, times `bigint` microseconds since the epoch (as in SQLite, so both
//! backends compare and order them the same way), JSON that is searched by containment is
//! `jsonb` (read back as text), and JSON handed back as it is stays `text`.
//!
//! As in SQLite, a thread or run whose stored JSON cannot be read is answered as far as its
//! columns tell, with the reason under [`UNREADABLE`], rather than fail every read it takes
//! part in.

use crate::storage::{CheckpointRecord, StorageError, StorageResult, UNREADABLE};
use errand_protocol::{
    Interrupt, JsonObject, MultitaskStrategy, Nullable, Run, RunKwargs, RunStatus, StoreItem,
    Thread, ThreadStatus, Timestamp,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
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

/// JSON text of a value.
pub(super) fn to_json<T: Serialize + ?Sized>(value: &T) -> StorageResult<String> {
    serde_json::to_string(value)
        .map_err(|error| StorageError::backend(format!("cannot encode JSON: {error}")))
}

/// A value from stored JSON text; `what` names the column for the error.
pub(super) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> StorageResult<T> {
    serde_json::from_str(text)
        .map_err(|error| StorageError::backend(format!("corrupt JSON in {what}: {error}")))
}

/// A timestamp from stored microseconds.
pub(super) fn timestamp(micros: i64) -> StorageResult<Timestamp> {
    Timestamp::from_timestamp_micros(micros)
        .ok_or_else(|| StorageError::backend(format!("timestamp out of range: {micros}")))
}

/// A thread status from its stored name.
pub(super) fn thread_status(text: &str) -> StorageResult<ThreadStatus> {
    match text {
        "idle" => Ok(ThreadStatus::Idle),
        "busy" => Ok(ThreadStatus::Busy),
        "interrupted" => Ok(ThreadStatus::Interrupted),
        "error" => Ok(ThreadStatus::Error),
        other => Err(StorageError::backend(format!(
            "unknown thread status {other:?}"
        ))),
    }
}

/// A run status from its stored name.
pub(super) fn run_status(text: &str) -> StorageResult<RunStatus> {
    match text {
        "pending" => Ok(RunStatus::Pending),
        "running" => Ok(RunStatus::Running),
        "error" => Ok(RunStatus::Error),
        "success" => Ok(RunStatus::Success),
        "timeout" => Ok(RunStatus::Timeout),
        "interrupted" => Ok(RunStatus::Interrupted),
        other => Err(StorageError::backend(format!(
            "unknown run status {other:?}"
        ))),
    }
}

/// A count or position as PostgreSQL's `bigint`.
pub(super) fn sql_int(value: u64) -> StorageResult<i64> {
    i64::try_from(value).map_err(|_| StorageError::backend(format!("{value} is too large")))
}

/// A stored attempt count.
pub(super) fn attempt(value: i32) -> StorageResult<u32> {
    u32::try_from(value)
        .map_err(|_| StorageError::backend(format!("corrupt attempt count {value}")))
}

/// SQL `NULL` when absent, JSON text (`null` included) otherwise.
pub(super) fn encode_nullable(value: &Nullable<Value>) -> StorageResult<Option<String>> {
    match value {
        Nullable::Absent => Ok(None),
        Nullable::Null => Ok(Some("null".to_owned())),
        Nullable::Present(value) => to_json(value).map(Some),
    }
}

/// Decodes what [`encode_nullable`] wrote.
pub(super) fn decode_nullable(text: Option<&str>, what: &str) -> StorageResult<Nullable<Value>> {
    match text {
        None => Ok(Nullable::Absent),
        Some(text) => match from_json::<Value>(text, what)? {
            Value::Null => Ok(Nullable::Null),
            value => Ok(Nullable::Present(value)),
        },
    }
}

/// Reads column `index` of `row`.
pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> StorageResult<T> {
    row.try_get(index).pg()
}

/// The value of a decode, or `fallback` with the problem noted in `problems`.
fn or_note<T>(result: StorageResult<T>, fallback: T, problems: &mut Vec<String>) -> T {
    result.unwrap_or_else(|error| {
        problems.push(error.to_string());
        fallback
    })
}

/// `extra` with the problems of a salvaged row under [`UNREADABLE`], logged once here.
fn note_unreadable(extra: &mut JsonObject, what: &str, id: &Uuid, problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    let reason = format!(
        "errand cannot read this {what} as stored ({}); it is shown from what could be read",
        problems.join("; ")
    );
    tracing::warn!(%id, %reason, "a stored {what} cannot be read whole");
    extra.insert(UNREADABLE.into(), Value::from(reason));
}

// ---- threads ----

/// The thread columns, in the order [`decode_thread`] expects.
pub(super) const THREAD_COLUMNS: &str = "thread_id, status, created_at, updated_at, \
    state_updated_at, metadata::text, config, state_values::text, interrupts, error, extra";

/// The fields of [`Thread`] that have no column of their own, stored as one JSON object.
#[derive(Serialize)]
struct ThreadRestRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: &'a Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extracted: &'a Option<JsonObject>,
    #[serde(flatten)]
    extra: &'a JsonObject,
}

/// What [`ThreadRestRef`] wrote.
#[derive(Deserialize, Default)]
struct ThreadRest {
    #[serde(default)]
    ttl: Option<Value>,
    #[serde(default)]
    extracted: Option<JsonObject>,
    #[serde(flatten)]
    extra: JsonObject,
}

/// A thread as column values, for inserting.
#[derive(Debug)]
pub(super) struct ThreadColumns {
    pub(super) status: &'static str,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) state_updated_at: Option<i64>,
    pub(super) metadata: String,
    pub(super) config: Option<String>,
    pub(super) values: Option<String>,
    pub(super) interrupts: Option<String>,
    pub(super) error: Option<String>,
    pub(super) extra: String,
}

impl ThreadColumns {
    /// Encodes a thread.
    pub(super) fn encode(thread: &Thread) -> StorageResult<Self> {
        Ok(Self {
            status: thread.status.as_str(),
            created_at: thread.created_at.timestamp_micros(),
            updated_at: thread.updated_at.timestamp_micros(),
            state_updated_at: thread.state_updated_at.map(|at| at.timestamp_micros()),
            metadata: to_json(&thread.metadata)?,
            config: thread.config.as_ref().map(to_json).transpose()?,
            values: encode_nullable(&thread.values)?,
            interrupts: thread.interrupts.as_ref().map(to_json).transpose()?,
            error: encode_nullable(&thread.error)?,
            extra: to_json(&ThreadRestRef {
                ttl: &thread.ttl,
                extracted: &thread.extracted,
                extra: &thread.extra,
            })?,
        })
    }
}

/// A thread from [`THREAD_COLUMNS`] starting at column 0. A field that cannot be read is left
/// empty, and the problems are named under [`UNREADABLE`]; only an unreadable id is an error.
pub(super) fn decode_thread(row: &Row) -> StorageResult<Thread> {
    let thread_id: Uuid = get(row, 0)?;
    let status: String = get(row, 1)?;
    let metadata: String = get(row, 5)?;
    let config: Option<String> = get(row, 6)?;
    let values: Option<String> = get(row, 7)?;
    let interrupts: Option<String> = get(row, 8)?;
    let error: Option<String> = get(row, 9)?;
    let extra: String = get(row, 10)?;
    let mut problems = Vec::new();
    let p = &mut problems;
    let rest = or_note(
        from_json::<ThreadRest>(&extra, "threads.extra"),
        ThreadRest::default(),
        p,
    );
    let updated_at = or_note(timestamp(get(row, 3)?), Timestamp::now(), p);
    let mut thread = Thread {
        thread_id,
        created_at: or_note(timestamp(get(row, 2)?), updated_at, p),
        updated_at,
        state_updated_at: or_note(
            get::<Option<i64>>(row, 4)?.map(timestamp).transpose(),
            None,
            p,
        ),
        metadata: or_note(
            from_json(&metadata, "threads.metadata"),
            JsonObject::new(),
            p,
        ),
        status: or_note(thread_status(&status), ThreadStatus::Error, p),
        config: or_note(
            config
                .as_deref()
                .map(|text| from_json(text, "threads.config"))
                .transpose(),
            None,
            p,
        ),
        values: or_note(
            decode_nullable(values.as_deref(), "threads.state_values"),
            Nullable::Null,
            p,
        ),
        interrupts: or_note(
            interrupts
                .as_deref()
                .map(|text| {
                    from_json::<BTreeMap<String, Vec<Interrupt>>>(text, "threads.interrupts")
                })
                .transpose(),
            None,
            p,
        ),
        error: or_note(
            decode_nullable(error.as_deref(), "threads.error"),
            Nullable::Null,
            p,
        ),
        ttl: rest.ttl,
        extracted: rest.extracted,
        extra: rest.extra,
    };
    note_unreadable(&mut thread.extra, "thread", &thread_id, &problems);
    Ok(thread)
}

// ---- runs ----

/// The run columns, in the order [`decode_run`] expects.
pub(super) const RUN_COLUMNS: &str = "status, updated_at, doc, run_id, thread_id, created_at";

/// The parts of a run's document that are read from one that cannot be read whole.
#[derive(Deserialize, Default)]
struct RunHead {
    #[serde(default)]
    assistant_id: Option<Uuid>,
    #[serde(default)]
    multitask_strategy: Option<MultitaskStrategy>,
}

/// A run from [`RUN_COLUMNS`] starting at column `first`, with its current status and
/// `updated_at`; or, when its document or a column cannot be read, the run as its columns tell
/// with the problems (also under [`UNREADABLE`]).
pub(super) fn decode_run(row: &Row, first: usize) -> StorageResult<(Run, Option<String>)> {
    let status: String = get(row, first)?;
    let updated_at: i64 = get(row, first + 1)?;
    let doc: &str = get(row, first + 2)?;
    let mut problems = Vec::new();
    let p = &mut problems;
    let status = or_note(run_status(&status), RunStatus::Error, p);
    let updated_at = or_note(timestamp(updated_at), Timestamp::now(), p);
    match from_json::<Run>(doc, "runs.doc") {
        Ok(mut run) if problems.is_empty() => {
            run.status = status;
            run.updated_at = updated_at;
            return Ok((run, None));
        }
        Ok(_) => {}
        Err(error) => problems.push(error.to_string()),
    }
    let head: RunHead = serde_json::from_str(doc).unwrap_or_default();
    let run_id: Uuid = get(row, first + 3)?;
    let mut run = Run {
        run_id,
        thread_id: get(row, first + 4)?,
        assistant_id: head.assistant_id.unwrap_or_default(),
        created_at: or_note(timestamp(get(row, first + 5)?), updated_at, &mut problems),
        updated_at,
        status,
        metadata: JsonObject::new(),
        kwargs: RunKwargs::default(),
        multitask_strategy: head.multitask_strategy.unwrap_or_default(),
        extra: JsonObject::new(),
    };
    note_unreadable(&mut run.extra, "run", &run_id, &problems);
    let reason = run
        .extra
        .get(UNREADABLE)
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((run, reason))
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
