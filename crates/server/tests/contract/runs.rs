//! Runs: creation under the multitask strategies, the queue and its order, claims under
//! concurrency, their ends, compare-and-set transitions, rollback, listing and deletion.

use crate::common::{
    checkpoint, claim, claim_for, create, done, enqueue, event, me, new_run, obj, page, run,
    status_of, success, t, thread_of,
};
use errand_protocol::{
    IfNotExists, Interrupt, JsonObject, MultitaskStrategy, Nullable, Run, RunStatus, ThreadStatus,
};
use errand_server::storage::{
    FinishedRun, JsonText, Leases, NewRun, ReplicaId, RunPage, Start, Storage, StorageError,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

contract_test! {
    async fn create_run_creates_a_missing_thread_only_when_allowed(storage) {
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
                start: None,
            })
            .await
            .unwrap();
        assert!(created.to_cancel.is_empty());
        assert_eq!(created.run.status, RunStatus::Pending);
        let thread = thread_of(storage, thread_id).await;
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
}

contract_test! {
    async fn reject_refuses_a_busy_thread_and_inserts_nothing(storage) {
        let thread = create(storage, json!({"keep": true}), t(0)).await;
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
        let before = thread_of(storage, thread.thread_id).await;

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
        assert_eq!(thread_of(storage, thread.thread_id).await, before);

        // Busy while running too.
        claim(storage, t(3)).await;
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
            .finish_run(&success(first.run.run_id, 1, None, t(5)))
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
}

/// A new run under `strategy` (`interrupt` or `rollback`) names the thread's pending and
/// running runs for the caller to cancel, and none on an idle thread.
async fn names_the_runs_to_cancel(storage: &dyn Storage, strategy: MultitaskStrategy) {
    let thread = create(storage, json!({}), t(0)).await;
    let other = create(storage, json!({}), t(0)).await;
    enqueue(storage, thread.thread_id, t(1)).await;
    let finished = claim(storage, t(1)).await;
    storage.finish_run(&done(&finished, t(2))).await.unwrap();
    let running = enqueue(storage, thread.thread_id, t(3)).await;
    claim(storage, t(3)).await;
    let pending = enqueue(storage, thread.thread_id, t(4)).await;
    enqueue(storage, other.thread_id, t(4)).await;

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
        thread_of(storage, thread.thread_id).await.status,
        ThreadStatus::Busy
    );
    // On an idle thread there is nothing to cancel.
    let idle = create(storage, json!({}), t(6)).await;
    let created = storage
        .create_run(new_run(run(idle.thread_id, t(6), strategy)))
        .await
        .unwrap();
    assert!(created.to_cancel.is_empty());
}

contract_test! {
    async fn interrupt_names_the_runs_to_cancel(storage) {
        names_the_runs_to_cancel(storage, MultitaskStrategy::Interrupt).await;
    }
}

contract_test! {
    async fn rollback_names_the_runs_to_cancel(storage) {
        names_the_runs_to_cancel(storage, MultitaskStrategy::Rollback).await;
    }
}

contract_test! {
    async fn enqueue_adds_a_pending_run_and_merges_thread_metadata(storage) {
        let thread = create(storage, json!({"user": "ann", "graph_id": "old"}), t(0)).await;
        let first = enqueue(storage, thread.thread_id, t(1)).await;
        let mut second = new_run(run(thread.thread_id, t(2), MultitaskStrategy::Enqueue));
        second.thread_metadata = obj(json!({"graph_id": "echo", "assistant_id": "asst"}));
        let second = storage.create_run(second).await.unwrap();
        assert!(second.to_cancel.is_empty());

        let stored = thread_of(storage, thread.thread_id).await;
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
}

contract_test! {
    async fn claim_takes_the_oldest_runnable_run(storage) {
        let a = create(storage, json!({}), t(0)).await;
        let b = create(storage, json!({}), t(0)).await;
        let c = create(storage, json!({}), t(0)).await;
        // Inserted out of time order: claim order follows created_at.
        let b1 = enqueue(storage, b.thread_id, t(2)).await;
        let a1 = enqueue(storage, a.thread_id, t(1)).await;
        let a2 = enqueue(storage, a.thread_id, t(3)).await;
        let c_later = enqueue(storage, c.thread_id, t(50)).await;
        assert_eq!(storage.next_pending_after(t(0)).await.unwrap(), Some(t(1)));

        let first = claim(storage, t(10)).await;
        assert_eq!(first.run.run_id, a1.run_id);
        assert_eq!(first.run.status, RunStatus::Running);
        assert_eq!(first.run.updated_at, t(10));
        assert_eq!(first.attempt, 1);
        assert_eq!(first.start, Start::Values(Value::Null));
        // a2 waits for a1 (its thread has a running run): b1 is next.
        let second = claim(storage, t(10)).await;
        assert_eq!(second.run.run_id, b1.run_id);
        // Nothing else may start: a2 is blocked and c's run is in the future.
        assert!(storage.claim_next_run(t(10), me()).await.unwrap().is_none());
        // a2 is due but blocked; only c's later run is still to come.
        assert_eq!(
            storage.next_pending_after(t(10)).await.unwrap(),
            Some(t(50))
        );

        let ended = storage
            .finish_run(&success(a1.run_id, 1, Some(json!({"after": "a1"})), t(11)))
            .await
            .unwrap()
            .unwrap();
        // a2 waits on the thread: the executor is told to look.
        assert!(ended.thread_busy);
        let third = claim(storage, t(12)).await;
        assert_eq!(third.run.run_id, a2.run_id);
        assert_eq!(third.start, Start::Values(json!({"after": "a1"})));
        assert!(storage.claim_next_run(t(49), me()).await.unwrap().is_none());
        let fourth = claim(storage, t(50)).await;
        assert_eq!(fourth.run.run_id, c_later.run_id);
        assert!(storage.claim_next_run(t(1000), me()).await.unwrap().is_none());
        assert_eq!(storage.next_pending_after(t(0)).await.unwrap(), None);
        assert_eq!(
            status_of(storage, a.thread_id, a2.run_id).await,
            RunStatus::Running
        );
    }
}

contract_test! {
    async fn per_thread_order_follows_created_at_not_insertion(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        // A delayed run inserted first, then one for now: the one for now runs first.
        let delayed = enqueue(storage, thread.thread_id, t(20)).await;
        let now = enqueue(storage, thread.thread_id, t(1)).await;
        // Same microsecond: insertion order.
        let tie_one = enqueue(storage, thread.thread_id, t(30)).await;
        let tie_two = enqueue(storage, thread.thread_id, t(30)).await;
        let mut order = Vec::new();
        while let Some(claimed) = storage.claim_next_run(t(100), me()).await.unwrap() {
            order.push(claimed.run.run_id);
            storage
                .finish_run(&success(claimed.run.run_id, 1, None, t(100)))
                .await
                .unwrap();
        }
        assert_eq!(
            order,
            vec![now.run_id, delayed.run_id, tie_one.run_id, tie_two.run_id]
        );
        assert_eq!(
            thread_of(storage, thread.thread_id).await.status,
            ThreadStatus::Idle
        );
    }
}

contract_test! {
    async fn finish_run_updates_the_thread_and_parents_checkpoints(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let by_hand = storage
            .update_thread_state(thread.thread_id, checkpoint(None, json!({"n": 0}), t(1)))
            .await
            .unwrap();
        assert_eq!(by_hand.parent_checkpoint_id, None);

        let first = enqueue(storage, thread.thread_id, t(2)).await;
        let second = enqueue(storage, thread.thread_id, t(3)).await;
        let claimed = claim(storage, t(4)).await;
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
                attempt: 1,
                status: RunStatus::Success,
                values: Some(JsonText::of(&json!({"n": 1}))),
                thread_status: ThreadStatus::Interrupted,
                error: None,
                interrupts: interrupts.clone(),
                events: Vec::new().into(),
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
        let stored = thread_of(storage, thread.thread_id).await;
        assert_eq!(stored.status, ThreadStatus::Busy);
        assert_eq!(stored.values, Nullable::Present(json!({"n": 1})));
        assert_eq!(stored.interrupts, Some(interrupts));
        assert_eq!(stored.error, Nullable::Null);
        assert_eq!(stored.updated_at, t(5));
        assert_eq!(stored.state_updated_at, Some(t(5)));

        // The last run fails: the thread takes its status and error; no values keeps the old ones.
        claim(storage, t(6)).await;
        let error = json!({"error": "EchoError", "message": "boom"});
        let second_checkpoint = checkpoint(Some(second.run_id), json!({"n": 1}), t(7));
        storage
            .finish_run(&FinishedRun {
                run_id: second.run_id,
                attempt: 1,
                status: RunStatus::Error,
                values: None,
                thread_status: ThreadStatus::Error,
                error: Some(error.clone()),
                interrupts: BTreeMap::new(),
                events: Vec::new().into(),
                checkpoints: vec![second_checkpoint.clone()],
                at: t(7),
            })
            .await
            .unwrap()
            .unwrap();
        let stored = thread_of(storage, thread.thread_id).await;
        assert_eq!(stored.status, ThreadStatus::Error);
        assert_eq!(stored.values, Nullable::Present(json!({"n": 1})));
        assert_eq!(stored.error, Nullable::Present(error));
        assert_eq!(stored.interrupts, Some(BTreeMap::new()));
        let wire = serde_json::to_value(&stored).unwrap();
        assert_eq!(wire["interrupts"], json!({}));
        assert_eq!(
            status_of(storage, thread.thread_id, second.run_id).await,
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
        let third = enqueue(storage, thread.thread_id, t(8)).await;
        claim(storage, t(8)).await;
        storage
            .finish_run(&success(third.run_id, 1, Some(json!({"n": 3})), t(9)))
            .await
            .unwrap();
        let stored = thread_of(storage, thread.thread_id).await;
        assert_eq!(stored.status, ThreadStatus::Idle);
        assert_eq!(stored.error, Nullable::Null);
        let wire = serde_json::to_value(&stored).unwrap();
        assert_eq!(wire["error"], Value::Null);
    }
}

contract_test! {
    async fn finish_run_of_a_deleted_run_changes_nothing(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let gone = enqueue(storage, thread.thread_id, t(1)).await;
        claim(storage, t(1)).await;
        assert!(storage.rollback_run(gone.run_id, None, t(2)).await.unwrap());
        let before = thread_of(storage, thread.thread_id).await;
        let answer = storage
            .finish_run(&success(gone.run_id, 1, Some(json!({"late": true})), t(3)))
            .await
            .unwrap();
        assert!(answer.is_none());
        assert_eq!(thread_of(storage, thread.thread_id).await, before);
        assert!(
            storage
                .list_checkpoints(thread.thread_id, 10, None)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

contract_test! {
    async fn transition_run_is_a_compare_and_set(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let first = enqueue(storage, thread.thread_id, t(1)).await;
        let second = enqueue(storage, thread.thread_id, t(2)).await;

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
            thread_of(storage, thread.thread_id).await.status,
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
        let stored = thread_of(storage, thread.thread_id).await;
        assert_eq!(stored.status, ThreadStatus::Idle);
        assert_eq!(stored.updated_at, t(5));
        // A cancelled run is never claimed.
        assert!(storage.claim_next_run(t(100), me()).await.unwrap().is_none());

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
}

contract_test! {
    async fn transition_run_keeps_a_non_busy_thread_status(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let failed = enqueue(storage, thread.thread_id, t(1)).await;
        claim(storage, t(1)).await;
        storage
            .finish_run(&FinishedRun {
                run_id: failed.run_id,
                attempt: 1,
                status: RunStatus::Error,
                values: None,
                thread_status: ThreadStatus::Error,
                error: Some(json!({"error": "E", "message": "m"})),
                interrupts: BTreeMap::new(),
                events: Vec::new().into(),
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
            thread_of(storage, thread.thread_id).await.status,
            ThreadStatus::Error
        );
    }
}

contract_test! {
    async fn rollback_run_restores_the_previous_values(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let kept = enqueue(storage, thread.thread_id, t(1)).await;
        claim(storage, t(1)).await;
        storage
            .finish_run(&success(kept.run_id, 1, Some(json!({"v": "kept"})), t(2)))
            .await
            .unwrap();

        let doomed = enqueue(storage, thread.thread_id, t(3)).await;
        let doomed_claim = claim(storage, t(3)).await;
        storage
            .append_events(
                doomed.run_id,
                doomed_claim.attempt,
                &[event(1, "values"), event(2, "values")],
            )
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
            thread_of(storage, thread.thread_id).await.values,
            Nullable::Present(json!({"v": "doomed"}))
        );

        assert!(storage.rollback_run(doomed.run_id, None, t(5)).await.unwrap());
        assert!(!storage.rollback_run(doomed.run_id, None, t(5)).await.unwrap());
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
        let stored = thread_of(storage, thread.thread_id).await;
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
        let fresh = create(storage, json!({}), t(6)).await;
        let only = enqueue(storage, fresh.thread_id, t(6)).await;
        let next = enqueue(storage, fresh.thread_id, t(7)).await;
        storage
            .update_thread_state(
                fresh.thread_id,
                checkpoint(Some(only.run_id), json!({"x": 1}), t(6)),
            )
            .await
            .unwrap();
        assert!(storage.rollback_run(only.run_id, None, t(8)).await.unwrap());
        let stored = thread_of(storage, fresh.thread_id).await;
        assert_eq!(stored.values, Nullable::Null);
        assert_eq!(stored.status, ThreadStatus::Busy);
        assert!(storage.rollback_run(next.run_id, None, t(9)).await.unwrap());
        assert_eq!(
            thread_of(storage, fresh.thread_id).await.status,
            ThreadStatus::Idle
        );
    }
}

contract_test! {
    async fn runs_are_read_listed_and_deleted(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let other = create(storage, json!({}), t(0)).await;
        let r1 = enqueue(storage, thread.thread_id, t(1)).await;
        let r2 = enqueue(storage, thread.thread_id, t(2)).await;
        let r3 = enqueue(storage, thread.thread_id, t(3)).await;
        let o1 = enqueue(storage, other.thread_id, t(4)).await;
        claim(storage, t(5)).await; // r1 running
        let o1_claim = claim(storage, t(5)).await;
        assert_eq!(o1_claim.run.run_id, o1.run_id);

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

        // A run is deleted with its events, only through its own thread.
        storage
            .append_events(o1.run_id, o1_claim.attempt, &[event(1, "values")])
            .await
            .unwrap();
        assert!(
            !storage
                .delete_run(thread.thread_id, o1.run_id)
                .await
                .unwrap()
        );
        assert!(storage.delete_run(other.thread_id, o1.run_id).await.unwrap());
        assert!(!storage.delete_run(other.thread_id, o1.run_id).await.unwrap());
        assert!(storage.events_after(o1.run_id, 0).await.unwrap().is_empty());
        assert_eq!(
            thread_of(storage, other.thread_id).await.status,
            ThreadStatus::Idle
        );
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
            .finish_run(&success(r1.run_id, 1, None, t(6)))
            .await
            .unwrap();
        assert_eq!(
            thread_of(storage, thread.thread_id).await.status,
            ThreadStatus::Busy
        );
        assert!(
            storage
                .delete_run(thread.thread_id, r3.run_id)
                .await
                .unwrap()
        );
        assert_eq!(
            thread_of(storage, thread.thread_id).await.status,
            ThreadStatus::Idle
        );
    }
}

contract_test! {
    async fn a_run_that_may_start_at_once_is_claimed_by_its_create(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let mut first = new_run(run(thread.thread_id, t(1), MultitaskStrategy::Enqueue));
        first.start = Some(me());
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
            status_of(storage, thread.thread_id, created.run.run_id).await,
            RunStatus::Running
        );
        assert!(storage.claim_next_run(t(1), me()).await.unwrap().is_none());

        // Behind a running run, or delayed, a run waits for the dispatcher whatever it asked.
        let mut second = new_run(run(thread.thread_id, t(2), MultitaskStrategy::Enqueue));
        second.start = Some(me());
        let second = storage.create_run(second).await.unwrap();
        assert!(second.started.is_none());
        let other = create(storage, json!({}), t(0)).await;
        let mut delayed = new_run(run(other.thread_id, t(60), MultitaskStrategy::Enqueue));
        delayed.run.updated_at = t(2);
        delayed.start = Some(me());
        let delayed = storage.create_run(delayed).await.unwrap();
        assert!(delayed.started.is_none());
        assert_eq!(
            status_of(storage, other.thread_id, delayed.run.run_id).await,
            RunStatus::Pending
        );

        // A server that dies while it runs: the next takes it up again with its attempt
        // counted.
        let next = ReplicaId::from(Uuid::now_v7());
        let recovery = storage
            .expire_leases(Leases::AllBut(next), 3, t(3))
            .await
            .unwrap();
        assert_eq!(recovery.requeued, vec![created.run.run_id]);
        let again = claim_for(storage, t(4), next).await;
        assert_eq!(again.run.run_id, created.run.run_id);
        assert_eq!(again.attempt, 2);
    }
}

/// Several workers, each a replica of its own, claim, then finish, until nothing is left;
/// every run is claimed once, and each thread's in creation order, one at a time.
async fn claim_concurrently(storage: Arc<dyn Storage>, threads: usize, runs_per_thread: usize) {
    let mut expected: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut thread_ids = Vec::new();
    for _ in 0..threads {
        thread_ids.push(create(&*storage, json!({}), t(0)).await.thread_id);
    }
    for i in 0..runs_per_thread {
        for thread_id in &thread_ids {
            let run = enqueue(&*storage, *thread_id, t(1 + i as i64)).await;
            expected.entry(*thread_id).or_default().push(run.run_id);
        }
    }
    let log: Arc<Mutex<Vec<(Uuid, Uuid)>>> = Arc::default();
    let running: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let storage = Arc::clone(&storage);
        let log = Arc::clone(&log);
        let running = Arc::clone(&running);
        let replica = ReplicaId::random();
        workers.push(tokio::spawn(async move {
            while let Some(claimed) = storage
                .claim_next_run(t(1_000_000), replica)
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
                    .finish_run(&done(&claimed, t(1_000_000)))
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
        .claim_next_run(t(1_000_000), me())
        .await
        .expect("storage call")
    {
        log.lock()
            .expect("the log")
            .push((claimed.run.thread_id, claimed.run.run_id));
        storage
            .finish_run(&done(&claimed, t(1_000_000)))
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
    let left = storage
        .runs_with_status(&[RunStatus::Pending, RunStatus::Running])
        .await
        .expect("storage call");
    assert!(left.is_empty());
}

contract_test! {
    multi_thread;
    async fn concurrent_claimers_never_share_a_run(storage: Arc) {
        claim_concurrently(storage, 200, 1).await;
    }
}

contract_test! {
    multi_thread;
    async fn concurrent_claimers_keep_per_thread_order(storage: Arc) {
        claim_concurrently(storage, 20, 10).await;
    }
}
