//! How runs end: the executor's record of a run's end, a move to another status (a cancel,
//! a requeue), and a rollback, each settling the thread's count of active runs and status.

use super::events::{INSERT_EVENTS, event_columns};
use super::{ended_payloads, is_active, unless};
use crate::storage::postgres::Tx;
use crate::storage::postgres::codec::{RUN_COLUMNS, decode_run, get, run_status, to_json};
use crate::storage::postgres::threads::{
    EncodedCheckpoint, INSERT_CHECKPOINTS, LOCK_THREAD_OF_RUN, Locked, SETTLE,
};
use crate::storage::rules::{Settled, fence};
use crate::storage::{EndedRun, FinishedRun, Signal, StorageResult};
use errand_protocol::{Run, RunStatus, Timestamp};
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

/// A [`FinishedRun`] with its JSON encoded, made before the transaction.
#[derive(Debug)]
pub(in crate::storage::postgres) struct EncodedFinish<'a> {
    finished: &'a FinishedRun,
    error: String,
    interrupts: String,
    checkpoints: Vec<EncodedCheckpoint>,
}

impl<'a> EncodedFinish<'a> {
    pub(in crate::storage::postgres) fn new(finished: &'a FinishedRun) -> StorageResult<Self> {
        Ok(Self {
            finished,
            error: match &finished.error {
                Some(error) => to_json(error)?,
                None => "null".to_owned(),
            },
            interrupts: to_json(&finished.interrupts)?,
            checkpoints: finished
                .checkpoints
                .iter()
                .map(EncodedCheckpoint::new)
                .collect::<StorageResult<_>>()?,
        })
    }
}

pub(in crate::storage::postgres) async fn finish_run(
    tx: &Tx<'_>,
    encoded: &EncodedFinish<'_>,
) -> StorageResult<Option<EndedRun>> {
    let finished = encoded.finished;
    let run_id = finished.run_id;
    let locks = RunLocks::prepare(tx).await?;
    let latest = tx
        .prepare(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = \
             (SELECT thread_id FROM runs WHERE run_id = $1) ORDER BY seq DESC LIMIT 1",
        )
        .await?;
    let insert_events = tx.prepare(INSERT_EVENTS).await?;
    let update_run = tx
        .prepare("UPDATE runs SET status = $2, updated_at = $3 WHERE run_id = $1")
        .await?;
    let update_thread = tx
        .prepare(
            "UPDATE threads SET active_runs = $7, status = $2, \
             state_values = COALESCE($3::text::jsonb, state_values), error = $4, \
             interrupts = $5, updated_at = $6, state_updated_at = $6 WHERE thread_id = $1",
        )
        .await?;
    let insert_checkpoints = tx.prepare(INSERT_CHECKPOINTS).await?;
    let no_checkpoints = encoded.checkpoints.is_empty();
    let (thread, run, latest) = tx
        .begin_with(async {
            let (thread, run, latest) = futures::join!(
                tx.query(&locks.thread, &[&run_id]),
                tx.query(&locks.run, &[&run_id]),
                unless(tx, no_checkpoints, &latest, &[&run_id]),
            );
            Ok(in_order!(thread, run, latest))
        })
        .await?;
    let (Some(thread), Some(run)) = (thread.first(), run.first()) else {
        return Ok(None);
    };
    let thread_id: Uuid = get(thread, 0)?;
    let locked = Locked::read(thread, 1)?;
    let (status, held): (&str, i32) = (get(run, 0)?, get(run, 1)?);
    fence(run_id, finished.attempt, status, held.into())?;
    let (left, thread_status, _) = locked.settle(1, Settled::To(finished.thread_status));
    let mut parent: Option<String> = match latest.first() {
        Some(row) => get(row, 0)?,
        None => None,
    };
    let checkpoints = &encoded.checkpoints;
    let mut parents = Vec::with_capacity(checkpoints.len());
    for checkpoint in checkpoints {
        parents.push(parent.take());
        parent = Some(checkpoint.checkpoint_id.clone());
    }
    let ids: Vec<&str> = checkpoints
        .iter()
        .map(|c| c.checkpoint_id.as_str())
        .collect();
    let run_ids: Vec<Option<Uuid>> = checkpoints.iter().map(|c| c.run_id).collect();
    let values: Vec<&str> = checkpoints.iter().map(|c| c.values.as_str()).collect();
    let metadata: Vec<&str> = checkpoints.iter().map(|c| c.metadata.as_str()).collect();
    let next: Vec<&str> = checkpoints.iter().map(|c| c.next.as_str()).collect();
    let interrupts: Vec<&str> = checkpoints.iter().map(|c| c.interrupts.as_str()).collect();
    let at: Vec<i64> = checkpoints.iter().map(|c| c.created_at).collect();
    let (seqs, names, data) = event_columns(&finished.events)?;
    let mut payloads = Vec::with_capacity(3);
    if !finished.events.is_empty() {
        payloads.push(tx.channel().payload(Signal::Events { run_id }));
    }
    payloads.push(tx.channel().payload(Signal::RunEnded { run_id }));
    if left > 0 {
        payloads.push(tx.channel().payload(Signal::RunQueued));
    }
    let micros = finished.at.timestamp_micros();
    let new_values = finished.values.as_ref().map(|values| values.as_str());
    let status_name = finished.status.as_str();
    let thread_status_name = thread_status.as_str();
    tx.commit_with(async {
        let (events, run, thread, checkpoints, notified) = futures::join!(
            unless(
                tx,
                seqs.is_empty(),
                &insert_events,
                &[&run_id, &seqs, &names, &data]
            ),
            tx.execute(&update_run, &[&run_id, &status_name, &micros]),
            tx.execute(
                &update_thread,
                &[
                    &thread_id,
                    &thread_status_name,
                    &new_values,
                    &encoded.error,
                    &encoded.interrupts,
                    &micros,
                    &left,
                ],
            ),
            unless(
                tx,
                no_checkpoints,
                &insert_checkpoints,
                &[
                    &thread_id,
                    &ids,
                    &parents,
                    &run_ids,
                    &values,
                    &metadata,
                    &next,
                    &interrupts,
                    &at,
                ],
            ),
            tx.notify(&payloads),
        );
        in_order!(events, run, thread, checkpoints, notified);
        Ok(())
    })
    .await?;
    Ok(Some(EndedRun {
        thread_busy: left > 0,
    }))
}

/// A run's status and attempt, its row locked.
const LOCK_RUN: &str = "SELECT status, attempt FROM runs WHERE run_id = $1 FOR UPDATE";

/// The statements that begin a transaction on a run: its thread's row locked, then its own.
struct RunLocks {
    thread: Statement,
    run: Statement,
}

impl RunLocks {
    async fn prepare(tx: &Tx<'_>) -> StorageResult<Self> {
        Ok(Self {
            thread: tx.prepare(LOCK_THREAD_OF_RUN).await?,
            run: tx.prepare(LOCK_RUN).await?,
        })
    }

    /// Begins the transaction with both locks, sent together: answers the run's thread, its
    /// count of active runs and status, and the run's row ([`LOCK_RUN`]); `None` when the run
    /// is gone.
    async fn begin(&self, tx: &Tx<'_>, run_id: Uuid) -> StorageResult<Option<(Uuid, Locked, Row)>> {
        let (thread, run) = tx
            .begin_with(async {
                let (thread, run) = futures::join!(
                    tx.query(&self.thread, &[&run_id]),
                    tx.query(&self.run, &[&run_id])
                );
                Ok(in_order!(thread, run))
            })
            .await?;
        let (Some(thread), Some(run)) = (thread.first(), run.into_iter().next()) else {
            return Ok(None);
        };
        Ok(Some((get(thread, 0)?, Locked::read(thread, 1)?, run)))
    }
}

pub(in crate::storage::postgres) async fn transition_run(
    tx: &Tx<'_>,
    run_id: Uuid,
    from: &[RunStatus],
    to: RunStatus,
    at: Timestamp,
) -> StorageResult<Option<Run>> {
    let locks = RunLocks::prepare(tx).await?;
    let update = tx
        .prepare(&format!(
            "UPDATE runs SET status = $2, updated_at = $3 WHERE run_id = $1 \
             RETURNING {RUN_COLUMNS}"
        ))
        .await?;
    let load = tx
        .prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"))
        .await?;
    let settle = tx.prepare(SETTLE).await?;
    let Some((thread_id, locked, run)) = locks.begin(tx, run_id).await? else {
        return Ok(None);
    };
    let before = run_status(get(&run, 0)?)?;
    if !from.contains(&before) || before == to {
        let rows = tx.query(&load, &[&run_id]).await?;
        return rows
            .first()
            .map(|row| decode_run(row, 0).map(|(run, _)| run))
            .transpose();
    }
    let ended = i32::from(is_active(before)) - i32::from(is_active(to));
    let (left, status, changed) = locked.settle(ended, Settled::Idle);
    let mut payloads = ended_payloads(tx, run_id, !is_active(to), ended, left);
    if to == RunStatus::Pending {
        payloads.push(tx.channel().payload(Signal::RunQueued));
    }
    let micros = at.timestamp_micros();
    let (to_name, status_name) = (to.as_str(), status.as_str());
    let rows = tx
        .commit_with(async {
            let (rows, settled, notified) = futures::join!(
                tx.query(&update, &[&run_id, &to_name, &micros]),
                unless(
                    tx,
                    !changed,
                    &settle,
                    &[&thread_id, &left, &status_name, &micros]
                ),
                tx.notify(&payloads),
            );
            let (rows, _, ()) = in_order!(rows, settled, notified);
            Ok(rows)
        })
        .await?;
    rows.first()
        .map(|row| decode_run(row, 0).map(|(run, _)| run))
        .transpose()
}

/// The statements that delete a run being rolled back and put its thread's values back to
/// the latest checkpoint left.
pub(super) struct Rollback {
    checkpoints: Statement,
    run: Statement,
    restore: Statement,
}

impl Rollback {
    pub(super) async fn prepare(tx: &Tx<'_>) -> StorageResult<Self> {
        Ok(Self {
            checkpoints: tx
                .prepare("DELETE FROM checkpoints WHERE run_id = $1 AND thread_id = $2")
                .await?,
            run: tx.prepare("DELETE FROM runs WHERE run_id = $1").await?,
            restore: tx
                .prepare(
                    "UPDATE threads SET state_values = COALESCE((SELECT state_values::jsonb \
                     FROM checkpoints WHERE thread_id = $1 ORDER BY seq DESC LIMIT 1), \
                     'null'::jsonb), state_updated_at = $2, updated_at = $2, \
                     active_runs = $3, status = $4 WHERE thread_id = $1",
                )
                .await?,
        })
    }

    /// Sends the three together; answers the thread's active runs left.
    pub(super) async fn run(
        &self,
        tx: &Tx<'_>,
        run_id: Uuid,
        thread_id: Uuid,
        locked: Locked,
        active: bool,
        at: Timestamp,
    ) -> StorageResult<i32> {
        let (left, status, _) = locked.settle(i32::from(active), Settled::Idle);
        let micros = at.timestamp_micros();
        let status = status.as_str();
        let (checkpoints, run, restored) = futures::join!(
            tx.execute(&self.checkpoints, &[&run_id, &thread_id]),
            tx.execute(&self.run, &[&run_id]),
            tx.execute(&self.restore, &[&thread_id, &micros, &left, &status]),
        );
        in_order!(checkpoints, run, restored);
        Ok(left)
    }
}

pub(in crate::storage::postgres) async fn rollback_run(
    tx: &Tx<'_>,
    run_id: Uuid,
    attempt: Option<u32>,
    at: Timestamp,
) -> StorageResult<bool> {
    let locks = RunLocks::prepare(tx).await?;
    let rollback = Rollback::prepare(tx).await?;
    let Some((thread_id, locked, run)) = locks.begin(tx, run_id).await? else {
        return Ok(false);
    };
    let (status, held): (&str, i32) = (get(&run, 0)?, get(&run, 1)?);
    if let Some(attempt) = attempt {
        fence(run_id, attempt, status, held.into())?;
    }
    let active = matches!(status, "pending" | "running");
    let left = rollback
        .run(tx, run_id, thread_id, locked, active, at)
        .await?;
    let payloads = ended_payloads(tx, run_id, true, i32::from(active), left);
    tx.commit_with(tx.notify(&payloads)).await?;
    Ok(true)
}
