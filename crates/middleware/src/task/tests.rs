//! The board's statuses, reducer, pruning and record form.

use super::*;
use serde_json::json;

/// The task id numbered `n`.
fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn task(n: u128, status: TaskStatus, updated: &str) -> AsyncTask {
    AsyncTask {
        task_id: id(n),
        agent_name: "researcher".into(),
        thread_id: id(n),
        run_id: id(1_000 + n),
        status,
        created_at: at(updated),
        last_checked_at: at(updated),
        last_updated_at: at(updated),
        superseded_run_ids: Vec::new(),
        purpose: None,
        deadline: None,
        interrupts: Vec::new(),
    }
}

#[test]
fn statuses_come_from_the_run_and_the_thread_together() {
    use RunStatus as R;
    use ThreadStatus as T;
    assert_eq!(
        TaskStatus::observe(R::Interrupted, None),
        TaskStatus::Cancelled
    );
    assert_eq!(
        TaskStatus::observe(R::Success, Some(T::Interrupted)),
        TaskStatus::Waiting
    );
    assert_eq!(
        TaskStatus::observe(R::Success, Some(T::Busy)),
        TaskStatus::Running
    );
    assert_eq!(
        TaskStatus::observe(R::Success, Some(T::Error)),
        TaskStatus::Error
    );
    assert_eq!(
        TaskStatus::observe(R::Success, Some(T::Idle)),
        TaskStatus::Success
    );
    assert_eq!(TaskStatus::observe(R::Pending, None), TaskStatus::Pending);
    assert_eq!(TaskStatus::observe(R::Timeout, None), TaskStatus::Timeout);
    let legacy: TaskStatus = serde_json::from_value(json!("interrupted")).unwrap();
    assert_eq!(legacy, TaskStatus::Cancelled);
    assert!(TaskStatus::Waiting.is_unfinished() && !TaskStatus::Timeout.is_unfinished());
}

/// Deep Agents' reducer tests: merge into empty, update an entry whole, keep other keys.
#[test]
fn the_board_merges_by_task_id() {
    let channel = board_channel(100);
    let a = task(1, TaskStatus::Running, "2026-01-01T00:00:00Z");
    let b = task(2, TaskStatus::Running, "2026-01-01T00:00:01Z");
    let (key_a, key_b) = (a.task_id.to_string(), b.task_id.to_string());
    let merged = channel.reduce(None, a.to_update());
    assert_eq!(merged[&key_a]["status"], "running");
    let merged = channel.reduce(Some(&merged), b.to_update());
    let mut a2 = a.clone();
    a2.status = TaskStatus::Success;
    let merged = channel.reduce(Some(&merged), a2.to_update());
    assert_eq!(merged[&key_a]["status"], "success");
    assert_eq!(merged[&key_b]["status"], "running");
    assert_eq!(merged.as_object().unwrap().len(), 2);
}

#[test]
fn finished_tasks_past_the_cap_are_pruned_oldest_first_and_unfinished_never() {
    let channel = board_channel(2);
    let mut value = None;
    for (i, status) in [
        TaskStatus::Success,
        TaskStatus::Running,
        TaskStatus::Error,
        TaskStatus::Cancelled,
        TaskStatus::Waiting,
    ]
    .into_iter()
    .enumerate()
    {
        let record = task(i as u128, status, &format!("2026-01-01T00:00:0{i}Z"));
        value = Some(channel.reduce(value.as_ref(), record.to_update()));
    }
    let board = board(
        &[(TASKS_CHANNEL.to_owned(), value.unwrap())]
            .into_iter()
            .collect(),
    );
    let ids: Vec<_> = board.iter().map(|t| t.task_id).collect();
    assert_eq!(ids, [id(1), id(2), id(3), id(4)]);
}

#[test]
fn observing_moves_last_updated_only_on_a_change() {
    let mut record = task(1, TaskStatus::Running, "2026-01-01T00:00:00Z");
    record.observed(TaskStatus::Running, None, at("2026-01-01T00:01:00Z"));
    assert_eq!(record.last_updated_at, at("2026-01-01T00:00:00Z"));
    assert_eq!(record.last_checked_at, at("2026-01-01T00:01:00Z"));
    record.observed(
        TaskStatus::Running,
        Some(id(2_000)),
        at("2026-01-01T00:02:00Z"),
    );
    assert_eq!(record.last_updated_at, at("2026-01-01T00:02:00Z"));
    record.observed(TaskStatus::Success, None, at("2026-01-01T00:03:00Z"));
    assert_eq!(record.last_updated_at, at("2026-01-01T00:03:00Z"));
}

/// A record as Deep Agents writes it reads, and writes back in the very same form: ids as
/// hyphenated lowercase strings, times as `%Y-%m-%dT%H:%M:%SZ`.
#[test]
fn a_record_keeps_the_board_form_byte_for_byte() {
    let written = r#"{"task_id":"0195f3c2-aaaa-7000-8000-000000000001","agent_name":"researcher","thread_id":"0195f3c2-aaaa-7000-8000-000000000001","run_id":"0195f3c2-bbbb-7000-8000-000000000002","status":"running","created_at":"2026-01-01T10:00:00Z","last_checked_at":"2026-01-01T10:00:05Z","last_updated_at":"2026-01-01T10:00:05Z"}"#;
    let record: AsyncTask = serde_json::from_str(written).unwrap();
    assert_eq!(record.created_at, at("2026-01-01T10:00:00Z"));
    assert_eq!(serde_json::to_string(&record).unwrap(), written);

    let with_errand_fields = r#"{"task_id":"0195f3c2-aaaa-7000-8000-000000000001","agent_name":"researcher","thread_id":"0195f3c2-aaaa-7000-8000-000000000001","run_id":"0195f3c2-bbbb-7000-8000-000000000002","status":"pending","created_at":"2026-01-01T10:00:00Z","last_checked_at":"2026-01-01T10:00:05Z","last_updated_at":"2026-01-01T10:00:05Z","superseded_run_ids":["0195f3c2-cccc-7000-8000-000000000003"],"purpose":"research","deadline":"2026-01-01T11:00:00Z"}"#;
    let record: AsyncTask = serde_json::from_str(with_errand_fields).unwrap();
    assert_eq!(record.deadline, Some(at("2026-01-01T11:00:00Z")));
    assert_eq!(serde_json::to_string(&record).unwrap(), with_errand_fields);
}

#[test]
fn records_that_do_not_parse_are_skipped() {
    let good = task(1, TaskStatus::Running, "2026-01-01T00:00:00Z");
    let mut tasks = JsonObject::new();
    tasks.insert(
        good.task_id.to_string(),
        serde_json::to_value(&good).unwrap(),
    );
    let mut bad_id = serde_json::to_value(&good).unwrap();
    bad_id["task_id"] = json!("not-a-uuid");
    tasks.insert("not-a-uuid".into(), bad_id);
    let mut bad_time =
        serde_json::to_value(task(2, TaskStatus::Running, "2026-01-01T00:00:00Z")).unwrap();
    bad_time["created_at"] = json!("yesterday");
    tasks.insert(id(2).to_string(), bad_time);
    let channels: JsonObject = [(TASKS_CHANNEL.to_owned(), Value::Object(tasks))]
        .into_iter()
        .collect();
    assert_eq!(board(&channels), [good]);
    assert_eq!(find_task(&channels, &id(2).to_string()), None);
}
