//! Runs, their lifecycle on a thread, leases, and their stream events.

use super::Tx;
use super::codec::{
    RUN_COLUMNS, attempt, decode_nullable, decode_run, event_seq, get, run_status, sql_int,
    timestamp, to_json,
};
use super::threads::{
    EncodedCheckpoint, INSERT_CHECKPOINTS, LOCK_THREAD, LOCK_THREAD_OF_RUN, Locked, SETTLE,
    insert_thread,
};
use crate::storage::rules::{
    Admission, LeasesEnded, LostRun, Settled, admit, fence, lost_run, worker_lost_error,
};
use crate::storage::{
    ClaimedRun, CreatedRun, EndedRun, EventBatch, FinishedRun, Leases, NewRun, Recovery, Renewal,
    ReplicaId, RunPage, Signal, Start, StorageError, StorageResult, StoredEvent,
};
use errand_protocol::{CancelAction, IfNotExists, Run, RunStatus, Thread, ThreadStatus, Timestamp};
use serde_json::Value;
use std::future::Future;
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

/// Encodes a new run's wire object, before the transaction: it is stored as is.
pub(super) fn encode_new_run(new: &mut NewRun) -> StorageResult<String> {
    new.run.status = RunStatus::Pending;
    to_json(&new.run)
}

/// What a claimed run starts from: its thread's values, or why they cannot be read.
fn start_from(values: Option<&str>, unreadable: Option<String>) -> Start {
    if let Some(reason) = unreadable {
        return Start::Unreadable(reason);
    }
    match decode_nullable(values, "threads.state_values") {
        Ok(values) => Start::Values(values.into_option().unwrap_or(Value::Null)),
        Err(error) => Start::Unreadable(format!("errand cannot read the thread's values: {error}")),
    }
}

/// Whether a run with this status is counted in its thread's `active_runs`.
fn is_active(status: RunStatus) -> bool {
    matches!(status, RunStatus::Pending | RunStatus::Running)
}

/// The first error of pipelined results, in the order they were sent: the later ones are
/// only "the transaction is aborted".
macro_rules! in_order {
    ($($result:expr),+ $(,)?) => {
        ($($result?),+)
    };
}

/// Locks the thread's row, answering its values and count of active runs.
const LOCK_FOR_RUN: &str =
    "SELECT state_values::text, active_runs FROM threads WHERE thread_id = $1 FOR UPDATE";

const INSERT_RUN: &str = "INSERT INTO runs (run_id, thread_id, status, created_at, updated_at, \
    attempt, doc, lease_owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// A thread's pending and running runs, oldest first.
const ACTIVE_RUNS: &str = "SELECT run_id FROM runs WHERE thread_id = $1 \
    AND status IN ('pending', 'running') ORDER BY created_at, seq";

/// A run's status and attempt, its row locked.
const LOCK_RUN: &str = "SELECT status, attempt FROM runs WHERE run_id = $1 FOR UPDATE";

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

/// Candidates for a claim at `$1`: due pending runs that, as this statement sees the database,
/// are their thread's oldest pending run on a thread with no running run; locked, skipping runs
/// another claim holds.
const CANDIDATES: &str = "SELECT r.run_id, r.thread_id FROM runs AS r \
    WHERE r.status = 'pending' AND r.created_at <= $1 \
    AND NOT EXISTS (SELECT 1 FROM runs AS o WHERE o.thread_id = r.thread_id \
        AND o.status = 'pending' AND (o.created_at, o.seq) < (r.created_at, r.seq)) \
    AND (SELECT t.active_runs FROM threads AS t WHERE t.thread_id = r.thread_id) = \
        (SELECT count(*) FROM runs AS w WHERE w.thread_id = r.thread_id AND w.status = 'pending') \
    ORDER BY r.created_at, r.seq LIMIT 8 FOR UPDATE OF r SKIP LOCKED";

/// The candidate's thread, locked unless another transaction holds it.
const LOCK_THREAD_SKIP: &str =
    "SELECT state_values::text FROM threads WHERE thread_id = $1 FOR UPDATE SKIP LOCKED";

/// The candidate `$1` may still start: checked after its thread's row is locked, in a statement
/// of its own, which sees every run status that writes under that lock committed.
const RECHECK: &str = "SELECT 1 FROM runs AS r WHERE r.run_id = $1 AND r.status = 'pending' \
    AND NOT EXISTS (SELECT 1 FROM runs AS o WHERE o.thread_id = r.thread_id \
        AND o.status = 'pending' AND (o.created_at, o.seq) < (r.created_at, r.seq)) \
    AND (SELECT t.active_runs FROM threads AS t WHERE t.thread_id = r.thread_id) = \
        (SELECT count(*) FROM runs AS w WHERE w.thread_id = r.thread_id AND w.status = 'pending')";

fn claim_sql() -> String {
    format!(
        "UPDATE runs SET status = 'running', updated_at = $2, attempt = attempt + 1, \
         lease_owner = $3, cancel_action = NULL WHERE run_id = $1 \
         RETURNING attempt, octet_length(doc), \
         (SELECT COALESCE(max(e.seq), 0) FROM run_events AS e WHERE e.run_id = runs.run_id), \
         {RUN_COLUMNS}"
    )
}

pub(super) async fn claim_next_run(
    tx: &Tx<'_>,
    now: Timestamp,
    replica: ReplicaId,
) -> StorageResult<Option<ClaimedRun>> {
    let candidates = tx.prepare(CANDIDATES).await?;
    let lock = tx.prepare(LOCK_THREAD_SKIP).await?;
    let recheck = tx.prepare(RECHECK).await?;
    let claim = tx.prepare(&claim_sql()).await?;
    let micros = now.timestamp_micros();
    let found = tx.begin_with(tx.query(&candidates, &[&micros])).await?;
    let holder = replica.as_uuid();
    for candidate in &found {
        let run_id: Uuid = get(candidate, 0)?;
        let thread_id: Uuid = get(candidate, 1)?;
        let (locked, checked) = futures::join!(
            tx.query(&lock, &[&thread_id]),
            tx.query(&recheck, &[&run_id])
        );
        let (locked, checked) = in_order!(locked, checked);
        let Some(thread) = locked.first() else {
            continue;
        };
        if checked.is_empty() {
            continue;
        }
        let values: Option<String> = get(thread, 0)?;
        let rows = tx
            .commit_with(tx.query(&claim, &[&run_id, &micros, &holder]))
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let count: i32 = get(row, 0)?;
        let bytes: i32 = get(row, 1)?;
        let stored: i64 = get(row, 2)?;
        let (run, unreadable) = decode_run(row, 3)?;
        return Ok(Some(ClaimedRun {
            run,
            attempt: attempt(count)?,
            start: start_from(values.as_deref(), unreadable),
            bytes: usize::try_from(bytes).unwrap_or(0),
            events_stored: u64::try_from(stored).unwrap_or(0),
        }));
    }
    Ok(None)
}

pub(super) async fn next_pending_after(
    tx: &Tx<'_>,
    after: Timestamp,
) -> StorageResult<Option<Timestamp>> {
    let statement = tx
        .prepare("SELECT min(created_at) FROM runs WHERE status = 'pending' AND created_at > $1")
        .await?;
    let rows = tx.query(&statement, &[&after.timestamp_micros()]).await?;
    let earliest: Option<i64> = match rows.first() {
        Some(row) => get(row, 0)?,
        None => None,
    };
    earliest.map(timestamp).transpose()
}

/// A [`FinishedRun`] with its JSON encoded, made before the transaction.
#[derive(Debug)]
pub(super) struct EncodedFinish<'a> {
    finished: &'a FinishedRun,
    error: String,
    interrupts: String,
    checkpoints: Vec<EncodedCheckpoint>,
}

impl<'a> EncodedFinish<'a> {
    pub(super) fn new(finished: &'a FinishedRun) -> StorageResult<Self> {
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

/// Inserts events `$2..` (arrays) of run `$1`; an append tried again after a failure whose
/// commit was not seen must not fail on the events it did store.
const INSERT_EVENTS: &str = "INSERT INTO run_events (run_id, seq, event, data) \
    SELECT $1, e.seq, e.event, e.data FROM unnest($2::bigint[], $3::text[], $4::text[]) \
    AS e(seq, event, data) ON CONFLICT DO NOTHING";

/// The columns of `events`, for [`INSERT_EVENTS`].
fn event_columns(events: &[StoredEvent]) -> StorageResult<(Vec<i64>, Vec<&str>, Vec<&str>)> {
    let mut columns = (
        Vec::with_capacity(events.len()),
        Vec::with_capacity(events.len()),
        Vec::with_capacity(events.len()),
    );
    for event in events {
        columns.0.push(sql_int(event.seq)?);
        columns.1.push(event.event.as_str());
        columns.2.push(&*event.data);
    }
    Ok(columns)
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

pub(super) async fn finish_run(
    tx: &Tx<'_>,
    encoded: &EncodedFinish<'_>,
) -> StorageResult<Option<EndedRun>> {
    let finished = encoded.finished;
    let run_id = finished.run_id;
    let lock_thread = tx.prepare(LOCK_THREAD_OF_RUN).await?;
    let lock_run = tx.prepare(LOCK_RUN).await?;
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
                tx.query(&lock_thread, &[&run_id]),
                tx.query(&lock_run, &[&run_id]),
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

pub(super) async fn transition_run(
    tx: &Tx<'_>,
    run_id: Uuid,
    from: &[RunStatus],
    to: RunStatus,
    at: Timestamp,
) -> StorageResult<Option<Run>> {
    let lock_thread = tx.prepare(LOCK_THREAD_OF_RUN).await?;
    let lock_run = tx.prepare(LOCK_RUN).await?;
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
    let (thread, run) = tx
        .begin_with(async {
            let (thread, run) = futures::join!(
                tx.query(&lock_thread, &[&run_id]),
                tx.query(&lock_run, &[&run_id])
            );
            Ok(in_order!(thread, run))
        })
        .await?;
    let (Some(thread), Some(run)) = (thread.first(), run.first()) else {
        return Ok(None);
    };
    let thread_id: Uuid = get(thread, 0)?;
    let locked = Locked::read(thread, 1)?;
    let before = run_status(get(run, 0)?)?;
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
                async {
                    if changed {
                        tx.execute(&settle, &[&thread_id, &left, &status_name, &micros])
                            .await
                    } else {
                        Ok(0)
                    }
                },
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
struct Rollback {
    checkpoints: Statement,
    run: Statement,
    restore: Statement,
}

impl Rollback {
    async fn prepare(tx: &Tx<'_>) -> StorageResult<Self> {
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
    async fn run(
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

pub(super) async fn rollback_run(
    tx: &Tx<'_>,
    run_id: Uuid,
    attempt: Option<u32>,
    at: Timestamp,
) -> StorageResult<bool> {
    let lock_thread = tx.prepare(LOCK_THREAD_OF_RUN).await?;
    let lock_run = tx.prepare(LOCK_RUN).await?;
    let rollback = Rollback::prepare(tx).await?;
    let (thread, run) = tx
        .begin_with(async {
            let (thread, run) = futures::join!(
                tx.query(&lock_thread, &[&run_id]),
                tx.query(&lock_run, &[&run_id])
            );
            Ok(in_order!(thread, run))
        })
        .await?;
    let (Some(thread), Some(run)) = (thread.first(), run.first()) else {
        return Ok(false);
    };
    let thread_id: Uuid = get(thread, 0)?;
    let locked = Locked::read(thread, 1)?;
    let (status, held): (&str, i32) = (get(run, 0)?, get(run, 1)?);
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
            async {
                if changed {
                    tx.execute(&settle, &[&thread_id, &left, &status, &micros])
                        .await
                } else {
                    Ok(0)
                }
            },
            tx.notify(&payloads),
        );
        in_order!(settled, notified);
        Ok(())
    })
    .await?;
    Ok(true)
}

/// The running runs, oldest first, found through the threads that have active runs.
const RUNNING_RUNS: &str = "SELECT r.run_id, r.thread_id FROM threads AS t \
    JOIN runs AS r ON r.thread_id = t.thread_id \
    WHERE t.active_runs > 0 AND r.status = 'running' ORDER BY r.created_at, r.seq";

pub(super) async fn expire_leases(
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

pub(super) async fn renew_lease(
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

pub(super) async fn request_cancel(
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

pub(super) async fn append_events(
    tx: &Tx<'_>,
    run_id: Uuid,
    attempt: u32,
    events: &[StoredEvent],
) -> StorageResult<()> {
    // Shared: appends of one attempt do not wait on each other, and an expiry (which locks
    // the run for update) waits for them.
    let lock = tx
        .prepare("SELECT status, attempt FROM runs WHERE run_id = $1 FOR SHARE")
        .await?;
    let insert = tx.prepare(INSERT_EVENTS).await?;
    let rows = tx.begin_with(tx.query(&lock, &[&run_id])).await?;
    // A run deleted while it streamed keeps no events.
    let Some(row) = rows.first() else {
        return Ok(());
    };
    let (status, held): (&str, i32) = (get(row, 0)?, get(row, 1)?);
    fence(run_id, attempt, status, held.into())?;
    let (seqs, names, data) = event_columns(events)?;
    let payloads = vec![tx.channel().payload(Signal::Events { run_id })];
    tx.commit_with(async {
        let (inserted, notified) = futures::join!(
            tx.execute(&insert, &[&run_id, &seqs, &names, &data]),
            tx.notify(&payloads),
        );
        in_order!(inserted, notified);
        Ok(())
    })
    .await
}

/// Locks the runs of `$1` that are still held by the attempts `$2` (in the same order) and
/// answers every run of `$1` that exists, with whether it is held.
const HELD_RUNS: &str = "SELECT r.run_id, r.status = 'running' AND r.attempt = i.attempt \
    FROM runs AS r JOIN unnest($1::uuid[], $2::int[]) AS i(run_id, attempt) \
    ON i.run_id = r.run_id ORDER BY r.run_id FOR SHARE OF r";

/// The events of several runs: `$1` their runs, then as [`INSERT_EVENTS`].
const INSERT_RUN_EVENTS: &str = "INSERT INTO run_events (run_id, seq, event, data) \
    SELECT e.run_id, e.seq, e.event, e.data \
    FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[]) AS e(run_id, seq, event, data) \
    ON CONFLICT DO NOTHING";

pub(super) async fn append_event_batches(
    tx: &Tx<'_>,
    batches: &[EventBatch],
) -> StorageResult<Vec<Uuid>> {
    let lock = tx.prepare(HELD_RUNS).await?;
    let insert = tx.prepare(INSERT_RUN_EVENTS).await?;
    let run_ids: Vec<Uuid> = batches.iter().map(|batch| batch.run_id).collect();
    let attempts = batches
        .iter()
        .map(|batch| {
            i32::try_from(batch.attempt).map_err(|_| {
                StorageError::backend(format!("attempt {} is too large", batch.attempt))
            })
        })
        .collect::<StorageResult<Vec<_>>>()?;
    let rows = tx
        .begin_with(tx.query(&lock, &[&run_ids, &attempts]))
        .await?;
    let mut held = std::collections::HashSet::new();
    let mut fenced = Vec::new();
    for row in &rows {
        let (run_id, holds): (Uuid, bool) = (get(row, 0)?, get(row, 1)?);
        if holds {
            held.insert(run_id);
        } else {
            fenced.push(run_id);
        }
    }
    // Runs deleted meanwhile are in neither: they keep no events, as with one run.
    let (mut ids, mut seqs, mut names, mut data) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut payloads = Vec::new();
    for batch in batches.iter().filter(|batch| held.contains(&batch.run_id)) {
        payloads.push(tx.channel().payload(Signal::Events {
            run_id: batch.run_id,
        }));
        for event in &batch.events {
            ids.push(batch.run_id);
            seqs.push(sql_int(event.seq)?);
            names.push(event.event.as_str());
            data.push(&*event.data);
        }
    }
    tx.commit_with(async {
        let (inserted, notified) = futures::join!(
            tx.execute(&insert, &[&ids, &seqs, &names, &data]),
            tx.notify(&payloads),
        );
        in_order!(inserted, notified);
        Ok(())
    })
    .await?;
    Ok(fenced)
}

pub(super) async fn events_after(
    tx: &Tx<'_>,
    run_id: Uuid,
    after: u64,
) -> StorageResult<Vec<StoredEvent>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let statement = tx
        .prepare(
            "SELECT seq, event, data FROM run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq",
        )
        .await?;
    let rows = tx.query(&statement, &[&run_id, &after]).await?;
    rows.iter()
        .map(|row| {
            let seq: i64 = get(row, 0)?;
            let seq = event_seq(seq)?;
            let data: &str = get(row, 2)?;
            Ok(StoredEvent {
                seq,
                event: get(row, 1)?,
                data: data.into(),
            })
        })
        .collect()
}
