//! Runs, their lifecycle on a thread, and their stream events.

use super::codec::{
    Db, RUN_COLUMNS, RunRow, attempt, decode_nullable, event_seq, load_run, readable_metadata,
    sql_int, timestamp, to_json, uuid,
};
use super::threads::{EncodedCheckpoint, insert_encoded_checkpoint, insert_thread, runs_ended};
use crate::storage::rules::{
    Admission, LeasesEnded, LostRun, Settled, admit, fence, lost_run, merge, thread_status,
    worker_lost_error,
};
use crate::storage::{
    ClaimedRun, EndedRun, FinishedRun, JsonText, Leases, NewRun, Recovery, Renewal, ReplicaId,
    RunPage, Start, StorageError, StorageResult, StoredEvent,
};
use errand_protocol::{CancelAction, IfNotExists, Run, RunStatus, Thread, ThreadStatus, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use uuid::Uuid;

/// Encodes a new run's wire object, before the write transaction: it is stored as is.
pub(super) fn encode_new_run(new: &mut NewRun) -> StorageResult<String> {
    new.run.status = RunStatus::Pending;
    to_json(&new.run)
}

/// Inserts a run whose wire object `doc` was encoded by [`encode_new_run`]. A run claimed at
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

/// What a claimed run starts from: its thread's values, decoded from their stored JSON, or
/// the reason that it, `unreadable`, or they cannot be read.
pub(super) fn start_from(values: Option<&str>, unreadable: Option<String>) -> Start {
    if let Some(reason) = unreadable {
        return Start::Unreadable(reason);
    }
    match decode_nullable(values, "threads.state_values") {
        Ok(values) => Start::Values(values.into_option().unwrap_or(Value::Null)),
        Err(error) => Start::Unreadable(format!("errand cannot read the thread's values: {error}")),
    }
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

/// The running runs, oldest first, with their holder, for ending leases: found through the
/// threads that have active runs (a walk of `threads`, no index kept for it), then among those
/// threads' runs. `CROSS JOIN` keeps that order: SQLite would otherwise rather walk `runs`, the
/// whole history.
pub(super) const RUNNING_RUNS: &str = "SELECT r.run_id, r.thread_id, r.attempt, \
    r.lease_owner, r.cancel_action \
    FROM threads AS t CROSS JOIN runs AS r ON r.thread_id = t.thread_id \
    WHERE t.active_runs > 0 AND r.status = 'running' ORDER BY r.created_at, r.rowid";

/// The earliest start time after `?1` of a pending run.
pub(super) const NEXT_PENDING: &str =
    "SELECT MIN(created_at) FROM runs WHERE status = 'pending' AND created_at > ?1";

/// Claims the next run that may start at `?1`, answering it with its attempt and thread.
///
/// One statement walks the queue (`runs_pending`, in `(created_at, rowid)` order) and stops at
/// the first run whose thread has no older pending run (on `runs_waiting`) and no running run:
/// its active runs (`threads.active_runs`) are all pending (counted on `runs_waiting`).
pub(super) fn claim_sql() -> String {
    format!(
        "UPDATE runs SET status = 'running', updated_at = ?1, attempt = attempt + 1, \
         lease_owner = ?2, cancel_action = NULL WHERE rowid = ( \
             SELECT r.rowid FROM runs AS r \
             WHERE r.status = 'pending' AND r.created_at <= ?1 \
             AND NOT EXISTS (SELECT 1 FROM runs AS o WHERE o.thread_id = r.thread_id \
                 AND o.status = 'pending' AND (o.created_at < r.created_at \
                 OR (o.created_at = r.created_at AND o.rowid < r.rowid))) \
             AND (SELECT active_runs FROM threads AS t WHERE t.thread_id = r.thread_id) = \
                 (SELECT COUNT(*) FROM runs AS w WHERE w.thread_id = r.thread_id \
                 AND w.status = 'pending') \
             ORDER BY r.created_at, r.rowid LIMIT 1) \
         RETURNING attempt, thread_id, octet_length(doc), {RUN_COLUMNS}"
    )
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

pub(super) fn claim_next_run(
    conn: &Connection,
    now: Timestamp,
    replica: ReplicaId,
) -> StorageResult<Option<ClaimedRun>> {
    let sql = claim_sql();
    let claimed = conn
        .prepare_cached(&sql)
        .db()?
        .query_row(
            params![now.timestamp_micros(), replica.to_string()],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    RunRow::read_at(row, 3)?,
                ))
            },
        )
        .optional()
        .db()?;
    let Some((count, thread_id, bytes, row)) = claimed else {
        return Ok(None);
    };
    let values: Option<String> = conn
        .prepare_cached("SELECT state_values FROM threads WHERE thread_id = ?1")
        .db()?
        .query_row([&thread_id], |row| row.get(0))
        .optional()
        .db()?
        .flatten();
    let (run, unreadable) = row.decode_or_salvage()?;
    let attempt = attempt(count)?;
    // A first attempt has no stream yet; a later one continues what earlier ones stored.
    let stored: i64 = if attempt > 1 {
        conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = ?1")
            .db()?
            .query_row([run.run_id.to_string()], |row| row.get(0))
            .db()?
    } else {
        0
    };
    Ok(Some(ClaimedRun {
        run,
        attempt,
        start: start_from(values.as_deref(), unreadable),
        bytes: usize::try_from(bytes).unwrap_or(0),
        events_stored: u64::try_from(stored).unwrap_or(0),
    }))
}

pub(super) fn next_pending_after(
    conn: &Connection,
    after: Timestamp,
) -> StorageResult<Option<Timestamp>> {
    let earliest: Option<i64> = conn
        .prepare_cached(NEXT_PENDING)
        .db()?
        .query_row([after.timestamp_micros()], |row| row.get(0))
        .db()?;
    earliest.map(timestamp).transpose()
}

/// A [`FinishedRun`] with its JSON encoded, made before the write transaction.
#[derive(Debug)]
pub(super) struct EncodedFinish {
    run_id: Uuid,
    attempt: u32,
    status: RunStatus,
    values: Option<JsonText>,
    thread_status: ThreadStatus,
    error: String,
    interrupts: String,
    events: Vec<StoredEvent>,
    checkpoints: Vec<EncodedCheckpoint>,
    at: i64,
}

impl EncodedFinish {
    pub(super) fn new(finished: &FinishedRun) -> StorageResult<Self> {
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
            events: finished.events.clone(),
            checkpoints: finished
                .checkpoints
                .iter()
                .map(EncodedCheckpoint::new)
                .collect::<StorageResult<_>>()?,
            at: finished.at.timestamp_micros(),
        })
    }
}

pub(super) fn finish_run(
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
    let left = (active - 1).max(0);
    let current = super::codec::thread_status(&current).unwrap_or(ThreadStatus::Busy);
    let status = thread_status(
        current,
        left.unsigned_abs(),
        Settled::To(finished.thread_status),
    );
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

/// The run's thread id, status and attempt.
fn run_state(conn: &Connection, run_id: &str) -> StorageResult<Option<(String, String, i64)>> {
    conn.prepare_cached("SELECT thread_id, status, attempt FROM runs WHERE run_id = ?1")
        .db()?
        .query_row([run_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()
        .db()
}

pub(super) fn transition_run(
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
    let before = super::codec::run_status(&status)?;
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

pub(super) fn rollback_run(
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
fn remove_rolled_back(
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

pub(super) fn expire_leases(
    conn: &Connection,
    which: Leases,
    max_attempts: u32,
    at: Timestamp,
) -> StorageResult<Recovery> {
    let micros = at.timestamp_micros();
    let (ending, giving_back) = match which {
        Leases::DueBy(due) => {
            let expired = {
                let mut statement = conn
                    .prepare_cached("SELECT replica_id FROM replicas WHERE lease_until < ?1")
                    .db()?;
                statement
                    .query_map([due.timestamp_micros()], |row| row.get::<_, String>(0))
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .db()?
            };
            // The sweeper's common case, on every heartbeat: nothing to walk.
            if expired.is_empty() {
                return Ok(Recovery::default());
            }
            conn.prepare_cached("DELETE FROM replicas WHERE lease_until < ?1")
                .db()?
                .execute([due.timestamp_micros()])
                .db()?;
            (LeasesEnded::Replicas(expired), false)
        }
        Leases::AllBut(kept) => {
            let kept = kept.to_string();
            conn.prepare_cached("DELETE FROM replicas WHERE replica_id <> ?1")
                .db()?
                .execute([&kept])
                .db()?;
            (LeasesEnded::AllBut(kept), false)
        }
        Leases::Of(replica) => {
            let replica = replica.to_string();
            conn.prepare_cached("DELETE FROM replicas WHERE replica_id = ?1")
                .db()?
                .execute([&replica])
                .db()?;
            (LeasesEnded::Replicas(vec![replica]), true)
        }
    };
    let running = {
        let mut statement = conn.prepare_cached(RUNNING_RUNS).db()?;
        statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<String>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            })
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()?
    };
    let mut recovery = Recovery::default();
    for (run_id, thread_id, count, holder, cancel) in running {
        if !ending.covers(holder.as_deref()) {
            continue;
        }
        let attempts = attempt(count)?;
        match lost_run(
            cancel.as_deref().and_then(CancelAction::from_name),
            giving_back,
            attempts,
            max_attempts,
        ) {
            LostRun::Interrupt => {
                recovery.cancelled.push(uuid(&run_id)?);
                set_status(conn, &run_id, RunStatus::Interrupted, micros)?;
                runs_ended(conn, &thread_id, 1, Settled::Idle, at)?;
            }
            LostRun::Rollback => {
                recovery.cancelled.push(uuid(&run_id)?);
                remove_rolled_back(conn, &run_id, &thread_id, "running", at)?;
            }
            LostRun::Requeue => {
                recovery.requeued.push(uuid(&run_id)?);
                set_status(conn, &run_id, RunStatus::Pending, micros)?;
            }
            LostRun::Fail => {
                recovery.failed.push(uuid(&run_id)?);
                set_status(conn, &run_id, RunStatus::Error, micros)?;
                // A thread runs one run at a time, so this is its thread's one running run.
                let error = worker_lost_error(attempts);
                conn.prepare_cached(
                    "UPDATE threads SET error = ?2, updated_at = ?3 WHERE thread_id = ?1",
                )
                .db()?
                .execute(params![thread_id, to_json(&error)?, micros])
                .db()?;
                runs_ended(conn, &thread_id, 1, Settled::To(ThreadStatus::Error), at)?;
            }
        }
    }
    Ok(recovery)
}

/// Sets a run's status, letting go of its holder.
fn set_status(conn: &Connection, run_id: &str, status: RunStatus, at: i64) -> StorageResult<()> {
    conn.prepare_cached(
        "UPDATE runs SET status = ?2, updated_at = ?3, lease_owner = NULL WHERE run_id = ?1",
    )
    .db()?
    .execute(params![run_id, status.as_str(), at])
    .db()?;
    Ok(())
}

pub(super) fn renew_lease(
    conn: &Connection,
    replica: ReplicaId,
    until: Timestamp,
) -> StorageResult<Renewal> {
    let replica = replica.to_string();
    conn.prepare_cached(
        "INSERT INTO replicas (replica_id, lease_until) VALUES (?1, ?2) \
         ON CONFLICT (replica_id) DO UPDATE SET lease_until = excluded.lease_until",
    )
    .db()?
    .execute(params![replica, until.timestamp_micros()])
    .db()?;
    let rows = {
        let mut statement = conn
            .prepare_cached(
                "SELECT run_id, cancel_action FROM runs WHERE lease_owner = ?1 \
                 AND cancel_action IS NOT NULL AND status = 'running'",
            )
            .db()?;
        statement
            .query_map([&replica], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()?
    };
    let mut renewal = Renewal::default();
    for (run_id, action) in rows {
        if let Some(action) = CancelAction::from_name(&action) {
            renewal.cancels.push((uuid(&run_id)?, action));
        }
    }
    Ok(renewal)
}

pub(super) fn request_cancel(
    conn: &Connection,
    run_id: Uuid,
    action: CancelAction,
) -> StorageResult<bool> {
    // The first cancel stored is the one that counts.
    let changed = conn
        .prepare_cached(
            "UPDATE runs SET cancel_action = COALESCE(cancel_action, ?2) \
             WHERE run_id = ?1 AND status = 'running'",
        )
        .db()?
        .execute(params![run_id.to_string(), action.as_str()])
        .db()?;
    Ok(changed > 0)
}

pub(super) fn append_events(
    conn: &Connection,
    run_id: Uuid,
    attempt: u32,
    events: &[StoredEvent],
) -> StorageResult<()> {
    let key = run_id.to_string();
    // A run deleted while it streamed (rolled back, or its thread deleted) keeps no events.
    let Some((_, status, held)) = run_state(conn, &key)? else {
        return Ok(());
    };
    fence(run_id, attempt, &status, held)?;
    insert_events(conn, &key, events)
}

fn insert_events(conn: &Connection, key: &str, events: &[StoredEvent]) -> StorageResult<()> {
    let mut statement = conn
        // An append tried again after a failure whose commit was not seen must not fail on
        // the events it did store.
        .prepare_cached(
            "INSERT INTO run_events (run_id, seq, event, data) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
        )
        .db()?;
    for event in events {
        statement
            .execute(params![key, sql_int(event.seq)?, event.event, &*event.data])
            .db()?;
    }
    Ok(())
}

pub(super) fn events_after(
    conn: &Connection,
    run_id: Uuid,
    after: u64,
) -> StorageResult<Vec<StoredEvent>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let mut statement = conn
        .prepare_cached(
            "SELECT seq, event, data FROM run_events WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
        )
        .db()?;
    let rows = statement
        .query_map(params![run_id.to_string(), after], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    rows.into_iter()
        .map(|(seq, event, data)| {
            let seq = event_seq(seq)?;
            Ok(StoredEvent {
                seq,
                event,
                data: data.into(),
            })
        })
        .collect()
}
