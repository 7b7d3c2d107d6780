//! Leases: a replica's renewal (with the cancels stored for its runs), the end of leases that
//! ran out (their runs requeued, failed or ended as a stored cancel asks), and the cancel
//! stored for a run another replica holds.

use super::end::Rollback;
use super::ended_payloads;
use crate::storage::postgres::Tx;
use crate::storage::postgres::codec::{attempt, get, to_json};
use crate::storage::postgres::threads::{LOCK_THREAD, Locked, SETTLE};
use crate::storage::rules::{LeasesEnded, LostRun, Settled, lost_run, worker_lost_error};
use crate::storage::{Leases, Recovery, Renewal, ReplicaId, Signal, StorageResult};
use errand_protocol::{CancelAction, RunStatus, ThreadStatus, Timestamp};
use uuid::Uuid;

/// The running runs, oldest first, found through the threads that have active runs.
const RUNNING_RUNS: &str = "SELECT r.run_id, r.thread_id FROM threads AS t \
    JOIN runs AS r ON r.thread_id = t.thread_id \
    WHERE t.active_runs > 0 AND r.status = 'running' ORDER BY r.created_at, r.seq";

pub(in crate::storage::postgres) async fn expire_leases(
    tx: &Tx<'_>,
    which: Leases,
    max_attempts: u32,
    at: Timestamp,
) -> StorageResult<Recovery> {
    let micros = at.timestamp_micros();
    let (ending, giving_back) = match which {
        Leases::DueBy(due) => {
            let statement = tx
                .prepare("DELETE FROM replicas WHERE lease_until < $1 RETURNING replica_id")
                .await?;
            let rows = tx
                .begin_with(tx.query(&statement, &[&due.timestamp_micros()]))
                .await?;
            // The sweeper's common case, on every heartbeat: nothing to walk.
            if rows.is_empty() {
                return Ok(Recovery::default());
            }
            let ids = rows
                .iter()
                .map(|row| get::<Uuid>(row, 0))
                .collect::<StorageResult<Vec<_>>>()?;
            (LeasesEnded::Replicas(ids), false)
        }
        Leases::AllBut(kept) => {
            let statement = tx
                .prepare("DELETE FROM replicas WHERE replica_id <> $1")
                .await?;
            tx.begin_with(tx.execute(&statement, &[&kept.as_uuid()]))
                .await?;
            (LeasesEnded::AllBut(kept.as_uuid()), false)
        }
        Leases::Of(replica) => {
            let statement = tx
                .prepare("DELETE FROM replicas WHERE replica_id = $1")
                .await?;
            tx.begin_with(tx.execute(&statement, &[&replica.as_uuid()]))
                .await?;
            (LeasesEnded::Replicas(vec![replica.as_uuid()]), true)
        }
    };
    let running = tx.prepare(RUNNING_RUNS).await?;
    let lock_thread = tx.prepare(LOCK_THREAD).await?;
    let lock_run = tx
        .prepare(
            "SELECT status, attempt, lease_owner, cancel_action FROM runs \
             WHERE run_id = $1 FOR UPDATE",
        )
        .await?;
    let set_status = tx
        .prepare(
            "UPDATE runs SET status = $2, updated_at = $3, lease_owner = NULL WHERE run_id = $1",
        )
        .await?;
    let settle = tx.prepare(SETTLE).await?;
    let fail_thread = tx
        .prepare(
            "UPDATE threads SET error = $5, active_runs = $2, status = $3, updated_at = $4 \
             WHERE thread_id = $1",
        )
        .await?;
    let rollback = Rollback::prepare(tx).await?;
    let mut recovery = Recovery::default();
    let mut payloads = Vec::new();
    let runs = tx.query(&running, &[]).await?;
    for row in &runs {
        let run_id: Uuid = get(row, 0)?;
        let thread_id: Uuid = get(row, 1)?;
        let (thread, run) = futures::join!(
            tx.query(&lock_thread, &[&thread_id]),
            tx.query(&lock_run, &[&run_id])
        );
        let (thread, run) = in_order!(thread, run);
        let (Some(thread), Some(run)) = (thread.first(), run.first()) else {
            continue;
        };
        let locked = Locked::read(thread, 0)?;
        let status: &str = get(run, 0)?;
        let count: i32 = get(run, 1)?;
        let holder: Option<Uuid> = get(run, 2)?;
        let cancel: Option<&str> = get(run, 3)?;
        // Looked at again under the locks: another sweeper may have taken it up meanwhile.
        if status != "running" || !ending.covers(holder.as_ref()) {
            continue;
        }
        let attempts = attempt(count)?;
        let ended_to = |status: RunStatus| status.as_str();
        match lost_run(
            cancel.and_then(CancelAction::from_name),
            giving_back,
            attempts,
            max_attempts,
        ) {
            LostRun::Interrupt => {
                recovery.cancelled.push(run_id);
                let (left, thread_status, _) = locked.settle(1, Settled::Idle);
                let (name, thread_name) =
                    (ended_to(RunStatus::Interrupted), thread_status.as_str());
                let (set, settled) = futures::join!(
                    tx.execute(&set_status, &[&run_id, &name, &micros]),
                    tx.execute(&settle, &[&thread_id, &left, &thread_name, &micros]),
                );
                in_order!(set, settled);
                payloads.extend(ended_payloads(tx, run_id, true, 1, left));
            }
            LostRun::Rollback => {
                recovery.cancelled.push(run_id);
                let left = rollback
                    .run(tx, run_id, thread_id, locked, true, at)
                    .await?;
                payloads.extend(ended_payloads(tx, run_id, true, 1, left));
            }
            LostRun::Requeue => {
                recovery.requeued.push(run_id);
                let name = ended_to(RunStatus::Pending);
                tx.execute(&set_status, &[&run_id, &name, &micros]).await?;
            }
            LostRun::Fail => {
                recovery.failed.push(run_id);
                // A thread runs one run at a time, so this is its thread's one running run.
                let error = to_json(&worker_lost_error(attempts))?;
                let (left, thread_status, _) = locked.settle(1, Settled::To(ThreadStatus::Error));
                let (name, thread_name) = (ended_to(RunStatus::Error), thread_status.as_str());
                let (set, failed) = futures::join!(
                    tx.execute(&set_status, &[&run_id, &name, &micros]),
                    tx.execute(
                        &fail_thread,
                        &[&thread_id, &left, &thread_name, &micros, &error]
                    ),
                );
                in_order!(set, failed);
                payloads.extend(ended_payloads(tx, run_id, true, 1, left));
            }
        }
    }
    if !recovery.requeued.is_empty() {
        payloads.push(tx.channel().payload(Signal::RunQueued));
    }
    tx.notify(&payloads).await?;
    Ok(recovery)
}

pub(in crate::storage::postgres) async fn renew_lease(
    tx: &Tx<'_>,
    replica: ReplicaId,
    until: Timestamp,
) -> StorageResult<Renewal> {
    let upsert = tx
        .prepare(
            "INSERT INTO replicas (replica_id, lease_until) VALUES ($1, $2) \
             ON CONFLICT (replica_id) DO UPDATE SET lease_until = excluded.lease_until",
        )
        .await?;
    let cancels = tx
        .prepare(
            "SELECT run_id, cancel_action FROM runs WHERE lease_owner = $1 \
             AND cancel_action IS NOT NULL AND status = 'running'",
        )
        .await?;
    let id = replica.as_uuid();
    let micros = until.timestamp_micros();
    let rows = tx
        .atomically(async {
            let (renewed, rows) = futures::join!(
                tx.execute(&upsert, &[&id, &micros]),
                tx.query(&cancels, &[&id])
            );
            let (_, rows) = in_order!(renewed, rows);
            Ok(rows)
        })
        .await?;
    let mut renewal = Renewal::default();
    for row in &rows {
        let action: &str = get(row, 1)?;
        if let Some(action) = CancelAction::from_name(action) {
            renewal.cancels.push((get(row, 0)?, action));
        }
    }
    Ok(renewal)
}

pub(in crate::storage::postgres) async fn request_cancel(
    tx: &Tx<'_>,
    run_id: Uuid,
    action: CancelAction,
) -> StorageResult<bool> {
    // The first cancel stored is the one that counts, and the one its holder is told of.
    let statement = tx
        .prepare(
            "WITH stored AS (UPDATE runs SET cancel_action = COALESCE(cancel_action, $2) \
             WHERE run_id = $1 AND status = 'running' RETURNING cancel_action) \
             SELECT pg_notify($3, $4 || stored.cancel_action)::text FROM stored",
        )
        .await?;
    let prefix = tx.channel().cancel_prefix(run_id);
    let rows = tx
        .query(
            &statement,
            &[&run_id, &action.as_str(), &tx.channel().name, &prefix],
        )
        .await?;
    Ok(!rows.is_empty())
}
