//! A run's stream events: appended while the attempt that streamed them holds the run (one
//! run, or several in one transaction), and read back from a position.

use crate::storage::postgres::Tx;
use crate::storage::postgres::codec::{event_seq, get, sql_int};
use crate::storage::rules::fence;
use crate::storage::{EventBatch, Signal, StorageError, StorageResult, StoredEvent};
use uuid::Uuid;

/// Inserts events `$2..` (arrays) of run `$1`; an append tried again after a failure whose
/// commit was not seen must not fail on the events it did store.
pub(super) const INSERT_EVENTS: &str = "INSERT INTO run_events (run_id, seq, event, data) \
    SELECT $1, e.seq, e.event, e.data FROM unnest($2::bigint[], $3::text[], $4::text[]) \
    AS e(seq, event, data) ON CONFLICT DO NOTHING";

/// The columns of `events`, for [`INSERT_EVENTS`].
pub(super) fn event_columns(
    events: &[StoredEvent],
) -> StorageResult<(Vec<i64>, Vec<&str>, Vec<&str>)> {
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

pub(in crate::storage::postgres) async fn append_events(
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

pub(in crate::storage::postgres) async fn append_event_batches(
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

pub(in crate::storage::postgres) async fn events_after(
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
