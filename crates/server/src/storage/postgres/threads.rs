//! Threads and their checkpoints.

use super::Tx;
use super::codec::{
    CHECKPOINT_COLUMNS, THREAD_COLUMNS, ThreadColumns, decode_checkpoint, decode_thread, get,
    thread_status, to_json,
};
use crate::storage::rules::{Settled, contains};
use crate::storage::{
    CheckpointRecord, JsonText, NewCheckpoint, Signal, StorageError, StorageResult,
};
use errand_protocol::Timestamp;
use errand_protocol::{
    IfExists, JsonObject, SortOrder, Thread, ThreadSearchRequest, ThreadStatus, TtlStrategy,
};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

pub(super) async fn prune_threads(
    tx: &Tx<'_>,
    thread_ids: &[Uuid],
    strategy: TtlStrategy,
) -> StorageResult<u64> {
    let ids = thread_ids.to_vec();
    match strategy {
        // One statement, its own transaction; the cascade takes runs, events and checkpoints.
        TtlStrategy::Delete => {
            let delete = tx
                .prepare("DELETE FROM threads WHERE thread_id = ANY($1) AND active_runs = 0")
                .await?;
            tx.execute(&delete, &[&ids]).await
        }
        TtlStrategy::KeepLatest => {
            // The idle threads are locked, so no run starts on them while they are pruned.
            let lock = tx
                .prepare(
                    "SELECT thread_id FROM threads WHERE thread_id = ANY($1) \
                     AND active_runs = 0 ORDER BY thread_id FOR UPDATE",
                )
                .await?;
            let rows = tx.begin_with(tx.query(&lock, &[&ids])).await?;
            let idle = rows
                .iter()
                .map(|row| get::<Uuid>(row, 0))
                .collect::<StorageResult<Vec<_>>>()?;
            if idle.is_empty() {
                return Ok(0);
            }
            let older_checkpoints = tx
                .prepare(
                    "DELETE FROM checkpoints AS c WHERE c.thread_id = ANY($1) AND c.seq < \
                     (SELECT max(l.seq) FROM checkpoints AS l WHERE l.thread_id = c.thread_id)",
                )
                .await?;
            tx.execute(&older_checkpoints, &[&idle]).await?;
            let orphans = tx
                .prepare(
                    "UPDATE checkpoints SET parent_checkpoint_id = NULL \
                     WHERE thread_id = ANY($1) AND parent_checkpoint_id IS NOT NULL",
                )
                .await?;
            tx.execute(&orphans, &[&idle]).await?;
            let older_runs = tx
                .prepare(
                    "DELETE FROM runs AS r WHERE r.thread_id = ANY($1) AND r.run_id <> \
                     (SELECT l.run_id FROM runs AS l WHERE l.thread_id = r.thread_id \
                     ORDER BY l.created_at DESC, l.seq DESC LIMIT 1)",
                )
                .await?;
            tx.execute(&older_runs, &[&idle]).await?;
            Ok(u64::try_from(idle.len()).unwrap_or(u64::MAX))
        }
    }
}

/// Inserts a thread (`$12` its count of active runs) unless its id is taken.
pub(super) const INSERT_THREAD: &str = "INSERT INTO threads (thread_id, status, created_at, \
    updated_at, state_updated_at, metadata, config, state_values, interrupts, error, extra, \
    active_runs) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8::text::jsonb, $9, $10, $11, \
    $12) ON CONFLICT (thread_id) DO NOTHING";

/// Inserts `thread` with `active_runs` active runs; false when its id is taken.
pub(super) async fn insert_thread(
    tx: &Tx<'_>,
    thread: &Thread,
    active_runs: i32,
) -> StorageResult<bool> {
    let row = ThreadColumns::encode(thread)?;
    let statement = tx.prepare(INSERT_THREAD).await?;
    let inserted = tx
        .execute(
            &statement,
            &[
                &thread.thread_id,
                &row.status,
                &row.created_at,
                &row.updated_at,
                &row.state_updated_at,
                &row.metadata,
                &row.config,
                &row.values,
                &row.interrupts,
                &row.error,
                &row.extra,
                &active_runs,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

pub(super) async fn create_thread(
    tx: &Tx<'_>,
    thread: &Thread,
    if_exists: IfExists,
) -> StorageResult<Thread> {
    if insert_thread(tx, thread, 0).await? {
        return Ok(thread.clone());
    }
    match if_exists {
        IfExists::Raise => Err(StorageError::ThreadExists(thread.thread_id)),
        IfExists::DoNothing => get_thread(tx, thread.thread_id)
            .await?
            .ok_or(StorageError::ThreadNotFound(thread.thread_id)),
    }
}

pub(super) async fn get_thread(tx: &Tx<'_>, thread_id: Uuid) -> StorageResult<Option<Thread>> {
    let sql = format!("SELECT {THREAD_COLUMNS} FROM threads WHERE thread_id = $1");
    let statement = tx.prepare(&sql).await?;
    tx.query(&statement, &[&thread_id])
        .await?
        .first()
        .map(decode_thread)
        .transpose()
}

pub(super) async fn patch_thread(
    tx: &Tx<'_>,
    thread_id: Uuid,
    metadata: &JsonObject,
    at: Timestamp,
) -> StorageResult<Thread> {
    // `||` of two objects is `rules::merge`: the patch's keys replace the thread's, key by key.
    let sql = format!(
        "UPDATE threads SET metadata = metadata || $2::text::jsonb, updated_at = $3 \
         WHERE thread_id = $1 RETURNING {THREAD_COLUMNS}"
    );
    let statement = tx.prepare(&sql).await?;
    let patch = to_json(metadata)?;
    let rows = tx
        .query(&statement, &[&thread_id, &patch, &at.timestamp_micros()])
        .await?;
    match rows.first() {
        Some(row) => decode_thread(row),
        None => Err(StorageError::ThreadNotFound(thread_id)),
    }
}

pub(super) async fn delete_thread(tx: &Tx<'_>, thread_id: Uuid) -> StorageResult<bool> {
    // The thread's active runs go with it: their waiters on other replicas are told.
    let delete = tx
        .prepare(
            "WITH active AS (SELECT run_id FROM runs WHERE thread_id = $1 \
             AND status IN ('pending', 'running')), \
             gone AS (DELETE FROM threads WHERE thread_id = $1 RETURNING thread_id) \
             SELECT (SELECT count(*) FROM gone), array(SELECT run_id FROM active)",
        )
        .await?;
    let rows = tx.begin_with(tx.query(&delete, &[&thread_id])).await?;
    let Some(row) = rows.first() else {
        return Ok(false);
    };
    let deleted: i64 = get(row, 0)?;
    if deleted == 0 {
        return Ok(false);
    }
    let ended: Vec<Uuid> = get(row, 1)?;
    let payloads: Vec<String> = ended
        .into_iter()
        .map(|run_id| tx.channel().payload(Signal::RunEnded { run_id }))
        .collect();
    tx.commit_with(tx.notify(&payloads)).await?;
    Ok(true)
}

/// Rows fetched at a time by a search whose exact filter runs in Rust.
const SEARCH_PAGE: u32 = 200;

/// Runs `sql` (which ends in `LIMIT $n OFFSET $n+1`, after `args`) page by page, keeping the
/// rows `keep` accepts, until `limit` are kept past `offset` skipped ones.
pub(super) async fn paged<T>(
    tx: &Tx<'_>,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
    offset: u32,
    limit: u32,
    exact: bool,
    mut keep: impl FnMut(&tokio_postgres::Row) -> StorageResult<Option<T>>,
) -> StorageResult<Vec<T>> {
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    let statement = tx.prepare(sql).await?;
    // Without a filter left for Rust, the database pages exactly.
    let (mut skip, mut from, page) = if exact {
        (0, i64::from(offset), i64::from(limit))
    } else {
        (
            offset,
            0,
            i64::from(offset.saturating_add(limit).clamp(1, SEARCH_PAGE)),
        )
    };
    loop {
        let mut params = args.to_vec();
        params.push(&page);
        params.push(&from);
        let rows = tx.query(&statement, &params).await?;
        for row in &rows {
            let Some(item) = keep(row)? else { continue };
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(item);
            if found.len() == limit as usize {
                return Ok(found);
            }
        }
        if exact || (rows.len() as i64) < page {
            return Ok(found);
        }
        from += rows.len() as i64;
    }
}

pub(super) async fn search_threads(
    tx: &Tx<'_>,
    search: &ThreadSearchRequest,
) -> StorageResult<Vec<Thread>> {
    let mut sql = format!("SELECT {THREAD_COLUMNS} FROM threads WHERE true");
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if let Some(status) = search.status {
        args.push(Box::new(status.as_str().to_owned()));
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    if let Some(ids) = &search.ids {
        args.push(Box::new(ids.clone()));
        sql.push_str(&format!(" AND thread_id = ANY(${})", args.len()));
    }
    // `@>` finds a superset of what `rules::contains` accepts (it also matches nested values
    // by containment, and 1 to 1.0), which the exact test then narrows.
    let metadata = search.metadata.as_ref().filter(|filter| !filter.is_empty());
    let values = search.values.as_ref().filter(|filter| !filter.is_empty());
    if let Some(filter) = metadata {
        args.push(Box::new(to_json(filter)?));
        sql.push_str(&format!(" AND metadata @> ${}::text::jsonb", args.len()));
    }
    if let Some(filter) = values {
        args.push(Box::new(to_json(filter)?));
        sql.push_str(&format!(
            " AND state_values @> ${}::text::jsonb",
            args.len()
        ));
    }
    let column = match search.sort_by.as_deref() {
        Some("thread_id") => "thread_id",
        Some("status") => "status",
        Some("updated_at") => "updated_at",
        Some("state_updated_at") => "state_updated_at",
        // The order the threads were stored in, as SQLite's rowid.
        _ => "seq",
    };
    let (order, nulls) = match search.sort_order {
        Some(SortOrder::Asc) => ("ASC", "NULLS FIRST"),
        Some(SortOrder::Desc) | None => ("DESC", "NULLS LAST"),
    };
    // SQLite orders NULL before every value; PostgreSQL after, unless told.
    sql.push_str(&format!(" ORDER BY {column} {order} {nulls}"));
    if !matches!(column, "thread_id" | "seq") {
        sql.push_str(&format!(", thread_id {order}"));
    }
    sql.push_str(&format!(
        " LIMIT ${} OFFSET ${}",
        args.len() + 1,
        args.len() + 2
    ));
    let refs: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|arg| &**arg as &(dyn ToSql + Sync))
        .collect();
    let exact = metadata.is_none() && values.is_none();
    paged(tx, &sql, &refs, search.offset, search.limit, exact, |row| {
        let thread = decode_thread(row)?;
        let metadata_ok = metadata.is_none_or(|filter| contains(Some(&thread.metadata), filter));
        let values_ok = values.is_none_or(|filter| {
            contains(thread.values.as_option().and_then(Value::as_object), filter)
        });
        Ok((metadata_ok && values_ok).then_some(thread))
    })
    .await
}

/// Inserts a checkpoint after the thread's latest one (its parent), answering the parent.
const INSERT_CHECKPOINT: &str = "INSERT INTO checkpoints (thread_id, checkpoint_id, \
    parent_checkpoint_id, run_id, state_values, metadata, next, interrupts, created_at) \
    SELECT $1, $2, (SELECT checkpoint_id FROM checkpoints WHERE thread_id = $1 \
    ORDER BY seq DESC LIMIT 1), $3, $4, $5, $6, $7, $8 RETURNING parent_checkpoint_id";

/// Inserts checkpoints `$2..` (arrays, oldest first) with the parents given in `$3`.
pub(super) const INSERT_CHECKPOINTS: &str = "INSERT INTO checkpoints (thread_id, checkpoint_id, \
    parent_checkpoint_id, run_id, state_values, metadata, next, interrupts, created_at) \
    SELECT $1, c.id, c.parent, c.run_id, c.state_values, c.metadata, c.next, c.interrupts, c.at \
    FROM unnest($2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
    $8::text[], $9::bigint[]) WITH ORDINALITY \
    AS c(id, parent, run_id, state_values, metadata, next, interrupts, at, n) ORDER BY c.n";

/// A checkpoint with its JSON encoded, before the transaction.
#[derive(Debug)]
pub(super) struct EncodedCheckpoint {
    pub(super) checkpoint_id: String,
    pub(super) run_id: Option<Uuid>,
    pub(super) values: JsonText,
    pub(super) metadata: String,
    pub(super) next: String,
    pub(super) interrupts: String,
    pub(super) created_at: i64,
}

impl EncodedCheckpoint {
    pub(super) fn new(checkpoint: &NewCheckpoint) -> StorageResult<Self> {
        Ok(Self {
            checkpoint_id: checkpoint.checkpoint_id.clone(),
            run_id: checkpoint.run_id,
            values: checkpoint.values.clone(),
            metadata: to_json(&checkpoint.metadata)?,
            next: to_json(&checkpoint.next)?,
            interrupts: to_json(&checkpoint.interrupts)?,
            created_at: checkpoint.created_at.timestamp_micros(),
        })
    }
}

pub(super) async fn update_thread_state(
    tx: &Tx<'_>,
    thread_id: Uuid,
    checkpoint: &NewCheckpoint,
) -> StorageResult<CheckpointRecord> {
    let encoded = EncodedCheckpoint::new(checkpoint)?;
    let update = tx
        .prepare(
            "UPDATE threads SET state_values = $2::text::jsonb, state_updated_at = $3, \
             updated_at = $3 WHERE thread_id = $1",
        )
        .await?;
    let insert = tx.prepare(INSERT_CHECKPOINT).await?;
    let at = encoded.created_at;
    let values = encoded.values.as_str();
    // The update locks the thread's row before the insert reads its latest checkpoint.
    let (updated, inserted) = tx
        .atomically(async {
            let (updated, inserted) = futures::join!(
                tx.execute(&update, &[&thread_id, &values, &at]),
                tx.query(
                    &insert,
                    &[
                        &thread_id,
                        &encoded.checkpoint_id,
                        &encoded.run_id,
                        &values,
                        &encoded.metadata,
                        &encoded.next,
                        &encoded.interrupts,
                        &at,
                    ],
                )
            );
            if updated? == 0 {
                return Err(StorageError::ThreadNotFound(thread_id));
            }
            Ok((1, inserted?))
        })
        .await?;
    debug_assert_eq!(updated, 1);
    let parent: Option<String> = match inserted.first() {
        Some(row) => get(row, 0)?,
        None => None,
    };
    Ok(CheckpointRecord {
        checkpoint_id: checkpoint.checkpoint_id.clone(),
        parent_checkpoint_id: parent,
        thread_id,
        run_id: checkpoint.run_id,
        values: checkpoint.values.decode()?,
        metadata: checkpoint.metadata.clone(),
        next: checkpoint.next.clone(),
        interrupts: checkpoint.interrupts.clone(),
        created_at: checkpoint.created_at,
    })
}

pub(super) async fn list_checkpoints(
    tx: &Tx<'_>,
    thread_id: Uuid,
    limit: u32,
    before: Option<&str>,
) -> StorageResult<Vec<CheckpointRecord>> {
    let limit = i64::from(limit);
    let rows = match before {
        None => {
            let sql = format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE thread_id = $1 \
                 ORDER BY seq DESC LIMIT $2"
            );
            let statement = tx.prepare(&sql).await?;
            tx.query(&statement, &[&thread_id, &limit]).await?
        }
        // Older than a checkpoint of the thread: written before it. An id the thread does not
        // have is compared as text: the ids are UUIDv7s, which sort by time.
        Some(before) => {
            let sql = format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE thread_id = $1 AND \
                 CASE WHEN EXISTS (SELECT 1 FROM checkpoints WHERE thread_id = $1 AND \
                 checkpoint_id = $3) THEN seq < (SELECT min(seq) FROM checkpoints WHERE \
                 thread_id = $1 AND checkpoint_id = $3) ELSE checkpoint_id < $3 END \
                 ORDER BY seq DESC LIMIT $2"
            );
            let statement = tx.prepare(&sql).await?;
            tx.query(&statement, &[&thread_id, &limit, &before]).await?
        }
    };
    rows.iter().map(decode_checkpoint).collect()
}

/// Locks a thread's row, answering its status and count of active runs.
pub(super) const LOCK_THREAD: &str =
    "SELECT status, active_runs FROM threads WHERE thread_id = $1 FOR UPDATE";

/// Locks the row of a run's thread, answering its id, status and count of active runs.
pub(super) const LOCK_THREAD_OF_RUN: &str = "SELECT thread_id, status, active_runs FROM threads \
    WHERE thread_id = (SELECT thread_id FROM runs WHERE run_id = $1) FOR UPDATE";

/// A thread's row, locked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Locked {
    pub(super) status: ThreadStatus,
    pub(super) active: i32,
}

impl Locked {
    /// Reads [`LOCK_THREAD`]'s columns from column `first`.
    pub(super) fn read(row: &tokio_postgres::Row, first: usize) -> StorageResult<Self> {
        let status: &str = get(row, first)?;
        Ok(Self {
            status: thread_status(status).unwrap_or(ThreadStatus::Busy),
            active: get(row, first + 1)?,
        })
    }

    /// After `ended` of its active runs ended or went: the count left and the thread's status
    /// (`rules::thread_status`), and whether the row must change.
    pub(super) fn settle(self, ended: i32, settled: Settled) -> (i32, ThreadStatus, bool) {
        let (left, status, changed) =
            crate::storage::rules::settle(self.status, self.active.into(), ended.into(), settled);
        // Within `i32`: at most the count it had and one run more.
        let left = i32::try_from(left).unwrap_or(i32::MAX);
        (left, status, changed)
    }
}

/// Sets a thread's count of active runs and status, moving `updated_at` when the status moves.
pub(super) const SETTLE: &str = "UPDATE threads SET active_runs = $2, status = $3, \
    updated_at = CASE WHEN status = $3 THEN updated_at ELSE $4 END WHERE thread_id = $1";
