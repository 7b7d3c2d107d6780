//! Leases: a replica's renewal (with the cancels stored for its runs), the end of leases that
//! ran out (their runs requeued, failed or ended as a stored cancel asks), and the cancel
//! stored for a run its holder is to stop.

use super::end::remove_rolled_back;
use crate::storage::rules::{LeasesEnded, LostRun, Settled, lost_run, worker_lost_error};
use crate::storage::sqlite::codec::{Db, attempt, to_json, uuid};
use crate::storage::sqlite::threads::runs_ended;
use crate::storage::{Leases, Recovery, Renewal, ReplicaId, StorageResult};
use errand_protocol::{CancelAction, RunStatus, ThreadStatus, Timestamp};
use rusqlite::{Connection, params};
use uuid::Uuid;

/// The running runs, oldest first, with their holder, for ending leases: found through the
/// threads that have active runs (a walk of `threads`, no index kept for it), then among those
/// threads' runs. `CROSS JOIN` keeps that order: SQLite would otherwise rather walk `runs`, the
/// whole history.
pub(in crate::storage::sqlite) const RUNNING_RUNS: &str = "SELECT r.run_id, r.thread_id, r.attempt, \
    r.lease_owner, r.cancel_action \
    FROM threads AS t CROSS JOIN runs AS r ON r.thread_id = t.thread_id \
    WHERE t.active_runs > 0 AND r.status = 'running' ORDER BY r.created_at, r.rowid";

pub(in crate::storage::sqlite) fn expire_leases(
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

pub(in crate::storage::sqlite) fn renew_lease(
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

pub(in crate::storage::sqlite) fn request_cancel(
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
