//! Threads and their checkpoints.

use super::codec::{
    CHECKPOINT_COLUMNS, CheckpointRow, Db, THREAD_COLUMNS, ThreadColumns, ThreadRow, load_thread,
    readable_metadata, to_json,
};
use crate::storage::rules::{Settled, contains, merge, settle};
use crate::storage::{CheckpointRecord, JsonText, NewCheckpoint, StorageError, StorageResult};
use errand_protocol::{
    IfExists, JsonObject, SortOrder, Thread, ThreadSearchRequest, Timestamp, TtlStrategy,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::Value;
use uuid::Uuid;

/// Inserts a thread with `active_runs` pending or running runs (the run it is made for, or
/// none); false when its id is taken.
pub(super) fn insert_thread(
    conn: &Connection,
    thread: &Thread,
    active_runs: i64,
) -> StorageResult<bool> {
    let row = ThreadColumns::encode(thread)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO threads (thread_id, status, created_at, updated_at, state_updated_at, \
             metadata, config, state_values, interrupts, error, extra, active_runs) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (thread_id) DO NOTHING",
        )
        .db()?
        .execute(params![
            thread.thread_id.to_string(),
            row.status,
            row.created_at,
            row.updated_at,
            row.state_updated_at,
            row.metadata,
            row.config,
            row.values,
            row.interrupts,
            row.error,
            row.extra,
            active_runs,
        ])
        .db()?;
    Ok(inserted == 1)
}

pub(super) fn create_thread(
    conn: &Connection,
    thread: Thread,
    if_exists: IfExists,
) -> StorageResult<Thread> {
    if insert_thread(conn, &thread, 0)? {
        return Ok(thread);
    }
    match if_exists {
        IfExists::Raise => Err(StorageError::ThreadExists(thread.thread_id)),
        IfExists::DoNothing => load_thread(conn, thread.thread_id)?
            .ok_or(StorageError::ThreadNotFound(thread.thread_id)),
    }
}

pub(super) fn patch_thread(
    conn: &Connection,
    thread_id: Uuid,
    metadata: JsonObject,
    at: Timestamp,
) -> StorageResult<Thread> {
    let id = thread_id.to_string();
    let current: Option<String> = conn
        .prepare_cached("SELECT metadata FROM threads WHERE thread_id = ?1")
        .db()?
        .query_row([&id], |row| row.get(0))
        .optional()
        .db()?;
    let Some(current) = current else {
        return Err(StorageError::ThreadNotFound(thread_id));
    };
    let mut merged = readable_metadata(&current, &id);
    merge(&mut merged, metadata);
    let sql = format!(
        "UPDATE threads SET metadata = ?2, updated_at = ?3 WHERE thread_id = ?1 \
         RETURNING {THREAD_COLUMNS}"
    );
    conn.prepare_cached(&sql)
        .db()?
        .query_row(
            params![id, to_json(&merged)?, at.timestamp_micros()],
            ThreadRow::read,
        )
        .db()?
        .decode()
}

pub(super) fn delete_thread(conn: &Connection, thread_id: Uuid) -> StorageResult<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM threads WHERE thread_id = ?1")
        .db()?
        .execute([thread_id.to_string()])
        .db()?;
    Ok(deleted > 0)
}

pub(super) fn prune_threads(
    conn: &Connection,
    thread_ids: &[Uuid],
    strategy: TtlStrategy,
) -> StorageResult<u64> {
    let mut pruned = 0;
    for thread_id in thread_ids {
        let key = thread_id.to_string();
        let changed = match strategy {
            TtlStrategy::Delete => conn
                .prepare_cached("DELETE FROM threads WHERE thread_id = ?1 AND active_runs = 0")
                .db()?
                .execute([&key])
                .db()?,
            TtlStrategy::KeepLatest => {
                let idle: Option<bool> = conn
                    .prepare_cached("SELECT active_runs = 0 FROM threads WHERE thread_id = ?1")
                    .db()?
                    .query_row([&key], |row| row.get(0))
                    .optional()
                    .db()?;
                if idle != Some(true) {
                    continue;
                }
                conn.prepare_cached(
                    "DELETE FROM checkpoints WHERE thread_id = ?1 AND seq < \
                     (SELECT MAX(seq) FROM checkpoints WHERE thread_id = ?1)",
                )
                .db()?
                .execute([&key])
                .db()?;
                conn.prepare_cached(
                    "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ?1",
                )
                .db()?
                .execute([&key])
                .db()?;
                conn.prepare_cached(
                    "DELETE FROM runs WHERE thread_id = ?1 AND rowid <> (SELECT rowid FROM runs \
                     WHERE thread_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 1)",
                )
                .db()?
                .execute([&key])
                .db()?;
                1
            }
        };
        pruned += u64::from(changed > 0);
    }
    Ok(pruned)
}

/// A key that can go into a quoted SQLite JSON path label as it is.
fn plain_key(key: &str) -> bool {
    !key.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// Narrows `column` in SQL to rows whose top-level string members equal the filter's; the
/// exact containment test runs in Rust on what is left.
fn prefilter(column: &str, filter: &JsonObject, sql: &mut String, args: &mut Vec<SqlValue>) {
    for (key, expected) in filter {
        if let Value::String(text) = expected
            && plain_key(key)
            && !text.chars().any(char::is_control)
        {
            sql.push_str(&format!(" AND {column} ->> ? = ?"));
            args.push(SqlValue::Text(format!("$.\"{key}\"")));
            args.push(SqlValue::Text(text.clone()));
        }
    }
}

pub(super) fn search_threads(
    conn: &Connection,
    search: &ThreadSearchRequest,
) -> StorageResult<Vec<Thread>> {
    let mut sql = format!("SELECT {THREAD_COLUMNS} FROM threads WHERE 1 = 1");
    let mut args = Vec::new();
    if let Some(status) = search.status {
        sql.push_str(" AND status = ?");
        args.push(SqlValue::Text(status.as_str().to_owned()));
    }
    if let Some(ids) = &search.ids {
        sql.push_str(" AND thread_id IN (SELECT value FROM json_each(?))");
        args.push(SqlValue::Text(to_json(ids)?));
    }
    if let Some(metadata) = &search.metadata {
        prefilter("metadata", metadata, &mut sql, &mut args);
    }
    if let Some(values) = &search.values {
        prefilter("state_values", values, &mut sql, &mut args);
    }
    let column = match search.sort_by.as_deref() {
        Some("thread_id") => "thread_id",
        Some("status") => "status",
        Some("updated_at") => "updated_at",
        Some("state_updated_at") => "state_updated_at",
        // The rowid is the order the threads were stored in, which is their `created_at`'s
        // (see `schema.rs`); it is unique, so it needs no tie-break.
        _ => "rowid",
    };
    let order = match search.sort_order {
        Some(SortOrder::Asc) => "ASC",
        Some(SortOrder::Desc) | None => "DESC",
    };
    sql.push_str(&format!(" ORDER BY {column} {order}"));
    if !matches!(column, "thread_id" | "rowid") {
        sql.push_str(&format!(", thread_id {order}"));
    }

    let (offset, limit) = (search.offset as usize, search.limit as usize);
    let mut found = Vec::new();
    if limit == 0 {
        return Ok(found);
    }
    let mut skipped = 0;
    let mut statement = conn.prepare_cached(&sql).db()?;
    let mut rows = statement.query(params_from_iter(args)).db()?;
    while let Some(row) = rows.next().db()? {
        let thread = ThreadRow::read(row).db()?.decode()?;
        let metadata_ok = search
            .metadata
            .as_ref()
            .is_none_or(|filter| contains(Some(&thread.metadata), filter));
        let values_ok = search.values.as_ref().is_none_or(|filter| {
            contains(thread.values.as_option().and_then(Value::as_object), filter)
        });
        if !(metadata_ok && values_ok) {
            continue;
        }
        if skipped < offset {
            skipped += 1;
            continue;
        }
        found.push(thread);
        if found.len() == limit {
            break;
        }
    }
    Ok(found)
}

/// The id of the thread's latest checkpoint.
pub(super) fn latest_checkpoint_id(
    conn: &Connection,
    thread_id: &str,
) -> StorageResult<Option<String>> {
    conn.prepare_cached(
        "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ?1 ORDER BY seq DESC LIMIT 1",
    )
    .db()?
    .query_row([thread_id], |row| row.get(0))
    .optional()
    .db()
}

/// A checkpoint with its JSON already encoded, so the encoding happens before the write
/// transaction (whose single connection is the server's one serial resource), not in it.
#[derive(Debug)]
pub(super) struct EncodedCheckpoint {
    checkpoint_id: String,
    run_id: Option<String>,
    values: JsonText,
    metadata: String,
    next: String,
    interrupts: String,
    created_at: i64,
}

impl EncodedCheckpoint {
    pub(super) fn new(checkpoint: &NewCheckpoint) -> StorageResult<Self> {
        Ok(Self {
            checkpoint_id: checkpoint.checkpoint_id.clone(),
            run_id: checkpoint.run_id.map(|run_id| run_id.to_string()),
            values: checkpoint.values.clone(),
            metadata: to_json(&checkpoint.metadata)?,
            next: to_json(&checkpoint.next)?,
            interrupts: to_json(&checkpoint.interrupts)?,
            created_at: checkpoint.created_at.timestamp_micros(),
        })
    }
}

/// Inserts an encoded checkpoint after the thread's latest; answers its parent's id.
pub(super) fn insert_encoded_checkpoint(
    conn: &Connection,
    thread_id: &str,
    checkpoint: &EncodedCheckpoint,
) -> StorageResult<Option<String>> {
    let parent = latest_checkpoint_id(conn, thread_id)?;
    conn.prepare_cached(
        "INSERT INTO checkpoints (thread_id, checkpoint_id, parent_checkpoint_id, run_id, \
         state_values, metadata, next, interrupts, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .db()?
    .execute(params![
        thread_id,
        checkpoint.checkpoint_id,
        parent,
        checkpoint.run_id,
        checkpoint.values.as_str(),
        checkpoint.metadata,
        checkpoint.next,
        checkpoint.interrupts,
        checkpoint.created_at,
    ])
    .db()?;
    Ok(parent)
}

/// Records a checkpoint on top of the thread's latest one.
pub(super) fn insert_checkpoint(
    conn: &Connection,
    thread_id: Uuid,
    checkpoint: NewCheckpoint,
) -> StorageResult<CheckpointRecord> {
    let parent = insert_encoded_checkpoint(
        conn,
        &thread_id.to_string(),
        &EncodedCheckpoint::new(&checkpoint)?,
    )?;
    Ok(CheckpointRecord {
        checkpoint_id: checkpoint.checkpoint_id,
        parent_checkpoint_id: parent,
        thread_id,
        run_id: checkpoint.run_id,
        values: checkpoint.values.decode()?,
        metadata: checkpoint.metadata,
        next: checkpoint.next,
        interrupts: checkpoint.interrupts,
        created_at: checkpoint.created_at,
    })
}

pub(super) fn update_thread_state(
    conn: &Connection,
    thread_id: Uuid,
    checkpoint: NewCheckpoint,
) -> StorageResult<CheckpointRecord> {
    let values = checkpoint.values.as_str();
    let at = checkpoint.created_at.timestamp_micros();
    let updated = conn
        .prepare_cached(
            "UPDATE threads SET state_values = ?2, state_updated_at = ?3, updated_at = ?3 \
             WHERE thread_id = ?1",
        )
        .db()?
        .execute(params![thread_id.to_string(), values, at])
        .db()?;
    if updated == 0 {
        return Err(StorageError::ThreadNotFound(thread_id));
    }
    insert_checkpoint(conn, thread_id, checkpoint)
}

pub(super) fn list_checkpoints(
    conn: &Connection,
    thread_id: Uuid,
    limit: u32,
    before: Option<&str>,
) -> StorageResult<Vec<CheckpointRecord>> {
    let id = thread_id.to_string();
    let rows = match before {
        None => {
            let sql = format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE thread_id = ?1 \
                 ORDER BY seq DESC LIMIT ?2"
            );
            let mut statement = conn.prepare_cached(&sql).db()?;
            statement
                .query_map(params![id, limit], CheckpointRow::read)
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
        }
        // Older than a checkpoint of the thread: written before it. An id the thread does not
        // have (one rolled back, say) is compared as text: the ids are UUIDv7s, which sort by
        // time.
        Some(before) => {
            let sql = format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE thread_id = ?1 AND \
                 CASE WHEN EXISTS (SELECT 1 FROM checkpoints WHERE thread_id = ?1 AND \
                 checkpoint_id = ?3) THEN seq < (SELECT seq FROM checkpoints WHERE \
                 thread_id = ?1 AND checkpoint_id = ?3) ELSE checkpoint_id < ?3 END \
                 ORDER BY seq DESC LIMIT ?2"
            );
            let mut statement = conn.prepare_cached(&sql).db()?;
            statement
                .query_map(params![id, limit, before], CheckpointRow::read)
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
        }
    };
    rows.db()?.into_iter().map(CheckpointRow::decode).collect()
}

/// After `ended` of the thread's active runs ended or went (0 when none did): the thread stays
/// `busy` while it has an active run left, else it takes its settled status.
pub(super) fn runs_ended(
    conn: &Connection,
    thread_id: &str,
    ended: i64,
    settled: Settled,
    at: Timestamp,
) -> StorageResult<()> {
    let current: Option<(String, i64)> = conn
        .prepare_cached("SELECT status, active_runs FROM threads WHERE thread_id = ?1")
        .db()?
        .query_row([thread_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .db()?;
    let Some((current, active)) = current else {
        return Ok(());
    };
    let current = super::codec::thread_status(&current)?;
    let (active, status, changed) = settle(current, active, ended, settled);
    if changed {
        conn.prepare_cached(
            "UPDATE threads SET active_runs = ?2, status = ?3, \
             updated_at = CASE WHEN status = ?3 THEN updated_at ELSE ?4 END WHERE thread_id = ?1",
        )
        .db()?
        .execute(params![
            thread_id,
            active,
            status.as_str(),
            at.timestamp_micros()
        ])
        .db()?;
    }
    Ok(())
}
