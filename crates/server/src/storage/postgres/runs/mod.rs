//! Runs on PostgreSQL: their insertion under the multitask strategies, the reads of them,
//! their deletion, and what the jobs of a run's life below share (the thread's row lock, the
//! count of active runs, the signals of a run's end).
//!
//! - `claims.rs`: the next run that may start, taken for a replica.
//! - `end.rs`: a run's end, a move to another status, a rollback.
//! - `leases.rs`: renewing and ending replicas' leases, storing a cancel for a run's holder.
//! - `events.rs`: a run's stream events.

use super::Tx;
use super::codec::{RUN_COLUMNS, decode_run, get, run_status, to_json};
use super::threads::{LOCK_THREAD, Locked, SETTLE, insert_thread};
use crate::storage::encoding::start_from;
use crate::storage::rules::{Admission, Settled, admit};
use crate::storage::{CreatedRun, NewRun, RunPage, Signal, StorageError, StorageResult};
use errand_protocol::{IfNotExists, Run, RunStatus, Thread, ThreadStatus, Timestamp};
use std::future::Future;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

/// The first error of pipelined results, in the order they were sent: the later ones are
/// only "the transaction is aborted".
macro_rules! in_order {
    ($($result:expr),+ $(,)?) => {
        ($($result?),+)
    };
}

// Declared after `in_order!`, which they use.
mod claims;
mod end;
mod events;
mod leases;

pub(super) use claims::{claim_next_run, next_pending_after};
pub(super) use end::{EncodedFinish, finish_run, rollback_run, transition_run};
pub(super) use events::{append_event_batches, append_events, events_after};
pub(super) use leases::{expire_leases, renew_lease, request_cancel};

/// Whether a run with this status is counted in its thread's `active_runs`.
fn is_active(status: RunStatus) -> bool {
    matches!(status, RunStatus::Pending | RunStatus::Running)
}

/// Locks the thread's row, answering its values and count of active runs.
const LOCK_FOR_RUN: &str =
    "SELECT state_values::text, active_runs FROM threads WHERE thread_id = $1 FOR UPDATE";

const INSERT_RUN: &str = "INSERT INTO runs (run_id, thread_id, status, created_at, updated_at, \
    attempt, doc, lease_owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// A thread's pending and running runs, oldest first.
const ACTIVE_RUNS: &str = "SELECT run_id FROM runs WHERE thread_id = $1 \
    AND status IN ('pending', 'running') ORDER BY created_at, seq";

pub(super) async fn create_run(tx: &Tx<'_>, new: &NewRun, doc: &str) -> StorageResult<CreatedRun> {
    let run = &new.run;
    // The run's `created_at` may lie in the future (`after_seconds`); `updated_at` is now.
    let now = run.updated_at.min(run.created_at);
    let due = run.created_at <= run.updated_at;
    let lock = tx.prepare(LOCK_FOR_RUN).await?;
    let update = tx
        .prepare(
            "UPDATE threads SET status = 'busy', metadata = metadata || $2::text::jsonb, \
             updated_at = $3, active_runs = active_runs + 1 WHERE thread_id = $1",
        )
        .await?;
    let insert = tx.prepare(INSERT_RUN).await?;
    let active_runs = tx.prepare(ACTIVE_RUNS).await?;
    let mut rows = tx.begin_with(tx.query(&lock, &[&run.thread_id])).await?;
    let mut created = false;
    if rows.is_empty() {
        if new.if_not_exists == IfNotExists::Reject {
            return Err(StorageError::ThreadNotFound(run.thread_id));
        }
        let mut thread = Thread::new(run.thread_id, new.thread_metadata.clone(), now);
        thread.status = ThreadStatus::Busy;
        created = insert_thread(tx, &thread, 1).await?;
        if !created {
            // Another transaction made it meanwhile (the insert waited for its commit).
            rows = tx.query(&lock, &[&run.thread_id]).await?;
            if rows.is_empty() {
                return Err(StorageError::ThreadNotFound(run.thread_id));
            }
        }
    }
    let (mut idle, mut values, mut replace) = (true, None, false);
    if let Some(row) = rows.first().filter(|_| !created) {
        values = get::<Option<String>>(row, 0)?;
        let active: i32 = get(row, 1)?;
        idle = active == 0;
        replace = admit(run.multitask_strategy, !idle)? == Admission::Replace;
    }
    // Claimed in the same transaction when it may start now: stored `running` with its first
    // attempt counted, as `claim_next_run` would make of it a moment later.
    let holder = new.start.filter(|_| due && idle);
    let (status, attempt) = if holder.is_some() {
        ("running", 1i32)
    } else {
        ("pending", 0i32)
    };
    let metadata = to_json(&new.thread_metadata)?;
    let micros = now.timestamp_micros();
    let payloads = if holder.is_some() {
        Vec::new()
    } else {
        vec![tx.channel().payload(Signal::RunQueued)]
    };
    let holder_id = holder.map(|replica| replica.as_uuid());
    let (created_at, updated_at) = (
        run.created_at.timestamp_micros(),
        run.updated_at.timestamp_micros(),
    );
    let to_cancel = tx
        .commit_with(async {
            let (cancel, updated, inserted, notified) = futures::join!(
                async {
                    if replace {
                        tx.query(&active_runs, &[&run.thread_id]).await
                    } else {
                        Ok(Vec::new())
                    }
                },
                async {
                    if created {
                        Ok(1)
                    } else {
                        tx.execute(&update, &[&run.thread_id, &metadata, &micros])
                            .await
                    }
                },
                tx.execute(
                    &insert,
                    &[
                        &run.run_id,
                        &run.thread_id,
                        &status,
                        &created_at,
                        &updated_at,
                        &attempt,
                        &doc,
                        &holder_id,
                    ],
                ),
                tx.notify(&payloads),
            );
            let (cancel, _, _, ()) = in_order!(cancel, updated, inserted, notified);
            cancel
                .iter()
                .map(|row| get::<Uuid>(row, 0))
                .collect::<StorageResult<Vec<_>>>()
        })
        .await?;
    Ok(CreatedRun {
        started: holder.map(|_| start_from(values.as_deref(), None)),
        run: run.clone(),
        json: doc.to_owned(),
        to_cancel,
    })
}

/// Runs `statement` with `params` unless `skip`, answering no rows then.
fn unless<'a>(
    tx: &'a Tx<'_>,
    skip: bool,
    statement: &'a Statement,
    params: &[&'a (dyn tokio_postgres::types::ToSql + Sync)],
) -> impl Future<Output = StorageResult<Vec<Row>>> + Send + 'a {
    let query = (!skip).then(|| tx.query(statement, params));
    async move {
        match query {
            Some(query) => query.await,
            None => Ok(Vec::new()),
        }
    }
}

/// The payloads that tell of `ended` active runs of a thread ending, `left` active runs left.
fn ended_payloads(tx: &Tx<'_>, run_id: Uuid, terminal: bool, ended: i32, left: i32) -> Vec<String> {
    let mut payloads = Vec::new();
    if terminal {
        payloads.push(tx.channel().payload(Signal::RunEnded { run_id }));
    }
    if ended > 0 && left > 0 {
        payloads.push(tx.channel().payload(Signal::RunQueued));
    }
    payloads
}

pub(super) async fn get_run(
    tx: &Tx<'_>,
    thread_id: Uuid,
    run_id: Uuid,
) -> StorageResult<Option<Run>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1 AND thread_id = $2");
    let statement = tx.prepare(&sql).await?;
    let rows = tx.query(&statement, &[&run_id, &thread_id]).await?;
    rows.first()
        .map(|row| decode_run(row, 0).map(|(run, _)| run))
        .transpose()
}

fn decode_runs(rows: &[Row]) -> StorageResult<Vec<Run>> {
    rows.iter()
        .map(|row| decode_run(row, 0).map(|(run, _)| run))
        .collect()
}

pub(super) async fn list_runs(
    tx: &Tx<'_>,
    thread_id: Uuid,
    page: RunPage,
) -> StorageResult<Vec<Run>> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE thread_id = $1 AND ($2::text IS NULL OR status = $2) \
         ORDER BY created_at DESC, seq DESC LIMIT $3 OFFSET $4"
    );
    let statement = tx.prepare(&sql).await?;
    let status = page.status.map(RunStatus::as_str);
    let rows = tx
        .query(
            &statement,
            &[
                &thread_id,
                &status,
                &i64::from(page.limit),
                &i64::from(page.offset),
            ],
        )
        .await?;
    decode_runs(&rows)
}

pub(super) async fn runs_with_status(
    tx: &Tx<'_>,
    statuses: &[RunStatus],
) -> StorageResult<Vec<Run>> {
    let names: Vec<&str> = statuses.iter().map(|status| status.as_str()).collect();
    // Pending and running runs are on threads that count them: found from those threads
    // rather than by a walk of the whole history.
    let active_only = statuses.iter().all(|status| is_active(*status));
    let sql = if active_only {
        "SELECT r.status, r.updated_at, r.doc, r.run_id, r.thread_id, r.created_at \
         FROM threads AS t JOIN runs AS r ON r.thread_id = t.thread_id \
         WHERE t.active_runs > 0 AND r.status = ANY($1) ORDER BY r.created_at, r.seq"
            .to_owned()
    } else {
        format!("SELECT {RUN_COLUMNS} FROM runs WHERE status = ANY($1) ORDER BY created_at, seq")
    };
    let statement = tx.prepare(&sql).await?;
    let rows = tx.query(&statement, &[&names]).await?;
    decode_runs(&rows)
}

pub(super) async fn delete_run(
    tx: &Tx<'_>,
    thread_id: Uuid,
    run_id: Uuid,
    at: Timestamp,
) -> StorageResult<bool> {
    let lock = tx.prepare(LOCK_THREAD).await?;
    let delete = tx
        .prepare("DELETE FROM runs WHERE run_id = $1 AND thread_id = $2 RETURNING status")
        .await?;
    let settle = tx.prepare(SETTLE).await?;
    let (thread, deleted) = tx
        .begin_with(async {
            let (thread, deleted) = futures::join!(
                tx.query(&lock, &[&thread_id]),
                tx.query(&delete, &[&run_id, &thread_id])
            );
            Ok(in_order!(thread, deleted))
        })
        .await?;
    let (Some(thread), Some(deleted)) = (thread.first(), deleted.first()) else {
        return Ok(false);
    };
    let locked = Locked::read(thread, 0)?;
    let status = run_status(get(deleted, 0)?).unwrap_or(RunStatus::Error);
    let ended = i32::from(is_active(status));
    let (left, status, changed) = locked.settle(ended, Settled::Idle);
    let payloads = ended_payloads(tx, run_id, true, ended, left);
    let micros = at.timestamp_micros();
    let status = status.as_str();
    tx.commit_with(async {
        let (settled, notified) = futures::join!(
            unless(
                tx,
                !changed,
                &settle,
                &[&thread_id, &left, &status, &micros]
            ),
            tx.notify(&payloads),
        );
        in_order!(settled, notified);
        Ok(())
    })
    .await?;
    Ok(true)
}
