//! What only the SQLite storage does: a file kept across reopen and SIGKILL, its schema
//! migrated from older versions and a newer one refused, commits checkpointed out of the WAL,
//! damaged rows salvaged, and SQLite's own error kept beneath a failure. What every backend
//! does is in `storage_contract.rs`, which runs on SQLite in memory and in a file too.

#[path = "support/storage.rs"]
mod common;

use common::{
    TempDir, checkpoint, claim, create, enqueue, event, ids, me, new_run, ns, obj, run, search,
    success, t, thread_of,
};
use errand_protocol::{
    CancelAction, IfExists, JsonObject, MultitaskStrategy, RunStatus, SortOrder, Thread,
    ThreadSearchRequest, ThreadStatus,
};
use errand_server::storage::{
    Leases, ReplicaId, SqliteStorage, Start, Storage, StorageError, UNREADABLE,
};
use serde_json::{Value, json};
use std::path::Path;
use uuid::Uuid;

fn memory() -> SqliteStorage {
    SqliteStorage::in_memory().expect("storage call")
}

// ---- durability and errors ----

#[tokio::test]
async fn a_file_database_keeps_everything_across_reopen() {
    let dir = TempDir::new();
    let path = dir.db();
    let (thread, run, record) = {
        let storage = SqliteStorage::open(&path).unwrap();
        let thread = create(&storage, json!({"user": "ann"}), t(0)).await;
        let run = enqueue(&storage, thread.thread_id, t(1)).await;
        let claimed = claim(&storage, t(2)).await;
        storage
            .append_events(
                run.run_id,
                claimed.attempt,
                &[event(1, "values"), event(2, "end")],
            )
            .await
            .unwrap();
        let record = storage
            .update_thread_state(
                thread.thread_id,
                checkpoint(Some(run.run_id), json!({"x": 1}), t(3)),
            )
            .await
            .unwrap();
        storage
            .put_item(&ns(&["a"]), "k", obj(json!({"v": 1})), t(4))
            .await
            .unwrap();
        (thread_of(&storage, thread.thread_id).await, run, record)
    };

    let storage = SqliteStorage::open(&path).unwrap();
    assert_eq!(thread_of(&storage, thread.thread_id).await, thread);
    let stored = storage
        .get_run(thread.thread_id, run.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, RunStatus::Running);
    assert_eq!(storage.events_after(run.run_id, 0).await.unwrap().len(), 2);
    assert_eq!(
        storage
            .list_checkpoints(thread.thread_id, 10, None)
            .await
            .unwrap(),
        vec![record]
    );
    assert!(storage.get_item(&ns(&["a"]), "k").await.unwrap().is_some());
    // The process that reopens the file ends every other replica's lease at its start:
    // whatever held the file before has stopped. The run that was running is taken up again.
    let restarted = ReplicaId::random();
    let recovery = storage
        .expire_leases(Leases::AllBut(restarted), 3, t(5))
        .await
        .unwrap();
    assert_eq!(recovery.requeued, vec![run.run_id]);
    let claimed = storage
        .claim_next_run(t(6), restarted)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.attempt, 2);
    assert_eq!(claimed.start, Start::Values(json!({"x": 1})));
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = TempDir::new();
    drop(SqliteStorage::open(dir.db()).unwrap());
    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = SqliteStorage::open(dir.db()).unwrap_err();
    assert!(
        matches!(&error, StorageError::Backend(failure) if failure.message().contains("schema version 99")),
        "{error}"
    );
}

/// Schema version 3 made from version 4: runs record no holder nor a cancel stored for it,
/// and no replica holds a lease.
const SCHEMA_3_FROM_4: &str = r#"
DROP INDEX runs_cancelling;
ALTER TABLE runs DROP COLUMN lease_owner;
ALTER TABLE runs DROP COLUMN cancel_action;
DROP TABLE replicas;
PRAGMA user_version = 3;
"#;

/// Schema version 2 made from version 3 (after [`SCHEMA_3_FROM_4`]): threads carry no count of their active runs, an index
/// holds those runs instead, and another orders threads by creation.
const SCHEMA_2_FROM_3: &str = r#"
DROP INDEX runs_waiting;
ALTER TABLE threads DROP COLUMN active_runs;
CREATE INDEX runs_active ON runs (thread_id, created_at) WHERE status IN ('pending', 'running');
CREATE INDEX threads_created ON threads (created_at);
PRAGMA user_version = 2;
"#;

/// The indexes of schema version 1, which a file written by errand 0.1 still has; applied after
/// [`SCHEMA_2_FROM_3`].
const SCHEMA_1_INDEXES: &str = r#"
DROP INDEX threads_created;
DROP INDEX runs_thread;
DROP INDEX runs_active;
DROP INDEX runs_pending;
DROP INDEX checkpoints_thread;
CREATE INDEX threads_created ON threads (created_at);
CREATE INDEX threads_updated ON threads (updated_at);
CREATE INDEX threads_status ON threads (status, created_at);
CREATE INDEX runs_status ON runs (status, created_at);
CREATE INDEX runs_thread_status ON runs (thread_id, status, created_at);
CREATE INDEX runs_thread_created ON runs (thread_id, created_at);
ALTER TABLE checkpoints RENAME TO checkpoints_new;
CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    run_id TEXT,
    state_values TEXT NOT NULL,
    metadata TEXT NOT NULL,
    next TEXT NOT NULL,
    interrupts TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (thread_id, checkpoint_id)
);
INSERT INTO checkpoints SELECT * FROM checkpoints_new;
DROP TABLE checkpoints_new;
CREATE INDEX checkpoints_thread ON checkpoints (thread_id, seq);
CREATE INDEX checkpoints_run ON checkpoints (run_id) WHERE run_id IS NOT NULL;
PRAGMA user_version = 1;
"#;

/// The names of the database's indexes, sorted.
fn index_names(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).expect("the database opens");
    let mut statement = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
        .expect("the query prepares");
    statement
        .query_map([], |row| row.get(0))
        .and_then(Iterator::collect)
        .expect("the index names read")
}

#[tokio::test]
async fn a_version_1_file_is_migrated_with_its_rows() {
    let dir = TempDir::new();
    let storage = SqliteStorage::open(dir.db()).unwrap();
    let current = index_names(&dir.db());
    let thread = create(&storage, json!({"owner": "me"}), t(0)).await;
    let done = enqueue(&storage, thread.thread_id, t(1)).await;
    let waiting = enqueue(&storage, thread.thread_id, t(2)).await;
    claim(&storage, t(3)).await;
    let mut finished = success(done.run_id, 1, Some(json!({"n": 1})), t(4));
    finished.events = vec![event(1, "metadata"), event(2, "values")].into();
    finished.checkpoints = vec![
        checkpoint(Some(done.run_id), json!({"n": 0}), t(4)),
        checkpoint(Some(done.run_id), json!({"n": 1}), t(4)),
    ];
    storage.finish_run(&finished).await.unwrap().unwrap();
    let history = storage
        .list_checkpoints(thread.thread_id, 10, None)
        .await
        .unwrap();
    let before = thread_of(&storage, thread.thread_id).await;
    drop(storage);

    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    conn.execute_batch(SCHEMA_3_FROM_4).unwrap();
    conn.execute_batch(SCHEMA_2_FROM_3).unwrap();
    conn.execute_batch(SCHEMA_1_INDEXES).unwrap();
    drop(conn);
    assert!(index_names(&dir.db()).contains(&"runs_thread_status".to_owned()));

    let storage = SqliteStorage::open(dir.db()).unwrap();
    assert_eq!(index_names(&dir.db()), current);
    let version: i64 = rusqlite::Connection::open(dir.db())
        .unwrap()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 4);
    assert_eq!(thread_of(&storage, thread.thread_id).await, before);
    assert_eq!(
        storage
            .list_checkpoints(thread.thread_id, 10, None)
            .await
            .unwrap(),
        history
    );
    assert_eq!(history.len(), 2);
    assert_eq!(
        storage.events_after(done.run_id, 0).await.unwrap(),
        vec![event(1, "metadata"), event(2, "values")]
    );
    // The queue carried over: the waiting run is the next to start.
    let next = claim(&storage, t(5)).await;
    assert_eq!(next.run.run_id, waiting.run_id);
    assert_eq!(next.start, Start::Values(json!({"n": 1})));
}

/// A file of errand before leases: its runs left `running` have no holder, and the next
/// server to open it takes them up as it ends every other replica's lease.
#[tokio::test]
async fn a_version_3_file_gets_leases_and_its_running_runs_are_taken_up() {
    let dir = TempDir::new();
    let storage = SqliteStorage::open(dir.db()).unwrap();
    let current = index_names(&dir.db());
    let thread = create(&storage, json!({}), t(0)).await;
    let running = enqueue(&storage, thread.thread_id, t(1)).await;
    let waiting = enqueue(&storage, thread.thread_id, t(2)).await;
    claim(&storage, t(3)).await;
    drop(storage);
    rusqlite::Connection::open(dir.db())
        .unwrap()
        .execute_batch(SCHEMA_3_FROM_4)
        .unwrap();

    let storage = SqliteStorage::open(dir.db()).unwrap();
    assert_eq!(index_names(&dir.db()), current);
    assert_eq!(
        storage
            .get_run(thread.thread_id, running.run_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Running
    );
    // A sweep of expired leases finds no holder to expire: only a start takes them up.
    let swept = storage
        .expire_leases(Leases::DueBy(t(100)), 3, t(4))
        .await
        .unwrap();
    assert!(swept.is_empty(), "{swept:?}");
    let started = ReplicaId::random();
    let recovery = storage
        .expire_leases(Leases::AllBut(started), 3, t(5))
        .await
        .unwrap();
    assert_eq!(recovery.requeued, vec![running.run_id]);
    let again = storage
        .claim_next_run(t(6), started)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.run.run_id, again.attempt), (running.run_id, 2));
    assert!(
        storage
            .request_cancel(running.run_id, CancelAction::Interrupt)
            .await
            .unwrap()
    );
    assert_eq!(
        storage.renew_lease(started, t(60)).await.unwrap().cancels,
        vec![(running.run_id, CancelAction::Interrupt)]
    );
    storage
        .finish_run(&success(running.run_id, 2, None, t(7)))
        .await
        .unwrap()
        .unwrap();
    let next = storage
        .claim_next_run(t(8), started)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.run.run_id, waiting.run_id);
}

#[tokio::test]
async fn a_version_2_file_counts_its_active_runs_and_keeps_its_thread_order() {
    let dir = TempDir::new();
    let storage = SqliteStorage::open(dir.db()).unwrap();
    let current = index_names(&dir.db());
    let mut created = Vec::new();
    for n in 0..3 {
        created.push(create(&storage, json!({ "n": n }), t(n)).await);
    }
    let busy = created[1].thread_id;
    let running = enqueue(&storage, busy, t(10)).await;
    let waiting = enqueue(&storage, busy, t(11)).await;
    let claimed = claim(&storage, t(12)).await;
    assert_eq!(claimed.run.run_id, running.run_id);
    drop(storage);
    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    conn.execute_batch(SCHEMA_3_FROM_4).unwrap();
    conn.execute_batch(SCHEMA_2_FROM_3).unwrap();
    drop(conn);

    let storage = SqliteStorage::open(dir.db()).unwrap();
    assert_eq!(index_names(&dir.db()), current);
    assert!(
        !current
            .iter()
            .any(|name| name == "threads_created" || name == "runs_active")
    );
    let oldest_first = ThreadSearchRequest {
        sort_by: Some("created_at".into()),
        sort_order: Some(SortOrder::Asc),
        ..search()
    };
    assert_eq!(
        ids(&storage.search_threads(&oldest_first).await.unwrap()),
        ids(&created)
    );
    // The running run was counted: the waiting one starts only once it has ended, and the
    // thread is idle only once both have.
    assert!(storage.claim_next_run(t(13), me()).await.unwrap().is_none());
    storage
        .finish_run(&success(running.run_id, 1, None, t(14)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thread_of(&storage, busy).await.status, ThreadStatus::Busy);
    let next = claim(&storage, t(15)).await;
    assert_eq!(next.run.run_id, waiting.run_id);
    storage
        .finish_run(&success(waiting.run_id, 1, None, t(16)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thread_of(&storage, busy).await.status, ThreadStatus::Idle);
}

/// How many rows of `table` the database file holds by itself, without its WAL: what
/// checkpoints have copied into it. `None` while a copy of the file is not readable yet.
fn rows_in_database_file(dir: &TempDir, table: &str) -> Option<i64> {
    let copy = dir.0.join(format!("copy-{}.db", Uuid::new_v4()));
    std::fs::copy(dir.db(), &copy).ok()?;
    let conn = rusqlite::Connection::open(&copy).ok()?;
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
        row.get(0)
    })
    .ok()
}

#[tokio::test]
async fn commits_reach_the_database_file_without_waiting_for_the_wal_to_fill() {
    let dir = TempDir::new();
    let storage = SqliteStorage::open(dir.db()).unwrap();
    for n in 0..5 {
        create(&storage, json!({ "n": n }), t(n)).await;
    }
    // Five small commits are far from any WAL size limit: only the background checkpointer
    // copies them into the file, and it does so within moments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rows_in_database_file(&dir, "threads") != Some(5) {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file still lacks the commits after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The reason a thread or run read back whole could not be read, if any.
fn unreadable(extra: &JsonObject) -> Option<&str> {
    extra.get(UNREADABLE).and_then(Value::as_str)
}

/// A row that cannot be read (damaged, or written by an older errand: a run document nested
/// deeper than the JSON reader's limit) takes nothing down with it: reads answer it from what
/// can be read, saying what could not; lists and bulk reads still answer every row; the queue
/// hands such a run over to be ended rather than run, and goes on with the others.
#[tokio::test]
async fn corrupt_rows_are_answered_from_what_can_be_read_and_never_run() {
    let dir = TempDir::new();
    let storage = SqliteStorage::open(dir.db()).unwrap();
    let thread = create(&storage, json!({"keep": 1}), t(0)).await;
    let damaged = enqueue(&storage, thread.thread_id, t(1)).await;
    let deep_thread = create(&storage, json!({}), t(2)).await;
    let deep = enqueue(&storage, deep_thread.thread_id, t(3)).await;
    let fine_thread = create(&storage, json!({}), t(4)).await;
    let fine = enqueue(&storage, fine_thread.thread_id, t(5)).await;
    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    conn.execute(
        "UPDATE threads SET metadata = '{not json' WHERE thread_id = ?1",
        [thread.thread_id.to_string()],
    )
    .unwrap();
    conn.execute(
        "UPDATE runs SET doc = substr(doc, 1, 40) WHERE run_id = ?1",
        [damaged.run_id.to_string()],
    )
    .unwrap();
    let too_deep = format!("{}{}", "[".repeat(130), "]".repeat(130));
    conn.execute(
        "UPDATE runs SET doc = json_set(doc, '$.kwargs.input', json(?2)) WHERE run_id = ?1",
        [deep.run_id.to_string(), too_deep],
    )
    .unwrap();
    drop(conn);

    let read = storage.get_thread(thread.thread_id).await.unwrap().unwrap();
    assert_eq!(read.metadata, JsonObject::new());
    assert!(unreadable(&read.extra).is_some_and(|why| why.contains("threads.metadata")));
    assert_eq!(read.status, ThreadStatus::Busy, "its columns are read");
    assert_eq!(storage.search_threads(&search()).await.unwrap().len(), 3);

    let read = storage
        .get_run(thread.thread_id, damaged.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (read.run_id, read.thread_id),
        (damaged.run_id, thread.thread_id)
    );
    assert_eq!((read.status, read.created_at), (RunStatus::Pending, t(1)));
    assert!(unreadable(&read.extra).is_some_and(|why| why.contains("runs.doc")));
    let read = storage
        .get_run(deep_thread.thread_id, deep.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read.assistant_id, deep.assistant_id,
        "read from what can be"
    );
    assert!(unreadable(&read.extra).is_some());
    let active = storage
        .runs_with_status(&[RunStatus::Pending])
        .await
        .unwrap();
    assert_eq!(active.len(), 3);

    // The queue goes on past them, in order, and says which cannot run.
    let mut claimed = Vec::new();
    while let Some(next) = storage.claim_next_run(t(10), me()).await.unwrap() {
        claimed.push((next.run.run_id, matches!(next.start, Start::Unreadable(_))));
    }
    assert_eq!(
        claimed,
        [
            (damaged.run_id, true),
            (deep.run_id, true),
            (fine.run_id, false)
        ]
    );

    // Writes to the damaged thread replace what cannot be read, rather than fail.
    let patched = storage
        .patch_thread(thread.thread_id, obj(json!({"new": 2})), t(11))
        .await
        .unwrap();
    assert_eq!(patched.metadata, obj(json!({"new": 2})));
    assert_eq!(unreadable(&patched.extra), None);
}

/// Set by [`committed_writes_survive_sigkill`] for the child process it starts.
const CHILD_DB: &str = "ERRAND_SQLITE_SIGKILL_CHILD_DB";

/// The child of [`committed_writes_survive_sigkill`]: writes, says so, then waits to be killed.
/// Run on its own (without the variable) it does nothing.
#[tokio::test]
async fn sigkill_child_process() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let storage = SqliteStorage::open(&path).unwrap();
    let thread = storage
        .create_thread(
            Thread::new(Uuid::from_u128(1), obj(json!({"child": true})), t(0)),
            IfExists::Raise,
        )
        .await
        .unwrap();
    let mut queued = run(thread.thread_id, t(1), MultitaskStrategy::Enqueue);
    queued.run_id = Uuid::from_u128(2);
    storage.create_run(new_run(queued)).await.unwrap();
    claim(&storage, t(2)).await;
    storage
        .append_events(Uuid::from_u128(2), 1, &[event(1, "values")])
        .await
        .unwrap();
    println!("ERRAND-COMMITTED");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
}

#[tokio::test]
async fn committed_writes_survive_sigkill() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = TempDir::new();
    let path = dir.db();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut committed = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains("ERRAND-COMMITTED") {
            committed = true;
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(committed, "the child did not get to write");
    assert!(Path::new(&path).exists());

    let storage = SqliteStorage::open(&path).unwrap();
    let thread = thread_of(&storage, Uuid::from_u128(1)).await;
    assert_eq!(thread.status, ThreadStatus::Busy);
    assert_eq!(
        Value::Object(thread.metadata),
        json!({"child": true, "graph_id": "echo"})
    );
    let run = storage
        .get_run(Uuid::from_u128(1), Uuid::from_u128(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(
        storage.events_after(Uuid::from_u128(2), 0).await.unwrap(),
        vec![event(1, "values")]
    );
}

/// A database failure keeps SQLite's own error beneath it, so a caller can tell what kind of
/// failure it was (a constraint, a busy database, a full disk) without reading its text.
#[tokio::test]
async fn a_database_failure_keeps_the_sqlite_error_as_its_source() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let first = run(thread.thread_id, t(1), MultitaskStrategy::Enqueue);
    storage.create_run(new_run(first.clone())).await.unwrap();
    // A run id is stored once: a second run with it breaks the key.
    let error = storage.create_run(new_run(first)).await.unwrap_err();
    let sqlite = std::error::Error::source(&error)
        .and_then(std::error::Error::source)
        .and_then(|source| source.downcast_ref::<rusqlite::Error>());
    assert!(
        matches!(sqlite, Some(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == rusqlite::ErrorCode::ConstraintViolation),
        "{error:?}"
    );
}
