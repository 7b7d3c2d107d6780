//! Conversions between rows and the wire types, and the helpers every query uses.
//!
//! Rows are first read into plain structs of SQL values inside rusqlite's callbacks, then
//! decoded into wire types outside them, so that a corrupt value becomes an error rather than
//! a panic or a rusqlite conversion error.
//!
//! A thread or run whose stored JSON cannot be read (a row written by an older errand, or
//! damaged on disk) is not an error for the reads it takes part in: it is answered as far as
//! its columns tell, with the reason under [`UNREADABLE`], so that one bad row never takes a
//! list, a search, a bulk cancel or the run queue down with it. The queue ends such a run in
//! `error` rather than run it.

use crate::storage::{CheckpointRecord, StorageError, StorageResult, UNREADABLE};
use errand_protocol::{
    Interrupt, JsonObject, MultitaskStrategy, Nullable, Run, RunKwargs, RunStatus, StoreItem,
    Thread, ThreadStatus, Timestamp,
};
use rusqlite::{Connection, OptionalExtension, Row};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
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

/// The value of a decode, or `fallback` with the problem noted in `problems`.
fn or_note<T>(result: StorageResult<T>, fallback: T, problems: &mut Vec<String>) -> T {
    result.unwrap_or_else(|error| {
        problems.push(error.to_string());
        fallback
    })
}

/// `extra` with the problems of a salvaged row under [`UNREADABLE`], logged once here.
fn note_unreadable(extra: &mut JsonObject, what: &str, id: &str, problems: &[String]) {
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

/// A uuid from its stored text.
pub(super) fn uuid(text: &str) -> StorageResult<Uuid> {
    Uuid::parse_str(text)
        .map_err(|error| StorageError::backend(format!("corrupt id {text:?}: {error}")))
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

/// A count or position as SQLite's integer.
pub(super) fn sql_int(value: u64) -> StorageResult<i64> {
    i64::try_from(value).map_err(|_| StorageError::backend(format!("{value} is too large")))
}

/// A stored attempt count.
pub(super) fn attempt(value: i64) -> StorageResult<u32> {
    u32::try_from(value)
        .map_err(|_| StorageError::backend(format!("corrupt attempt count {value}")))
}

/// Encodes a field that may be absent, `null` or set: SQL `NULL` when absent, JSON text
/// (`null` included) otherwise.
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

/// A thread as SQL values, for inserting.
#[derive(Debug)]
pub(super) struct ThreadColumns {
    pub(super) thread_id: String,
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
            thread_id: thread.thread_id.to_string(),
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

/// A thread row as read.
#[derive(Debug)]
pub(super) struct ThreadRow {
    thread_id: String,
    status: String,
    created_at: i64,
    updated_at: i64,
    state_updated_at: Option<i64>,
    metadata: String,
    config: Option<String>,
    values: Option<String>,
    interrupts: Option<String>,
    error: Option<String>,
    extra: String,
}

impl ThreadRow {
    /// Reads [`THREAD_COLUMNS`].
    pub(super) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            thread_id: row.get(0)?,
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
        })
    }

    /// The thread. A field that cannot be read is left empty (`null`, `{}`), its status
    /// `error` if that is what cannot be read, and the problems are named under
    /// [`UNREADABLE`]; only an unreadable id is an error.
    pub(super) fn decode(self) -> StorageResult<Thread> {
        let thread_id = uuid(&self.thread_id)?;
        let mut problems = Vec::new();
        let p = &mut problems;
        let rest = or_note(
            from_json::<ThreadRest>(&self.extra, "threads.extra"),
            ThreadRest::default(),
            p,
        );
        let updated_at = or_note(timestamp(self.updated_at), Timestamp::now(), p);
        let mut thread = Thread {
            thread_id,
            created_at: or_note(timestamp(self.created_at), updated_at, p),
            updated_at,
            state_updated_at: or_note(self.state_updated_at.map(timestamp).transpose(), None, p),
            metadata: or_note(
                from_json(&self.metadata, "threads.metadata"),
                JsonObject::new(),
                p,
            ),
            status: or_note(thread_status(&self.status), ThreadStatus::Error, p),
            config: or_note(
                self.config
                    .as_deref()
                    .map(|text| from_json(text, "threads.config"))
                    .transpose(),
                None,
                p,
            ),
            values: or_note(
                decode_nullable(self.values.as_deref(), "threads.state_values"),
                Nullable::Null,
                p,
            ),
            interrupts: or_note(
                self.interrupts
                    .as_deref()
                    .map(|text| {
                        from_json::<BTreeMap<String, Vec<Interrupt>>>(text, "threads.interrupts")
                    })
                    .transpose(),
                None,
                p,
            ),
            error: or_note(
                decode_nullable(self.error.as_deref(), "threads.error"),
                Nullable::Null,
                p,
            ),
            ttl: rest.ttl,
            extracted: rest.extracted,
            extra: rest.extra,
        };
        note_unreadable(&mut thread.extra, "thread", &self.thread_id, &problems);
        Ok(thread)
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

/// The parts of a run's document that are read from one that cannot be read whole.
#[derive(Deserialize, Default)]
struct RunHead {
    #[serde(default)]
    assistant_id: Option<Uuid>,
    #[serde(default)]
    multitask_strategy: Option<MultitaskStrategy>,
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

    /// The run, with its current status and `updated_at`, and none; or, when its document
    /// or a column cannot be read, the run as its columns tell (no metadata or kwargs, status
    /// `error` if that is what is unreadable) with the problems, which are also under
    /// [`UNREADABLE`]. Only unreadable ids are an error.
    pub(super) fn decode_or_salvage(self) -> StorageResult<(Run, Option<String>)> {
        let mut problems = Vec::new();
        let p = &mut problems;
        let status = or_note(run_status(&self.status), RunStatus::Error, p);
        let updated_at = or_note(timestamp(self.updated_at), Timestamp::now(), p);
        match from_json::<Run>(&self.doc, "runs.doc") {
            Ok(mut run) if problems.is_empty() => {
                run.status = status;
                run.updated_at = updated_at;
                return Ok((run, None));
            }
            Ok(_) => {}
            Err(error) => problems.push(error.to_string()),
        }
        let head: RunHead = serde_json::from_str(&self.doc).unwrap_or_default();
        let mut run = Run {
            run_id: uuid(&self.run_id)?,
            thread_id: uuid(&self.thread_id)?,
            assistant_id: head.assistant_id.unwrap_or_default(),
            created_at: or_note(timestamp(self.created_at), updated_at, &mut problems),
            updated_at,
            status,
            metadata: JsonObject::new(),
            kwargs: RunKwargs::default(),
            multitask_strategy: head.multitask_strategy.unwrap_or_default(),
            extra: JsonObject::new(),
        };
        note_unreadable(&mut run.extra, "run", &self.run_id, &problems);
        let reason = run
            .extra
            .get(UNREADABLE)
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok((run, reason))
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
