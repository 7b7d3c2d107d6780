//! A run's stream events: appended by the attempt that holds the run, replayed after a
//! position, stored once whatever is sent twice.

use crate::common::{claim, create, done, enqueue, event, t};
use serde_json::json;
use uuid::Uuid;

contract_test! {
    async fn events_append_and_replay_after_a_position(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let other_thread = create(storage, json!({}), t(0)).await;
        let run = enqueue(storage, thread.thread_id, t(1)).await;
        let other = enqueue(storage, other_thread.thread_id, t(2)).await;
        let attempt = claim(storage, t(2)).await.attempt;
        let other_attempt = claim(storage, t(2)).await.attempt;
        storage
            .append_events(run.run_id, attempt, &[event(1, "metadata"), event(2, "values")])
            .await
            .unwrap();
        storage
            .append_events(other.run_id, other_attempt, &[event(1, "values")])
            .await
            .unwrap();
        storage.append_events(run.run_id, attempt, &[]).await.unwrap();
        storage
            .append_events(
                run.run_id,
                attempt,
                &[event(3, "updates|child:1"), event(4, "end")],
            )
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
        assert!(storage.events_after(run.run_id, 4).await.unwrap().is_empty());
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
        assert_eq!(
            storage.events_after(other.run_id, 0).await.unwrap(),
            vec![event(1, "values")]
        );

        // Events of a run that no longer exists are dropped, without an error.
        let ghost = Uuid::now_v7();
        storage
            .append_events(ghost, 1, &[event(1, "values")])
            .await
            .unwrap();
        assert!(storage.events_after(ghost, 0).await.unwrap().is_empty());
    }
}

contract_test! {
    /// An append tried again after a failure whose commit was not seen must not fail on the
    /// events it did store, nor store them twice; the first stored stays.
    async fn events_appended_twice_with_the_same_seq_are_stored_once(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let run = enqueue(storage, thread.thread_id, t(1)).await;
        let claimed = claim(storage, t(1)).await;
        storage
            .append_events(run.run_id, claimed.attempt, &[event(1, "metadata"), event(2, "values")])
            .await
            .unwrap();
        storage
            .append_events(run.run_id, claimed.attempt, &[event(2, "again"), event(3, "values")])
            .await
            .unwrap();
        assert_eq!(
            storage.events_after(run.run_id, 0).await.unwrap(),
            vec![event(1, "metadata"), event(2, "values"), event(3, "values")]
        );

        // The events of a run's end are appended the same way.
        let mut finished = done(&claimed, t(2));
        finished.events = vec![event(3, "again"), event(4, "end")].into();
        storage.finish_run(&finished).await.unwrap().unwrap();
        assert_eq!(
            storage.events_after(run.run_id, 0).await.unwrap(),
            vec![
                event(1, "metadata"),
                event(2, "values"),
                event(3, "values"),
                event(4, "end")
            ]
        );
    }
}
