//! What the storage tests share, the contract suite (`storage_contract.rs`) and each backend's
//! own (`storage_sqlite.rs`, `storage_postgres.rs`, `postgres_replicas_property.rs`) alike: fixed times, rows to insert, and short ways to read them back.
//! Every helper takes `&dyn Storage`, so it serves any backend.
#![allow(dead_code, unreachable_pub)]

use errand_protocol::{
    IfExists, IfNotExists, JsonObject, MultitaskStrategy, Run, RunStatus,
    StoreListNamespacesRequest, StoreSearchRequest, Thread, ThreadSearchRequest, ThreadStatus,
    Timestamp,
};
use errand_server::storage::{
    ClaimedRun, FinishedRun, JsonText, NewCheckpoint, NewRun, ReplicaId, RunPage, Storage,
    StoredEvent,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use uuid::Uuid;

/// A fixed instant plus `seconds`.
pub fn t(seconds: i64) -> Timestamp {
    Timestamp::from_timestamp_micros(1_800_000_000_000_000 + seconds * 1_000_000)
        .expect("a time in range")
}

pub fn obj(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

/// The replica of tests that need only one.
pub fn me() -> ReplicaId {
    ReplicaId::from(Uuid::from_u128(0x6d65))
}

/// A directory of its own under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("errand-storage-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("a temp dir");
        Self(path)
    }

    pub fn db(&self) -> PathBuf {
        self.0.join("errand.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn thread(metadata: Value, at: Timestamp) -> Thread {
    Thread::new(Uuid::now_v7(), obj(metadata), at)
}

pub async fn create(storage: &dyn Storage, metadata: Value, at: Timestamp) -> Thread {
    storage
        .create_thread(thread(metadata, at), IfExists::Raise)
        .await
        .expect("storage call")
}

pub fn run(thread_id: Uuid, created_at: Timestamp, strategy: MultitaskStrategy) -> Run {
    Run {
        metadata: obj(json!({"origin": "test"})),
        kwargs: serde_json::from_value(
            json!({"input": {"messages": []}, "stream_mode": ["values"]}),
        )
        .expect("kwargs"),
        extra: obj(json!({"langsmith_session_name": null})),
        ..bare_run(thread_id, created_at, strategy)
    }
}

/// A run as small as a run is: no metadata, no extra keys, an empty input. What the
/// throughput measure creates, so that its figures stay comparable.
pub fn bare_run(thread_id: Uuid, created_at: Timestamp, strategy: MultitaskStrategy) -> Run {
    Run {
        run_id: Uuid::now_v7(),
        thread_id,
        assistant_id: Uuid::from_u128(7),
        created_at,
        updated_at: created_at,
        status: RunStatus::Pending,
        metadata: JsonObject::new(),
        kwargs: serde_json::from_value(json!({"input": {}})).expect("kwargs"),
        multitask_strategy: strategy,
        extra: JsonObject::new(),
    }
}

pub fn new_run(run: Run) -> NewRun {
    NewRun {
        run,
        if_not_exists: IfNotExists::Reject,
        thread_metadata: obj(json!({"graph_id": "echo"})),
        start: None,
    }
}

/// As [`new_run`], but creating its thread if there is none, and started at once on `start`
/// when given.
pub fn new_run_creating(run: Run, start: Option<ReplicaId>) -> NewRun {
    NewRun {
        if_not_exists: IfNotExists::Create,
        start,
        ..new_run(run)
    }
}

/// Inserts an `enqueue` run on the thread, created at `created_at`.
pub async fn enqueue(storage: &dyn Storage, thread_id: Uuid, created_at: Timestamp) -> Run {
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

/// Claims the next run for `replica`, which there must be.
pub async fn claim_for(storage: &dyn Storage, at: Timestamp, replica: ReplicaId) -> ClaimedRun {
    storage
        .claim_next_run(at, replica)
        .await
        .expect("storage call")
        .expect("a run to claim")
}

/// Claims the next run for [`me`], which there must be.
pub async fn claim(storage: &dyn Storage, at: Timestamp) -> ClaimedRun {
    claim_for(storage, at, me()).await
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "callers write the values in place with json!"
)]
pub fn checkpoint(run_id: Option<Uuid>, values: Value, at: Timestamp) -> NewCheckpoint {
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

/// The end of `attempt` of a run in `success`, with its values (and a checkpoint of them)
/// when given.
pub fn success(run_id: Uuid, attempt: u32, values: Option<Value>, at: Timestamp) -> FinishedRun {
    FinishedRun {
        run_id,
        attempt,
        status: RunStatus::Success,
        values: values.as_ref().map(JsonText::of),
        thread_status: ThreadStatus::Idle,
        error: None,
        interrupts: BTreeMap::new(),
        events: Vec::new().into(),
        checkpoints: values
            .map(|values| checkpoint(Some(run_id), values, at))
            .into_iter()
            .collect(),
        at,
    }
}

/// The end of `attempt` of a run in `success`, with one `values` event (`{}`).
pub fn finished(run_id: Uuid, attempt: u32, at: Timestamp) -> FinishedRun {
    FinishedRun {
        events: vec![StoredEvent {
            seq: 1,
            event: "values".into(),
            data: "{}".into(),
        }]
        .into(),
        ..success(run_id, attempt, None, at)
    }
}

/// The end in `success`, without values, of the run just claimed.
pub fn done(claimed: &ClaimedRun, at: Timestamp) -> FinishedRun {
    success(claimed.run.run_id, claimed.attempt, None, at)
}

pub async fn thread_of(storage: &dyn Storage, thread_id: Uuid) -> Thread {
    storage
        .get_thread(thread_id)
        .await
        .expect("storage call")
        .expect("the thread exists")
}

pub async fn status_of(storage: &dyn Storage, thread_id: Uuid, run_id: Uuid) -> RunStatus {
    storage
        .get_run(thread_id, run_id)
        .await
        .expect("storage call")
        .expect("the run exists")
        .status
}

pub fn page(limit: u32) -> RunPage {
    RunPage {
        limit,
        offset: 0,
        status: None,
    }
}

pub fn search() -> ThreadSearchRequest {
    ThreadSearchRequest {
        limit: 100,
        ..ThreadSearchRequest::default()
    }
}

pub fn ids(threads: &[Thread]) -> Vec<Uuid> {
    threads.iter().map(|thread| thread.thread_id).collect()
}

pub fn event(seq: u64, name: &str) -> StoredEvent {
    StoredEvent {
        seq,
        event: name.to_owned(),
        data: format!("{{\"seq\":{seq}}}").into(),
    }
}

pub fn ns(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|label| (*label).to_owned()).collect()
}

pub fn item_search(prefix: Option<&[&str]>) -> StoreSearchRequest {
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

pub fn namespaces_request() -> StoreListNamespacesRequest {
    StoreListNamespacesRequest {
        prefix: None,
        suffix: None,
        max_depth: None,
        limit: 100,
        offset: 0,
        extra: JsonObject::new(),
    }
}

/// Any of the four multitask strategies, for property tests.
pub fn any_strategy() -> impl proptest::strategy::Strategy<Value = MultitaskStrategy> {
    proptest::prop_oneof![
        proptest::strategy::Just(MultitaskStrategy::Enqueue),
        proptest::strategy::Just(MultitaskStrategy::Reject),
        proptest::strategy::Just(MultitaskStrategy::Interrupt),
        proptest::strategy::Just(MultitaskStrategy::Rollback),
    ]
}

/// A thread's runs, newest first, checking the rules that hang on its count of active runs:
/// it is `busy` exactly while it has a pending or running run, and runs one at a time.
pub async fn runs_keeping_thread_rules(storage: &dyn Storage, thread_id: Uuid) -> Vec<Run> {
    let runs = storage
        .list_runs(thread_id, page(1000))
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
        "thread {thread_id} is {status:?} with {active} active runs"
    );
    assert!(running <= 1, "{running} runs running on one thread");
    runs
}
