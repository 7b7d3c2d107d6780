//! How runs end: the executor's record of a run's end, a move to another status (a cancel,
//! a requeue), and a rollback, each settling the thread's count of active runs and status.

use super::events::insert_events;
use super::{is_active, run_state};
use crate::storage::rules::{Settled, fence, settle};
use crate::storage::sqlite::codec::{self, Db, load_run, to_json};
use crate::storage::sqlite::threads::{EncodedCheckpoint, insert_encoded_checkpoint, runs_ended};
use crate::storage::{EndedRun, FinishedRun, JsonText, StorageResult, StoredEvent};
use errand_protocol::{Run, RunStatus, ThreadStatus, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;
use uuid::Uuid;

/// A [`FinishedRun`] with its JSON encoded, made before the write transaction.
#[derive(Debug)]
pub(in crate::storage::sqlite) struct EncodedFinish {
    run_id: Uuid,
    attempt: u32,
    status: RunStatus,
    values: Option<JsonText>,
    thread_status: ThreadStatus,
    error: String,
    interrupts: String,
    events: Arc<[StoredEvent]>,
    checkpoints: Vec<EncodedCheckpoint>,
    at: i64,
}

impl EncodedFinish {
    pub(in crate::storage::sqlite) fn new(finished: &FinishedRun) -> StorageResult<Self> {
        Ok(Self {
            run_id: finished.run_id,
            attempt: finished.attempt,
            status: finished.status,
            values: finished.values.clone(),
            thread_status: finished.thread_status,
            error: match &finished.error {
                Some(error) => to_json(error)?,
                None => "null".to_owned(),
            },
            interrupts: to_json(&finished.interrupts)?,
            events: Arc::clone(&finished.events),
            checkpoints: finished
                .checkpoints
                .iter()
                .map(EncodedCheckpoint::new)
                .collect::<StorageResult<_>>()?,
            at: finished.at.timestamp_micros(),
        })
    }
}

pub(in crate::storage::sqlite) fn finish_run(
    conn: &Connection,
    finished: &EncodedFinish,
) -> StorageResult<Option<EndedRun>> {
    let run_key = finished.run_id.to_string();
    let state: Option<(String, String, i64, i64, String)> = conn
        .prepare_cached(
            "SELECT r.thread_id, r.status, r.attempt, t.active_runs, t.status FROM runs AS r \
             JOIN threads AS t ON t.thread_id = r.thread_id WHERE r.run_id = ?1",
        )
        .db()?
        .query_row([&run_key], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .optional()
        .db()?;
    let Some((thread_id, before, held, active, current)) = state else {
        return Ok(None);
    };
    fence(finished.run_id, finished.attempt, &before, held)?;
    insert_events(conn, &run_key, &finished.events)?;
    conn.prepare_cached("UPDATE runs SET status = ?2, updated_at = ?3 WHERE run_id = ?1")
        .db()?
        .execute(params![run_key, finished.status.as_str(), finished.at])
        .db()?;
    let current = codec::thread_status(&current).unwrap_or(ThreadStatus::Busy);
    let (left, status, _) = settle(current, active, 1, Settled::To(finished.thread_status));
    conn.prepare_cached(
        "UPDATE threads SET active_runs = ?7, status = ?2, \
         state_values = COALESCE(?3, state_values), error = ?4, interrupts = ?5, \
         updated_at = ?6, state_updated_at = ?6 WHERE thread_id = ?1",
    )
    .db()?
    .execute(params![
        thread_id,
        status.as_str(),
        finished.values.as_ref().map(JsonText::as_str),
        finished.error,
        finished.interrupts,
        finished.at,
        left,
    ])
    .db()?;
    let thread_busy = left > 0;
    for checkpoint in &finished.checkpoints {
        insert_encoded_checkpoint(conn, &thread_id, checkpoint)?;
    }
    Ok(Some(EndedRun { thread_busy }))
}

pub(in crate::storage::sqlite) fn transition_run(
    conn: &Connection,
    run_id: Uuid,
    from: &[RunStatus],
    to: RunStatus,
    at: Timestamp,
) -> StorageResult<Option<Run>> {
    let key = run_id.to_string();
    let Some((thread_id, status, _)) = run_state(conn, &key)? else {
        return Ok(None);
    };
    let before = codec::run_status(&status)?;
    if from.contains(&before) && before != to {
        conn.prepare_cached("UPDATE runs SET status = ?2, updated_at = ?3 WHERE run_id = ?1")
            .db()?
            .execute(params![key, to.as_str(), at.timestamp_micros()])
            .db()?;
        let ended = i64::from(is_active(before.as_str())) - i64::from(is_active(to.as_str()));
        runs_ended(conn, &thread_id, ended, Settled::Idle, at)?;
    }
    load_run(conn, run_id)
}

pub(in crate::storage::sqlite) fn rollback_run(
    conn: &Connection,
    run_id: Uuid,
    attempt: Option<u32>,
    at: Timestamp,
) -> StorageResult<bool> {
    let key = run_id.to_string();
    let Some((thread_id, status, held)) = run_state(conn, &key)? else {
        return Ok(false);
    };
    if let Some(attempt) = attempt {
        fence(run_id, attempt, &status, held)?;
    }
    remove_rolled_back(conn, &key, &thread_id, &status, at)?;
    Ok(true)
}

/// Deletes a run being rolled back and puts its thread's values back to the latest
/// checkpoint left.
pub(super) fn remove_rolled_back(
    conn: &Connection,
    key: &str,
    thread_id: &str,
    status: &str,
    at: Timestamp,
) -> StorageResult<()> {
    conn.prepare_cached("DELETE FROM checkpoints WHERE run_id = ?1 AND thread_id = ?2")
        .db()?
        .execute([key, thread_id])
        .db()?;
    conn.prepare_cached("DELETE FROM runs WHERE run_id = ?1")
        .db()?
        .execute([key])
        .db()?;
    let latest: Option<String> = conn
        .prepare_cached(
            "SELECT state_values FROM checkpoints WHERE thread_id = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .db()?
        .query_row([thread_id], |row| row.get(0))
        .optional()
        .db()?;
    conn.prepare_cached(
        "UPDATE threads SET state_values = ?2, state_updated_at = ?3, updated_at = ?3 \
         WHERE thread_id = ?1",
    )
    .db()?
    .execute(params![
        thread_id,
        latest.as_deref().unwrap_or("null"),
        at.timestamp_micros()
    ])
    .db()?;
    runs_ended(
        conn,
        thread_id,
        i64::from(is_active(status)),
        Settled::Idle,
        at,
    )
}
