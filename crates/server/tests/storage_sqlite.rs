//! The SQLite storage against the `Storage` contract: threads, runs and their lifecycle, the
//! multitask strategies, claiming under concurrency, recovery, durability across reopen and
//! SIGKILL, events, checkpoints and the store.

use errand_protocol::{
    IfExists, IfNotExists, Interrupt, JsonObject, MultitaskStrategy, Nullable, Run, RunStatus,
    SortOrder, StoreListNamespacesRequest, StoreSearchRequest, Thread, ThreadSearchRequest,
    ThreadStatus, Timestamp,
};
use errand_server::storage::{
    FinishedRun, JsonText, NewCheckpoint, NewRun, RunPage, SqliteStorage, Start, Storage,
    StorageError, StoredEvent, UNREADABLE,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

// ---- helpers ----

/// A fixed instant plus `seconds`.
fn t(seconds: i64) -> Timestamp {
    Timestamp::from_timestamp_micros(1_800_000_000_000_000 + seconds * 1_000_000)
        .expect("a time in range")
}

fn obj(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

fn memory() -> SqliteStorage {
    SqliteStorage::in_memory().expect("storage call")
}

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("errand-sqlite-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("a temp dir");
        Self(path)
    }

    fn db(&self) -> PathBuf {
        self.0.join("errand.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn thread(metadata: Value, at: Timestamp) -> Thread {
    Thread::new(Uuid::now_v7(), obj(metadata), at)
}

async fn create(storage: &SqliteStorage, metadata: Value, at: Timestamp) -> Thread {
    storage
        .create_thread(thread(metadata, at), IfExists::Raise)
        .await
        .expect("storage call")
}

fn run(thread_id: Uuid, created_at: Timestamp, strategy: MultitaskStrategy) -> Run {
    Run {
        run_id: Uuid::now_v7(),
        thread_id,
        assistant_id: Uuid::from_u128(7),
        created_at,
        updated_at: created_at,
        status: RunStatus::Pending,
        metadata: obj(json!({"origin": "test"})),
        kwargs: serde_json::from_value(
            json!({"input": {"messages": []}, "stream_mode": ["values"]}),
        )
        .expect("kwargs"),
        multitask_strategy: strategy,
        extra: obj(json!({"langsmith_session_name": null})),
    }
}

fn new_run(run: Run) -> NewRun {
    NewRun {
        run,
        if_not_exists: IfNotExists::Reject,
        thread_metadata: obj(json!({"graph_id": "echo"})),
        start: false,
    }
}

/// Inserts an `enqueue` run on the thread, created at `created_at`.
async fn enqueue(storage: &SqliteStorage, thread_id: Uuid, created_at: Timestamp) -> Run {
    storage
        .create_run(new_run(run(
            thread_id,
            created_at,
            MultitaskStrategy::Enqueue,
        )))
        .await
        .expect("storage call")
        .run
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "callers write the values in place with json!"
)]
fn checkpoint(run_id: Option<Uuid>, values: Value, at: Timestamp) -> NewCheckpoint {
    NewCheckpoint {
        checkpoint_id: Uuid::now_v7().to_string(),
        run_id,
        values: JsonText::of(&values),
        metadata: obj(json!({"source": "loop", "step": 1})),
        next: Vec::new(),
        interrupts: Vec::new(),
        created_at: at,
    }
}

fn success(run_id: Uuid, values: Option<Value>, at: Timestamp) -> FinishedRun {
    FinishedRun {
        run_id,
        status: RunStatus::Success,
        values: values.as_ref().map(JsonText::of),
        thread_status: ThreadStatus::Idle,
        error: None,
        interrupts: BTreeMap::new(),
        events: Vec::new(),
        checkpoints: values
            .map(|values| checkpoint(Some(run_id), values, at))
            .into_iter()
            .collect(),
        at,
    }
}

async fn thread_of(storage: &SqliteStorage, thread_id: Uuid) -> Thread {
    storage
        .get_thread(thread_id)
        .await
        .expect("storage call")
        .expect("storage call")
}

async fn status_of(storage: &SqliteStorage, thread_id: Uuid, run_id: Uuid) -> RunStatus {
    storage
        .get_run(thread_id, run_id)
        .await
        .expect("storage call")
        .expect("storage call")
        .status
}

fn page(limit: u32) -> RunPage {
    RunPage {
        limit,
        offset: 0,
        status: None,
    }
}

fn search() -> ThreadSearchRequest {
    ThreadSearchRequest {
        limit: 100,
        ..ThreadSearchRequest::default()
    }
}

fn ids(threads: &[Thread]) -> Vec<Uuid> {
    threads.iter().map(|thread| thread.thread_id).collect()
}

fn event(seq: u64, name: &str) -> StoredEvent {
    StoredEvent {
        seq,
        event: name.to_owned(),
        data: format!("{{\"seq\":{seq}}}").into(),
    }
}

fn ns(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|label| (*label).to_owned()).collect()
}

fn item_search(prefix: Option<&[&str]>) -> StoreSearchRequest {
    StoreSearchRequest {
        namespace_prefix: prefix.map(ns),
        filter: None,
        limit: 100,
        offset: 0,
        query: None,
        refresh_ttl: None,
        extra: JsonObject::new(),
    }
}

fn namespaces_request() -> StoreListNamespacesRequest {
    StoreListNamespacesRequest {
        prefix: None,
        suffix: None,
        max_depth: None,
        limit: 100,
        offset: 0,
        extra: JsonObject::new(),
    }
}

// ---- threads ----

#[tokio::test]
async fn a_new_thread_reads_back_as_created_with_its_keys() {
    let storage = memory();
    let created = create(&storage, json!({"user": "ann", "n": 1}), t(0)).await;
    let read = thread_of(&storage, created.thread_id).await;
    assert_eq!(read, created);
    let wire = serde_json::to_value(&read).unwrap();
    assert_eq!(wire["values"], Value::Null);
    assert!(wire.get("interrupts").is_none(), "{wire}");
    assert!(wire.get("error").is_none(), "{wire}");
    assert_eq!(wire["status"], "idle");
    assert_eq!(wire["config"], json!({}));
    assert!(storage.get_thread(Uuid::now_v7()).await.unwrap().is_none());
}

#[tokio::test]
async fn every_thread_field_survives_storage() {
    let storage = memory();
    let mut interrupts = BTreeMap::new();
    interrupts.insert(
        "task-1".to_owned(),
        vec![Interrupt {
            id: Some("i-1".to_owned()),
            value: json!({"question": "ok?"}),
            extra: obj(json!({"response_schema": {"type": "string"}})),
        }],
    );
    let full = Thread {
        thread_id: Uuid::now_v7(),
        created_at: t(1),
        updated_at: t(2),
        state_updated_at: None,
        metadata: obj(json!({"nested": {"a": [1, 2.5, null]}, "flag": true})),
        status: ThreadStatus::Interrupted,
        config: None,
        values: Nullable::Present(json!({"messages": [{"type": "human", "content": "hi"}]})),
        interrupts: Some(interrupts),
        error: Nullable::Present(json!({"error": "ValueError", "message": "boom"})),
        ttl: Some(json!({"strategy": "delete", "ttl": 5.0})),
        extracted: None,
        extra: obj(json!({"unknown_key": {"kept": "as given"}, "z": 1})),
    };
    let stored = storage
        .create_thread(full.clone(), IfExists::Raise)
        .await
        .unwrap();
    assert_eq!(stored, full);
    assert_eq!(thread_of(&storage, full.thread_id).await, full);

    // Absent and null stay apart.
    let mut nulls = thread(json!({}), t(3));
    nulls.error = Nullable::Null;
    nulls.values = Nullable::Absent;
    storage
        .create_thread(nulls.clone(), IfExists::Raise)
        .await
        .unwrap();
    let read = thread_of(&storage, nulls.thread_id).await;
    assert_eq!(read.error, Nullable::Null);
    assert_eq!(read.values, Nullable::Absent);
    let wire = serde_json::to_value(&read).unwrap();
    assert_eq!(wire["error"], Value::Null);
    assert!(wire.get("values").is_none());
}

#[tokio::test]
async fn create_thread_honours_if_exists() {
    let storage = memory();
    let first = create(&storage, json!({"v": 1}), t(0)).await;
    let mut again = thread(json!({"v": 2}), t(5));
    again.thread_id = first.thread_id;
    let raised = storage
        .create_thread(again.clone(), IfExists::Raise)
        .await
        .unwrap_err();
    assert!(
        matches!(raised, StorageError::ThreadExists(id) if id == first.thread_id),
        "{raised:?}"
    );
    let kept = storage
        .create_thread(again, IfExists::DoNothing)
        .await
        .unwrap();
    assert_eq!(kept, first);
    assert_eq!(thread_of(&storage, first.thread_id).await, first);
}

#[tokio::test]
async fn patch_thread_merges_metadata_key_by_key() {
    let storage = memory();
    let created = create(&storage, json!({"a": 1, "b": 2}), t(0)).await;
    let patched = storage
        .patch_thread(created.thread_id, obj(json!({"b": 3, "c": {"d": 4}})), t(9))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(patched.metadata.clone()),
        json!({"a": 1, "b": 3, "c": {"d": 4}})
    );
    assert_eq!(patched.updated_at, t(9));
    assert_eq!(patched.created_at, t(0));
    assert_eq!(thread_of(&storage, created.thread_id).await, patched);

    let missing = Uuid::now_v7();
    let error = storage
        .patch_thread(missing, JsonObject::new(), t(9))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::ThreadNotFound(id) if id == missing));
}

#[tokio::test]
async fn delete_thread_removes_its_runs_events_and_checkpoints() {
    let storage = memory();
    let doomed = create(&storage, json!({}), t(0)).await;
    let other = create(&storage, json!({}), t(0)).await;
    let doomed_run = enqueue(&storage, doomed.thread_id, t(1)).await;
    let other_run = enqueue(&storage, other.thread_id, t(1)).await;
    storage
        .append_events(doomed_run.run_id, &[event(1, "values")])
        .await
        .unwrap();
    storage
        .append_events(other_run.run_id, &[event(1, "values")])
        .await
        .unwrap();
    storage
        .update_thread_state(doomed.thread_id, checkpoint(None, json!({"x": 1}), t(2)))
        .await
        .unwrap();

    assert!(storage.delete_thread(doomed.thread_id).await.unwrap());
    assert!(!storage.delete_thread(doomed.thread_id).await.unwrap());
    assert!(
        storage
            .get_thread(doomed.thread_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        storage
            .get_run(doomed.thread_id, doomed_run.run_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        storage
            .events_after(doomed_run.run_id, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        storage
            .list_checkpoints(doomed.thread_id, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    let pending = storage
        .runs_with_status(&[RunStatus::Pending])
        .await
        .unwrap();
    assert_eq!(
        pending.iter().map(|run| run.run_id).collect::<Vec<_>>(),
        vec![other_run.run_id]
    );
    assert_eq!(
        storage
            .events_after(other_run.run_id, 0)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn search_threads_filters_by_metadata_values_status_and_ids() {
    let storage = memory();
    let a = create(&storage, json!({"user": "ann", "team": "x", "n": 1}), t(1)).await;
    let b = create(&storage, json!({"user": "bob", "team": "x", "n": 2}), t(2)).await;
    let c = create(
        &storage,
        json!({"user": "ann", "tags": ["p"], "deep": {"k": 1}}),
        t(3),
    )
    .await;
    let d = create(&storage, json!({"user": "a\"n\\n", "team": "y"}), t(4)).await;
    // `c` gets values and becomes busy with a run.
    storage
        .update_thread_state(
            c.thread_id,
            checkpoint(None, json!({"topic": "rust", "k": 2}), t(5)),
        )
        .await
        .unwrap();
    enqueue(&storage, c.thread_id, t(6)).await;

    let by = |metadata: Value| ThreadSearchRequest {
        metadata: Some(obj(metadata)),
        ..search()
    };
    let found = storage
        .search_threads(&by(json!({"user": "ann"})))
        .await
        .unwrap();
    assert_eq!(ids(&found), vec![c.thread_id, a.thread_id]);
    let found = storage
        .search_threads(&by(json!({"user": "ann", "team": "x"})))
        .await
        .unwrap();
    assert_eq!(ids(&found), vec![a.thread_id]);
    let found = storage.search_threads(&by(json!({"n": 2}))).await.unwrap();
    assert_eq!(ids(&found), vec![b.thread_id]);
    let found = storage
        .search_threads(&by(json!({"n": "2"})))
        .await
        .unwrap();
    assert!(found.is_empty(), "a string does not equal a number");
    let found = storage
        .search_threads(&by(json!({"tags": ["p"]})))
        .await
        .unwrap();
    assert_eq!(ids(&found), vec![c.thread_id]);
    let found = storage
        .search_threads(&by(json!({"deep": {"k": 1}})))
        .await
        .unwrap();
    assert_eq!(ids(&found), vec![c.thread_id]);
    let found = storage
        .search_threads(&by(json!({"deep": {}})))
        .await
        .unwrap();
    assert!(found.is_empty(), "containment is top-level equality");
    let found = storage
        .search_threads(&by(json!({"missing": null})))
        .await
        .unwrap();
    assert!(found.is_empty(), "a missing key is not null");
    let found = storage
        .search_threads(&by(json!({"user": "a\"n\\n"})))
        .await
        .unwrap();
    assert_eq!(ids(&found), vec![d.thread_id]);
    let found = storage.search_threads(&by(json!({}))).await.unwrap();
    assert_eq!(found.len(), 4);

    let values = ThreadSearchRequest {
        values: Some(obj(json!({"topic": "rust"}))),
        ..search()
    };
    assert_eq!(
        ids(&storage.search_threads(&values).await.unwrap()),
        vec![c.thread_id]
    );
    let values = ThreadSearchRequest {
        values: Some(obj(json!({"topic": "rust", "k": 3}))),
        ..search()
    };
    assert!(storage.search_threads(&values).await.unwrap().is_empty());

    let busy = ThreadSearchRequest {
        status: Some(ThreadStatus::Busy),
        ..search()
    };
    assert_eq!(
        ids(&storage.search_threads(&busy).await.unwrap()),
        vec![c.thread_id]
    );
    let idle = ThreadSearchRequest {
        status: Some(ThreadStatus::Idle),
        metadata: Some(obj(json!({"team": "x"}))),
        ..search()
    };
    assert_eq!(
        ids(&storage.search_threads(&idle).await.unwrap()),
        vec![b.thread_id, a.thread_id]
    );

    let only = ThreadSearchRequest {
        ids: Some(vec![a.thread_id, d.thread_id, Uuid::now_v7()]),
        ..search()
    };
    assert_eq!(
        ids(&storage.search_threads(&only).await.unwrap()),
        vec![d.thread_id, a.thread_id]
    );
    let none = ThreadSearchRequest {
        ids: Some(Vec::new()),
        ..search()
    };
    assert!(storage.search_threads(&none).await.unwrap().is_empty());
}

#[tokio::test]
async fn search_threads_sorts_and_pages() {
    let storage = memory();
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(create(&storage, json!({"i": i}), t(i)).await);
    }
    // Touch them in reverse creation order, so `updated_at` runs the other way.
    for (n, thread) in created.iter().rev().enumerate() {
        storage
            .patch_thread(
                thread.thread_id,
                obj(json!({"touched": n})),
                t(100 + n as i64),
            )
            .await
            .unwrap();
    }
    let by_creation: Vec<Uuid> = ids(&created);
    let newest_first: Vec<Uuid> = by_creation.iter().rev().copied().collect();

    let sorted = |sort_by: Option<&str>, sort_order: Option<SortOrder>| ThreadSearchRequest {
        sort_by: sort_by.map(str::to_owned),
        sort_order,
        ..search()
    };
    let found = storage.search_threads(&sorted(None, None)).await.unwrap();
    assert_eq!(ids(&found), newest_first);
    let found = storage
        .search_threads(&sorted(Some("created_at"), Some(SortOrder::Asc)))
        .await
        .unwrap();
    assert_eq!(ids(&found), by_creation);
    let found = storage
        .search_threads(&sorted(Some("updated_at"), Some(SortOrder::Desc)))
        .await
        .unwrap();
    assert_eq!(ids(&found), by_creation);
    let found = storage
        .search_threads(&sorted(Some("updated_at"), Some(SortOrder::Asc)))
        .await
        .unwrap();
    assert_eq!(ids(&found), newest_first);
    let found = storage
        .search_threads(&sorted(Some("no_such_field"), Some(SortOrder::Asc)))
        .await
        .unwrap();
    assert_eq!(
        ids(&found),
        by_creation,
        "an unknown sort_by sorts by created_at"
    );
    let found = storage
        .search_threads(&sorted(Some("thread_id"), Some(SortOrder::Asc)))
        .await
        .unwrap();
    let mut by_id = by_creation.clone();
    by_id.sort();
    assert_eq!(ids(&found), by_id);
    let found = storage
        .search_threads(&sorted(Some("state_updated_at"), Some(SortOrder::Asc)))
        .await
        .unwrap();
    assert_eq!(ids(&found), by_creation);

    // One thread busy: sorting by status puts `busy` before `idle` ascending.
    enqueue(&storage, created[2].thread_id, t(200)).await;
    let found = storage
        .search_threads(&sorted(Some("status"), Some(SortOrder::Asc)))
        .await
        .unwrap();
    assert_eq!(found[0].thread_id, created[2].thread_id);
    let found = storage
        .search_threads(&sorted(Some("status"), Some(SortOrder::Desc)))
        .await
        .unwrap();
    assert_eq!(found[4].thread_id, created[2].thread_id);

    let paged = |limit, offset| ThreadSearchRequest {
        limit,
        offset,
        sort_by: Some("created_at".to_owned()),
        sort_order: Some(SortOrder::Asc),
        ..search()
    };
    assert_eq!(
        ids(&storage.search_threads(&paged(2, 0)).await.unwrap()),
        by_creation[0..2]
    );
    assert_eq!(
        ids(&storage.search_threads(&paged(2, 2)).await.unwrap()),
        by_creation[2..4]
    );
    assert_eq!(
        ids(&storage.search_threads(&paged(2, 4)).await.unwrap()),
        by_creation[4..5]
    );
    assert!(
        storage
            .search_threads(&paged(2, 5))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        storage
            .search_threads(&paged(0, 0))
            .await
            .unwrap()
            .is_empty()
    );

    // Paging applies after the metadata filter.
    let filtered = ThreadSearchRequest {
        metadata: Some(obj(json!({"touched": 1}))),
        limit: 1,
        offset: 0,
        ..search()
    };
    assert_eq!(
        ids(&storage.search_threads(&filtered).await.unwrap()),
        vec![created[3].thread_id]
    );
}

// ---- create_run and the multitask strategies ----

#[tokio::test]
async fn create_run_creates_a_missing_thread_only_when_allowed() {
    let storage = memory();
    let thread_id = Uuid::now_v7();
    let rejected = storage
        .create_run(new_run(run(thread_id, t(1), MultitaskStrategy::Enqueue)))
        .await
        .unwrap_err();
    assert!(matches!(rejected, StorageError::ThreadNotFound(id) if id == thread_id));
    assert!(storage.get_thread(thread_id).await.unwrap().is_none());
    assert!(
        storage
            .runs_with_status(&[RunStatus::Pending])
            .await
            .unwrap()
            .is_empty()
    );

    let mut wanted = run(thread_id, t(1), MultitaskStrategy::Reject);
    wanted.status = RunStatus::Running; // storage inserts it pending whatever it says
    let created = storage
        .create_run(NewRun {
            run: wanted.clone(),
            if_not_exists: IfNotExists::Create,
            thread_metadata: obj(json!({"graph_id": "echo", "assistant_id": "a"})),
            start: false,
        })
        .await
        .unwrap();
    assert!(created.to_cancel.is_empty());
    assert_eq!(created.run.status, RunStatus::Pending);
    let thread = thread_of(&storage, thread_id).await;
    assert_eq!(thread.status, ThreadStatus::Busy);
    assert_eq!(
        Value::Object(thread.metadata),
        json!({"graph_id": "echo", "assistant_id": "a"})
    );
    assert_eq!(thread.values, Nullable::Null);
    assert_eq!(thread.error, Nullable::Absent);
    let stored = storage
        .get_run(thread_id, wanted.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, created.run);
    assert_eq!(stored.extra, wanted.extra);
    assert_eq!(stored.kwargs, wanted.kwargs);
}

#[tokio::test]
async fn reject_refuses_a_busy_thread_and_inserts_nothing() {
    let storage = memory();
    let thread = create(&storage, json!({"keep": true}), t(0)).await;
    // On an idle thread, reject is accepted.
    let first = storage
        .create_run(new_run(run(
            thread.thread_id,
            t(1),
            MultitaskStrategy::Reject,
        )))
        .await
        .unwrap();
    assert!(first.to_cancel.is_empty());
    let before = thread_of(&storage, thread.thread_id).await;

    let refused = run(thread.thread_id, t(2), MultitaskStrategy::Reject);
    let mut request = new_run(refused.clone());
    request.thread_metadata = obj(json!({"graph_id": "other"}));
    let error = storage.create_run(request).await.unwrap_err();
    assert!(matches!(error, StorageError::ThreadBusy), "{error:?}");
    assert!(
        storage
            .get_run(thread.thread_id, refused.run_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        storage
            .list_runs(thread.thread_id, page(10))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(thread_of(&storage, thread.thread_id).await, before);

    // Busy while running too.
    storage.claim_next_run(t(3)).await.unwrap().unwrap();
    let error = storage
        .create_run(new_run(run(
            thread.thread_id,
            t(4),
            MultitaskStrategy::Reject,
        )))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::ThreadBusy));

    // Not busy once the run finished.
    storage
        .finish_run(&success(first.run.run_id, None, t(5)))
        .await
        .unwrap();
    storage
        .create_run(new_run(run(
            thread.thread_id,
            t(6),
            MultitaskStrategy::Reject,
        )))
        .await
        .unwrap();
}

#[tokio::test]
async fn interrupt_and_rollback_name_the_runs_to_cancel() {
    for strategy in [MultitaskStrategy::Interrupt, MultitaskStrategy::Rollback] {
        let storage = memory();
        let thread = create(&storage, json!({}), t(0)).await;
        let other = create(&storage, json!({}), t(0)).await;
        let done = enqueue(&storage, thread.thread_id, t(1)).await;
        storage.claim_next_run(t(1)).await.unwrap().unwrap();
        storage
            .finish_run(&success(done.run_id, None, t(2)))
            .await
            .unwrap();
        let running = enqueue(&storage, thread.thread_id, t(3)).await;
        storage.claim_next_run(t(3)).await.unwrap().unwrap();
        let pending = enqueue(&storage, thread.thread_id, t(4)).await;
        enqueue(&storage, other.thread_id, t(4)).await;

        let created = storage
            .create_run(new_run(run(thread.thread_id, t(5), strategy)))
            .await
            .unwrap();
        assert_eq!(
            created.to_cancel,
            vec![running.run_id, pending.run_id],
            "{strategy:?}"
        );
        assert_eq!(created.run.status, RunStatus::Pending);
        assert_eq!(
            thread_of(&storage, thread.thread_id).await.status,
            ThreadStatus::Busy
        );
        // On an idle thread there is nothing to cancel.
        let idle = create(&storage, json!({}), t(6)).await;
        let created = storage
            .create_run(new_run(run(idle.thread_id, t(6), strategy)))
            .await
            .unwrap();
        assert!(created.to_cancel.is_empty());
    }
}

#[tokio::test]
async fn enqueue_adds_a_pending_run_and_merges_thread_metadata() {
    let storage = memory();
    let thread = create(&storage, json!({"user": "ann", "graph_id": "old"}), t(0)).await;
    let first = enqueue(&storage, thread.thread_id, t(1)).await;
    let mut second = new_run(run(thread.thread_id, t(2), MultitaskStrategy::Enqueue));
    second.thread_metadata = obj(json!({"graph_id": "echo", "assistant_id": "asst"}));
    let second = storage.create_run(second).await.unwrap();
    assert!(second.to_cancel.is_empty());

    let stored = thread_of(&storage, thread.thread_id).await;
    assert_eq!(stored.status, ThreadStatus::Busy);
    assert_eq!(stored.updated_at, t(2));
    assert_eq!(
        Value::Object(stored.metadata),
        json!({"user": "ann", "graph_id": "echo", "assistant_id": "asst"})
    );
    let runs = storage.list_runs(thread.thread_id, page(10)).await.unwrap();
    assert_eq!(
        runs.iter().map(|run| run.run_id).collect::<Vec<_>>(),
        vec![second.run.run_id, first.run_id]
    );
    assert!(runs.iter().all(|run| run.status == RunStatus::Pending));
}

// ---- claiming ----

#[tokio::test]
async fn claim_takes_the_oldest_runnable_run() {
    let storage = memory();
    let a = create(&storage, json!({}), t(0)).await;
    let b = create(&storage, json!({}), t(0)).await;
    let c = create(&storage, json!({}), t(0)).await;
    // Inserted out of time order: claim order follows created_at.
    let b1 = enqueue(&storage, b.thread_id, t(2)).await;
    let a1 = enqueue(&storage, a.thread_id, t(1)).await;
    let a2 = enqueue(&storage, a.thread_id, t(3)).await;
    let c_later = enqueue(&storage, c.thread_id, t(50)).await;
    assert_eq!(storage.next_pending_after(t(0)).await.unwrap(), Some(t(1)));

    let first = storage.claim_next_run(t(10)).await.unwrap().unwrap();
    assert_eq!(first.run.run_id, a1.run_id);
    assert_eq!(first.run.status, RunStatus::Running);
    assert_eq!(first.run.updated_at, t(10));
    assert_eq!(first.attempt, 1);
    assert_eq!(first.start, Start::Values(Value::Null));
    // a2 waits for a1 (its thread has a running run): b1 is next.
    let second = storage.claim_next_run(t(10)).await.unwrap().unwrap();
    assert_eq!(second.run.run_id, b1.run_id);
    // Nothing else may start: a2 is blocked and c's run is in the future.
    assert!(storage.claim_next_run(t(10)).await.unwrap().is_none());
    // a2 is due but blocked; only c's later run is still to come.
    assert_eq!(
        storage.next_pending_after(t(10)).await.unwrap(),
        Some(t(50))
    );

    let ended = storage
        .finish_run(&success(a1.run_id, Some(json!({"after": "a1"})), t(11)))
        .await
        .unwrap()
        .unwrap();
    // a2 waits on the thread: the executor is told to look.
    assert!(ended.thread_busy);
    let third = storage.claim_next_run(t(12)).await.unwrap().unwrap();
    assert_eq!(third.run.run_id, a2.run_id);
    assert_eq!(third.start, Start::Values(json!({"after": "a1"})));
    assert!(storage.claim_next_run(t(49)).await.unwrap().is_none());
    let fourth = storage.claim_next_run(t(50)).await.unwrap().unwrap();
    assert_eq!(fourth.run.run_id, c_later.run_id);
    assert!(storage.claim_next_run(t(1000)).await.unwrap().is_none());
    assert_eq!(storage.next_pending_after(t(0)).await.unwrap(), None);
    assert_eq!(
        status_of(&storage, a.thread_id, a2.run_id).await,
        RunStatus::Running
    );
}

#[tokio::test]
async fn per_thread_order_follows_created_at_not_insertion() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    // A delayed run inserted first, then one for now: the one for now runs first.
    let delayed = enqueue(&storage, thread.thread_id, t(20)).await;
    let now = enqueue(&storage, thread.thread_id, t(1)).await;
    // Same microsecond: insertion order.
    let tie_one = enqueue(&storage, thread.thread_id, t(30)).await;
    let tie_two = enqueue(&storage, thread.thread_id, t(30)).await;
    let mut order = Vec::new();
    while let Some(claimed) = storage.claim_next_run(t(100)).await.unwrap() {
        order.push(claimed.run.run_id);
        storage
            .finish_run(&success(claimed.run.run_id, None, t(100)))
            .await
            .unwrap();
    }
    assert_eq!(
        order,
        vec![now.run_id, delayed.run_id, tie_one.run_id, tie_two.run_id]
    );
    assert_eq!(
        thread_of(&storage, thread.thread_id).await.status,
        ThreadStatus::Idle
    );
}

/// Several workers claim, then finish, until nothing is left.
async fn claim_concurrently(storage: SqliteStorage, threads: usize, runs_per_thread: usize) {
    let mut expected: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut thread_ids = Vec::new();
    for _ in 0..threads {
        thread_ids.push(create(&storage, json!({}), t(0)).await.thread_id);
    }
    for i in 0..runs_per_thread {
        for thread_id in &thread_ids {
            let run = enqueue(&storage, *thread_id, t(1 + i as i64)).await;
            expected.entry(*thread_id).or_default().push(run.run_id);
        }
    }
    let log: Arc<Mutex<Vec<(Uuid, Uuid)>>> = Arc::default();
    let running: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let storage = storage.clone();
        let log = Arc::clone(&log);
        let running = Arc::clone(&running);
        workers.push(tokio::spawn(async move {
            while let Some(claimed) = storage
                .claim_next_run(t(1_000_000))
                .await
                .expect("storage call")
            {
                let thread_id = claimed.run.thread_id;
                assert!(
                    running.lock().expect("the running set").insert(thread_id),
                    "two runs of one thread running at once"
                );
                log.lock()
                    .expect("the log")
                    .push((thread_id, claimed.run.run_id));
                tokio::task::yield_now().await;
                running.lock().expect("the running set").remove(&thread_id);
                storage
                    .finish_run(&success(claimed.run.run_id, None, t(1_000_000)))
                    .await
                    .expect("storage call");
            }
        }));
    }
    // A worker stops when nothing is claimable at that moment; keep going until all ran.
    for worker in workers {
        worker.await.expect("a worker");
    }
    while let Some(claimed) = storage
        .claim_next_run(t(1_000_000))
        .await
        .expect("storage call")
    {
        log.lock()
            .expect("the log")
            .push((claimed.run.thread_id, claimed.run.run_id));
        storage
            .finish_run(&success(claimed.run.run_id, None, t(1_000_000)))
            .await
            .expect("storage call");
    }
    let log = log.lock().expect("the log").clone();
    let unique: HashSet<Uuid> = log.iter().map(|(_, run_id)| *run_id).collect();
    assert_eq!(
        log.len(),
        threads * runs_per_thread,
        "every run claimed once"
    );
    assert_eq!(unique.len(), log.len(), "no run claimed twice");
    let mut per_thread: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (thread_id, run_id) in log {
        per_thread.entry(thread_id).or_default().push(run_id);
    }
    assert_eq!(per_thread, expected, "each thread's runs in creation order");
    let attempts_left = storage
        .runs_with_status(&[RunStatus::Pending, RunStatus::Running])
        .await
        .expect("storage call");
    assert!(attempts_left.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_run() {
    let dir = TempDir::new();
    claim_concurrently(SqliteStorage::open(dir.db()).unwrap(), 200, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_keep_per_thread_order() {
    let dir = TempDir::new();
    claim_concurrently(SqliteStorage::open(dir.db()).unwrap(), 20, 10).await;
    claim_concurrently(memory(), 10, 10).await;
}

// ---- finishing ----

#[tokio::test]
async fn finish_run_updates_the_thread_and_parents_checkpoints() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let by_hand = storage
        .update_thread_state(thread.thread_id, checkpoint(None, json!({"n": 0}), t(1)))
        .await
        .unwrap();
    assert_eq!(by_hand.parent_checkpoint_id, None);

    let first = enqueue(&storage, thread.thread_id, t(2)).await;
    let second = enqueue(&storage, thread.thread_id, t(3)).await;
    let claimed = storage.claim_next_run(t(4)).await.unwrap().unwrap();
    assert_eq!(claimed.start, Start::Values(json!({"n": 0})));

    // Another run is pending: the thread stays busy whatever the first run says.
    let mut interrupts = BTreeMap::new();
    interrupts.insert(
        "task".to_owned(),
        vec![Interrupt {
            id: Some("int".to_owned()),
            value: json!("continue?"),
            extra: JsonObject::new(),
        }],
    );
    let first_checkpoint = checkpoint(Some(first.run_id), json!({"n": 1}), t(5));
    let finished = storage
        .finish_run(&FinishedRun {
            run_id: first.run_id,
            status: RunStatus::Success,
            values: Some(JsonText::of(&json!({"n": 1}))),
            thread_status: ThreadStatus::Interrupted,
            error: None,
            interrupts: interrupts.clone(),
            events: Vec::new(),
            checkpoints: vec![first_checkpoint.clone()],
            at: t(5),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(finished.thread_busy);
    let finished = storage
        .get_run(thread.thread_id, first.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(finished.status, RunStatus::Success);
    assert_eq!(finished.updated_at, t(5));
    assert_eq!(finished.created_at, t(2));
    let stored = thread_of(&storage, thread.thread_id).await;
    assert_eq!(stored.status, ThreadStatus::Busy);
    assert_eq!(stored.values, Nullable::Present(json!({"n": 1})));
    assert_eq!(stored.interrupts, Some(interrupts));
    assert_eq!(stored.error, Nullable::Null);
    assert_eq!(stored.updated_at, t(5));
    assert_eq!(stored.state_updated_at, Some(t(5)));

    // The last run fails: the thread takes its status and error; no values keeps the old ones.
    storage.claim_next_run(t(6)).await.unwrap().unwrap();
    let error = json!({"error": "EchoError", "message": "boom"});
    let second_checkpoint = checkpoint(Some(second.run_id), json!({"n": 1}), t(7));
    storage
        .finish_run(&FinishedRun {
            run_id: second.run_id,
            status: RunStatus::Error,
            values: None,
            thread_status: ThreadStatus::Error,
            error: Some(error.clone()),
            interrupts: BTreeMap::new(),
            events: Vec::new(),
            checkpoints: vec![second_checkpoint.clone()],
            at: t(7),
        })
        .await
        .unwrap()
        .unwrap();
    let stored = thread_of(&storage, thread.thread_id).await;
    assert_eq!(stored.status, ThreadStatus::Error);
    assert_eq!(stored.values, Nullable::Present(json!({"n": 1})));
    assert_eq!(stored.error, Nullable::Present(error));
    assert_eq!(stored.interrupts, Some(BTreeMap::new()));
    let wire = serde_json::to_value(&stored).unwrap();
    assert_eq!(wire["interrupts"], json!({}));
    assert_eq!(
        status_of(&storage, thread.thread_id, second.run_id).await,
        RunStatus::Error
    );

    let history = storage
        .list_checkpoints(thread.thread_id, 10, None)
        .await
        .unwrap();
    assert_eq!(
        history
            .iter()
            .map(|record| record.checkpoint_id.as_str())
            .collect::<Vec<_>>(),
        vec![
            second_checkpoint.checkpoint_id.as_str(),
            first_checkpoint.checkpoint_id.as_str(),
            by_hand.checkpoint_id.as_str(),
        ]
    );
    assert_eq!(
        history[0].parent_checkpoint_id.as_deref(),
        Some(first_checkpoint.checkpoint_id.as_str())
    );
    assert_eq!(
        history[1].parent_checkpoint_id.as_deref(),
        Some(by_hand.checkpoint_id.as_str())
    );
    assert_eq!(history[1].run_id, Some(first.run_id));
    assert_eq!(history[1].values, json!({"n": 1}));
    assert_eq!(history[1].metadata, first_checkpoint.metadata);
    assert_eq!(history[1].created_at, t(5));

    // A successful run afterwards clears the error to null.
    let third = enqueue(&storage, thread.thread_id, t(8)).await;
    storage.claim_next_run(t(8)).await.unwrap().unwrap();
    storage
        .finish_run(&success(third.run_id, Some(json!({"n": 3})), t(9)))
        .await
        .unwrap();
    let stored = thread_of(&storage, thread.thread_id).await;
    assert_eq!(stored.status, ThreadStatus::Idle);
    assert_eq!(stored.error, Nullable::Null);
    let wire = serde_json::to_value(&stored).unwrap();
    assert_eq!(wire["error"], Value::Null);
}

#[tokio::test]
async fn finish_run_of_a_deleted_run_changes_nothing() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let gone = enqueue(&storage, thread.thread_id, t(1)).await;
    storage.claim_next_run(t(1)).await.unwrap().unwrap();
    assert!(storage.rollback_run(gone.run_id, t(2)).await.unwrap());
    let before = thread_of(&storage, thread.thread_id).await;
    let answer = storage
        .finish_run(&success(gone.run_id, Some(json!({"late": true})), t(3)))
        .await
        .unwrap();
    assert!(answer.is_none());
    assert_eq!(thread_of(&storage, thread.thread_id).await, before);
    assert!(
        storage
            .list_checkpoints(thread.thread_id, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- transitions, rollback, delete ----

#[tokio::test]
async fn transition_run_is_a_compare_and_set() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let first = enqueue(&storage, thread.thread_id, t(1)).await;
    let second = enqueue(&storage, thread.thread_id, t(2)).await;

    // The CAS does not apply: the run comes back unchanged.
    let unchanged = storage
        .transition_run(
            first.run_id,
            &[RunStatus::Running],
            RunStatus::Interrupted,
            t(3),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.status, RunStatus::Pending);
    assert_eq!(unchanged.updated_at, t(1));

    // Cancel the first pending run: the second keeps the thread busy.
    let cancelled = storage
        .transition_run(
            first.run_id,
            &[RunStatus::Pending, RunStatus::Running],
            RunStatus::Interrupted,
            t(4),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.status, RunStatus::Interrupted);
    assert_eq!(cancelled.updated_at, t(4));
    assert_eq!(
        thread_of(&storage, thread.thread_id).await.status,
        ThreadStatus::Busy
    );

    // Cancel the last one: the thread becomes idle.
    storage
        .transition_run(
            second.run_id,
            &[RunStatus::Pending],
            RunStatus::Interrupted,
            t(5),
        )
        .await
        .unwrap()
        .unwrap();
    let stored = thread_of(&storage, thread.thread_id).await;
    assert_eq!(stored.status, ThreadStatus::Idle);
    assert_eq!(stored.updated_at, t(5));
    // A cancelled run is never claimed.
    assert!(storage.claim_next_run(t(100)).await.unwrap().is_none());

    // Terminal runs do not move again.
    let again = storage
        .transition_run(
            second.run_id,
            &[RunStatus::Pending],
            RunStatus::Running,
            t(6),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.status, RunStatus::Interrupted);

    assert!(
        storage
            .transition_run(
                Uuid::now_v7(),
                &[RunStatus::Pending],
                RunStatus::Error,
                t(7)
            )
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn transition_run_keeps_a_non_busy_thread_status() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let failed = enqueue(&storage, thread.thread_id, t(1)).await;
    storage.claim_next_run(t(1)).await.unwrap().unwrap();
    storage
        .finish_run(&FinishedRun {
            run_id: failed.run_id,
            status: RunStatus::Error,
            values: None,
            thread_status: ThreadStatus::Error,
            error: Some(json!({"error": "E", "message": "m"})),
            interrupts: BTreeMap::new(),
            events: Vec::new(),
            checkpoints: Vec::new(),
            at: t(2),
        })
        .await
        .unwrap();
    // A transition of a finished run leaves the thread's `error` status alone.
    storage
        .transition_run(
            failed.run_id,
            &[RunStatus::Error],
            RunStatus::Interrupted,
            t(3),
        )
        .await
        .unwrap();
    assert_eq!(
        thread_of(&storage, thread.thread_id).await.status,
        ThreadStatus::Error
    );
}

#[tokio::test]
async fn rollback_run_restores_the_previous_values() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let kept = enqueue(&storage, thread.thread_id, t(1)).await;
    storage.claim_next_run(t(1)).await.unwrap().unwrap();
    storage
        .finish_run(&success(kept.run_id, Some(json!({"v": "kept"})), t(2)))
        .await
        .unwrap();

    let doomed = enqueue(&storage, thread.thread_id, t(3)).await;
    storage.claim_next_run(t(3)).await.unwrap().unwrap();
    storage
        .append_events(doomed.run_id, &[event(1, "values"), event(2, "values")])
        .await
        .unwrap();
    // It wrote a checkpoint and values while running (finish with a status the executor
    // gives a cancelled run), then is rolled back.
    storage
        .update_thread_state(
            thread.thread_id,
            checkpoint(Some(doomed.run_id), json!({"v": "doomed"}), t(4)),
        )
        .await
        .unwrap();
    assert_eq!(
        thread_of(&storage, thread.thread_id).await.values,
        Nullable::Present(json!({"v": "doomed"}))
    );

    assert!(storage.rollback_run(doomed.run_id, t(5)).await.unwrap());
    assert!(!storage.rollback_run(doomed.run_id, t(5)).await.unwrap());
    assert!(
        storage
            .get_run(thread.thread_id, doomed.run_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        storage
            .events_after(doomed.run_id, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let stored = thread_of(&storage, thread.thread_id).await;
    assert_eq!(stored.values, Nullable::Present(json!({"v": "kept"})));
    assert_eq!(stored.status, ThreadStatus::Idle);
    let history = storage
        .list_checkpoints(thread.thread_id, 10, None)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].run_id, Some(kept.run_id));

    // Rolling back the only run of a thread leaves it with null values; other pending runs
    // keep it busy.
    let fresh = create(&storage, json!({}), t(6)).await;
    let only = enqueue(&storage, fresh.thread_id, t(6)).await;
    let next = enqueue(&storage, fresh.thread_id, t(7)).await;
    storage
        .update_thread_state(
            fresh.thread_id,
            checkpoint(Some(only.run_id), json!({"x": 1}), t(6)),
        )
        .await
        .unwrap();
    assert!(storage.rollback_run(only.run_id, t(8)).await.unwrap());
    let stored = thread_of(&storage, fresh.thread_id).await;
    assert_eq!(stored.values, Nullable::Null);
    assert_eq!(stored.status, ThreadStatus::Busy);
    assert!(storage.rollback_run(next.run_id, t(9)).await.unwrap());
    assert_eq!(
        thread_of(&storage, fresh.thread_id).await.status,
        ThreadStatus::Idle
    );
}

#[tokio::test]
async fn runs_are_read_listed_and_deleted() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let other = create(&storage, json!({}), t(0)).await;
    let r1 = enqueue(&storage, thread.thread_id, t(1)).await;
    let r2 = enqueue(&storage, thread.thread_id, t(2)).await;
    let r3 = enqueue(&storage, thread.thread_id, t(3)).await;
    let o1 = enqueue(&storage, other.thread_id, t(4)).await;
    storage.claim_next_run(t(5)).await.unwrap().unwrap(); // r1 running
    storage.claim_next_run(t(5)).await.unwrap().unwrap(); // o1 running

    assert!(
        storage
            .get_run(other.thread_id, r1.run_id)
            .await
            .unwrap()
            .is_none()
    );
    let listed = storage.list_runs(thread.thread_id, page(10)).await.unwrap();
    assert_eq!(
        listed.iter().map(|run| run.run_id).collect::<Vec<_>>(),
        vec![r3.run_id, r2.run_id, r1.run_id]
    );
    let paged = storage
        .list_runs(
            thread.thread_id,
            RunPage {
                limit: 1,
                offset: 1,
                status: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(paged[0].run_id, r2.run_id);
    let running = storage
        .list_runs(
            thread.thread_id,
            RunPage {
                limit: 10,
                offset: 0,
                status: Some(RunStatus::Running),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        running.iter().map(|run| run.run_id).collect::<Vec<_>>(),
        vec![r1.run_id]
    );
    assert!(
        storage
            .list_runs(Uuid::now_v7(), page(10))
            .await
            .unwrap()
            .is_empty()
    );

    let with_status = storage
        .runs_with_status(&[RunStatus::Running, RunStatus::Pending])
        .await
        .unwrap();
    assert_eq!(
        with_status.iter().map(|run| run.run_id).collect::<Vec<_>>(),
        vec![r1.run_id, r2.run_id, r3.run_id, o1.run_id]
    );
    assert!(storage.runs_with_status(&[]).await.unwrap().is_empty());
    assert!(
        storage
            .runs_with_status(&[RunStatus::Success])
            .await
            .unwrap()
            .is_empty()
    );

    storage
        .append_events(r2.run_id, &[event(1, "values")])
        .await
        .unwrap();
    assert!(
        !storage
            .delete_run(other.thread_id, r2.run_id)
            .await
            .unwrap()
    );
    assert!(
        storage
            .delete_run(thread.thread_id, r2.run_id)
            .await
            .unwrap()
    );
    assert!(
        !storage
            .delete_run(thread.thread_id, r2.run_id)
            .await
            .unwrap()
    );
    assert!(storage.events_after(r2.run_id, 0).await.unwrap().is_empty());
    assert_eq!(
        storage
            .list_runs(thread.thread_id, page(10))
            .await
            .unwrap()
            .len(),
        2
    );

    // Deleting the last pending runs of a thread lets it go idle.
    storage
        .finish_run(&success(r1.run_id, None, t(6)))
        .await
        .unwrap();
    assert_eq!(
        thread_of(&storage, thread.thread_id).await.status,
        ThreadStatus::Busy
    );
    assert!(
        storage
            .delete_run(thread.thread_id, r3.run_id)
            .await
            .unwrap()
    );
    assert_eq!(
        thread_of(&storage, thread.thread_id).await.status,
        ThreadStatus::Idle
    );
}

// ---- recovery ----

#[tokio::test]
async fn recover_requeues_then_fails_runs_that_were_running() {
    let storage = memory();
    let a = create(&storage, json!({}), t(0)).await;
    let b = create(&storage, json!({}), t(0)).await;
    let a1 = enqueue(&storage, a.thread_id, t(1)).await;
    let b1 = enqueue(&storage, b.thread_id, t(2)).await;
    let b2 = enqueue(&storage, b.thread_id, t(3)).await;
    storage.claim_next_run(t(4)).await.unwrap().unwrap();
    storage.claim_next_run(t(4)).await.unwrap().unwrap();

    let recovery = storage.recover(2, t(5)).await.unwrap();
    assert_eq!(recovery.requeued, vec![a1.run_id, b1.run_id]);
    assert!(recovery.failed.is_empty());
    assert_eq!(
        status_of(&storage, a.thread_id, a1.run_id).await,
        RunStatus::Pending
    );
    assert_eq!(
        status_of(&storage, b.thread_id, b2.run_id).await,
        RunStatus::Pending
    );
    assert_eq!(
        thread_of(&storage, a.thread_id).await.status,
        ThreadStatus::Busy
    );

    // The second attempt counts from the first.
    let again = storage.claim_next_run(t(6)).await.unwrap().unwrap();
    assert_eq!((again.run.run_id, again.attempt), (a1.run_id, 2));
    let again = storage.claim_next_run(t(6)).await.unwrap().unwrap();
    assert_eq!((again.run.run_id, again.attempt), (b1.run_id, 2));

    let recovery = storage.recover(2, t(7)).await.unwrap();
    assert!(recovery.requeued.is_empty());
    assert_eq!(recovery.failed, vec![a1.run_id, b1.run_id]);
    let failed = storage
        .get_run(a.thread_id, a1.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, RunStatus::Error);
    assert_eq!(failed.updated_at, t(7));
    let thread = thread_of(&storage, a.thread_id).await;
    assert_eq!(thread.status, ThreadStatus::Error);
    let error = thread.error.into_option().unwrap();
    assert_eq!(error["error"], "WorkerLost");
    assert_eq!(
        error["message"],
        "the server stopped while the run was running, and it has had 2 attempts"
    );
    // b still has a pending run: busy, with the error recorded.
    let thread = thread_of(&storage, b.thread_id).await;
    assert_eq!(thread.status, ThreadStatus::Busy);
    assert_eq!(thread.error.into_option().unwrap()["error"], "WorkerLost");
    assert_eq!(
        status_of(&storage, b.thread_id, b2.run_id).await,
        RunStatus::Pending
    );

    // Nothing running: nothing to do.
    assert_eq!(storage.recover(2, t(8)).await.unwrap(), Default::default());
}

// ---- events ----

#[tokio::test]
async fn events_append_and_replay_after_a_position() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let run = enqueue(&storage, thread.thread_id, t(1)).await;
    let other = enqueue(&storage, thread.thread_id, t(2)).await;
    storage
        .append_events(run.run_id, &[event(1, "metadata"), event(2, "values")])
        .await
        .unwrap();
    storage
        .append_events(other.run_id, &[event(1, "values")])
        .await
        .unwrap();
    storage.append_events(run.run_id, &[]).await.unwrap();
    storage
        .append_events(run.run_id, &[event(3, "updates|child:1"), event(4, "end")])
        .await
        .unwrap();
    let all = storage.events_after(run.run_id, 0).await.unwrap();
    assert_eq!(
        all,
        vec![
            event(1, "metadata"),
            event(2, "values"),
            event(3, "updates|child:1"),
            event(4, "end")
        ]
    );
    assert_eq!(
        storage.events_after(run.run_id, 2).await.unwrap(),
        vec![event(3, "updates|child:1"), event(4, "end")]
    );
    assert!(
        storage
            .events_after(run.run_id, 4)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        storage
            .events_after(run.run_id, u64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        storage
            .events_after(Uuid::now_v7(), 0)
            .await
            .unwrap()
            .is_empty()
    );

    // A position used twice is refused, not overwritten.
    let error = storage
        .append_events(run.run_id, &[event(4, "again")])
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Backend(_)));
    assert_eq!(
        storage.events_after(run.run_id, 3).await.unwrap(),
        vec![event(4, "end")]
    );

    // Events of a run that no longer exists are dropped.
    let ghost = Uuid::now_v7();
    storage
        .append_events(ghost, &[event(1, "values")])
        .await
        .unwrap();
    assert!(storage.events_after(ghost, 0).await.unwrap().is_empty());
}

// ---- checkpoints ----

#[tokio::test]
async fn update_thread_state_and_list_checkpoints() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let missing = Uuid::now_v7();
    let error = storage
        .update_thread_state(missing, checkpoint(None, json!({}), t(1)))
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::ThreadNotFound(id) if id == missing));

    let mut records = Vec::new();
    for i in 0..5 {
        let mut new = checkpoint(None, json!({"i": i}), t(10 + i));
        new.next = vec!["node".to_owned()];
        new.interrupts = vec![Interrupt {
            id: None,
            value: json!(i),
            extra: JsonObject::new(),
        }];
        let record = storage
            .update_thread_state(thread.thread_id, new.clone())
            .await
            .unwrap();
        assert_eq!(record.checkpoint_id, new.checkpoint_id);
        assert_eq!(record.thread_id, thread.thread_id);
        assert_eq!(record.values, json!({"i": i}));
        assert_eq!(record.next, new.next);
        assert_eq!(record.interrupts, new.interrupts);
        assert_eq!(
            record.parent_checkpoint_id,
            records
                .last()
                .map(|last: &errand_server::storage::CheckpointRecord| last.checkpoint_id.clone())
        );
        records.push(record);
    }
    let stored = thread_of(&storage, thread.thread_id).await;
    assert_eq!(stored.values, Nullable::Present(json!({"i": 4})));
    assert_eq!(stored.state_updated_at, Some(t(14)));
    assert_eq!(stored.updated_at, t(14));
    assert_eq!(stored.status, ThreadStatus::Idle);

    let newest_first: Vec<_> = records.iter().rev().cloned().collect();
    assert_eq!(
        storage
            .list_checkpoints(thread.thread_id, 10, None)
            .await
            .unwrap(),
        newest_first
    );
    assert_eq!(
        storage
            .list_checkpoints(thread.thread_id, 2, None)
            .await
            .unwrap(),
        newest_first[..2]
    );
    assert_eq!(
        storage
            .list_checkpoints(thread.thread_id, 10, Some(&records[3].checkpoint_id))
            .await
            .unwrap(),
        newest_first[2..]
    );
    assert_eq!(
        storage
            .list_checkpoints(thread.thread_id, 1, Some(&records[3].checkpoint_id))
            .await
            .unwrap(),
        newest_first[2..3]
    );
    assert!(
        storage
            .list_checkpoints(thread.thread_id, 10, Some(&records[0].checkpoint_id))
            .await
            .unwrap()
            .is_empty()
    );
    // An id the thread does not have compares by time (UUIDv7 order).
    let later = Uuid::now_v7().to_string();
    assert_eq!(
        storage
            .list_checkpoints(thread.thread_id, 10, Some(&later))
            .await
            .unwrap(),
        newest_first
    );
    assert!(
        storage
            .list_checkpoints(Uuid::now_v7(), 10, None)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---- store ----

#[tokio::test]
async fn store_items_put_get_replace_delete() {
    let storage = memory();
    let space = ns(&["users", "ann"]);
    assert!(storage.get_item(&space, "prefs").await.unwrap().is_none());
    storage
        .put_item(&space, "prefs", obj(json!({"theme": "dark"})), t(1))
        .await
        .unwrap();
    let item = storage.get_item(&space, "prefs").await.unwrap().unwrap();
    assert_eq!(item.namespace, space);
    assert_eq!(item.key, "prefs");
    assert_eq!(Value::Object(item.value), json!({"theme": "dark"}));
    assert_eq!((item.created_at, item.updated_at), (t(1), t(1)));
    assert!(item.extra.is_empty());

    storage
        .put_item(&space, "prefs", obj(json!({"theme": "light"})), t(2))
        .await
        .unwrap();
    let item = storage.get_item(&space, "prefs").await.unwrap().unwrap();
    assert_eq!(Value::Object(item.value), json!({"theme": "light"}));
    assert_eq!((item.created_at, item.updated_at), (t(1), t(2)));

    // Same key in another namespace is another item.
    assert!(
        storage
            .get_item(&ns(&["users"]), "prefs")
            .await
            .unwrap()
            .is_none()
    );
    assert!(!storage.delete_item(&ns(&["users"]), "prefs").await.unwrap());
    assert!(storage.delete_item(&space, "prefs").await.unwrap());
    assert!(!storage.delete_item(&space, "prefs").await.unwrap());
    assert!(storage.get_item(&space, "prefs").await.unwrap().is_none());
}

#[tokio::test]
async fn store_search_matches_whole_labels_filters_and_pages() {
    let storage = memory();
    let put = |labels: &'static [&'static str], key: &'static str, value: Value, at| {
        let storage = storage.clone();
        async move {
            storage
                .put_item(&ns(labels), key, obj(value), at)
                .await
                .unwrap();
        }
    };
    put(&["a"], "k1", json!({"kind": "x", "n": 1}), t(1)).await;
    put(&["a", "b"], "k2", json!({"kind": "y", "n": 2}), t(2)).await;
    put(&["a", "b", "c"], "k3", json!({"kind": "x", "n": 3}), t(3)).await;
    put(&["ab"], "k4", json!({"kind": "x"}), t(4)).await;
    put(&["a\"", "b"], "k5", json!({"kind": "x"}), t(5)).await;
    put(&["a,b"], "k6", json!({"kind": "x"}), t(6)).await;
    put(&[], "k7", json!({"kind": "root"}), t(7)).await;

    let keys = |items: Vec<errand_protocol::StoreItem>| {
        items.into_iter().map(|item| item.key).collect::<Vec<_>>()
    };
    let found = storage
        .search_items(&item_search(Some(&["a"])))
        .await
        .unwrap();
    assert_eq!(
        keys(found),
        vec!["k3", "k2", "k1"],
        "newest first, on label boundaries"
    );
    let found = storage
        .search_items(&item_search(Some(&["a", "b"])))
        .await
        .unwrap();
    assert_eq!(keys(found), vec!["k3", "k2"]);
    let found = storage
        .search_items(&item_search(Some(&["a", "b", "c", "d"])))
        .await
        .unwrap();
    assert!(found.is_empty());
    let found = storage
        .search_items(&item_search(Some(&["a\""])))
        .await
        .unwrap();
    assert_eq!(keys(found), vec!["k5"]);
    let found = storage
        .search_items(&item_search(Some(&["a,b"])))
        .await
        .unwrap();
    assert_eq!(keys(found), vec!["k6"]);
    let found = storage.search_items(&item_search(None)).await.unwrap();
    assert_eq!(keys(found), vec!["k7", "k6", "k5", "k4", "k3", "k2", "k1"]);
    let found = storage.search_items(&item_search(Some(&[]))).await.unwrap();
    assert_eq!(found.len(), 7);

    let mut filtered = item_search(Some(&["a"]));
    filtered.filter = Some(obj(json!({"kind": "x"})));
    assert_eq!(
        keys(storage.search_items(&filtered).await.unwrap()),
        vec!["k3", "k1"]
    );
    filtered.filter = Some(obj(json!({"kind": "x", "n": 1})));
    assert_eq!(
        keys(storage.search_items(&filtered).await.unwrap()),
        vec!["k1"]
    );
    filtered.filter = Some(obj(json!({"missing": 1})));
    assert!(storage.search_items(&filtered).await.unwrap().is_empty());

    let mut paged = item_search(None);
    paged.filter = Some(obj(json!({"kind": "x"})));
    paged.limit = 2;
    paged.offset = 1;
    assert_eq!(
        keys(storage.search_items(&paged).await.unwrap()),
        vec!["k5", "k4"]
    );
    paged.offset = 4;
    assert_eq!(
        keys(storage.search_items(&paged).await.unwrap()),
        vec!["k1"]
    );
    paged.limit = 0;
    assert!(storage.search_items(&paged).await.unwrap().is_empty());

    // Replacing an item moves it to the front.
    put(&["a"], "k1", json!({"kind": "x", "n": 10}), t(10)).await;
    let found = storage
        .search_items(&item_search(Some(&["a"])))
        .await
        .unwrap();
    assert_eq!(keys(found), vec!["k1", "k3", "k2"]);
}

#[tokio::test]
async fn store_lists_namespaces() {
    let storage = memory();
    for (labels, key) in [
        (&["users", "ann", "prefs"][..], "a"),
        (&["users", "ann", "prefs"][..], "b"),
        (&["users", "bob", "prefs"][..], "c"),
        (&["users", "bob", "notes"][..], "d"),
        (&["usersx", "x"][..], "e"),
        (&["docs"][..], "f"),
    ] {
        storage
            .put_item(&ns(labels), key, obj(json!({})), t(1))
            .await
            .unwrap();
    }
    let list = |prefix: Option<&[&str]>, suffix: Option<&[&str]>, max_depth: Option<u32>| {
        let storage = storage.clone();
        let request = StoreListNamespacesRequest {
            prefix: prefix.map(ns),
            suffix: suffix.map(ns),
            max_depth,
            ..namespaces_request()
        };
        async move { storage.list_namespaces(&request).await.unwrap().namespaces }
    };
    let all = list(None, None, None).await;
    assert_eq!(
        all,
        vec![
            ns(&["docs"]),
            ns(&["users", "ann", "prefs"]),
            ns(&["users", "bob", "notes"]),
            ns(&["users", "bob", "prefs"]),
            ns(&["usersx", "x"]),
        ]
    );
    assert_eq!(
        list(Some(&["users"]), None, None).await,
        vec![
            ns(&["users", "ann", "prefs"]),
            ns(&["users", "bob", "notes"]),
            ns(&["users", "bob", "prefs"]),
        ]
    );
    assert_eq!(
        list(Some(&["users"]), None, Some(2)).await,
        vec![ns(&["users", "ann"]), ns(&["users", "bob"])]
    );
    assert_eq!(
        list(None, None, Some(1)).await,
        vec![ns(&["docs"]), ns(&["users"]), ns(&["usersx"])]
    );
    assert_eq!(
        list(None, Some(&["prefs"]), None).await,
        vec![
            ns(&["users", "ann", "prefs"]),
            ns(&["users", "bob", "prefs"])
        ]
    );
    assert_eq!(
        list(Some(&["users"]), Some(&["bob", "prefs"]), None).await,
        vec![ns(&["users", "bob", "prefs"])]
    );
    assert_eq!(
        list(None, Some(&["prefs"]), Some(1)).await,
        vec![ns(&["users"])]
    );
    assert!(list(Some(&["nope"]), None, None).await.is_empty());

    let request = StoreListNamespacesRequest {
        limit: 2,
        offset: 1,
        ..namespaces_request()
    };
    assert_eq!(
        storage.list_namespaces(&request).await.unwrap().namespaces,
        all[1..3]
    );
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
        storage.claim_next_run(t(2)).await.unwrap().unwrap();
        storage
            .append_events(run.run_id, &[event(1, "values"), event(2, "end")])
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
    // A restart recovers the run that was running.
    let recovery = storage.recover(3, t(5)).await.unwrap();
    assert_eq!(recovery.requeued, vec![run.run_id]);
    let claimed = storage.claim_next_run(t(6)).await.unwrap().unwrap();
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

/// Schema version 2 made from version 3: threads carry no count of their active runs, an index
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
    storage.claim_next_run(t(3)).await.unwrap().unwrap();
    let mut finished = success(done.run_id, Some(json!({"n": 1})), t(4));
    finished.events = vec![event(1, "metadata"), event(2, "values")];
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
    assert_eq!(version, 3);
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
    let next = storage.claim_next_run(t(5)).await.unwrap().unwrap();
    assert_eq!(next.run.run_id, waiting.run_id);
    assert_eq!(next.start, Start::Values(json!({"n": 1})));
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
    let claimed = storage.claim_next_run(t(12)).await.unwrap().unwrap();
    assert_eq!(claimed.run.run_id, running.run_id);
    drop(storage);
    rusqlite::Connection::open(dir.db())
        .unwrap()
        .execute_batch(SCHEMA_2_FROM_3)
        .unwrap();

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
    assert!(storage.claim_next_run(t(13)).await.unwrap().is_none());
    storage
        .finish_run(&success(running.run_id, None, t(14)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(thread_of(&storage, busy).await.status, ThreadStatus::Busy);
    let next = storage.claim_next_run(t(15)).await.unwrap().unwrap();
    assert_eq!(next.run.run_id, waiting.run_id);
    storage
        .finish_run(&success(waiting.run_id, None, t(16)))
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
    while let Some(next) = storage.claim_next_run(t(10)).await.unwrap() {
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
    storage.claim_next_run(t(2)).await.unwrap().unwrap();
    storage
        .append_events(Uuid::from_u128(2), &[event(1, "values")])
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

// ---- properties ----

fn label() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "ab", "a,", "a\"", "]", "", "é"]).prop_map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Prefix search and namespace listing agree with a direct reading of their definitions.
    #[test]
    fn namespace_prefixes_match_whole_labels(
        spaces in prop::collection::vec(prop::collection::vec(label(), 0..4), 1..12),
        prefix in prop::collection::vec(label(), 0..3),
        suffix in prop::collection::vec(label(), 0..2),
        depth in prop::option::of(0u32..4),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let storage = memory();
            for (i, space) in spaces.iter().enumerate() {
                storage
                    .put_item(space, &format!("k{i}"), obj(json!({"i": i})), t(i as i64))
                    .await
                    .unwrap();
            }
            let mut request = item_search(None);
            request.namespace_prefix = Some(prefix.clone());
            request.limit = 1000;
            let mut found: Vec<String> = storage
                .search_items(&request)
                .await
                .unwrap()
                .into_iter()
                .map(|item| item.key)
                .collect();
            found.sort();
            let mut expected: Vec<String> = spaces
                .iter()
                .enumerate()
                .filter(|(_, space)| space.starts_with(&prefix))
                .map(|(i, _)| format!("k{i}"))
                .collect();
            expected.sort();
            assert_eq!(found, expected);

            let request = StoreListNamespacesRequest {
                prefix: Some(prefix.clone()),
                suffix: Some(suffix.clone()),
                max_depth: depth,
                limit: 1000,
                ..namespaces_request()
            };
            let listed = storage.list_namespaces(&request).await.unwrap().namespaces;
            let mut expected: Vec<Vec<String>> = spaces
                .iter()
                .filter(|space| space.starts_with(&prefix) && space.ends_with(&suffix))
                .map(|space| {
                    let mut space = space.clone();
                    if let Some(depth) = depth {
                        space.truncate(depth as usize);
                    }
                    space
                })
                .collect();
            expected.sort();
            expected.dedup();
            assert_eq!(listed, expected);
        });
    }

    /// Thread search by metadata agrees with key-by-key equality, whatever the values.
    #[test]
    fn metadata_search_is_containment(
        metadatas in prop::collection::vec(
            prop::collection::btree_map(label(), prop_oneof![
                label().prop_map(Value::from),
                (0i64..3).prop_map(Value::from),
                Just(Value::Null),
                Just(json!(["a"])),
            ], 0..3),
            1..8,
        ),
        filter in prop::collection::btree_map(label(), prop_oneof![
            label().prop_map(Value::from),
            (0i64..3).prop_map(Value::from),
            Just(Value::Null),
        ], 0..2),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let storage = memory();
            let mut expected = Vec::new();
            for (i, metadata) in metadatas.iter().enumerate() {
                let metadata: JsonObject = metadata.clone().into_iter().collect();
                let thread = create(&storage, Value::Object(metadata.clone()), t(i as i64)).await;
                if filter.iter().all(|(key, value)| metadata.get(key) == Some(value)) {
                    expected.push(thread.thread_id);
                }
            }
            expected.reverse();
            let request = ThreadSearchRequest {
                metadata: Some(filter.clone().into_iter().collect()),
                ..search()
            };
            assert_eq!(ids(&storage.search_threads(&request).await.unwrap()), expected);
        });
    }
}

#[tokio::test]
async fn a_run_that_may_start_at_once_is_claimed_by_its_create() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let mut first = new_run(run(thread.thread_id, t(1), MultitaskStrategy::Enqueue));
    first.start = true;
    let created = storage.create_run(first).await.unwrap();
    // Answered as accepted, stored as claimed: running, its first attempt counted.
    assert_eq!(created.run.status, RunStatus::Pending);
    // It is answered with its thread's values (a thread that never ran has none), and its
    // wire JSON as stored.
    assert_eq!(created.started, Some(Start::Values(Value::Null)));
    assert_eq!(
        serde_json::from_str::<Run>(&created.json).unwrap(),
        created.run
    );
    assert_eq!(
        status_of(&storage, thread.thread_id, created.run.run_id).await,
        RunStatus::Running
    );
    assert!(storage.claim_next_run(t(1)).await.unwrap().is_none());

    // Behind a running run, or delayed, a run waits for the dispatcher whatever it asked.
    let mut second = new_run(run(thread.thread_id, t(2), MultitaskStrategy::Enqueue));
    second.start = true;
    let second = storage.create_run(second).await.unwrap();
    assert!(second.started.is_none());
    let other = create(&storage, json!({}), t(0)).await;
    let mut delayed = new_run(run(other.thread_id, t(60), MultitaskStrategy::Enqueue));
    delayed.run.updated_at = t(2);
    delayed.start = true;
    let delayed = storage.create_run(delayed).await.unwrap();
    assert!(delayed.started.is_none());
    assert_eq!(
        status_of(&storage, other.thread_id, delayed.run.run_id).await,
        RunStatus::Pending
    );

    // A server that dies while it runs: recovery takes it up again with its attempt counted.
    let recovery = storage.recover(3, t(3)).await.unwrap();
    assert_eq!(recovery.requeued, vec![created.run.run_id]);
    let again = storage.claim_next_run(t(4)).await.unwrap().unwrap();
    assert_eq!(again.run.run_id, created.run.run_id);
    assert_eq!(again.attempt, 2);
}

/// One step of a run's life, as the executor and the API take them, on thread `thread` (of
/// three) and on the `pick`th of its runs.
#[derive(Debug, Clone)]
enum Step {
    Create {
        thread: usize,
        strategy: MultitaskStrategy,
        start: bool,
    },
    Claim,
    Finish {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    Delete {
        pick: usize,
    },
    RollBack {
        pick: usize,
    },
    Recover,
}

fn step() -> impl Strategy<Value = Step> {
    let strategy = prop_oneof![
        Just(MultitaskStrategy::Enqueue),
        Just(MultitaskStrategy::Reject),
        Just(MultitaskStrategy::Interrupt),
        Just(MultitaskStrategy::Rollback),
    ];
    prop_oneof![
        4 => (0..3usize, strategy, any::<bool>())
            .prop_map(|(thread, strategy, start)| Step::Create { thread, strategy, start }),
        3 => Just(Step::Claim),
        3 => (0..8usize).prop_map(|pick| Step::Finish { pick }),
        1 => (0..8usize).prop_map(|pick| Step::Cancel { pick }),
        1 => (0..8usize).prop_map(|pick| Step::Delete { pick }),
        1 => (0..8usize).prop_map(|pick| Step::RollBack { pick }),
        1 => Just(Step::Recover),
    ]
}

/// The runs of every thread, by status, and a check of the rules that hang on a thread's count
/// of active runs: it is `busy` exactly while it has a pending or running run, and runs one at
/// a time.
async fn check_threads(storage: &SqliteStorage, threads: &[Uuid]) -> Vec<Run> {
    let mut all = Vec::new();
    for &thread_id in threads {
        let page = RunPage {
            limit: 1000,
            offset: 0,
            status: None,
        };
        let runs = storage
            .list_runs(thread_id, page)
            .await
            .expect("storage call");
        let active = runs
            .iter()
            .filter(|run| matches!(run.status, RunStatus::Pending | RunStatus::Running))
            .count();
        let running = runs
            .iter()
            .filter(|run| run.status == RunStatus::Running)
            .count();
        let status = thread_of(storage, thread_id).await.status;
        assert_eq!(
            status == ThreadStatus::Busy,
            active > 0,
            "{status:?}, {active} active"
        );
        assert!(running <= 1, "{running} runs running on one thread");
        all.extend(runs);
    }
    all
}

/// Interrupts a run if it is still pending or running, as a cancel does.
async fn interrupt(storage: &SqliteStorage, run_id: Uuid, at: Timestamp) {
    storage
        .transition_run(
            run_id,
            &[RunStatus::Pending, RunStatus::Running],
            RunStatus::Interrupted,
            at,
        )
        .await
        .expect("storage call");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever happens to runs, each thread's count of active runs stays true: its status
    /// follows it, and once the workers have taken every run that may start, none is left
    /// waiting and no thread stays busy.
    #[test]
    fn a_threads_count_of_active_runs_follows_its_runs(
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let storage = memory();
            let mut threads = Vec::new();
            for n in 0..3 {
                threads.push(create(&storage, json!({ "n": n }), t(0)).await.thread_id);
            }
            for (n, step) in steps.into_iter().enumerate() {
                let now = t(1 + n as i64);
                let runs = check_threads(&storage, &threads).await;
                let nth = |pick: usize, running_only: bool| {
                    let candidates: Vec<&Run> = runs
                        .iter()
                        .filter(|run| !running_only || run.status == RunStatus::Running)
                        .collect();
                    (!candidates.is_empty()).then(|| candidates[pick % candidates.len()].run_id)
                };
                match step {
                    Step::Create { thread, strategy, start } => {
                        let mut new = new_run(run(threads[thread], now, strategy));
                        new.start = start;
                        if let Ok(created) = storage.create_run(new).await {
                            // What the executor does with the runs a new one replaces.
                            for replaced in created.to_cancel {
                                if strategy == MultitaskStrategy::Rollback {
                                    storage.rollback_run(replaced, now).await.unwrap();
                                } else {
                                    interrupt(&storage, replaced, now).await;
                                }
                            }
                        }
                    }
                    Step::Claim => {
                        storage.claim_next_run(now).await.unwrap();
                    }
                    Step::Finish { pick } => {
                        if let Some(run_id) = nth(pick, true) {
                            storage.finish_run(&success(run_id, None, now)).await.unwrap();
                        }
                    }
                    Step::Cancel { pick } => {
                        if let Some(run_id) = nth(pick, false) {
                            interrupt(&storage, run_id, now).await;
                        }
                    }
                    Step::Delete { pick } => {
                        if let Some(run_id) = nth(pick, false) {
                            let thread_id = runs
                                .iter()
                                .find(|run| run.run_id == run_id)
                                .map(|run| run.thread_id)
                                .unwrap();
                            storage.delete_run(thread_id, run_id).await.unwrap();
                        }
                    }
                    Step::RollBack { pick } => {
                        if let Some(run_id) = nth(pick, false) {
                            storage.rollback_run(run_id, now).await.unwrap();
                        }
                    }
                    Step::Recover => {
                        storage.recover(2, now).await.unwrap();
                    }
                }
            }
            // The workers drain the queue: every run either starts or was never going to.
            let end = t(1000);
            for _ in 0..100 {
                let runs = check_threads(&storage, &threads).await;
                let running: Vec<Uuid> = runs
                    .iter()
                    .filter(|run| run.status == RunStatus::Running)
                    .map(|run| run.run_id)
                    .collect();
                for run_id in &running {
                    storage.finish_run(&success(*run_id, None, end)).await.unwrap();
                }
                if storage.claim_next_run(end).await.unwrap().is_none() && running.is_empty() {
                    break;
                }
            }
            let runs = check_threads(&storage, &threads).await;
            let left: Vec<&Run> = runs
                .iter()
                .filter(|run| matches!(run.status, RunStatus::Pending | RunStatus::Running))
                .collect();
            assert!(left.is_empty(), "runs left waiting: {left:?}");
        });
    }
}

/// A database failure keeps SQLite's own error beneath it, so a caller can tell what kind of
/// failure it was (a constraint, a busy database, a full disk) without reading its text.
#[tokio::test]
async fn a_database_failure_keeps_the_sqlite_error_as_its_source() {
    let storage = memory();
    let thread = create(&storage, json!({}), t(0)).await;
    let run = enqueue(&storage, thread.thread_id, t(1)).await;
    storage
        .append_events(run.run_id, &[event(1, "values")])
        .await
        .unwrap();
    let error = storage
        .append_events(run.run_id, &[event(1, "again")])
        .await
        .unwrap_err();
    let sqlite = std::error::Error::source(&error)
        .and_then(std::error::Error::source)
        .and_then(|source| source.downcast_ref::<rusqlite::Error>());
    assert!(
        matches!(sqlite, Some(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == rusqlite::ErrorCode::ConstraintViolation),
        "{error:?}"
    );
}
