//! What a client may send is what storage can give back: a request that could not be read
//! back once stored is refused at the door with a 422 naming its field, and whatever is
//! accepted round-trips, so no one request can break the reads, the cancels and the queue that
//! every other client relies on.

mod support;

use axum::http::{Method, StatusCode};
use errand_protocol::{MAX_AFTER_SECONDS, MAX_BODY_NESTING, Run, RunStatus, Thread};
use proptest::prelude::*;
use serde_json::{Value, json};
use support::*;

/// `leaf` inside `levels` arrays.
fn nested(levels: usize, leaf: Value) -> Value {
    (0..levels).fold(leaf, |inner, _| Value::Array(vec![inner]))
}

/// Every read and write of the whole server that a stored run takes part in still answers:
/// the run's get and list, a cancel of every active run, and the thread.
async fn server_still_answers(api: &Api, thread: &Thread) {
    let thread_path = format!("/threads/{}", thread.thread_id);
    for (method, path, body) in [
        (Method::GET, thread_path.clone(), None),
        (Method::GET, format!("{thread_path}/runs"), None),
        (Method::GET, format!("{thread_path}/state"), None),
        (
            Method::POST,
            "/runs/cancel".to_owned(),
            Some(json!({"status": "all"})),
        ),
        (Method::POST, "/threads/search".to_owned(), Some(json!({}))),
    ] {
        let answer = api.call(method.clone(), &path, body).await;
        assert!(
            answer.status.is_success(),
            "{method} {path}: {} {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
}

#[tokio::test]
async fn after_seconds_outside_zero_to_ten_years_is_refused_naming_it() {
    let api = api().await;
    let thread = api.thread().await;
    // 3e11 s put `created_at` past the year 9999, which storage could not read back; 1e20 s
    // panicked in the handler; negative delays are not delays.
    for after in [
        json!(3e11),
        json!(1e20),
        json!(1.8e19),
        json!(-1),
        json!(MAX_AFTER_SECONDS + 1),
    ] {
        let answer = api
            .start(&thread, "later", json!({"after_seconds": after}))
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{after}");
        assert!(answer.detail().starts_with("after_seconds"), "{after}");
    }
    server_still_answers(&api, &thread).await;

    // The longest delay allowed is kept, and read back.
    let answer = api
        .start(
            &thread,
            "much later",
            json!({"after_seconds": MAX_AFTER_SECONDS}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let run: Run = serde_json::from_slice(&answer.body).expect("run");
    let stored: Run = serde_json::from_slice(&api.get_run(&run).await.body).expect("run");
    assert_eq!(stored.created_at, run.created_at);
    server_still_answers(&api, &thread).await;
}

#[tokio::test]
async fn a_body_nested_deeper_than_storage_keeps_is_refused_naming_its_field() {
    let api = api().await;
    let thread = api.thread().await;
    // Within the JSON parser's limit of 128, but deeper once stored inside the run.
    let body_levels = |value_levels: usize| value_levels + 1;
    let deepest = MAX_BODY_NESTING - 1;
    for (field, levels) in [("input", 126), ("metadata", 123), ("input", deepest + 1)] {
        assert!(body_levels(levels) > MAX_BODY_NESTING);
        let answer = api
            .start(
                &thread,
                "deep",
                json!({ field: {"deep": nested(levels - 1, json!(1))} }),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field} {levels}"
        );
        assert!(answer.detail().starts_with(field), "{}", answer.detail());
    }
    server_still_answers(&api, &thread).await;

    // As deep as allowed: accepted, run, and read back whole.
    let input = json!({"messages": [], "deep": nested(deepest - 1, json!("leaf"))});
    let answer = api
        .call(
            Method::POST,
            &format!("/threads/{}/runs", thread.thread_id),
            Some(json!({"assistant_id": "echo", "input": input, "metadata": {"m": nested(deepest - 1, json!(2))}})),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let run: Run = serde_json::from_slice(&answer.body).expect("run");
    let run = api.wait_status(&run, RunStatus::Success).await;
    assert_eq!(run.kwargs.input.as_option(), Some(&input));
    server_still_answers(&api, &thread).await;
}

/// Any JSON value, up to `depth` levels of arrays and objects.
fn any_json(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |n| n.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn any_object(depth: u32) -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,8}", any_json(depth), 0..4)
        .prop_map(|map| Value::Object(map.into_iter().collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever a run create accepts is stored as answered: its get and its list answer the
    /// same run, and the server's other reads still work.
    #[test]
    fn every_accepted_run_reads_back_as_it_was_answered(
        input in any_object(6),
        metadata in any_object(4),
        context in any_object(4),
        configurable in any_object(3),
        extra in any_object(3),
        after in prop_oneof![Just(None), (0.0..5e8f64).prop_map(Some), (1e11..1e13f64).prop_map(Some)],
        // Around the nesting limit, where a stored run used to become unreadable.
        deep in prop_oneof![Just(None), (90..130usize).prop_map(Some)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let api = api().await;
            let thread = api.thread().await;
            let mut input = input;
            if let Some(levels) = deep {
                input["deep"] = nested(levels, json!(0));
            }
            let mut body = json!({"assistant_id": "echo", "input": input, "metadata": metadata});
            // Both together are refused (400), as on the Python server: send one or the other.
            if configurable.as_object().is_some_and(|c| !c.is_empty()) {
                body["config"] = json!({"configurable": configurable});
            } else {
                body["context"] = context;
            }
            if let Some(after) = after {
                body["after_seconds"] = json!(after);
            }
            if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
                for (key, value) in extra {
                    body.entry(key).or_insert(value);
                }
            }
            let answer = api
                .call(Method::POST, &format!("/threads/{}/runs", thread.thread_id), Some(body.clone()))
                .await;
            if !answer.status.is_success() {
                // Refused at the door is fine; what was refused must say why, in `detail`.
                prop_assert!(answer.status.is_client_error(), "{body}: {}", answer.status);
                prop_assert!(!answer.detail().is_empty());
                return Ok(());
            }
            let created: Value = answer.json();
            let got = api
                .call(Method::GET, &format!("/threads/{}/runs/{}", thread.thread_id, created["run_id"].as_str().unwrap_or_default()), None)
                .await;
            prop_assert_eq!(got.status, StatusCode::OK);
            let mut got: Value = got.json();
            // The status and `updated_at` move as the run goes; everything else is as accepted.
            got["status"] = created["status"].clone();
            got["updated_at"] = created["updated_at"].clone();
            prop_assert_eq!(&got, &created);
            server_still_answers(&api, &thread).await;
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_path_that_is_not_utf8_answers_422_with_a_detail() {
    let api = api().await;
    for path in ["/threads/%FF", "/threads/%FF/runs", "/assistants/%C3%28"] {
        let answer = api.call(Method::GET, path, None).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert!(!answer.detail().is_empty(), "{path}");
    }
}

#[tokio::test]
async fn a_body_announced_over_the_limit_is_refused_without_being_kept() {
    let api = api().await;
    // The announced length alone decides: what arrives of the body is dropped.
    let announced = (16 * 1024 * 1024 + 1).to_string();
    let answer = api
        .call_with(
            Method::POST,
            "/threads",
            None,
            &[("content-length", announced.as_str())],
        )
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!answer.detail().is_empty());
}
