//! Leases: a claim makes a replica the holder of a run and counts its attempt; every write of
//! the attempt is fenced by it; runs of a replica whose lease ended go back to the queue, or
//! end once out of attempts or as a cancel stored on them asks.

use crate::common::{
    checkpoint, claim, claim_for, create, done, enqueue, event, me, status_of, success, t,
    thread_of,
};
use errand_protocol::{CancelAction, Nullable, RunStatus, ThreadStatus};
use errand_server::storage::{Leases, Recovery, ReplicaId, StorageError};
use serde_json::json;
use uuid::Uuid;

fn replica(n: u128) -> ReplicaId {
    ReplicaId::from(Uuid::from_u128(n))
}

/// True when `error` is the fence of `attempt` of `run_id`.
fn fenced(error: &StorageError, run_id: Uuid, attempt: u32) -> bool {
    matches!(error, StorageError::Fenced { run_id: id, attempt: a } if *id == run_id && *a == attempt)
}

contract_test! {
    async fn a_stale_attempt_cannot_finish_append_or_roll_back_once_its_lease_expired(storage) {
        let (a, b) = (replica(1), replica(2));
        let thread = create(storage, json!({}), t(0)).await;
        let run = enqueue(storage, thread.thread_id, t(0)).await;
        storage.renew_lease(a, t(10)).await.unwrap();
        let stale = claim_for(storage, t(1), a).await;
        assert_eq!((stale.run.run_id, stale.attempt), (run.run_id, 1));

        // a stops renewing; the sweeper ends its lease and b takes the run up.
        let recovery = storage
            .expire_leases(Leases::DueBy(t(11)), 3, t(11))
            .await
            .unwrap();
        assert_eq!(recovery.requeued, vec![run.run_id]);
        assert_eq!(
            status_of(storage, thread.thread_id, run.run_id).await,
            RunStatus::Pending
        );
        // Between the expiry and the next claim, too, a's writes are refused.
        let error = storage
            .append_events(run.run_id, 1, &[event(1, "values")])
            .await
            .unwrap_err();
        assert!(fenced(&error, run.run_id, 1), "{error:?}");
        storage.renew_lease(b, t(100)).await.unwrap();
        let current = claim_for(storage, t(12), b).await;
        assert_eq!((current.run.run_id, current.attempt), (run.run_id, 2));

        let error = storage
            .append_events(run.run_id, 1, &[event(1, "stale")])
            .await
            .unwrap_err();
        assert!(fenced(&error, run.run_id, 1), "{error:?}");
        let mut stale_end = success(run.run_id, 1, Some(json!({"by": "a"})), t(13));
        stale_end.events = vec![event(2, "stale")].into();
        let error = storage.finish_run(&stale_end).await.unwrap_err();
        assert!(fenced(&error, run.run_id, 1), "{error:?}");
        let error = storage
            .rollback_run(run.run_id, Some(1), t(13))
            .await
            .unwrap_err();
        assert!(fenced(&error, run.run_id, 1), "{error:?}");
        // Refused means nothing of it was stored.
        assert_eq!(
            status_of(storage, thread.thread_id, run.run_id).await,
            RunStatus::Running
        );
        assert_eq!(thread_of(storage, thread.thread_id).await.values, Nullable::Null);
        assert!(storage.events_after(run.run_id, 0).await.unwrap().is_empty());

        storage
            .append_events(run.run_id, 2, &[event(1, "values")])
            .await
            .unwrap();
        let mut end = success(run.run_id, 2, Some(json!({"by": "b"})), t(14));
        end.events = vec![event(2, "end")].into();
        storage.finish_run(&end).await.unwrap().unwrap();
        assert_eq!(
            storage.events_after(run.run_id, 0).await.unwrap(),
            vec![event(1, "values"), event(2, "end")],
            "the stream holds b's events only"
        );
        let stored = thread_of(storage, thread.thread_id).await;
        assert_eq!(stored.values, Nullable::Present(json!({"by": "b"})));
        assert_eq!(stored.status, ThreadStatus::Idle);
        let history = storage
            .list_checkpoints(thread.thread_id, 10, None)
            .await
            .unwrap();
        assert_eq!(history.len(), 1, "a's checkpoint was not stored");
        assert_eq!(history[0].values, json!({"by": "b"}));

        // Once the run ended, no attempt writes to it any more.
        let error = storage
            .append_events(run.run_id, 2, &[event(3, "late")])
            .await
            .unwrap_err();
        assert!(fenced(&error, run.run_id, 2), "{error:?}");
        let error = storage
            .rollback_run(run.run_id, Some(2), t(15))
            .await
            .unwrap_err();
        assert!(fenced(&error, run.run_id, 2), "{error:?}");
    }
}

contract_test! {
    async fn an_attempt_that_holds_its_run_may_roll_it_back(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let run = enqueue(storage, thread.thread_id, t(0)).await;
        let claimed = claim_for(storage, t(1), me()).await;
        let error = storage
            .rollback_run(run.run_id, Some(claimed.attempt + 1), t(2))
            .await
            .unwrap_err();
        assert!(fenced(&error, run.run_id, claimed.attempt + 1), "{error:?}");
        assert!(
            storage
                .rollback_run(run.run_id, Some(claimed.attempt), t(2))
                .await
                .unwrap()
        );
        assert!(
            storage
                .get_run(thread.thread_id, run.run_id)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            thread_of(storage, thread.thread_id).await.status,
            ThreadStatus::Idle
        );
    }
}

contract_test! {
    async fn expiring_leases_due_by_a_time_leaves_live_leases_alone(storage) {
        let (live, dead) = (replica(1), replica(2));
        let first = create(storage, json!({}), t(0)).await;
        let second = create(storage, json!({}), t(0)).await;
        let kept = enqueue(storage, first.thread_id, t(0)).await;
        let lost = enqueue(storage, second.thread_id, t(1)).await;
        storage.renew_lease(live, t(100)).await.unwrap();
        storage.renew_lease(dead, t(5)).await.unwrap();
        let kept_claim = claim_for(storage, t(2), live).await;
        assert_eq!(kept_claim.run.run_id, kept.run_id);
        assert_eq!(claim_for(storage, t(2), dead).await.run.run_id, lost.run_id);

        // A lease renewed until a time still holds at that time.
        let recovery = storage
            .expire_leases(Leases::DueBy(t(5)), 3, t(5))
            .await
            .unwrap();
        assert!(recovery.is_empty(), "{recovery:?}");

        let recovery = storage
            .expire_leases(Leases::DueBy(t(10)), 3, t(10))
            .await
            .unwrap();
        assert_eq!(recovery.requeued, vec![lost.run_id]);
        assert!(recovery.failed.is_empty() && recovery.cancelled.is_empty());
        assert_eq!(
            status_of(storage, first.thread_id, kept.run_id).await,
            RunStatus::Running
        );
        assert_eq!(
            status_of(storage, second.thread_id, lost.run_id).await,
            RunStatus::Pending
        );
        // The live holder carries on as if nothing happened.
        storage
            .append_events(kept.run_id, kept_claim.attempt, &[event(1, "values")])
            .await
            .unwrap();
        storage
            .finish_run(&done(&kept_claim, t(11)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            status_of(storage, first.thread_id, kept.run_id).await,
            RunStatus::Success
        );
        // A lease renewed in time is not due later either.
        storage.renew_lease(live, t(200)).await.unwrap();
        let recovery = storage
            .expire_leases(Leases::DueBy(t(150)), 3, t(150))
            .await
            .unwrap();
        assert_eq!(recovery.requeued, Vec::<Uuid>::new());
    }
}

contract_test! {
    async fn ending_every_lease_but_mine_takes_up_every_other_holders_runs(storage) {
        let (a, b) = (replica(1), replica(2));
        let mut threads = Vec::new();
        let mut runs = Vec::new();
        for n in 0..3 {
            let thread = create(storage, json!({ "n": n }), t(0)).await;
            runs.push(enqueue(storage, thread.thread_id, t(n)).await.run_id);
            threads.push(thread.thread_id);
        }
        // Leases that have not run out end all the same: whatever held them has stopped.
        for holder in [a, b, me()] {
            storage.renew_lease(holder, t(1000)).await.unwrap();
        }
        claim_for(storage, t(5), a).await;
        claim_for(storage, t(5), b).await;
        let mine = claim_for(storage, t(5), me()).await;
        assert_eq!(mine.run.run_id, runs[2]);

        let recovery = storage
            .expire_leases(Leases::AllBut(me()), 3, t(6))
            .await
            .unwrap();
        assert_eq!(recovery.requeued, runs[..2].to_vec());
        assert!(recovery.failed.is_empty() && recovery.cancelled.is_empty());
        assert_eq!(
            status_of(storage, threads[0], runs[0]).await,
            RunStatus::Pending
        );
        assert_eq!(
            status_of(storage, threads[1], runs[1]).await,
            RunStatus::Pending
        );
        assert_eq!(
            status_of(storage, threads[2], runs[2]).await,
            RunStatus::Running
        );
        // The runs taken up are mine to claim now, their attempts counted.
        let again = claim_for(storage, t(7), me()).await;
        assert_eq!((again.run.run_id, again.attempt), (runs[0], 2));
        storage.finish_run(&done(&mine, t(8))).await.unwrap().unwrap();
        // A stopped replica's renewal does not give it back what was taken up.
        storage.renew_lease(a, t(2000)).await.unwrap();
        let recovery = storage
            .expire_leases(Leases::AllBut(me()), 3, t(9))
            .await
            .unwrap();
        assert!(recovery.is_empty(), "{recovery:?}");
    }
}

contract_test! {
    async fn giving_my_leases_back_requeues_my_runs_without_failing_them(storage) {
        let other = replica(2);
        let mine_thread = create(storage, json!({}), t(0)).await;
        let other_thread = create(storage, json!({}), t(0)).await;
        let mine = enqueue(storage, mine_thread.thread_id, t(0)).await;
        let theirs = enqueue(storage, other_thread.thread_id, t(1)).await;
        storage.renew_lease(me(), t(1000)).await.unwrap();
        storage.renew_lease(other, t(1000)).await.unwrap();
        assert_eq!(claim_for(storage, t(2), me()).await.run.run_id, mine.run_id);
        assert_eq!(claim_for(storage, t(2), other).await.run.run_id, theirs.run_id);

        // Past max_attempts, twice over: a clean stop is not a failed attempt.
        for attempt in 1..=3u32 {
            let recovery = storage
                .expire_leases(Leases::Of(me()), 1, t(3 + i64::from(attempt)))
                .await
                .unwrap();
            assert_eq!(
                recovery,
                Recovery {
                    requeued: vec![mine.run_id],
                    ..Recovery::default()
                },
                "attempt {attempt}"
            );
            assert_eq!(
                status_of(storage, mine_thread.thread_id, mine.run_id).await,
                RunStatus::Pending
            );
            assert_eq!(
                thread_of(storage, mine_thread.thread_id).await.status,
                ThreadStatus::Busy
            );
            let again = claim_for(storage, t(3 + i64::from(attempt)), me()).await;
            assert_eq!((again.run.run_id, again.attempt), (mine.run_id, attempt + 1));
        }
        assert_eq!(
            status_of(storage, other_thread.thread_id, theirs.run_id).await,
            RunStatus::Running,
            "another replica's run is left alone"
        );
    }
}

contract_test! {
    async fn a_run_out_of_attempts_ends_in_error_with_its_thread_in_error(storage) {
        let a = create(storage, json!({}), t(0)).await;
        let b = create(storage, json!({}), t(0)).await;
        let a1 = enqueue(storage, a.thread_id, t(1)).await;
        let b1 = enqueue(storage, b.thread_id, t(2)).await;
        let b2 = enqueue(storage, b.thread_id, t(3)).await;
        let (gone, next) = (replica(1), replica(2));
        claim_for(storage, t(4), gone).await;
        claim_for(storage, t(4), gone).await;

        let recovery = storage
            .expire_leases(Leases::AllBut(next), 2, t(5))
            .await
            .unwrap();
        assert_eq!(recovery.requeued, vec![a1.run_id, b1.run_id]);
        assert!(recovery.failed.is_empty());
        assert_eq!(
            status_of(storage, a.thread_id, a1.run_id).await,
            RunStatus::Pending
        );
        assert_eq!(
            status_of(storage, b.thread_id, b2.run_id).await,
            RunStatus::Pending
        );
        assert_eq!(
            thread_of(storage, a.thread_id).await.status,
            ThreadStatus::Busy
        );

        // The second attempt counts from the first.
        let again = claim_for(storage, t(6), next).await;
        assert_eq!((again.run.run_id, again.attempt), (a1.run_id, 2));
        let again = claim_for(storage, t(6), next).await;
        assert_eq!((again.run.run_id, again.attempt), (b1.run_id, 2));

        let recovery = storage
            .expire_leases(Leases::AllBut(replica(3)), 2, t(7))
            .await
            .unwrap();
        assert!(recovery.requeued.is_empty());
        assert_eq!(recovery.failed, vec![a1.run_id, b1.run_id]);
        let failed = storage
            .get_run(a.thread_id, a1.run_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(failed.status, RunStatus::Error);
        assert_eq!(failed.updated_at, t(7));
        let thread = thread_of(storage, a.thread_id).await;
        assert_eq!(thread.status, ThreadStatus::Error);
        let error = thread.error.into_option().unwrap();
        assert_eq!(error["error"], "WorkerLost");
        assert_eq!(
            error["message"],
            "the server running the run stopped, and it has had 2 attempts"
        );
        // b still has a pending run: busy, with the error recorded.
        let thread = thread_of(storage, b.thread_id).await;
        assert_eq!(thread.status, ThreadStatus::Busy);
        assert_eq!(thread.error.into_option().unwrap()["error"], "WorkerLost");
        assert_eq!(
            status_of(storage, b.thread_id, b2.run_id).await,
            RunStatus::Pending
        );
        // The failed attempt's writes are refused like any stale attempt's.
        let error = storage
            .finish_run(&success(a1.run_id, 2, None, t(8)))
            .await
            .unwrap_err();
        assert!(fenced(&error, a1.run_id, 2), "{error:?}");

        // Nothing running: nothing to do.
        assert_eq!(
            storage
                .expire_leases(Leases::AllBut(replica(3)), 2, t(8))
                .await
                .unwrap(),
            Recovery::default()
        );
    }
}

contract_test! {
    async fn a_stored_cancel_is_answered_by_its_holders_next_renewal_only(storage) {
        let (holder, bystander) = (replica(1), replica(2));
        let thread = create(storage, json!({}), t(0)).await;
        let other_thread = create(storage, json!({}), t(0)).await;
        let run = enqueue(storage, thread.thread_id, t(0)).await;
        let quiet = enqueue(storage, other_thread.thread_id, t(1)).await;
        storage.renew_lease(holder, t(10)).await.unwrap();
        storage.renew_lease(bystander, t(10)).await.unwrap();
        let claimed = claim_for(storage, t(2), holder).await;
        assert_eq!(claimed.run.run_id, run.run_id);
        assert_eq!(claim_for(storage, t(2), bystander).await.run.run_id, quiet.run_id);
        assert!(
            storage
                .renew_lease(holder, t(20))
                .await
                .unwrap()
                .cancels
                .is_empty(),
            "no cancel yet"
        );

        assert!(
            storage
                .request_cancel(run.run_id, CancelAction::Interrupt)
                .await
                .unwrap()
        );
        // Stored, not acted on: the run runs until its holder stops it.
        assert_eq!(
            status_of(storage, thread.thread_id, run.run_id).await,
            RunStatus::Running
        );
        assert!(
            storage
                .renew_lease(bystander, t(20))
                .await
                .unwrap()
                .cancels
                .is_empty(),
            "another replica is not told"
        );
        let renewal = storage.renew_lease(holder, t(30)).await.unwrap();
        assert_eq!(renewal.cancels, vec![(run.run_id, CancelAction::Interrupt)]);

        // Once the run ended there is nothing to cancel.
        let mut end = done(&claimed, t(3));
        end.status = RunStatus::Interrupted;
        storage.finish_run(&end).await.unwrap().unwrap();
        assert!(
            storage
                .renew_lease(holder, t(40))
                .await
                .unwrap()
                .cancels
                .is_empty()
        );
    }
}

contract_test! {
    async fn a_cancel_of_a_run_that_is_not_running_answers_false(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let first = enqueue(storage, thread.thread_id, t(0)).await;
        let pending = enqueue(storage, thread.thread_id, t(1)).await;
        assert!(
            !storage
                .request_cancel(first.run_id, CancelAction::Interrupt)
                .await
                .unwrap(),
            "pending"
        );
        let claimed = claim_for(storage, t(2), me()).await;
        assert!(
            !storage
                .request_cancel(pending.run_id, CancelAction::Rollback)
                .await
                .unwrap(),
            "pending behind a running run"
        );
        storage.finish_run(&done(&claimed, t(3))).await.unwrap().unwrap();
        assert!(
            !storage
                .request_cancel(first.run_id, CancelAction::Interrupt)
                .await
                .unwrap(),
            "ended"
        );
        assert!(
            !storage
                .request_cancel(Uuid::now_v7(), CancelAction::Interrupt)
                .await
                .unwrap(),
            "missing"
        );
        // A cancel refused is not stored: the run, once running, is not cancelled.
        let claimed = claim_for(storage, t(4), me()).await;
        assert_eq!(claimed.run.run_id, pending.run_id);
        assert!(storage.renew_lease(me(), t(100)).await.unwrap().cancels.is_empty());
    }
}

contract_test! {
    async fn a_run_whose_holder_died_with_a_cancel_stored_ends_as_the_cancel_asked(storage) {
        let dead = replica(1);
        let interrupted_thread = create(storage, json!({}), t(0)).await;
        let rolled_back_thread = create(storage, json!({}), t(0)).await;
        let failed_thread = create(storage, json!({}), t(0)).await;
        storage
            .update_thread_state(
                rolled_back_thread.thread_id,
                checkpoint(None, json!({"v": "before"}), t(0)),
            )
            .await
            .unwrap();
        let interrupted = enqueue(storage, interrupted_thread.thread_id, t(1)).await;
        let rolled_back = enqueue(storage, rolled_back_thread.thread_id, t(2)).await;
        let failed = enqueue(storage, failed_thread.thread_id, t(3)).await;
        storage.renew_lease(dead, t(10)).await.unwrap();
        for _ in 0..3 {
            claim_for(storage, t(4), dead).await;
        }
        // The doomed run wrote a checkpoint before it was cancelled.
        storage
            .update_thread_state(
                rolled_back_thread.thread_id,
                checkpoint(Some(rolled_back.run_id), json!({"v": "doomed"}), t(5)),
            )
            .await
            .unwrap();
        assert!(
            storage
                .request_cancel(interrupted.run_id, CancelAction::Interrupt)
                .await
                .unwrap()
        );
        assert!(
            storage
                .request_cancel(rolled_back.run_id, CancelAction::Rollback)
                .await
                .unwrap()
        );

        // Out of attempts too: the cancel, not the failure, decides how they end.
        let recovery = storage
            .expire_leases(Leases::DueBy(t(11)), 1, t(11))
            .await
            .unwrap();
        let mut cancelled = recovery.cancelled.clone();
        cancelled.sort();
        let mut expected = vec![interrupted.run_id, rolled_back.run_id];
        expected.sort();
        assert_eq!(cancelled, expected, "{recovery:?}");
        assert_eq!(recovery.failed, vec![failed.run_id], "{recovery:?}");
        assert!(recovery.requeued.is_empty(), "{recovery:?}");

        assert_eq!(
            status_of(storage, interrupted_thread.thread_id, interrupted.run_id).await,
            RunStatus::Interrupted
        );
        assert_eq!(
            thread_of(storage, interrupted_thread.thread_id).await.status,
            ThreadStatus::Idle
        );
        assert!(
            storage
                .get_run(rolled_back_thread.thread_id, rolled_back.run_id)
                .await
                .unwrap()
                .is_none(),
            "a rollback deletes the run"
        );
        let thread = thread_of(storage, rolled_back_thread.thread_id).await;
        assert_eq!(thread.values, Nullable::Present(json!({"v": "before"})));
        assert_eq!(thread.status, ThreadStatus::Idle);
        assert_eq!(
            storage
                .list_checkpoints(rolled_back_thread.thread_id, 10, None)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(storage.claim_next_run(t(12), me()).await.unwrap().is_none());
    }
}

contract_test! {
    /// With attempts left, a cancel stored on a run is still what ends it: it is not
    /// requeued to run again.
    async fn a_cancelled_run_is_not_requeued_when_its_lease_ends(storage) {
        let dead = replica(1);
        let thread = create(storage, json!({}), t(0)).await;
        let run = enqueue(storage, thread.thread_id, t(0)).await;
        storage.renew_lease(dead, t(10)).await.unwrap();
        claim_for(storage, t(1), dead).await;
        assert!(
            storage
                .request_cancel(run.run_id, CancelAction::Interrupt)
                .await
                .unwrap()
        );
        let recovery = storage
            .expire_leases(Leases::AllBut(me()), 3, t(2))
            .await
            .unwrap();
        assert_eq!(
            recovery,
            Recovery {
                cancelled: vec![run.run_id],
                ..Recovery::default()
            }
        );
        assert_eq!(
            status_of(storage, thread.thread_id, run.run_id).await,
            RunStatus::Interrupted
        );
        assert!(storage.claim_next_run(t(3), me()).await.unwrap().is_none());
    }
}

contract_test! {
    async fn a_run_taken_up_again_continues_the_stream_its_earlier_attempt_stored(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let run = enqueue(storage, thread.thread_id, t(1)).await;
        let stale = ReplicaId::random();
        storage.renew_lease(stale, t(10)).await.unwrap();
        let first = claim_for(storage, t(2), stale).await;
        assert_eq!(first.events_stored, 0);
        storage
            .append_events(run.run_id, first.attempt, &[event(1, "metadata"), event(2, "values")])
            .await
            .unwrap();
        storage
            .expire_leases(Leases::DueBy(t(11)), 3, t(11))
            .await
            .unwrap();
        let second = claim(storage, t(12)).await;
        assert_eq!((second.attempt, second.events_stored), (2, 2));
    }
}
