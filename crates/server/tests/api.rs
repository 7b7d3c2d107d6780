//! The HTTP API, called in-process through the router (the same requests and answers as over a
//! socket): threads, runs, streams, cancel, the multitask strategies, errors and auth.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use errand_protocol::{Run, RunStatus, StreamPart, Thread, ThreadStatus};
use errand_server::ExecutorConfig;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tower::ServiceExt;

mod support;
use support::*;

#[tokio::test]
async fn health_and_unknown_routes_answer_json() {
    let api = api().await;
    let ok = api.call(Method::GET, "/ok", None).await;
    assert_eq!(ok.json(), json!({"ok": true}));
    let missing = api.call(Method::GET, "/nope", None).await;
    assert_eq!(
        (missing.status, missing.detail().as_str()),
        (StatusCode::NOT_FOUND, "Not Found")
    );
    let wrong = api.call(Method::PUT, "/threads/search", None).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.detail(), "Method Not Allowed");
}

#[tokio::test]
async fn threads_are_created_read_patched_searched_and_deleted() {
    let api = api().await;
    let created = api
        .call(
            Method::POST,
            "/threads",
            Some(json!({"metadata": {"team": "a"}})),
        )
        .await;
    let thread: Thread = serde_json::from_slice(&created.body).unwrap();
    assert_eq!(thread.status, ThreadStatus::Idle);
    assert!(created.json()["values"].is_null());
    assert!(created.json().get("interrupts").is_none());

    let duplicate = api
        .call(
            Method::POST,
            "/threads",
            Some(json!({"thread_id": thread.thread_id})),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(
        duplicate.detail(),
        format!("Thread with ID {} already exists", thread.thread_id)
    );
    let again = api
        .call(
            Method::POST,
            "/threads",
            Some(json!({"thread_id": thread.thread_id, "if_exists": "do_nothing"})),
        )
        .await;
    assert_eq!(again.json()["thread_id"], thread.thread_id.to_string());

    let path = format!("/threads/{}", thread.thread_id);
    let patched = api
        .call(
            Method::PATCH,
            &path,
            Some(json!({"metadata": {"owner": "me"}})),
        )
        .await;
    assert_eq!(
        patched.json()["metadata"],
        json!({"team": "a", "owner": "me"})
    );

    let found = api
        .call(
            Method::POST,
            "/threads/search",
            Some(json!({"metadata": {"owner": "me"}})),
        )
        .await;
    assert_eq!(found.json().as_array().unwrap().len(), 1);
    let none = api
        .call(
            Method::POST,
            "/threads/search",
            Some(json!({"metadata": {"owner": "you"}})),
        )
        .await;
    assert!(none.json().as_array().unwrap().is_empty());

    assert_eq!(
        api.call(Method::DELETE, &path, None).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = api.call(Method::GET, &path, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        gone.detail(),
        format!("Thread with ID {} not found", thread.thread_id)
    );
}

#[tokio::test]
async fn bad_input_gets_the_python_servers_errors() {
    let api = api().await;
    let bad_id = api.call(Method::GET, "/threads/not-a-uuid", None).await;
    assert_eq!(
        (bad_id.status, bad_id.detail().as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid thread ID: must be a UUID"
        )
    );
    let thread = api.thread().await;
    let runs = format!("/threads/{}/runs", thread.thread_id);

    let mode = api
        .call(
            Method::POST,
            &runs,
            Some(json!({"assistant_id": "echo", "stream_mode": "bogus"})),
        )
        .await;
    assert_eq!(mode.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(mode.detail().contains("bogus"), "{}", mode.detail());

    let missing = api
        .call(Method::POST, &runs, Some(json!({"input": {}})))
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        missing.detail().contains("assistant_id"),
        "{}",
        missing.detail()
    );

    let unknown = api
        .call(Method::POST, &runs, Some(json!({"assistant_id": "nope"})))
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.detail().starts_with("Invalid assistant: 'nope'"));

    let broken = api.call_with(Method::POST, &runs, None, &[]).await;
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
    let syntax = api
        .router
        .clone()
        .oneshot(Request::post(&runs).body(Body::from("{not json")).unwrap())
        .await
        .unwrap();
    assert_eq!(syntax.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let huge = "x".repeat(17 * 1024 * 1024);
    let too_big = api
        .call(
            Method::POST,
            "/threads",
            Some(json!({"metadata": {"blob": huge}})),
        )
        .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_big.detail().contains("larger than the limit"));

    let no_thread = api
        .call(
            Method::POST,
            &format!("/threads/{}/runs", uuid::Uuid::now_v7()),
            Some(json!({"assistant_id": "echo"})),
        )
        .await;
    assert_eq!(
        (no_thread.status, no_thread.detail().as_str()),
        (StatusCode::NOT_FOUND, "Thread or assistant not found.")
    );
}

#[tokio::test]
async fn a_run_echoes_into_the_thread_and_joins_with_its_values() {
    let api = api().await;
    let thread = api.thread().await;
    let created = api.start(&thread, "hello", json!({})).await;
    assert_eq!(
        created.headers["content-location"].to_str().unwrap(),
        format!(
            "/threads/{}/runs/{}",
            thread.thread_id,
            created.json()["run_id"].as_str().unwrap()
        )
    );
    let run: Run = serde_json::from_slice(&created.body).unwrap();
    assert_eq!(run.status, RunStatus::Pending);
    let values = api.join(&run).await;
    assert_eq!(texts(&values), ["hello", "echo: hello"]);
    assert_eq!(
        api.wait_status(&run, RunStatus::Success).await.status,
        RunStatus::Success
    );

    let stored = api.get_thread(&thread).await;
    assert_eq!(stored.status, ThreadStatus::Idle);
    let state = api
        .call(
            Method::GET,
            &format!("/threads/{}/state", thread.thread_id),
            None,
        )
        .await
        .json();
    assert_eq!(texts(&state["values"]), ["hello", "echo: hello"]);
    assert_eq!(state["values"]["messages"][0]["type"], "human");
    assert!(state["values"]["messages"][0]["id"].is_string());

    let second = api.run(&thread, "again").await;
    api.join(&second).await;
    let history = api
        .call(
            Method::POST,
            &format!("/threads/{}/history", thread.thread_id),
            Some(json!({"limit": 10})),
        )
        .await
        .json();
    assert_eq!(
        history.as_array().unwrap().len(),
        4,
        "a checkpoint per streamed state"
    );
    assert_eq!(texts(&history[0]["values"]).len(), 4, "newest first");
    let listed = api
        .call(
            Method::GET,
            &format!("/threads/{}/runs", thread.thread_id),
            None,
        )
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_stream_starts_with_metadata_and_carries_each_requested_mode() {
    let api = api().await;
    let thread = api.thread().await;
    let answer = api
        .call(
            Method::POST,
            &format!("/threads/{}/runs/stream", thread.thread_id),
            Some(json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "hi"}]}, "stream_mode": ["values", "updates", "messages-tuple"]})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(
        answer.headers["location"]
            .to_str()
            .unwrap()
            .ends_with("/stream")
    );
    let events = decode_events(&answer.body);
    let names: Vec<_> = events.iter().map(|e| e.event_name()).collect();
    assert_eq!(
        names,
        ["metadata", "values", "messages", "updates", "values"]
    );
    match (&events[0].part, &events[4].part) {
        (StreamPart::Metadata(meta), StreamPart::Values(values)) => {
            assert_eq!(meta.attempt, 1);
            assert_eq!(last_text(values), "echo: hi");
        }
        other => panic!("unexpected {other:?}"),
    }
    let ids: Vec<_> = events.iter().map(|e| e.id.clone().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);

    // The legacy `messages` mode shows the message as metadata + complete.
    let legacy = api
        .call(
            Method::POST,
            &format!("/threads/{}/runs/stream", thread.thread_id),
            Some(json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "x"}]}, "stream_mode": "messages"})),
        )
        .await;
    let names: Vec<_> = decode_events(&legacy.body)
        .iter()
        .map(|e| e.event_name())
        .collect();
    assert_eq!(
        names,
        ["metadata", "messages/metadata", "messages/complete"]
    );
}

#[tokio::test]
async fn a_failing_run_ends_in_error_everywhere() {
    let api = api().await;
    let thread = api.thread().await;
    let stream = api
        .call(
            Method::POST,
            &format!("/threads/{}/runs/stream", thread.thread_id),
            Some(json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "fail=broken on purpose"}]}})),
        )
        .await;
    let events = decode_events(&stream.body);
    match &events.last().unwrap().part {
        StreamPart::Error(error) => assert_eq!(
            (error.error.as_str(), error.message.as_str()),
            ("EchoError", "broken on purpose")
        ),
        other => panic!("last event is {other:?}"),
    }
    let stored = api.get_thread(&thread).await;
    assert_eq!(stored.status, ThreadStatus::Error);
    let run = api.run(&thread, "fail=again").await;
    let result = api.join(&run).await;
    assert_eq!(
        result,
        json!({"__error__": {"error": "EchoError", "message": "again"}})
    );
    assert_eq!(
        api.wait_status(&run, RunStatus::Error).await.status,
        RunStatus::Error
    );
}

#[tokio::test]
async fn a_panicking_graph_fails_its_run_and_the_server_goes_on() {
    let api = api().await;
    let thread = api.thread().await;
    let answer = api
        .call(
            Method::POST,
            &format!("/threads/{}/runs/wait", thread.thread_id),
            Some(json!({"assistant_id": "panics", "input": {}})),
        )
        .await;
    assert_eq!(
        answer.json(),
        json!({"__error__": {"error": "GraphPanicked", "message": "deliberately"}})
    );
    let after = api.run(&thread, "still here").await;
    assert_eq!(last_text(&api.join(&after).await), "echo: still here");
}

#[tokio::test]
async fn cancel_interrupts_a_running_run_and_404s_on_a_finished_one() {
    let api = api().await;
    let thread = api.thread().await;
    let run = api.run(&thread, "sleep=30").await;
    api.wait_status(&run, RunStatus::Running).await;
    api.wait_input_taken(&run).await;
    let cancel = format!(
        "/threads/{}/runs/{}/cancel?wait=0&action=interrupt",
        thread.thread_id, run.run_id
    );
    let answer = api.call(Method::POST, &cancel, None).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    api.wait_status(&run, RunStatus::Interrupted).await;
    let stored = api.get_thread(&thread).await;
    assert_eq!(stored.status, ThreadStatus::Interrupted);
    assert_eq!(
        texts(stored.values.as_option().unwrap()),
        ["sleep=30"],
        "the input it had taken stays"
    );

    let again = api.call(Method::POST, &cancel, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.detail().starts_with("No matching runs to cancel"));

    // A pending run is cancelled at once, with wait=1 answering when it has ended.
    let blocker = api.run(&thread, "sleep=30").await;
    let queued = api.run(&thread, "queued").await;
    let waited = api
        .call(
            Method::POST,
            &format!(
                "/threads/{}/runs/{}/cancel?wait=1",
                thread.thread_id, queued.run_id
            ),
            None,
        )
        .await;
    assert_eq!((waited.status, waited.json()), (StatusCode::OK, json!({})));
    api.wait_status(&queued, RunStatus::Interrupted).await;
    api.call(
        Method::POST,
        &format!(
            "/threads/{}/runs/{}/cancel",
            thread.thread_id, blocker.run_id
        ),
        None,
    )
    .await;
    api.wait_status(&blocker, RunStatus::Interrupted).await;
}

#[tokio::test]
async fn multitask_strategies_behave_as_on_the_python_server() {
    let api = api().await;

    // reject: 409, and the first run goes on.
    let thread = api.thread().await;
    let first = api.run(&thread, "sleep=1.5").await;
    let rejected = api
        .start(&thread, "second", json!({"multitask_strategy": "reject"}))
        .await;
    assert_eq!(rejected.status, StatusCode::CONFLICT);
    assert!(
        rejected
            .detail()
            .starts_with("Thread is already running a task")
    );
    assert_eq!(last_text(&api.join(&first).await), "echo: sleep=1.5");

    // enqueue: the second runs after the first; both answers are in the thread.
    let thread = api.thread().await;
    let first = api.run(&thread, "sleep=0.2").await;
    let second: Run = serde_json::from_slice(
        &api.start(&thread, "next", json!({"multitask_strategy": "enqueue"}))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(second.status, RunStatus::Pending);
    api.join(&second).await;
    assert_eq!(
        api.wait_status(&first, RunStatus::Success).await.status,
        RunStatus::Success
    );
    let values = api.get_thread(&thread).await.values.into_option().unwrap();
    assert_eq!(
        texts(&values),
        ["sleep=0.2", "echo: sleep=0.2", "next", "echo: next"]
    );

    // interrupt: the first ends interrupted, the second goes on from its state.
    let thread = api.thread().await;
    let first = api.run(&thread, "sleep=30").await;
    api.wait_status(&first, RunStatus::Running).await;
    api.wait_input_taken(&first).await;
    let second: Run = serde_json::from_slice(
        &api.start(
            &thread,
            "instead",
            json!({"multitask_strategy": "interrupt"}),
        )
        .await
        .body,
    )
    .unwrap();
    let values = api.join(&second).await;
    api.wait_status(&first, RunStatus::Interrupted).await;
    assert_eq!(texts(&values), ["sleep=30", "instead", "echo: instead"]);

    // rollback: the first is deleted with what it wrote.
    let thread = api.thread().await;
    let first = api.run(&thread, "sleep=30").await;
    api.wait_status(&first, RunStatus::Running).await;
    let second: Run = serde_json::from_slice(
        &api.start(&thread, "fresh", json!({"multitask_strategy": "rollback"}))
            .await
            .body,
    )
    .unwrap();
    let values = api.join(&second).await;
    assert_eq!(texts(&values), ["fresh", "echo: fresh"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.get_run(&first).await.status != StatusCode::NOT_FOUND {
        assert!(
            Instant::now() < deadline,
            "the rolled-back run is still there"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_join_stream_resumes_after_the_last_event_id() {
    let api = api().await;
    let thread = api.thread().await;
    let run = api.run(&thread, "resume me").await;
    api.join(&run).await;
    let path = format!("/threads/{}/runs/{}/stream", thread.thread_id, run.run_id);
    let all = decode_events(&api.call(Method::GET, &path, None).await.body);
    assert_eq!(all.len(), 3, "metadata and two values: the run's own modes");
    let rest = decode_events(
        &api.call_with(Method::GET, &path, None, &[("last-event-id", "2")])
            .await
            .body,
    );
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id.as_deref(), Some(all[2].id.as_deref().unwrap()));
    let updates = decode_events(
        &api.call(Method::GET, &format!("{path}?stream_mode=updates"), None)
            .await
            .body,
    );
    let names: Vec<_> = updates.iter().map(|e| e.event_name()).collect();
    assert_eq!(names, ["metadata", "updates"]);
}

#[tokio::test]
async fn a_live_join_stream_follows_a_running_run_to_its_end() {
    let api = api().await;
    let thread = api.thread().await;
    let run = api.run(&thread, "sleep=0.3").await;
    api.wait_status(&run, RunStatus::Running).await;
    let path = format!(
        "/threads/{}/runs/{}/stream?stream_mode=values",
        thread.thread_id, run.run_id
    );
    let live = decode_events(&api.call(Method::GET, &path, None).await.body);
    match &live.last().unwrap().part {
        StreamPart::Values(values) => assert_eq!(last_text(values), "echo: sleep=0.3"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn stateless_runs_answer_and_leave_no_thread() {
    let api = api().await;
    let answer = api
        .call(Method::POST, "/runs/wait", Some(json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "once"}]}})))
        .await;
    assert_eq!(last_text(&answer.json()), "echo: once");
    let streamed = api
        .call(
            Method::POST,
            "/runs/stream",
            Some(json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "twice"}]}})),
        )
        .await;
    match &decode_events(&streamed.body).last().expect("events").part {
        StreamPart::Values(values) => assert_eq!(last_text(values), "echo: twice"),
        other => panic!("{other:?}"),
    }
    let threads = api
        .call(Method::POST, "/threads/search", Some(json!({})))
        .await
        .json();
    assert!(threads.as_array().unwrap().is_empty(), "{threads}");
}

#[tokio::test]
async fn delayed_and_timed_out_runs() {
    let config = ExecutorConfig {
        run_timeout: Duration::from_millis(200),
        ..ExecutorConfig::default()
    };
    let api = api_with(config, None).await;
    let thread = api.thread().await;
    let delayed: Run = serde_json::from_slice(
        &api.start(&thread, "later", json!({"after_seconds": 1.5}))
            .await
            .body,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let early: Run = serde_json::from_slice(&api.get_run(&delayed).await.body).unwrap();
    assert_eq!(early.status, RunStatus::Pending);
    api.wait_status(&delayed, RunStatus::Success).await;

    let slow = api.run(&thread, "sleep=5").await;
    api.wait_status(&slow, RunStatus::Timeout).await;
    assert_eq!(api.get_thread(&thread).await.status, ThreadStatus::Error);
}

#[tokio::test]
async fn an_api_key_guards_every_route_but_ok() {
    let api = api_with(ExecutorConfig::default(), Some("s3cret")).await;
    assert_eq!(
        api.call(Method::GET, "/ok", None).await.status,
        StatusCode::OK
    );
    let denied = api.call(Method::POST, "/threads", Some(json!({}))).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    let wrong = api
        .call_with(
            Method::POST,
            "/threads",
            Some(json!({})),
            &[("x-api-key", "nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let header = api
        .call_with(
            Method::POST,
            "/threads",
            Some(json!({})),
            &[("x-api-key", "s3cret")],
        )
        .await;
    assert_eq!(header.status, StatusCode::OK);
    let bearer = api
        .call_with(
            Method::POST,
            "/threads",
            Some(json!({})),
            &[("authorization", "Bearer s3cret")],
        )
        .await;
    assert_eq!(bearer.status, StatusCode::OK);
}

#[tokio::test]
async fn assistants_and_the_store() {
    let api = api().await;
    let found = api
        .call(
            Method::POST,
            "/assistants/search",
            Some(json!({"limit": 10, "offset": 0})),
        )
        .await
        .json();
    assert_eq!(
        found[0]["assistant_id"],
        "046b5dc7-2108-582c-9c6c-31d556d138f0"
    );
    assert_eq!(found[0]["graph_id"], "echo");
    let one = api
        .call(
            Method::GET,
            "/assistants/046b5dc7-2108-582c-9c6c-31d556d138f0",
            None,
        )
        .await;
    assert_eq!(one.json()["name"], "echo");

    let put = api
        .call(
            Method::PUT,
            "/store/items",
            Some(json!({"namespace": ["users", "u1"], "key": "prefs", "value": {"tone": "dry"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    let item = api
        .call(
            Method::GET,
            "/store/items?namespace=users.u1&key=prefs",
            None,
        )
        .await
        .json();
    assert_eq!(item["value"], json!({"tone": "dry"}));
    let missing = api
        .call(
            Method::GET,
            "/store/items?namespace=users.u1&key=nope",
            None,
        )
        .await;
    assert_eq!(
        (missing.status, missing.json()),
        (StatusCode::OK, Value::Null)
    );
    let search = api
        .call(
            Method::POST,
            "/store/items/search",
            Some(json!({"namespace_prefix": ["users"]})),
        )
        .await
        .json();
    assert_eq!(search["items"].as_array().unwrap().len(), 1);
    let namespaces = api
        .call(Method::POST, "/store/namespaces", Some(json!({})))
        .await
        .json();
    assert_eq!(namespaces, json!({"namespaces": [["users", "u1"]]}));
    let deleted = api
        .call(
            Method::DELETE,
            "/store/items",
            Some(json!({"namespace": ["users", "u1"], "key": "prefs"})),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    api.server.shutdown(Duration::from_secs(1)).await;
}

/// A request marked as made in this process (or not), answered with its typed answer, if any,
/// and its body decoded.
async fn typed<T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static>(
    api: &Api,
    in_process: bool,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (Option<T>, T) {
    let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(body)
        .expect("request");
    if in_process {
        request
            .extensions_mut()
            .insert(errand_protocol::InProcessCall);
    }
    let mut response = api
        .router
        .clone()
        .oneshot(request)
        .await
        .expect("infallible");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let answer = response
        .extensions_mut()
        .remove::<errand_protocol::InProcessAnswer<T>>()
        .map(|answer| answer.0);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (answer, serde_json::from_slice(&bytes).expect("JSON"))
}

#[tokio::test]
async fn a_caller_in_this_process_gets_the_value_its_answer_encodes() {
    let api = api().await;
    let create = json!({"metadata": {"owner": "me"}});
    let (answer, body) =
        typed::<Thread>(&api, true, Method::POST, "/threads", Some(create.clone())).await;
    assert_eq!(answer.as_ref(), Some(&body));
    let thread = body;
    let path = format!("/threads/{}", thread.thread_id);
    let (answer, body) = typed::<Thread>(&api, true, Method::GET, &path, None).await;
    assert_eq!(answer.as_ref(), Some(&body));

    let start = json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "hi"}]}, "metadata": {"n": 1}});
    let runs = format!("/threads/{}/runs", thread.thread_id);
    let (answer, run) = typed::<Run>(&api, true, Method::POST, &runs, Some(start.clone())).await;
    assert_eq!(answer.as_ref(), Some(&run));
    let (answer, body) = typed::<Run>(&api, true, Method::POST, "/runs", Some(start.clone())).await;
    assert_eq!(answer.as_ref(), Some(&body));
    let path = format!("{runs}/{}", run.run_id);
    let (answer, body) = typed::<Run>(&api, true, Method::GET, &path, None).await;
    assert_eq!(answer.as_ref(), Some(&body));

    // Over the network the body is the whole answer.
    let (answer, _) = typed::<Thread>(&api, false, Method::POST, "/threads", Some(create)).await;
    assert_eq!(answer, None);
    let (answer, _) = typed::<Run>(&api, false, Method::POST, &runs, Some(start)).await;
    assert_eq!(answer, None);
    let (answer, _) = typed::<Run>(&api, false, Method::GET, &path, None).await;
    assert_eq!(answer, None);
}

#[tokio::test]
async fn threads_are_pruned_by_request_and_by_time_to_live() {
    let api = api_with(
        ExecutorConfig {
            thread_ttl: Some(Duration::from_secs(1)),
            ..ExecutorConfig::default()
        },
        None,
    )
    .await;
    let wait = |thread: &Thread| format!("/threads/{}/runs/wait", thread.thread_id);
    let body =
        json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "hi"}]}});
    let kept = api.thread().await;
    let pruned = api.thread().await;
    for thread in [&kept, &pruned] {
        let answer = api
            .call(Method::POST, &wait(thread), Some(body.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    // A thread running a run is left alone.
    let busy = api.thread().await;
    let running = api.start(&busy, "sleep=30 busy", json!({})).await;
    assert_eq!(running.status, StatusCode::OK);
    let answer = api
        .call(
            Method::POST,
            "/threads/prune",
            Some(json!({"thread_ids": [pruned.thread_id, busy.thread_id, uuid::Uuid::now_v7()]})),
        )
        .await;
    assert_eq!(answer.json(), json!({"pruned_count": 1}));
    let gone = api
        .call(Method::GET, &format!("/threads/{}", pruned.thread_id), None)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let answer = api
        .call(
            Method::POST,
            "/threads/prune",
            Some(json!({"thread_ids": [kept.thread_id], "strategy": "keep_latest"})),
        )
        .await;
    assert_eq!(answer.json(), json!({"pruned_count": 1}));
    let bad = api
        .call(
            Method::POST,
            "/threads/prune",
            Some(json!({"thread_ids": [kept.thread_id], "strategy": "shred"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Past its time-to-live an idle thread is deleted by the server itself; the busy one stays.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = api
            .call(Method::GET, &format!("/threads/{}", kept.thread_id), None)
            .await;
        if read.status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle thread outlived its ttl"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let read = api
        .call(Method::GET, &format!("/threads/{}", busy.thread_id), None)
        .await;
    assert_eq!(read.status, StatusCode::OK);
}
