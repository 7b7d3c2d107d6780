//! When storage fails, the server holds on to what it accepted and goes on by itself: a run
//! whose stored record cannot be read ends in `error` without stalling the queue, and runs
//! whose ends cannot be written while the disk is full are finished, once each, when space
//! returns, without a restart.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use errand_protocol::{Run, RunStatus, Thread};
use errand_server::runtime::{Error, Graph, GraphOutput, GraphRun, async_trait};
use errand_server::storage::SqliteStorage;
use errand_server::{ExecutorConfig, Server, graphs::Echo};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tower::ServiceExt;
use uuid::Uuid;

/// Echo, counting how many times each run is executed.
#[derive(Debug, Default, Clone)]
struct CountingEcho {
    calls: Arc<Mutex<HashMap<Uuid, u32>>>,
}

#[async_trait]
impl Graph for CountingEcho {
    async fn invoke(&self, run: GraphRun) -> Result<GraphOutput, Error> {
        *self
            .calls
            .lock()
            .expect("the count")
            .entry(run.run_id)
            .or_default() += 1;
        Echo.invoke(run).await
    }
}

async fn server_on(path: &Path, graph: CountingEcho) -> (Api, SqliteStorage) {
    let storage = SqliteStorage::open(path).expect("the database opens");
    let server = Server::builder()
        .graph("echo", graph)
        .storage(Arc::new(storage.clone()))
        .executor_config(ExecutorConfig {
            idle_poll: Duration::from_millis(50),
            ..ExecutorConfig::default()
        })
        .start()
        .await
        .expect("server starts");
    let router = server.router();
    (Api { server, router }, storage)
}

async fn delayed_run(api: &Api, thread: &Thread) -> Run {
    let answer = api
        .start(thread, "later", json!({"after_seconds": 3600}))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    serde_json::from_slice(&answer.body).expect("run")
}

#[tokio::test]
async fn a_run_storage_cannot_read_ends_in_error_and_the_queue_goes_on() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("errand.db");
    let (api, storage) = server_on(&path, CountingEcho::default()).await;
    let (damaged_thread, fine_thread) = (api.thread().await, api.thread().await);
    let damaged = delayed_run(&api, &damaged_thread).await;
    let fine = delayed_run(&api, &fine_thread).await;
    api.server.shutdown(Duration::from_secs(1)).await;
    drop((api, storage));

    // As an older errand could write it: an input nested deeper than the JSON reader reads.
    // Both runs are made due.
    let conn = rusqlite::Connection::open(&path).expect("the file");
    let too_deep = format!("{}{}", "[".repeat(130), "]".repeat(130));
    conn.execute(
        "UPDATE runs SET doc = json_set(doc, '$.kwargs.input', json(?2)) WHERE run_id = ?1",
        [damaged.run_id.to_string(), too_deep],
    )
    .expect("the damage");
    conn.execute("UPDATE runs SET created_at = 0", [])
        .expect("due now");
    drop(conn);

    let graph = CountingEcho::default();
    let (api, _storage) = server_on(&path, graph.clone()).await;
    let ended = api.wait_status(&damaged, RunStatus::Error).await;
    assert!(ended.extra.contains_key(errand_server::storage::UNREADABLE));
    api.wait_status(&fine, RunStatus::Success).await;
    let error = api.get_thread(&damaged_thread).await.error;
    assert_eq!(
        error.into_option().expect("an error")["error"],
        "UnreadableRun"
    );
    assert_eq!(
        graph.calls.lock().expect("the count").get(&damaged.run_id),
        None,
        "a run that cannot be read never runs"
    );

    // Every read and bulk write that the run takes part in answers.
    let base = format!("/threads/{}", damaged_thread.thread_id);
    for (method, path, body) in [
        (Method::GET, format!("{base}/runs/{}", damaged.run_id), None),
        (Method::GET, format!("{base}/runs"), None),
        (
            Method::GET,
            format!("{base}/runs/{}/join", damaged.run_id),
            None,
        ),
        (
            Method::POST,
            "/runs/cancel".to_owned(),
            Some(json!({"status": "all"})),
        ),
        (
            Method::DELETE,
            format!("{base}/runs/{}", damaged.run_id),
            None,
        ),
        (Method::DELETE, base.clone(), None),
    ] {
        let answer = api.call(method.clone(), &path, body).await;
        assert!(
            answer.status.is_success(),
            "{method} {path}: {}",
            answer.status
        );
    }
}

/// What a run's stream carries for `text`: its input and its echo, about twice the text.
fn text_of(kilobytes: usize) -> String {
    format!("sleep=0.3 {}", "x".repeat(kilobytes * 1024))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_runs_finish_once_space_returns_without_a_restart_and_none_runs_twice() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let graph = CountingEcho::default();
    let (api, storage) = server_on(&dir.path().join("errand.db"), graph.clone()).await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        let thread = api.thread().await;
        let answer = api.start(&thread, &text_of(64), json!({})).await;
        assert_eq!(answer.status, StatusCode::OK);
        runs.push(serde_json::from_slice::<Run>(&answer.body).expect("run"));
    }
    // A join waits through all of it.
    let joining = {
        let path = format!(
            "/threads/{}/runs/{}/join",
            runs[0].thread_id, runs[0].run_id
        );
        let request = Request::get(path).body(Body::empty()).expect("a request");
        let router = api.router.clone();
        tokio::spawn(async move {
            let response = router.oneshot(request).await.expect("infallible");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await;
            serde_json::from_slice::<Value>(&body.expect("the body")).expect("values")
        })
    };
    // The disk fills while they run: none of their ends can be written.
    storage
        .limit_size(Some(0))
        .await
        .expect("the database is capped at what it holds");

    // Once a run's end has failed, new runs are refused with 503, saying when to come back.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let thread = api.thread().await;
        let answer = api.start(&thread, "more", json!({})).await;
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            break answer;
        }
        assert!(Instant::now() < deadline, "new runs are still taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refused.headers.contains_key("retry-after"));
    assert!(!refused.detail().is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    for run in &runs {
        let status = api.wait_status(run, RunStatus::Running).await.status;
        assert_eq!(status, RunStatus::Running, "still claimed, never given up");
    }

    // Space returns: every run ends as it would have, by itself.
    storage.limit_size(None).await.expect("the cap is lifted");
    for run in &runs {
        let ended = api.wait_status(run, RunStatus::Success).await;
        assert_eq!(ended.status, RunStatus::Success);
    }
    let joined = tokio::time::timeout(Duration::from_secs(20), joining)
        .await
        .expect("the join ends")
        .expect("the join task");
    assert!(joined["messages"].as_array().is_some_and(|m| m.len() == 2));
    let thread = api.thread().await;
    let answer = api.start(&thread, "again", json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "new runs are taken again");
    let run: Run = serde_json::from_slice(&answer.body).expect("run");
    api.wait_status(&run, RunStatus::Success).await;
    let calls = graph.calls.lock().expect("the count").clone();
    for run in &runs {
        assert_eq!(calls.get(&run.run_id), Some(&1), "each run ran once");
    }
}
