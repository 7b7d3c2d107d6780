//! What only the PostgreSQL storage does: migrations under concurrent starts, a newer schema
//! refused, transient failures tried again, several handles (replicas) claiming, signalling and
//! fencing on one database. The behaviour both backends share is the contract suite's.
//!
//! Runs when `ERRAND_TEST_DATABASE_URL` is set (`postgres://postgres@127.0.0.1:5432/test`);
//! each test works in a schema of its own, dropped at its end.
#![cfg(feature = "postgres")]

#[path = "support/storage.rs"]
mod common;

use common::{bare_run, finished, new_run_creating as new_run, obj, t};

use errand_protocol::{
    CancelAction, IfExists, JsonObject, MultitaskStrategy, Run, RunStatus, Thread, Timestamp,
};
use errand_server::storage::{
    Leases, PostgresConfig, PostgresStorage, ReplicaId, Signal, Storage, StorageError, StoredEvent,
};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// A schema of one test's own, and the URL; `None` (with a note) when no database is given.
struct Db {
    url: String,
    schema: String,
}

impl Db {
    fn new() -> Option<Self> {
        let Ok(url) = std::env::var("ERRAND_TEST_DATABASE_URL") else {
            eprintln!("storage_postgres: skipped, ERRAND_TEST_DATABASE_URL is not set");
            return None;
        };
        Some(Self {
            url,
            schema: format!("errand_t_{}", Uuid::new_v4().simple()),
        })
    }

    fn config(&self) -> PostgresConfig {
        let mut config = PostgresConfig::new(self.url.clone());
        config.schema = Some(self.schema.clone());
        config
    }

    async fn connect(&self) -> PostgresStorage {
        PostgresStorage::connect(self.config())
            .await
            .expect("a storage on the test database")
    }

    /// A plain connection, for looking under the storage.
    async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("a connection to the test database");
        tokio::spawn(connection);
        client
    }

    async fn drop_schema(self) {
        let client = self.admin().await;
        let _ = client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .await;
    }
}

/// A lean `enqueue` run on the thread.
fn run(thread_id: Uuid, created_at: Timestamp) -> Run {
    bare_run(thread_id, created_at, MultitaskStrategy::Enqueue)
}

/// Waits for a signal matching `wanted`, skipping others.
async fn wait_for(
    signals: &mut tokio::sync::broadcast::Receiver<Signal>,
    wanted: impl Fn(&Signal) -> bool,
) -> Signal {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match signals.recv().await {
                Ok(signal) if wanted(&signal) => return signal,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(error) => panic!("the signals ended: {error}"),
            }
        }
    })
    .await
    .expect("the signal within 5 s")
}

#[tokio::test]
async fn migrations_run_once_when_two_replicas_start_together() {
    let Some(db) = Db::new() else { return };
    let (a, b) = tokio::join!(
        PostgresStorage::connect(db.config()),
        PostgresStorage::connect(db.config())
    );
    a.expect("the first storage");
    b.expect("the second storage");
    let client = db.admin().await;
    let rows = client
        .query(
            &format!("SELECT version FROM \"{}\".errand_schema", db.schema),
            &[],
        )
        .await
        .expect("the version table");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 1);
    db.drop_schema().await;
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_errand_is_refused() {
    let Some(db) = Db::new() else { return };
    drop(db.connect().await);
    let client = db.admin().await;
    client
        .batch_execute(&format!(
            "UPDATE \"{}\".errand_schema SET version = 99",
            db.schema
        ))
        .await
        .expect("the version set");
    let refused = PostgresStorage::connect(db.config()).await;
    match refused {
        Err(StorageError::Backend(error)) => {
            assert!(error.message().contains("newer"), "{error}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    db.drop_schema().await;
}

#[tokio::test]
async fn a_call_survives_its_connection_being_terminated() {
    let Some(db) = Db::new() else { return };
    let application = format!("errand_t_{}", &db.schema[9..17]);
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let mut config = db.config();
    config.url = format!("{}{separator}application_name={application}", db.url);
    config.pool_size = 1;
    let storage = PostgresStorage::connect(config).await.expect("a storage");
    let thread = Thread::new(Uuid::now_v7(), JsonObject::new(), t(0));
    storage
        .create_thread(thread.clone(), IfExists::Raise)
        .await
        .expect("a thread");
    let client = db.admin().await;
    let killed = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&application],
        )
        .await
        .expect("the connections terminated");
    assert!(!killed.is_empty(), "the storage's connections were found");
    for _ in 0..3 {
        let found = storage
            .get_thread(thread.thread_id)
            .await
            .expect("a read after the connection went");
        assert_eq!(found.map(|found| found.thread_id), Some(thread.thread_id));
    }
    db.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_claiming_at_once_never_share_a_run_and_keep_each_threads_order() {
    let Some(db) = Db::new() else { return };
    let (a, b) = (db.connect().await, db.connect().await);
    let (threads, per_thread) = (6, 5);
    let mut order: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for i in 0..threads {
        let thread_id = Uuid::now_v7();
        for j in 0..per_thread {
            let run = run(thread_id, t(i * 100 + j));
            order.entry(thread_id).or_default().push(run.run_id);
            a.create_run(new_run(run, None)).await.expect("a run");
        }
    }
    let total = (threads * per_thread) as usize;
    let claimed: Arc<Mutex<Vec<(Uuid, Uuid)>>> = Arc::default();
    let running: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let mut workers = Vec::new();
    for storage in [a.clone(), b.clone(), a.clone(), b.clone()] {
        let (claimed, running) = (Arc::clone(&claimed), Arc::clone(&running));
        workers.push(tokio::spawn(async move {
            let replica = ReplicaId::random();
            let mut idle = 0;
            while idle < 50 {
                let Some(claim) = storage
                    .claim_next_run(t(10_000), replica)
                    .await
                    .expect("a claim")
                else {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                idle = 0;
                let thread_id = claim.run.thread_id;
                assert!(
                    running.lock().expect("lock").insert(thread_id),
                    "two runs of one thread running at once"
                );
                claimed
                    .lock()
                    .expect("lock")
                    .push((thread_id, claim.run.run_id));
                tokio::task::yield_now().await;
                running.lock().expect("lock").remove(&thread_id);
                storage
                    .finish_run(&finished(claim.run.run_id, claim.attempt, t(10_000)))
                    .await
                    .expect("a finish");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a worker");
    }
    let claimed = claimed.lock().expect("lock").clone();
    assert_eq!(claimed.len(), total, "every run claimed once");
    let unique: HashSet<Uuid> = claimed.iter().map(|(_, run)| *run).collect();
    assert_eq!(unique.len(), total, "no run claimed twice");
    for (thread_id, expected) in order {
        let seen: Vec<Uuid> = claimed
            .iter()
            .filter(|(thread, _)| *thread == thread_id)
            .map(|(_, run)| *run)
            .collect();
        assert_eq!(seen, expected, "runs of a thread start in creation order");
    }
    db.drop_schema().await;
}

#[tokio::test]
async fn signals_of_one_replica_reach_another() {
    let Some(db) = Db::new() else { return };
    let (a, b) = (db.connect().await, db.connect().await);
    let mut heard = b.signals().expect("signals");
    let mut own = a.signals().expect("signals");
    let thread_id = Uuid::now_v7();
    let replica = ReplicaId::random();
    let first = run(thread_id, t(0));
    let created = a
        .create_run(new_run(first.clone(), Some(replica)))
        .await
        .expect("a run");
    assert!(created.started.is_some(), "the first run starts at once");
    let queued = run(thread_id, t(1));
    a.create_run(new_run(queued, None)).await.expect("a run");
    wait_for(&mut heard, |signal| *signal == Signal::RunQueued).await;
    assert!(
        a.request_cancel(first.run_id, CancelAction::Rollback)
            .await
            .expect("a cancel")
    );
    wait_for(&mut heard, |signal| {
        *signal
            == Signal::CancelRequested {
                run_id: first.run_id,
                action: CancelAction::Rollback,
            }
    })
    .await;
    let ended = a
        .finish_run(&finished(first.run_id, 1, t(2)))
        .await
        .expect("a finish");
    assert_eq!(ended.map(|ended| ended.thread_busy), Some(true));
    wait_for(&mut heard, |signal| {
        *signal
            == Signal::Events {
                run_id: first.run_id,
            }
    })
    .await;
    wait_for(&mut heard, |signal| {
        *signal
            == Signal::RunEnded {
                run_id: first.run_id,
            }
    })
    .await;
    // A storage does not hear itself: its process knows already.
    assert!(own.try_recv().is_err());
    db.drop_schema().await;
}

#[tokio::test]
async fn an_attempt_whose_lease_ended_is_fenced_off_on_every_replica() {
    let Some(db) = Db::new() else { return };
    let (a, b) = (db.connect().await, db.connect().await);
    let (ra, rb) = (ReplicaId::random(), ReplicaId::random());
    a.renew_lease(ra, t(10)).await.expect("a lease");
    let first = run(Uuid::now_v7(), t(0));
    let created = a
        .create_run(new_run(first.clone(), Some(ra)))
        .await
        .expect("a run");
    assert!(created.started.is_some());
    let recovery = b
        .expire_leases(Leases::DueBy(t(20)), 3, t(20))
        .await
        .expect("an expiry");
    assert_eq!(recovery.requeued, vec![first.run_id]);
    let claim = b
        .claim_next_run(t(21), rb)
        .await
        .expect("a claim")
        .expect("the requeued run");
    assert_eq!(claim.attempt, 2);
    let stale = a.finish_run(&finished(first.run_id, 1, t(22))).await;
    assert!(
        matches!(stale, Err(StorageError::Fenced { attempt: 1, .. })),
        "{stale:?}"
    );
    let events = [StoredEvent {
        seq: 9,
        event: "values".into(),
        data: "{}".into(),
    }];
    let stale = a.append_events(first.run_id, 1, &events).await;
    assert!(
        matches!(stale, Err(StorageError::Fenced { .. })),
        "{stale:?}"
    );
    let stale = a.rollback_run(first.run_id, Some(1), t(22)).await;
    assert!(
        matches!(stale, Err(StorageError::Fenced { .. })),
        "{stale:?}"
    );
    b.finish_run(&finished(first.run_id, 2, t(23)))
        .await
        .expect("the holder's finish");
    let stored = a
        .get_run(first.thread_id, first.run_id)
        .await
        .expect("a read")
        .expect("the run");
    assert_eq!(stored.status, RunStatus::Success);
    db.drop_schema().await;
}

/// Not a check but a measure: 32 tasks (`ERRAND_BENCH_TASKS`) create a run (claimed at once,
/// on a new thread) and finish it (three events, one checkpoint), for 5 seconds against one
/// storage of 16 connections (`ERRAND_BENCH_POOL`). Run with
/// `cargo test --release -p errand-server --features postgres --test storage_postgres
/// -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measure, not a check"]
async fn throughput_of_create_and_finish() {
    let Some(db) = Db::new() else { return };
    let mut config = db.config();
    let knob = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    config.pool_size = knob("ERRAND_BENCH_POOL", 16);
    let tasks_wanted = knob("ERRAND_BENCH_TASKS", 32);
    let storage = PostgresStorage::connect(config).await.expect("a storage");
    let replica = ReplicaId::random();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for _ in 0..tasks_wanted {
        let storage = storage.clone();
        tasks.push(tokio::spawn(async move {
            let mut creates = Vec::new();
            while std::time::Instant::now() < deadline {
                let now = Timestamp::now();
                let run = run(Uuid::now_v7(), now);
                let run_id = run.run_id;
                let started = std::time::Instant::now();
                let created = storage
                    .create_run(new_run(run, Some(replica)))
                    .await
                    .expect("a create");
                creates.push(started.elapsed());
                assert!(created.started.is_some());
                let mut end = finished(run_id, 1, Timestamp::now());
                end.events = (1..=3)
                    .map(|seq| StoredEvent {
                        seq,
                        event: "values".into(),
                        data: r#"{"messages":[{"type":"ai","content":"hello"}]}"#.into(),
                    })
                    .collect();
                end.values = Some(errand_server::storage::JsonText::of(&json!({"n": 1})));
                end.checkpoints = vec![errand_server::storage::NewCheckpoint {
                    checkpoint_id: Uuid::now_v7().to_string(),
                    run_id: Some(run_id),
                    values: errand_server::storage::JsonText::of(&json!({"n": 1})),
                    metadata: obj(json!({"source": "loop", "step": 1})),
                    next: Vec::new(),
                    interrupts: Vec::new(),
                    created_at: Timestamp::now(),
                }];
                storage.finish_run(&end).await.expect("a finish");
            }
            creates
        }));
    }
    let mut creates = Vec::new();
    for task in tasks {
        creates.extend(task.await.expect("a task"));
    }
    creates.sort();
    let p = |q: f64| creates[((creates.len() as f64 - 1.0) * q) as usize];
    println!(
        "throughput: {tasks_wanted} tasks, pool {}: {} runs in 5 s = {:.0} runs/s; \
         create p50 {:?}, p99 {:?}",
        knob("ERRAND_BENCH_POOL", 16),
        creates.len(),
        creates.len() as f64 / 5.0,
        p(0.5),
        p(0.99)
    );
    db.drop_schema().await;
}
