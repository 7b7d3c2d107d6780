//! A run's stream events: appended while the attempt that streamed them holds the run, and
//! read back from a position.

use super::run_state;
use crate::storage::rules::fence;
use crate::storage::sqlite::codec::{Db, event_seq, sql_int};
use crate::storage::{StorageResult, StoredEvent};
use rusqlite::{Connection, params};
use uuid::Uuid;

pub(in crate::storage::sqlite) fn append_events(
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

pub(super) fn insert_events(
    conn: &Connection,
    key: &str,
    events: &[StoredEvent],
) -> StorageResult<()> {
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

pub(in crate::storage::sqlite) fn events_after(
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
