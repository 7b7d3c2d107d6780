//! Properties every backend keeps whatever the input: store prefixes and namespace listing
//! follow their definitions, thread search by metadata is containment, and a thread's count
//! of active runs follows its runs through any sequence of steps.

use crate::common::{create, ids, item_search, namespaces_request, new_run, obj, run, search, t};
use errand_protocol::{
    CancelAction, JsonObject, MultitaskStrategy, Run, RunStatus, StoreListNamespacesRequest,
    ThreadSearchRequest, Timestamp,
};
use errand_server::storage::{Leases, ReplicaId, Storage};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use uuid::Uuid;

fn label() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "ab", "a,", "a\"", "]", "", "é"]).prop_map(str::to_owned)
}

/// Prefix search and namespace listing agree with a direct reading of their definitions.
async fn namespaces_follow_their_definitions(
    storage: Arc<dyn Storage>,
    spaces: Vec<Vec<String>>,
    prefix: Vec<String>,
    suffix: Vec<String>,
    depth: Option<u32>,
) {
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
}

contract_proptest! {
    cases = 48;
    fn namespace_prefixes_match_whole_labels(
        spaces in prop::collection::vec(prop::collection::vec(label(), 0..4), 1..12),
        prefix in prop::collection::vec(label(), 0..3),
        suffix in prop::collection::vec(label(), 0..2),
        depth in prop::option::of(0u32..4),
    ) => namespaces_follow_their_definitions
}

/// Thread search by metadata agrees with key-by-key equality, whatever the values.
async fn metadata_search_is_key_by_key_equality(
    storage: Arc<dyn Storage>,
    metadatas: Vec<BTreeMap<String, Value>>,
    filter: BTreeMap<String, Value>,
) {
    let mut expected = Vec::new();
    for (i, metadata) in metadatas.iter().enumerate() {
        let metadata: JsonObject = metadata.clone().into_iter().collect();
        let thread = create(&*storage, Value::Object(metadata.clone()), t(i as i64)).await;
        if filter
            .iter()
            .all(|(key, value)| metadata.get(key) == Some(value))
        {
            expected.push(thread.thread_id);
        }
    }
    expected.reverse();
    let request = ThreadSearchRequest {
        metadata: Some(filter.into_iter().collect()),
        ..search()
    };
    assert_eq!(
        ids(&storage.search_threads(&request).await.unwrap()),
        expected
    );
}

contract_proptest! {
    cases = 48;
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
    ) => metadata_search_is_key_by_key_equality
}

/// One step of a run's life, as the executor, the API and other replicas take them, on thread
/// `thread` (of three) and on the `pick`th of its runs.
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
    /// A cancel stored on a running run, for its holder (which never acts on it here: only an
    /// expiry does).
    StoreCancel {
        pick: usize,
        rollback: bool,
    },
    /// Another replica starts and takes up this one's runs.
    Recover,
    /// This replica stops cleanly and gives its runs back.
    GiveBack,
}

fn step() -> impl Strategy<Value = Step> {
    let strategy = crate::common::any_strategy();
    prop_oneof![
        4 => (0..3usize, strategy, any::<bool>())
            .prop_map(|(thread, strategy, start)| Step::Create { thread, strategy, start }),
        3 => Just(Step::Claim),
        3 => (0..8usize).prop_map(|pick| Step::Finish { pick }),
        1 => (0..8usize).prop_map(|pick| Step::Cancel { pick }),
        1 => (0..8usize).prop_map(|pick| Step::Delete { pick }),
        1 => (0..8usize).prop_map(|pick| Step::RollBack { pick }),
        1 => (0..8usize, any::<bool>())
            .prop_map(|(pick, rollback)| Step::StoreCancel { pick, rollback }),
        1 => Just(Step::Recover),
        1 => Just(Step::GiveBack),
    ]
}

/// The runs of every thread, by status, and a check of the rules that hang on a thread's count
/// of active runs: it is `busy` exactly while it has a pending or running run, and runs one at
/// a time.
async fn check_threads(storage: &dyn Storage, threads: &[Uuid]) -> Vec<Run> {
    let mut all = Vec::new();
    for &thread_id in threads {
        all.extend(crate::common::runs_keeping_thread_rules(storage, thread_id).await);
    }
    all
}

/// Interrupts a run if it is still pending or running, as a cancel does.
async fn interrupt(storage: &dyn Storage, run_id: Uuid, at: Timestamp) {
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

/// Whatever happens to runs, each thread's count of active runs stays true: its status
/// follows it, and once the workers have taken every run that may start, none is left
/// waiting and no thread stays busy.
async fn active_runs_follow_the_steps(storage: Arc<dyn Storage>, steps: Vec<Step>) {
    let storage = &*storage;
    let me = ReplicaId::from(Uuid::from_u128(1));
    let next = ReplicaId::from(Uuid::from_u128(2));
    let mut threads = Vec::new();
    for n in 0..3 {
        threads.push(create(storage, json!({ "n": n }), t(0)).await.thread_id);
    }
    // The attempt each run was last claimed with: the one its writes carry.
    let mut attempts: HashMap<Uuid, u32> = HashMap::new();
    for (n, step) in steps.into_iter().enumerate() {
        let now = t(1 + n as i64);
        let runs = check_threads(storage, &threads).await;
        let nth = |pick: usize, running_only: bool| {
            let candidates: Vec<&Run> = runs
                .iter()
                .filter(|run| !running_only || run.status == RunStatus::Running)
                .collect();
            (!candidates.is_empty()).then(|| candidates[pick % candidates.len()].run_id)
        };
        match step {
            Step::Create {
                thread,
                strategy,
                start,
            } => {
                let mut new = new_run(run(threads[thread], now, strategy));
                new.start = start.then_some(me);
                if let Ok(created) = storage.create_run(new).await {
                    if created.started.is_some() {
                        attempts.insert(created.run.run_id, 1);
                    }
                    // What the executor does with the runs a new one replaces.
                    for replaced in created.to_cancel {
                        if strategy == MultitaskStrategy::Rollback {
                            storage.rollback_run(replaced, None, now).await.unwrap();
                        } else {
                            interrupt(storage, replaced, now).await;
                        }
                    }
                }
            }
            Step::Claim => {
                if let Some(claimed) = storage.claim_next_run(now, me).await.unwrap() {
                    attempts.insert(claimed.run.run_id, claimed.attempt);
                }
            }
            Step::Finish { pick } => {
                if let Some(run_id) = nth(pick, true) {
                    let attempt = attempts[&run_id];
                    storage
                        .finish_run(&crate::common::success(run_id, attempt, None, now))
                        .await
                        .unwrap();
                }
            }
            Step::Cancel { pick } => {
                if let Some(run_id) = nth(pick, false) {
                    interrupt(storage, run_id, now).await;
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
                    storage.rollback_run(run_id, None, now).await.unwrap();
                }
            }
            Step::StoreCancel { pick, rollback } => {
                if let Some(run_id) = nth(pick, true) {
                    let action = if rollback {
                        CancelAction::Rollback
                    } else {
                        CancelAction::Interrupt
                    };
                    assert!(storage.request_cancel(run_id, action).await.unwrap());
                }
            }
            Step::Recover => {
                storage
                    .expire_leases(Leases::AllBut(next), 2, now)
                    .await
                    .unwrap();
            }
            Step::GiveBack => {
                storage.expire_leases(Leases::Of(me), 2, now).await.unwrap();
            }
        }
    }
    // The workers drain the queue: every run either starts or was never going to.
    let end = t(1000);
    for _ in 0..100 {
        let runs = check_threads(storage, &threads).await;
        let running: Vec<Uuid> = runs
            .iter()
            .filter(|run| run.status == RunStatus::Running)
            .map(|run| run.run_id)
            .collect();
        for run_id in &running {
            let attempt = attempts[run_id];
            storage
                .finish_run(&crate::common::success(*run_id, attempt, None, end))
                .await
                .unwrap();
        }
        let claimed = storage.claim_next_run(end, me).await.unwrap();
        if let Some(claimed) = &claimed {
            attempts.insert(claimed.run.run_id, claimed.attempt);
        }
        if claimed.is_none() && running.is_empty() {
            break;
        }
    }
    let runs = check_threads(storage, &threads).await;
    let left: Vec<&Run> = runs
        .iter()
        .filter(|run| matches!(run.status, RunStatus::Pending | RunStatus::Running))
        .collect();
    assert!(left.is_empty(), "runs left waiting: {left:?}");
}

contract_proptest! {
    cases = 64;
    fn a_threads_count_of_active_runs_follows_its_runs(
        steps in prop::collection::vec(step(), 1..40),
    ) => active_runs_follow_the_steps
}
