//! How both backends store the wire types, apart from the database's own row and error types:
//! JSON text, microsecond timestamps, status names, `Nullable` fields, a thread's columns, a
//! run's document, a store namespace's key.
//!
//! SQLite and PostgreSQL store the same values the same way (the same columns, JSON text and
//! `bigint` microseconds), so that a row means one thing whichever backend wrote it; each
//! backend only reads its rows into these plain values and writes these values out.
//!
//! A thread or run whose stored JSON cannot be read (a row written by an older errand, or
//! damaged on disk) is not an error for the reads it takes part in: it is answered as far as
//! its columns tell, with the reason under [`UNREADABLE`], so that one bad row never takes a
//! list, a search, a bulk cancel or the run queue down with it.

use super::{NewRun, Start, StorageError, StorageResult, UNREADABLE};
use errand_protocol::{
    Interrupt, JsonObject, MultitaskStrategy, Nullable, Run, RunKwargs, RunStatus, Thread,
    ThreadStatus, Timestamp,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Display;
use uuid::Uuid;

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
    ThreadStatus::from_name(text)
        .ok_or_else(|| StorageError::backend(format!("unknown thread status {text:?}")))
}

/// A run status from its stored name.
pub(super) fn run_status(text: &str) -> StorageResult<RunStatus> {
    RunStatus::from_name(text)
        .ok_or_else(|| StorageError::backend(format!("unknown run status {text:?}")))
}

/// A count or position as SQL's 64-bit integer.
pub(super) fn sql_int(value: u64) -> StorageResult<i64> {
    i64::try_from(value).map_err(|_| StorageError::backend(format!("{value} is too large")))
}

/// A stored attempt count (an `integer` in PostgreSQL, SQLite's 64-bit integer).
pub(super) fn attempt<T: TryInto<u32> + Copy + Display>(value: T) -> StorageResult<u32> {
    value
        .try_into()
        .map_err(|_| StorageError::backend(format!("corrupt attempt count {value}")))
}

/// A stored event's position in its run's stream.
pub(super) fn event_seq(seq: i64) -> StorageResult<u64> {
    u64::try_from(seq).map_err(|_| StorageError::backend(format!("corrupt event seq {seq}")))
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

/// A thread's columns but its id (which each backend stores in its own id type), as they are
/// written and as they are read back.
#[derive(Debug)]
pub(super) struct ThreadColumns {
    pub(super) status: String,
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
            status: thread.status.as_str().to_owned(),
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

    /// The thread `thread_id` these columns hold. A field that cannot be read is left empty
    /// (`null`, `{}`), its status `error` if that is what cannot be read, and the problems are
    /// named under [`UNREADABLE`].
    pub(super) fn decode(self, thread_id: Uuid) -> Thread {
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
        note_unreadable(&mut thread.extra, "thread", &thread_id, &problems);
        thread
    }
}

// ---- runs ----

/// The columns a run that cannot be read whole is answered from.
pub(super) struct RunKeys {
    pub(super) run_id: Uuid,
    pub(super) thread_id: Uuid,
    pub(super) created_at: i64,
}

/// The parts of a run's document that are read from one that cannot be read whole.
#[derive(Deserialize, Default)]
struct RunHead {
    #[serde(default)]
    assistant_id: Option<Uuid>,
    #[serde(default)]
    multitask_strategy: Option<MultitaskStrategy>,
}

/// The run stored as `doc` with its current `status` and `updated_at`, and none; or, when its
/// document or a column cannot be read, the run as `keys` (read only then) and its columns
/// tell (no metadata or kwargs, status `error` if that is what is unreadable) with the
/// problems, which are also under [`UNREADABLE`]. Only what `keys` fails on is an error.
pub(super) fn decode_run(
    status: &str,
    updated_at: i64,
    doc: &str,
    keys: impl FnOnce() -> StorageResult<RunKeys>,
) -> StorageResult<(Run, Option<String>)> {
    let mut problems = Vec::new();
    let p = &mut problems;
    let status = or_note(run_status(status), RunStatus::Error, p);
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
    let keys = keys()?;
    let mut run = Run {
        run_id: keys.run_id,
        thread_id: keys.thread_id,
        assistant_id: head.assistant_id.unwrap_or_default(),
        created_at: or_note(timestamp(keys.created_at), updated_at, &mut problems),
        updated_at,
        status,
        metadata: JsonObject::new(),
        kwargs: RunKwargs::default(),
        multitask_strategy: head.multitask_strategy.unwrap_or_default(),
        extra: JsonObject::new(),
    };
    note_unreadable(&mut run.extra, "run", &keys.run_id, &problems);
    let reason = run
        .extra
        .get(UNREADABLE)
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((run, reason))
}

/// A new run's wire object as stored, encoded before the write (outside the transaction):
/// it is stored as is, with status `pending`.
pub(super) fn encode_new_run(new: &mut NewRun) -> StorageResult<String> {
    new.run.status = RunStatus::Pending;
    to_json(&new.run)
}

/// What a claimed run starts from: its thread's values, decoded from their stored JSON, or
/// the reason that the run (`unreadable`) or the values cannot be read.
pub(super) fn start_from(values: Option<&str>, unreadable: Option<String>) -> Start {
    if let Some(reason) = unreadable {
        return Start::Unreadable(reason);
    }
    match decode_nullable(values, "threads.state_values") {
        Ok(values) => Start::Values(values.into_option().unwrap_or(Value::Null)),
        Err(error) => Start::Unreadable(format!("errand cannot read the thread's values: {error}")),
    }
}

// ---- store ----

/// The stored form of a namespace: its JSON array.
pub(super) fn namespace_key(namespace: &[String]) -> StorageResult<String> {
    to_json(namespace)
}

/// The stored namespaces under `prefix`, or `None` for every namespace (an empty prefix):
/// those equal to the first key, or from the second up to the third.
///
/// `["a"]` is stored as `["a"]`, and `["a","b"]` as `["a","b"]`: the namespaces under `["a"]`
/// are `["a"]` itself and those starting with `["a",`, which sort between `["a",` and `["a"-`
/// (`-` follows `,`), compared byte-wise. A label's closing quote is never part of a label
/// (inside one it is escaped), so `["ab"]` is not under `["a"]`.
pub(super) fn namespace_range(prefix: &[String]) -> StorageResult<Option<[String; 3]>> {
    if prefix.is_empty() {
        return Ok(None);
    }
    let exact = namespace_key(prefix)?;
    let open = exact.strip_suffix(']').unwrap_or(&exact).to_owned();
    Ok(Some([exact, format!("{open},"), format!("{open}-")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_the_name_it_is_stored_under() {
        for status in [
            ThreadStatus::Idle,
            ThreadStatus::Busy,
            ThreadStatus::Interrupted,
            ThreadStatus::Error,
        ] {
            assert_eq!(thread_status(status.as_str()).ok(), Some(status));
        }
        for status in [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Error,
            RunStatus::Success,
            RunStatus::Timeout,
            RunStatus::Interrupted,
        ] {
            assert_eq!(run_status(status.as_str()).ok(), Some(status));
        }
        assert!(thread_status("running").is_err());
        assert!(run_status("busy").is_err());
    }

    #[test]
    fn a_namespace_range_holds_the_prefix_and_what_is_under_it_but_not_a_longer_label() {
        let Ok(Some([exact, from, until])) = namespace_range(&["a".to_owned()]) else {
            panic!("a prefix has a range");
        };
        let inside = |key: &str| key == exact || (key >= from.as_str() && key < until.as_str());
        assert!(inside(r#"["a"]"#));
        assert!(inside(r#"["a","b"]"#));
        assert!(!inside(r#"["ab"]"#));
        assert!(!inside(r#"["b"]"#));
        assert!(matches!(namespace_range(&[]), Ok(None)));
    }
}
