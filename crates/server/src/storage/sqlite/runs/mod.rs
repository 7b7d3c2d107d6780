//! Runs on SQLite: their insertion under the multitask strategies, the reads of them, their
//! deletion, and what the jobs of a run's life below share (a run's state, whether a status
//! counts as active).
//!
//! - `claims.rs`: the next run that may start, taken for a replica.
//! - `end.rs`: a run's end, a move to another status, a rollback.
//! - `leases.rs`: renewing and ending replicas' leases, storing a cancel for a run's holder.
//! - `events.rs`: a run's stream events.

mod claims;
mod end;
mod events;
mod leases;

#[cfg(test)]
pub(super) use claims::{NEXT_PENDING, claim_sql};
pub(super) use claims::{claim_next_run, next_pending_after};
pub(super) use end::{EncodedFinish, finish_run, rollback_run, transition_run};
pub(super) use events::{append_events, events_after};
#[cfg(test)]
pub(super) use leases::RUNNING_RUNS;
pub(super) use leases::{expire_leases, renew_lease, request_cancel};

use super::codec::{Db, RUN_COLUMNS, RunRow, readable_metadata, to_json, uuid};
use super::threads::{insert_thread, runs_ended};
use crate::storage::rules::{Admission, Settled, admit, merge};
use crate::storage::{NewRun, RunPage, StorageError, StorageResult};
use errand_protocol::{IfNotExists, Run, RunStatus, Thread, ThreadStatus, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

/// Inserts a run whose wire object `doc` was encoded by [`encode_new_run`](crate::storage::encoding::encode_new_run). A run claimed at
/// once is answered with its thread's values as stored JSON, for the caller to decode outside
/// the transaction.
pub(super) fn create_run(conn: &Connection, new: NewRun, doc: &str) -> StorageResult<StoredRun> {
    let NewRun {
        run,
        if_not_exists,
        thread_metadata,
        start,
    } = new;
    // The run's `created_at` may lie in the future (`after_seconds`); `updated_at` is now.
    let now = run.updated_at.min(run.created_at);
    let due = run.created_at <= run.updated_at;
    let thread_id = run.thread_id.to_string();
    let thread: Option<(String, Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT metadata, state_values, active_runs FROM threads WHERE thread_id = ?1",
        )
        .db()?
        .query_row([&thread_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .db()?;
    let mut to_cancel = Vec::new();
    // Whether the thread has another pending or running run, and its values.
    let (mut idle, mut values) = (true, None);
    match thread {
        None => {
            if if_not_exists == IfNotExists::Reject {
                return Err(StorageError::ThreadNotFound(run.thread_id));
            }
            let mut thread = Thread::new(run.thread_id, thread_metadata, now);
            thread.status = ThreadStatus::Busy;
            insert_thread(conn, &thread, 1)?;
        }
        Some((metadata, state_values, active)) => {
            idle = active == 0;
            values = state_values;
            if admit(run.multitask_strategy, !idle)? == Admission::Replace {
                to_cancel = active_runs(conn, &thread_id)?;
            }
            let mut merged = readable_metadata(&metadata, &thread_id);
            merge(&mut merged, thread_metadata);
            conn.prepare_cached(
                "UPDATE threads SET status = 'busy', metadata = ?2, updated_at = ?3, \
                 active_runs = active_runs + 1 WHERE thread_id = ?1",
            )
            .db()?
            .execute(params![
                thread_id,
                to_json(&merged)?,
                now.timestamp_micros()
            ])
            .db()?;
        }
    }
    // Claimed in the same write when it may start now: stored `running` with its first
    // attempt counted, exactly what `claim_next_run` would make of it a moment later. The
    // durability rule is unchanged: the run is committed before the answer, and if the server
    // dies from here on, recovery finds it `running` and takes it up again (attempt 2), or ends
    // it after the last attempt, as for any claimed run. Only the separate claim write (and the
    // dispatcher's queue scan) is saved; `start` is set only by a caller holding a free worker
    // slot, so the run executes at once.
    let holder = start.filter(|_| due && idle);
    let (status, attempt) = if holder.is_some() {
        ("running", 1)
    } else {
        ("pending", 0)
    };
    conn.prepare_cached(
        "INSERT INTO runs (run_id, thread_id, status, created_at, updated_at, attempt, doc, \
         lease_owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .db()?
    .execute(params![
        run.run_id.to_string(),
        thread_id,
        status,
        run.created_at.timestamp_micros(),
        run.updated_at.timestamp_micros(),
        attempt,
        doc,
        holder.map(|replica| replica.to_string()),
    ])
    .db()?;
    Ok(StoredRun {
        run,
        to_cancel,
        started: holder.map(|_| values),
    })
}

/// What [`create_run`] stored, before the caller decodes the values of a run it claimed.
#[derive(Debug)]
pub(super) struct StoredRun {
    pub(super) run: Run,
    pub(super) to_cancel: Vec<Uuid>,
    /// Claimed at once: the thread's values, as stored JSON (none for a thread that never
    /// ran).
    pub(super) started: Option<Option<String>>,
}

/// A thread's pending and running runs, oldest first. Asked only of a thread that has some;
/// it walks the thread's runs (`runs_thread`), the price of keeping no index of active runs.
pub(super) const ACTIVE_RUNS: &str = "SELECT run_id FROM runs WHERE thread_id = ?1 \
    AND status IN ('pending', 'running') ORDER BY created_at, rowid";

/// Whether a run with stored status `status` is active: counted in its thread's
/// `active_runs`.
fn is_active(status: &str) -> bool {
    matches!(status, "pending" | "running")
}

/// The thread's pending and running runs, oldest first.
fn active_runs(conn: &Connection, thread_id: &str) -> StorageResult<Vec<Uuid>> {
    let mut statement = conn.prepare_cached(ACTIVE_RUNS).db()?;
    let ids = statement
        .query_map([thread_id], |row| row.get::<_, String>(0))
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    ids.iter().map(|id| uuid(id)).collect()
}

/// The run's thread id, status and attempt.
fn run_state(conn: &Connection, run_id: &str) -> StorageResult<Option<(String, String, i64)>> {
    conn.prepare_cached("SELECT thread_id, status, attempt FROM runs WHERE run_id = ?1")
        .db()?
        .query_row([run_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
        .db()
}

pub(super) fn get_run(
    conn: &Connection,
    thread_id: Uuid,
    run_id: Uuid,
) -> StorageResult<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1 AND thread_id = ?2");
    conn.prepare_cached(&sql)
        .db()?
        .query_row([run_id.to_string(), thread_id.to_string()], RunRow::read)
        .optional()
        .db()?
        .map(RunRow::decode)
        .transpose()
}

/// Decodes the rows of a run query.
fn collect_runs(
    statement: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> StorageResult<Vec<Run>> {
    statement
        .query_map(params, RunRow::read)
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?
        .into_iter()
        .map(RunRow::decode)
        .collect()
}

pub(super) fn list_runs(
    conn: &Connection,
    thread_id: Uuid,
    page: RunPage,
) -> StorageResult<Vec<Run>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE thread_id = ?1 AND (?2 IS NULL OR status = ?2) \
         ORDER BY created_at DESC, rowid DESC LIMIT ?3 OFFSET ?4"
    );
    collect_runs(
        &mut conn.prepare_cached(&sql).db()?,
        params![
            thread_id.to_string(),
            page.status.map(RunStatus::as_str),
            page.limit,
            page.offset
        ],
    )
}

pub(super) fn runs_with_status(
    conn: &Connection,
    statuses: &[RunStatus],
) -> StorageResult<Vec<Run>> {
    let names: Vec<&str> = statuses.iter().map(|status| status.as_str()).collect();
    // Pending and running runs are few and all in `runs_active`; other statuses are scanned.
    let active_only = statuses
        .iter()
        .all(|status| matches!(status, RunStatus::Pending | RunStatus::Running));
    let narrow = if active_only {
        "status IN ('pending', 'running') AND"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE {narrow} status IN \
         (SELECT value FROM json_each(?1)) ORDER BY created_at, rowid"
    );
    collect_runs(&mut conn.prepare_cached(&sql).db()?, [to_json(&names)?])
}

pub(super) fn delete_run(
    conn: &Connection,
    thread_id: Uuid,
    run_id: Uuid,
    at: Timestamp,
) -> StorageResult<bool> {
    let thread_key = thread_id.to_string();
    let deleted: Option<String> = conn
        .prepare_cached("DELETE FROM runs WHERE run_id = ?1 AND thread_id = ?2 RETURNING status")
        .db()?
        .query_row([run_id.to_string(), thread_key.clone()], |row| row.get(0))
        .optional()
        .db()?;
    let Some(status) = deleted else {
        return Ok(false);
    };
    runs_ended(
        conn,
        &thread_key,
        i64::from(is_active(&status)),
        Settled::Idle,
        at,
    )?;
    Ok(true)
}
