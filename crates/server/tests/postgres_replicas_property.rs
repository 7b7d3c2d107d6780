//! Two replicas on one PostgreSQL database, driven through random interleavings of what
//! replicas do to runs: creates under all four multitask strategies (started at once or
//! queued), claims (one replica's, or both at once), finishes, cancels, lease renewals and
//! expiries, and writes of attempts that lost their lease. After every step the rules hold:
//! at most one running run per thread, runs start in their thread's order, a thread is busy
//! exactly while it has a pending or running run, and every run ends once.
//!
//! Runs when `ERRAND_TEST_DATABASE_URL` is set; each case works in a schema of its own.
#![cfg(feature = "postgres")]

#[path = "support/storage.rs"]
mod common;

use common::{bare_run, success, t};

use errand_protocol::{
    CancelAction, IfNotExists, JsonObject, MultitaskStrategy, Run, RunStatus, ThreadStatus,
    Timestamp,
};
use errand_server::storage::{
    Leases, NewRun, PostgresConfig, PostgresStorage, ReplicaId, Storage, StorageError,
};
use proptest::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

const THREADS: usize = 3;
/// How long a lease lasts, in the steps' seconds.
const LEASE: i64 = 5;
const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone)]
enum Step {
    Create {
        replica: usize,
        thread: usize,
        strategy: MultitaskStrategy,
        start: bool,
    },
    Claim {
        replica: usize,
    },
    /// Both replicas claim at the same moment, each on its own connection.
    ClaimBoth,
    Finish {
        pick: usize,
    },
    /// A cancel sent to `replica`: stored for the holder of a running run, at once for a
    /// pending one.
    Cancel {
        replica: usize,
        pick: usize,
    },
    /// The holder of a run with a stored cancel acts on it.
    ActOnCancels {
        replica: usize,
    },
    Renew {
        replica: usize,
    },
    /// Time passes past the leases of replicas that did not renew; `replica` sweeps.
    Sweep {
        replica: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let strategy = common::any_strategy();
    prop_oneof![
        4 => (0..2usize, 0..THREADS, strategy, any::<bool>()).prop_map(
            |(replica, thread, strategy, start)| Step::Create { replica, thread, strategy, start }
        ),
        2 => (0..2usize).prop_map(|replica| Step::Claim { replica }),
        2 => Just(Step::ClaimBoth),
        3 => (0..8usize).prop_map(|pick| Step::Finish { pick }),
        1 => (0..2usize, 0..8usize).prop_map(|(replica, pick)| Step::Cancel { replica, pick }),
        1 => (0..2usize).prop_map(|replica| Step::ActOnCancels { replica }),
        2 => (0..2usize).prop_map(|replica| Step::Renew { replica }),
        1 => (0..2usize).prop_map(|replica| Step::Sweep { replica }),
    ]
}

/// What the test knows of each run: which replica's attempt holds it, as far as it knows.
#[derive(Debug, Default)]
struct Model {
    /// Run → (replica, attempt) of the last claim.
    claims: HashMap<Uuid, (usize, u32)>,
    /// Runs whose end was stored, and how many times.
    ends: HashMap<Uuid, u32>,
    /// Creation order of each thread's runs, as inserted.
    order: HashMap<Uuid, Vec<Uuid>>,
}

/// Every run of the threads, checking the rules that hang on them.
async fn check(storage: &dyn Storage, threads: &[Uuid], model: &Model) -> Vec<Run> {
    let mut all = Vec::new();
    for &thread_id in threads {
        let runs = common::runs_keeping_thread_rules(storage, thread_id).await;
        let running: Vec<&Run> = runs
            .iter()
            .filter(|run| run.status == RunStatus::Running)
            .collect();
        // FIFO: nothing pending on the thread was created before its running run.
        if let Some(running) = running.first() {
            let order = model.order.get(&thread_id).cloned().unwrap_or_default();
            let position = |id: Uuid| order.iter().position(|known| *known == id);
            let at = position(running.run_id);
            for pending in runs.iter().filter(|run| run.status == RunStatus::Pending) {
                // Delayed or requeued runs aside, the queue is in creation order.
                if let (Some(running_at), Some(pending_at)) = (at, position(pending.run_id)) {
                    assert!(
                        pending_at > running_at,
                        "run {} started before the older pending run {}",
                        running.run_id,
                        pending.run_id
                    );
                }
            }
        }
        all.extend(runs);
    }
    for (run_id, ends) in &model.ends {
        assert_eq!(*ends, 1, "run {run_id} ended {ends} times");
    }
    all
}

async fn drive(stores: [&PostgresStorage; 2], steps: Vec<Step>) {
    let replicas = [ReplicaId::random(), ReplicaId::random()];
    let mut model = Model::default();
    let mut now = 0_i64;
    let mut threads = Vec::new();
    for _ in 0..THREADS {
        let thread = errand_protocol::Thread::new(Uuid::now_v7(), JsonObject::new(), t(0));
        let created = stores[0]
            .create_thread(thread, errand_protocol::IfExists::Raise)
            .await
            .expect("thread");
        threads.push(created.thread_id);
    }
    for (replica, store) in stores.iter().enumerate() {
        store
            .renew_lease(replicas[replica], t(LEASE))
            .await
            .expect("lease");
    }
    for step in steps {
        now += 1;
        let at = t(now);
        let runs = check(stores[0], &threads, &model).await;
        let pick = |pick: usize, status: RunStatus| {
            let candidates: Vec<&Run> = runs.iter().filter(|run| run.status == status).collect();
            (!candidates.is_empty()).then(|| candidates[pick % candidates.len()].clone())
        };
        match step {
            Step::Create {
                replica,
                thread,
                strategy,
                start,
            } => {
                let new = NewRun {
                    run: bare_run(threads[thread], at, strategy),
                    if_not_exists: IfNotExists::Reject,
                    thread_metadata: JsonObject::new(),
                    start: start.then_some(replicas[replica]),
                };
                match stores[replica].create_run(new).await {
                    Ok(created) => {
                        model
                            .order
                            .entry(created.run.thread_id)
                            .or_default()
                            .push(created.run.run_id);
                        if created.started.is_some() {
                            model.claims.insert(created.run.run_id, (replica, 1));
                        }
                        // What the executor does with the runs a new one replaces.
                        for replaced in created.to_cancel {
                            cancel(stores[replica], &mut model, replaced, strategy, at).await;
                        }
                    }
                    Err(StorageError::ThreadBusy) => {
                        assert_eq!(strategy, MultitaskStrategy::Reject);
                    }
                    Err(error) => panic!("create: {error}"),
                }
            }
            Step::Claim { replica } => {
                if let Some(claimed) = stores[replica]
                    .claim_next_run(at, replicas[replica])
                    .await
                    .expect("claim")
                {
                    model
                        .claims
                        .insert(claimed.run.run_id, (replica, claimed.attempt));
                }
            }
            Step::ClaimBoth => {
                let (first, second) = futures::join!(
                    stores[0].claim_next_run(at, replicas[0]),
                    stores[1].claim_next_run(at, replicas[1]),
                );
                let (first, second) = (first.expect("claim"), second.expect("claim"));
                if let (Some(first), Some(second)) = (&first, &second) {
                    assert_ne!(first.run.run_id, second.run.run_id, "one run claimed twice");
                    assert_ne!(
                        first.run.thread_id, second.run.thread_id,
                        "two runs of one thread started at once"
                    );
                }
                for (replica, claimed) in [(0, first), (1, second)] {
                    if let Some(claimed) = claimed {
                        model
                            .claims
                            .insert(claimed.run.run_id, (replica, claimed.attempt));
                    }
                }
            }
            Step::Finish { pick: which } => {
                // The holder finishes; a replica that lost the run tries with its stale
                // attempt and must be refused.
                let Some(running) = pick(which, RunStatus::Running) else {
                    continue;
                };
                let Some(&(replica, attempt)) = model.claims.get(&running.run_id) else {
                    continue;
                };
                if attempt > 1 {
                    let stale = stores[1 - replica]
                        .finish_run(&success(running.run_id, attempt - 1, None, at))
                        .await;
                    assert!(
                        matches!(stale, Err(StorageError::Fenced { .. })),
                        "a stale attempt's end was taken: {stale:?}"
                    );
                }
                stores[replica]
                    .finish_run(&success(running.run_id, attempt, None, at))
                    .await
                    .expect("the holder's finish");
                *model.ends.entry(running.run_id).or_default() += 1;
                // Once ended, no attempt ends it again.
                let again = stores[1 - replica]
                    .finish_run(&success(running.run_id, attempt, None, at))
                    .await;
                assert!(
                    matches!(again, Err(StorageError::Fenced { .. })),
                    "{again:?}"
                );
            }
            Step::Cancel {
                replica,
                pick: which,
            } => {
                let target =
                    pick(which, RunStatus::Running).or_else(|| pick(which, RunStatus::Pending));
                if let Some(target) = target {
                    cancel(
                        stores[replica],
                        &mut model,
                        target.run_id,
                        MultitaskStrategy::Interrupt,
                        at,
                    )
                    .await;
                }
            }
            Step::ActOnCancels { replica } => {
                let renewal = stores[replica]
                    .renew_lease(replicas[replica], t(now + LEASE))
                    .await
                    .expect("renew");
                for (run_id, action) in renewal.cancels {
                    let Some(&(holder, attempt)) = model.claims.get(&run_id) else {
                        continue;
                    };
                    assert_eq!(
                        holder, replica,
                        "a cancel reached a replica not holding its run"
                    );
                    match action {
                        CancelAction::Interrupt => {
                            let mut end = success(run_id, attempt, None, at);
                            end.status = RunStatus::Interrupted;
                            end.thread_status = ThreadStatus::Interrupted;
                            stores[replica].finish_run(&end).await.expect("interrupted");
                            *model.ends.entry(run_id).or_default() += 1;
                        }
                        CancelAction::Rollback => {
                            stores[replica]
                                .rollback_run(run_id, Some(attempt), at)
                                .await
                                .expect("rolled back");
                        }
                    }
                }
            }
            Step::Renew { replica } => {
                stores[replica]
                    .renew_lease(replicas[replica], t(now + LEASE))
                    .await
                    .expect("renew");
            }
            Step::Sweep { replica } => {
                now += LEASE;
                let recovery = stores[replica]
                    .expire_leases(Leases::DueBy(t(now)), MAX_ATTEMPTS, t(now))
                    .await
                    .expect("sweep");
                for run_id in recovery.failed.iter().chain(&recovery.cancelled) {
                    *model.ends.entry(*run_id).or_default() += 1;
                }
            }
        }
    }
    check(stores[0], &threads, &model).await;
}

/// Cancels a run as the executor does: a pending one at once, a running one by a stored
/// request (rollback replaces a run by deleting it).
async fn cancel(
    store: &PostgresStorage,
    model: &mut Model,
    run_id: Uuid,
    strategy: MultitaskStrategy,
    at: Timestamp,
) {
    let action = if strategy == MultitaskStrategy::Rollback {
        CancelAction::Rollback
    } else {
        CancelAction::Interrupt
    };
    if store.request_cancel(run_id, action).await.expect("cancel") {
        return;
    }
    match action {
        CancelAction::Interrupt => {
            let ended = store
                .transition_run(run_id, &[RunStatus::Pending], RunStatus::Interrupted, at)
                .await
                .expect("transition");
            if ended.is_some_and(|run| run.status == RunStatus::Interrupted) {
                // Ended here unless it had ended before.
                let count = model.ends.entry(run_id).or_default();
                if *count == 0 {
                    *count = 1;
                }
            }
        }
        CancelAction::Rollback => {
            store
                .rollback_run(run_id, None, at)
                .await
                .expect("rollback");
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn two_replicas_keep_the_rules_of_runs_whatever_they_do(steps in prop::collection::vec(step(), 1..40)) {
        let Ok(url) = std::env::var("ERRAND_TEST_DATABASE_URL") else {
            eprintln!("postgres_replicas_property: skipped, ERRAND_TEST_DATABASE_URL is not set");
            return Ok(());
        };
        runtime().block_on(async {
            let schema = format!("errand_p_{}", Uuid::new_v4().simple());
            let mut config = PostgresConfig::new(url.clone());
            config.schema = Some(schema.clone());
            config.pool_size = 4;
            let first = PostgresStorage::connect(config.clone()).await.expect("first replica");
            let second = PostgresStorage::connect(config).await.expect("second replica");
            drive([&first, &second], steps).await;
            drop((first, second));
            if let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await;
            }
        });
    }
}
