//! Threads: creation, reading back every field, metadata patches, deletion with what hangs
//! off them, search, and state written by hand with its checkpoints.

use crate::common::{
    checkpoint, claim, create, enqueue, event, ids, obj, search, t, thread, thread_of,
};
use errand_protocol::{
    IfExists, Interrupt, JsonObject, Nullable, RunStatus, SortOrder, Thread, ThreadSearchRequest,
    ThreadStatus, TtlStrategy,
};
use errand_server::storage::StorageError;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

contract_test! {
    async fn a_new_thread_reads_back_as_created_with_its_keys(storage) {
        let created = create(storage, json!({"user": "ann", "n": 1}), t(0)).await;
        let read = thread_of(storage, created.thread_id).await;
        assert_eq!(read, created);
        let wire = serde_json::to_value(&read).unwrap();
        assert_eq!(wire["values"], Value::Null);
        assert!(wire.get("interrupts").is_none(), "{wire}");
        assert!(wire.get("error").is_none(), "{wire}");
        assert_eq!(wire["status"], "idle");
        assert_eq!(wire["config"], json!({}));
        assert!(storage.get_thread(Uuid::now_v7()).await.unwrap().is_none());
    }
}

contract_test! {
    async fn every_thread_field_survives_storage(storage) {
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
        assert_eq!(thread_of(storage, full.thread_id).await, full);

        // Absent and null stay apart.
        let mut nulls = thread(json!({}), t(3));
        nulls.error = Nullable::Null;
        nulls.values = Nullable::Absent;
        storage
            .create_thread(nulls.clone(), IfExists::Raise)
            .await
            .unwrap();
        let read = thread_of(storage, nulls.thread_id).await;
        assert_eq!(read.error, Nullable::Null);
        assert_eq!(read.values, Nullable::Absent);
        let wire = serde_json::to_value(&read).unwrap();
        assert_eq!(wire["error"], Value::Null);
        assert!(wire.get("values").is_none());
    }
}

contract_test! {
    async fn create_thread_honours_if_exists(storage) {
        let first = create(storage, json!({"v": 1}), t(0)).await;
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
        assert_eq!(thread_of(storage, first.thread_id).await, first);
    }
}

contract_test! {
    async fn patch_thread_merges_metadata_key_by_key(storage) {
        let created = create(storage, json!({"a": 1, "b": 2}), t(0)).await;
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
        assert_eq!(thread_of(storage, created.thread_id).await, patched);

        let missing = Uuid::now_v7();
        let error = storage
            .patch_thread(missing, JsonObject::new(), t(9))
            .await
            .unwrap_err();
        assert!(matches!(error, StorageError::ThreadNotFound(id) if id == missing));
    }
}

contract_test! {
    async fn delete_thread_removes_its_runs_events_and_checkpoints(storage) {
        let doomed = create(storage, json!({}), t(0)).await;
        let other = create(storage, json!({}), t(0)).await;
        let doomed_run = enqueue(storage, doomed.thread_id, t(1)).await;
        let other_run = enqueue(storage, other.thread_id, t(1)).await;
        // Both running, so that they may stream.
        for _ in 0..2 {
            let claimed = claim(storage, t(1)).await;
            storage
                .append_events(claimed.run.run_id, claimed.attempt, &[event(1, "values")])
                .await
                .unwrap();
        }
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
        let running = storage
            .runs_with_status(&[RunStatus::Pending, RunStatus::Running])
            .await
            .unwrap();
        assert_eq!(
            running.iter().map(|run| run.run_id).collect::<Vec<_>>(),
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
}

contract_test! {
    async fn search_threads_filters_by_metadata_values_status_and_ids(storage) {
        let a = create(storage, json!({"user": "ann", "team": "x", "n": 1}), t(1)).await;
        let b = create(storage, json!({"user": "bob", "team": "x", "n": 2}), t(2)).await;
        let c = create(
            storage,
            json!({"user": "ann", "tags": ["p"], "deep": {"k": 1}}),
            t(3),
        )
        .await;
        let d = create(storage, json!({"user": "a\"n\\n", "team": "y"}), t(4)).await;
        // `c` gets values and becomes busy with a run.
        storage
            .update_thread_state(
                c.thread_id,
                checkpoint(None, json!({"topic": "rust", "k": 2}), t(5)),
            )
            .await
            .unwrap();
        enqueue(storage, c.thread_id, t(6)).await;

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
}

contract_test! {
    async fn search_threads_sorts_and_pages(storage) {
        let mut created = Vec::new();
        for i in 0..5 {
            created.push(create(storage, json!({"i": i}), t(i)).await);
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
        enqueue(storage, created[2].thread_id, t(200)).await;
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
}

contract_test! {
    async fn update_thread_state_and_list_checkpoints(storage) {
        let thread = create(storage, json!({}), t(0)).await;
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
        let stored = thread_of(storage, thread.thread_id).await;
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
}

contract_test! {
    async fn prune_deletes_idle_threads_and_leaves_busy_and_missing_ones(storage) {
        let idle = create(storage, json!({}), t(0)).await;
        let busy = create(storage, json!({}), t(0)).await;
        let ran = create(storage, json!({}), t(0)).await;
        enqueue(storage, ran.thread_id, t(1)).await;
        let claimed = claim(storage, t(2)).await;
        storage
            .finish_run(&crate::common::success(
                claimed.run.run_id,
                claimed.attempt,
                Some(json!({"n": 1})),
                t(3),
            ))
            .await
            .unwrap();
        enqueue(storage, busy.thread_id, t(4)).await;
        let pruned = storage
            .prune_threads(
                &[idle.thread_id, busy.thread_id, ran.thread_id, Uuid::now_v7()],
                TtlStrategy::Delete,
            )
            .await
            .unwrap();
        assert_eq!(pruned, 2);
        assert!(storage.get_thread(idle.thread_id).await.unwrap().is_none());
        assert!(storage.get_thread(ran.thread_id).await.unwrap().is_none());
        assert!(
            storage
                .get_run(ran.thread_id, claimed.run.run_id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(storage.list_checkpoints(ran.thread_id, 10, None).await.unwrap().is_empty());
        // A thread with a pending run keeps it: nothing accepted is lost.
        assert_eq!(thread_of(storage, busy.thread_id).await.status, ThreadStatus::Busy);
    }
}

contract_test! {
    async fn prune_keep_latest_keeps_the_values_the_last_checkpoint_and_the_last_run(storage) {
        let thread = create(storage, json!({}), t(0)).await;
        let mut runs = Vec::new();
        for n in 1..=3_i64 {
            enqueue(storage, thread.thread_id, t(n * 10)).await;
            let claimed = claim(storage, t(n * 10 + 1)).await;
            storage
                .finish_run(&crate::common::success(
                    claimed.run.run_id,
                    claimed.attempt,
                    Some(json!({"n": n})),
                    t(n * 10 + 2),
                ))
                .await
                .unwrap();
            runs.push(claimed.run.run_id);
        }
        assert_eq!(
            storage.list_checkpoints(thread.thread_id, 10, None).await.unwrap().len(),
            3
        );
        let pruned = storage
            .prune_threads(&[thread.thread_id], TtlStrategy::KeepLatest)
            .await
            .unwrap();
        assert_eq!(pruned, 1);
        let kept = thread_of(storage, thread.thread_id).await;
        assert_eq!(kept.values, Nullable::Present(json!({"n": 3})));
        let checkpoints = storage.list_checkpoints(thread.thread_id, 10, None).await.unwrap();
        assert_eq!(checkpoints.len(), 1);
        assert_eq!(checkpoints[0].values, json!({"n": 3}));
        assert_eq!(checkpoints[0].parent_checkpoint_id, None);
        let left: Vec<Uuid> = storage
            .list_runs(thread.thread_id, crate::common::page(10))
            .await
            .unwrap()
            .iter()
            .map(|run| run.run_id)
            .collect();
        assert_eq!(left, vec![runs[2]]);
    }
}
