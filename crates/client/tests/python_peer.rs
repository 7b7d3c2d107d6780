//! Interop: the Rust client against the real Python LangGraph server (the peer), hosting the
//! `echo` graph of `tests/interop/peer/`.
//!
//! Skipped (with a note) unless `ERRAND_PEER_URL` names a running peer, e.g. one started as
//! `cargo xtask interop --python` starts it:
//!
//! ```text
//! langgraph dev --host 127.0.0.1 --port 2024 --no-browser --no-reload --n-jobs-per-worker 10
//! ERRAND_PEER_URL=http://127.0.0.1:2024 cargo test -p errand-client --test python_peer
//! ```
//!
//! The peer differs from errand in ways the client must absorb: it sends SSE ids only for runs
//! created with `stream_resumable: true` (ids like `1795460430449-0`), and its queue starts runs
//! 0.5 to 1 s after they are created.

mod support;

use errand_client::protocol::{
    RunCreate, RunResult, RunStatus, StreamMode, StreamModes, StreamPart,
};
use errand_client::transport::Transport;
use errand_client::{CancelOptions, Client, JoinStreamOptions, ListRuns, RetryPolicy};
use std::sync::Arc;
use std::time::Duration;
use support::{
    Cut, Cutting, all_events, echo, fast, joined, names, new_thread, texts, wait_status,
};
use uuid::Uuid;

/// The peer's URL, or `None` (with a note) when the test should be skipped.
fn peer_url() -> Option<String> {
    match std::env::var("ERRAND_PEER_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ => {
            eprintln!(
                "skipped: set ERRAND_PEER_URL to the URL of a running Python LangGraph server"
            );
            None
        }
    }
}

/// A client of the peer at `url`: [`fast`], with more reconnects for the peer's slower queue.
fn client(url: &str) -> Client {
    fast(Client::builder().url(url))
        .reconnect(RetryPolicy::fast(8))
        .build()
        .expect("client")
}

/// A run body streaming values and updates, resumable so the peer sends ids.
fn resumable(text: &str) -> RunCreate {
    let mut body = echo(text);
    body.stream_mode = Some(StreamModes::Many(vec![
        StreamMode::Values,
        StreamMode::Updates,
    ]));
    body.stream_resumable = Some(true);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_thread_run_get_join() {
    let Some(url) = peer_url() else {
        return;
    };
    let client = client(&url);
    assert!(client.health().await.expect("health").ok);
    let thread = new_thread(&client).await;
    let run = client
        .runs()
        .create(thread.thread_id, &echo("hello"))
        .await
        .expect("run");
    assert_eq!(run.thread_id, thread.thread_id);
    let read = client
        .runs()
        .get(thread.thread_id, run.run_id)
        .await
        .expect("get");
    assert_eq!(read.run_id, run.run_id);
    let joined = client
        .runs()
        .join(thread.thread_id, run.run_id)
        .await
        .expect("join");
    let RunResult::Values(values) = joined else {
        panic!("the run failed: {joined:?}");
    };
    assert_eq!(texts(&values), ["hello", "echo: hello"]);
    let done = wait_status(&client, &run, RunStatus::Success).await;
    assert_eq!(done.status, RunStatus::Success);
    let listed = client
        .runs()
        .list(thread.thread_id, ListRuns::default())
        .await
        .expect("list");
    assert!(listed.iter().any(|r| r.run_id == run.run_id));

    let waited = client
        .runs()
        .wait(thread.thread_id, &echo("fail=nope"))
        .await
        .expect("wait");
    let error = waited.error().expect("an error");
    assert_eq!(
        (error.error.as_str(), error.message.as_str()),
        ("EchoError", "nope")
    );

    let missing = client.threads().get(Uuid::now_v7()).await.expect_err("404");
    assert!(missing.is_not_found(), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_stream() {
    let Some(url) = peer_url() else {
        return;
    };
    let client = client(&url);
    let thread = new_thread(&client).await;
    let stream = client
        .runs()
        .stream(thread.thread_id, &resumable("hi"))
        .await
        .expect("stream");
    let run = stream.run().expect("the peer names the run in Location");
    let events = all_events(stream).await;
    assert_eq!(names(&events), ["metadata", "values", "updates", "values"]);
    assert!(
        events.iter().all(|e| e.id.is_some()),
        "resumable: ids on every event"
    );
    let StreamPart::Values(last) = &events[3].part else {
        panic!("values last");
    };
    assert_eq!(texts(last), ["hi", "echo: hi"]);

    // Not resumable: no ids, and the same events.
    let mut plain = echo("plain");
    plain.stream_mode = Some(StreamModes::Many(vec![
        StreamMode::Values,
        StreamMode::Updates,
    ]));
    let events = all_events(
        client
            .runs()
            .stream(thread.thread_id, &plain)
            .await
            .expect("stream"),
    )
    .await;
    assert_eq!(names(&events), ["metadata", "values", "updates", "values"]);
    assert!(events.iter().all(|e| e.id.is_none()));

    // A live join from an id gets only what follows.
    let running = client
        .runs()
        .create(thread.thread_id, &resumable("sleep=1"))
        .await
        .expect("run");
    let all = joined(
        &client,
        thread.thread_id,
        running.run_id,
        JoinStreamOptions::default(),
    )
    .await;
    assert_eq!(names(&all).last().map(String::as_str), Some("values"));
    assert_eq!(run.thread_id, thread.thread_id);
}

/// Streams `text` through a transport that cuts the first stream after one chunk (and then
/// `cut_delay`), and checks every event arrives once.
async fn resumed_once(url: &str, text: &str, cut_delay: Duration) -> Vec<Option<String>> {
    let plain = client(url);
    let cutting = Arc::new(
        Cutting::new(
            Arc::clone(plain.transport()) as Arc<dyn Transport>,
            1,
            1,
            Cut::Error,
        )
        .with_delay(cut_delay),
    );
    let client = fast(Client::builder().transport(cutting.clone()))
        .reconnect(RetryPolicy::fast(8))
        .build()
        .expect("client");
    let thread = new_thread(&client).await;
    let stream = client
        .runs()
        .stream(thread.thread_id, &resumable(text))
        .await
        .expect("stream");
    let events = all_events(stream).await;
    assert_eq!(
        names(&events),
        ["metadata", "values", "updates", "values"],
        "every event exactly once"
    );
    // Every event carries an id. (They are not always distinct: the peer gives two events
    // published in the same millisecond the same `<ms>-0` id.)
    assert!(events.iter().all(|e| e.id.is_some()), "{events:?}");
    let StreamPart::Values(last) = &events[3].part else {
        panic!("values last");
    };
    assert_eq!(texts(last), [text.to_owned(), format!("echo: {text}")]);
    let gets = cutting.stream_gets();
    assert!(!gets.is_empty(), "the stream was resumed");
    assert_eq!(
        gets[0].last_event_id.as_deref(),
        events[0].id.as_deref(),
        "resumed after the metadata event: {gets:?}"
    );
    gets.into_iter().map(|get| get.last_event_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_dropped_stream_is_resumed() {
    let Some(url) = peer_url() else {
        return;
    };
    // Cut while the run sleeps: resumed live from the metadata event's id.
    resumed_once(&url, "sleep=1.5", Duration::ZERO).await;
    // Cut once the run has ended: its stream is replayed from the last id, once, and not
    // followed again.
    let gets = resumed_once(&url, "quick", Duration::from_secs(3)).await;
    assert_eq!(gets.len(), 1, "{gets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_cancel() {
    let Some(url) = peer_url() else {
        return;
    };
    let client = client(&url);
    let thread = new_thread(&client).await;
    let run = client
        .runs()
        .create(thread.thread_id, &echo("sleep=30"))
        .await
        .expect("run");
    wait_status(&client, &run, RunStatus::Running).await;
    client
        .runs()
        .cancel(thread.thread_id, run.run_id, CancelOptions::default())
        .await
        .expect("cancel");
    let cancelled = wait_status(&client, &run, RunStatus::Interrupted).await;
    assert_eq!(cancelled.status, RunStatus::Interrupted);
    let again = client
        .runs()
        .cancel(thread.thread_id, run.run_id, CancelOptions::default())
        .await
        .expect_err("an ended run");
    assert!(again.is_not_found(), "{again}");
}
