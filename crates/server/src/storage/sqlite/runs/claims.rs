//! Claims: the next run that may start, taken for a replica in one statement, and when the
//! next delayed run is due.

use crate::storage::encoding::start_from;
use crate::storage::sqlite::codec::{Db, RUN_COLUMNS, RunRow, attempt, timestamp};
use crate::storage::{ClaimedRun, ReplicaId, StorageResult};
use errand_protocol::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

/// The earliest start time after `?1` of a pending run.
pub(in crate::storage::sqlite) const NEXT_PENDING: &str =
    "SELECT MIN(created_at) FROM runs WHERE status = 'pending' AND created_at > ?1";

/// Claims the next run that may start at `?1`, answering it with its attempt and thread.
///
/// One statement walks the queue (`runs_pending`, in `(created_at, rowid)` order) and stops at
/// the first run whose thread has no older pending run (on `runs_waiting`) and no running run:
/// its active runs (`threads.active_runs`) are all pending (counted on `runs_waiting`).
pub(in crate::storage::sqlite) fn claim_sql() -> String {
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

pub(in crate::storage::sqlite) fn claim_next_run(
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

pub(in crate::storage::sqlite) fn next_pending_after(
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
