//! Claims: the next run that may start, taken for a replica without waiting on any lock, and
//! when the next delayed run is due.

use crate::storage::encoding::start_from;
use crate::storage::postgres::Tx;
use crate::storage::postgres::codec::{RUN_COLUMNS, attempt, decode_run, get, timestamp};
use crate::storage::{ClaimedRun, ReplicaId, StorageResult};
use errand_protocol::Timestamp;
use uuid::Uuid;

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

pub(in crate::storage::postgres) async fn claim_next_run(
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

pub(in crate::storage::postgres) async fn next_pending_after(
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
