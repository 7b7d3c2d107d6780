//! The in-process transport works from any tokio context: the server's own current-thread
//! runtime, inside `tokio::spawn`, and current-thread and multi-thread runtimes other than the
//! one the server started on. Also: any tower service, outside a runtime, and the client cache.

mod support;

use bytes::Bytes;
use errand_client::protocol::{InProcessAnswer, InProcessCall, RunResult, StreamEvent, Thread};
use errand_client::transport::{InProcessTransport, Transport};
use errand_client::{Client, ClientCache, ClientError};
use futures::StreamExt as _;
use http_body_util::Full;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use support::{echo, echo_streamed, new_thread, texts};

/// Creates a thread, waits on a run, and streams another: the calls that spawn work on the
/// caller's runtime.
async fn exercise(client: Client) {
    let thread = new_thread(&client).await;
    let waited = client
        .runs()
        .wait(thread.thread_id, &echo("one"))
        .await
        .expect("wait");
    let RunResult::Values(values) = waited else {
        panic!("failed: {waited:?}");
    };
    assert_eq!(texts(&values), ["one", "echo: one"]);
    let mut stream = client
        .runs()
        .stream(thread.thread_id, &echo_streamed("two"))
        .await
        .expect("stream");
    let mut events: Vec<StreamEvent> = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("in time")
    {
        events.push(event.expect("event"));
    }
    assert_eq!(events.len(), 5, "{events:?}");
}

fn in_process(server: &errand_server::Server) -> Client {
    Client::builder()
        .in_process(server.router())
        .api_key(None)
        .build()
        .expect("client")
}

#[tokio::test(flavor = "current_thread")]
async fn from_the_servers_own_current_thread_runtime() {
    let server = support::server(None).await;
    exercise(in_process(&server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_inside_tokio_spawn() {
    let server = support::server(None).await;
    let client = in_process(&server);
    tokio::spawn(exercise(client)).await.expect("task");
}

/// Runs `exercise` on a runtime of its own, on another OS thread.
async fn on_another_runtime(client: Client, multi_thread: bool) {
    let thread = std::thread::spawn(move || {
        let runtime = if multi_thread {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .expect("runtime");
        runtime.block_on(exercise(client));
    });
    // Wait without blocking the server's runtime, which must keep running the graph.
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .expect("join task")
        .expect("the other runtime's calls succeed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_current_thread_runtime_other_than_the_servers() {
    let server = support::server(None).await;
    on_another_runtime(in_process(&server), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_multi_thread_runtime_other_than_the_servers() {
    let server = support::server(None).await;
    on_another_runtime(in_process(&server), true).await;
}

#[tokio::test(flavor = "current_thread")]
async fn server_on_a_current_thread_runtime_client_on_another() {
    // The server's runtime is current-thread: it runs graphs only while this test awaits.
    let server = support::server(None).await;
    on_another_runtime(in_process(&server), false).await;
}

#[test]
fn outside_a_tokio_runtime_a_call_fails_cleanly() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(support::server(None));
    let client = in_process(&server);
    let error = futures::executor::block_on(client.health()).expect_err("no runtime");
    assert!(matches!(error, ClientError::Config(_)), "{error}");
    let transport = InProcessTransport::new(server.router());
    let answer = futures::executor::block_on(
        transport.send(
            http::Request::get("/ok")
                .body(Bytes::new())
                .expect("request"),
        ),
    );
    assert!(matches!(answer, Err(ClientError::Config(_))));
}

#[tokio::test]
async fn any_tower_service_fits_and_a_silent_one_times_out() {
    let service = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
        if request.uri().path() == "/ok" {
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                b"\n{\"ok\": true}",
            ))))
        } else {
            std::future::pending().await
        }
    });
    let client = Client::builder()
        .transport(Arc::new(InProcessTransport::new(service)))
        .api_key(None)
        .read_timeout(Duration::from_millis(100))
        .retry(errand_client::RetryPolicy::NEVER)
        .build()
        .expect("client");
    assert!(client.health().await.expect("ok").ok);
    let error = client.info().await.expect_err("times out");
    assert!(
        matches!(
            error,
            ClientError::Timeout {
                waiting_for: "the response",
                ..
            }
        ),
        "{error}"
    );
}

/// The transport marks each request as made in this process, and the client takes a typed
/// answer the service hands over instead of decoding the body (here deliberately not JSON, so
/// a decode would fail).
#[tokio::test]
async fn a_typed_answer_is_taken_as_is() {
    let thread: Thread = serde_json::from_value(serde_json::json!({
        "thread_id": "01a209d4-86e0-7039-9090-f5720c840efa",
        "created_at": "2026-11-23T19:14:12.835271+00:00",
        "updated_at": "2026-11-23T19:14:12.835271+00:00",
        "metadata": {"owner": "me"},
        "status": "idle",
    }))
    .expect("a thread");
    let handed = thread.clone();
    let service = tower::service_fn(move |request: http::Request<Full<Bytes>>| {
        let handed = handed.clone();
        async move {
            let marked = request.extensions().get::<InProcessCall>().is_some();
            let mut response = http::Response::new(Full::new(Bytes::from_static(b"not json")));
            if marked {
                response.extensions_mut().insert(InProcessAnswer(handed));
            }
            Ok::<_, Infallible>(response)
        }
    });
    let client = Client::builder()
        .transport(Arc::new(InProcessTransport::new(service)))
        .api_key(None)
        .build()
        .expect("client");
    let answer = client
        .threads()
        .get(thread.thread_id)
        .await
        .expect("the typed answer");
    assert_eq!(answer, thread);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_shares_clients_by_target_and_headers() {
    let server = support::server(None).await;
    let served = support::serve(&server).await;
    let local: Arc<dyn Transport> = Arc::new(InProcessTransport::new(server.router()));
    let cache = ClientCache::with_local(Client::builder().api_key(None), Arc::clone(&local));
    let a = cache.get(None, &[]).expect("local");
    let b = cache.get(None, &[]).expect("local");
    assert!(Arc::ptr_eq(a.transport(), &local));
    assert!(Arc::ptr_eq(a.transport(), b.transport()));
    assert_eq!(cache.len(), 1);
    let tenant = cache
        .get(None, &[("X-Tenant".into(), "t".into())])
        .expect("local");
    let same_tenant = cache
        .get(None, &[("x-tenant".into(), "t".into())])
        .expect("local");
    assert_eq!(cache.len(), 2);
    assert!(Arc::ptr_eq(tenant.transport(), same_tenant.transport()));
    let remote = cache.get(Some(&served.url()), &[]).expect("remote");
    assert_eq!(cache.len(), 3);
    assert_eq!(remote.transport().target(), served.url());
    // The clones work, in-process and over HTTP, and share one server.
    let thread = new_thread(&b).await;
    let seen = remote
        .threads()
        .get(thread.thread_id)
        .await
        .expect("thread");
    assert_eq!(seen.thread_id, thread.thread_id);
    let shared = cache.clone();
    shared.clear();
    assert!(cache.is_empty());

    let no_local = ClientCache::new(Client::builder());
    assert!(matches!(
        no_local.get(None, &[]),
        Err(ClientError::Config(_))
    ));
    let bad = ClientCache::new(Client::builder().api_key(None))
        .get(Some("http://x"), &[("x-api-key".into(), "k".into())]);
    assert!(matches!(bad, Err(ClientError::Config(_))));
}

/// A scripted server whose event ids repeat within a millisecond, as langgraph-api's do: the
/// first stream is cut between two events of one id. The resume asks from the id before, drops
/// what it saw, and gets every event once.
#[tokio::test]
async fn a_resume_survives_event_ids_shared_by_two_events() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let thread = uuid::Uuid::now_v7();
    let run = uuid::Uuid::now_v7();
    let frame = |event: &str, data: &str, id: &str| {
        format!("event: {event}\r\ndata: {data}\r\nid: {id}\r\n\r\n")
    };
    let metadata = frame(
        "metadata",
        &format!(r#"{{"run_id":"{run}","attempt":1}}"#),
        "1-0",
    );
    let first_values = frame("values", r#"{"messages":[]}"#, "2-0");
    let updates = frame("updates", r#"{"echo":{}}"#, "3-0");
    let last_values = frame("values", r#"{"messages":[1]}"#, "3-0");
    let first = format!("{metadata}{first_values}{updates}");
    let tail = format!("{updates}{last_values}");
    let run_reads = Arc::new(AtomicUsize::new(0));
    let resumed_from = Arc::new(Mutex::new(Vec::new()));
    let service = {
        let (run_reads, resumed_from) = (Arc::clone(&run_reads), Arc::clone(&resumed_from));
        tower::service_fn(move |request: http::Request<Full<Bytes>>| {
            let path = request.uri().path().to_owned();
            let sse = |body: String| {
                http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .header("location", format!("/threads/{thread}/runs/{run}/stream"))
                    .body(Full::new(Bytes::from(body)))
                    .expect("response")
            };
            let answer = if request.method() == http::Method::POST {
                sse(first.clone())
            } else if path.ends_with("/stream") {
                let id = request
                    .headers()
                    .get("last-event-id")
                    .and_then(|id| id.to_str().ok())
                    .map(str::to_owned);
                resumed_from.lock().expect("lock").push(id);
                sse(tail.clone())
            } else {
                let status = if run_reads.fetch_add(1, Ordering::SeqCst) == 0 {
                    "running"
                } else {
                    "success"
                };
                let run = serde_json::json!({
                    "run_id": run, "thread_id": thread, "assistant_id": uuid::Uuid::nil(),
                    "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
                    "status": status, "metadata": {}, "kwargs": {}, "multitask_strategy": "enqueue"
                });
                http::Response::new(Full::new(Bytes::from(run.to_string())))
            };
            async move { Ok::<_, Infallible>(answer) }
        })
    };
    let client = Client::builder()
        .transport(Arc::new(InProcessTransport::new(service)))
        .api_key(None)
        .reconnect(errand_client::RetryPolicy::fast(3))
        .build()
        .expect("client");
    let mut stream = client
        .runs()
        .stream(thread, &echo("x"))
        .await
        .expect("stream");
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("in time")
    {
        events.push(event.expect("event"));
    }
    let seen: Vec<(String, Option<String>)> = events
        .iter()
        .map(|e| (e.event_name(), e.id.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("metadata".to_owned(), Some("1-0".to_owned())),
            ("values".to_owned(), Some("2-0".to_owned())),
            ("updates".to_owned(), Some("3-0".to_owned())),
            ("values".to_owned(), Some("3-0".to_owned())),
        ]
    );
    // Resumed live from the id before the last seen, then replayed once after the run ended.
    assert_eq!(
        *resumed_from.lock().expect("lock"),
        [Some("2-0".to_owned()), Some("2-0".to_owned())]
    );
    assert_eq!(run_reads.load(Ordering::SeqCst), 2);
}
