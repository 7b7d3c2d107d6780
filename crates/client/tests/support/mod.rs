//! What the client's integration tests share: an errand server reached over either transport,
//! and a transport wrapper that cuts streams.

#![allow(dead_code, unreachable_pub)]

use bytes::Bytes;
use errand_client::protocol::{
    Run, RunCreate, RunStatus, StreamEvent, StreamMode, StreamModes, Thread, ThreadCreate,
};
use errand_client::transport::{Transport, TransportRequest, TransportResponse};
use errand_client::{
    Client, ClientBuilder, ClientError, JoinStreamOptions, RetryPolicy, RunStream,
};
use errand_server::storage::SqliteStorage;
use errand_server::{LocalServe, Server, graphs::Echo};
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Which transport a test runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Loopback HTTP to the server served on 127.0.0.1:0.
    Http,
    /// The server's router, called in-process.
    InProcess,
}

/// Starts an errand server hosting `echo`, on in-memory SQLite, optionally with an API key.
pub async fn server(api_key: Option<&str>) -> Server {
    let mut builder = Server::builder()
        .graph("echo", Echo)
        .storage(Arc::new(SqliteStorage::in_memory().expect("storage")));
    if let Some(key) = api_key {
        builder = builder.api_key(key);
    }
    builder.start().await.expect("server starts")
}

/// Serves `server` on 127.0.0.1 at a free port until the answer is dropped.
pub async fn serve(server: &Server) -> LocalServe {
    server.serve_local().await.expect("serving on a local port")
}

/// A server, a client of it over one transport, and what keeps the HTTP side up.
#[derive(Debug)]
pub struct Env {
    pub server: Server,
    pub client: Client,
    pub kind: Kind,
    pub served: Option<LocalServe>,
}

/// Fast retries and reconnects, so tests that exercise them stay short.
pub fn fast(builder: ClientBuilder) -> ClientBuilder {
    builder
        .api_key(None)
        .retry(RetryPolicy::fast(3))
        .reconnect(RetryPolicy::fast(5))
}

/// The builder of a client of `server` over `kind`, and what keeps it reachable.
pub async fn builder_for(kind: Kind, server: &Server) -> (ClientBuilder, Option<LocalServe>) {
    match kind {
        Kind::Http => {
            let served = serve(server).await;
            (Client::builder().url(served.url()), Some(served))
        }
        Kind::InProcess => (Client::builder().in_process(server.router()), None),
    }
}

/// A server and a client of it over `kind`, with `tweak` applied to the client's builder.
pub async fn env_with(
    kind: Kind,
    api_key: Option<&str>,
    tweak: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> Env {
    let server = server(api_key).await;
    let (builder, served) = builder_for(kind, &server).await;
    let client = tweak(fast(builder)).build().expect("client builds");
    Env {
        server,
        client,
        kind,
        served,
    }
}

/// A server and a client of it over `kind`.
pub async fn env(kind: Kind) -> Env {
    env_with(kind, None, |builder| builder).await
}

impl Env {
    pub async fn thread(&self) -> Thread {
        new_thread(&self.client).await
    }

    pub async fn start(&self, thread: &Thread, text: &str) -> Run {
        self.client
            .runs()
            .create(thread.thread_id, &echo(text))
            .await
            .expect("run created")
    }

    /// Polls the run until it is `status`: [`wait_status`] on this client.
    pub async fn wait_status(&self, run: &Run, status: RunStatus) -> Run {
        wait_status(&self.client, run, status).await
    }
}

/// A new empty thread on the server of `client`.
pub async fn new_thread(client: &Client) -> Thread {
    client
        .threads()
        .create(&ThreadCreate::default())
        .await
        .expect("thread created")
}

/// Polls the run until it is `status`, for at most 30 s (the Python peer starts runs up to a
/// second after they are created).
pub async fn wait_status(client: &Client, run: &Run, status: RunStatus) -> Run {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let current = client
            .runs()
            .get(run.thread_id, run.run_id)
            .await
            .expect("run");
        if current.status == status {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "run stuck in {:?}, wanted {status:?}",
            current.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every event of a stream, for at most 60 s, failing on the first error.
pub async fn all_events(mut stream: RunStream) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(event) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .expect("the stream ends in time")
    {
        events.push(event.expect("an event"));
    }
    events
}

/// Every event of a join of the run's stream with `options`: [`all_events`] of `join_stream`.
pub async fn joined(
    client: &Client,
    thread_id: Uuid,
    run_id: Uuid,
    options: JoinStreamOptions,
) -> Vec<StreamEvent> {
    let stream = client
        .runs()
        .join_stream(thread_id, run_id, options)
        .await
        .expect("join_stream");
    all_events(stream).await
}

/// The event names of `events`, in order.
pub fn names(events: &[StreamEvent]) -> Vec<String> {
    events.iter().map(StreamEvent::event_name).collect()
}

/// The SSE ids of `events` that have one, in order.
pub fn ids(events: &[StreamEvent]) -> Vec<String> {
    events.iter().filter_map(|event| event.id.clone()).collect()
}

/// A run body for the echo graph with one user message.
pub fn echo(text: &str) -> RunCreate {
    RunCreate::new(
        "echo",
        json!({"messages": [{"role": "user", "content": text}]}),
    )
}

/// [`echo`] streaming every mode the echo graph writes: values, messages-tuple and updates.
pub fn echo_streamed(text: &str) -> RunCreate {
    let mut body = echo(text);
    body.stream_mode = Some(StreamModes::Many(vec![
        StreamMode::Values,
        StreamMode::MessagesTuple,
        StreamMode::Updates,
    ]));
    body
}

/// The contents of the messages of `values`.
pub fn texts(values: &Value) -> Vec<String> {
    values["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// How [`Cutting`] ends a stream it cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The body fails, as when a connection resets.
    Error,
    /// The body ends cleanly, as when a proxy closes.
    Close,
}

/// One request that went through [`Cutting`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub last_event_id: Option<String>,
}

/// A transport wrapper that cuts the bodies of event streams after some chunks, a given number
/// of times, and records every request.
#[derive(Debug)]
pub struct Cutting {
    inner: Arc<dyn Transport>,
    /// Chunks let through before the cut.
    after_chunks: usize,
    /// How many more streams to cut.
    cuts_left: AtomicUsize,
    how: Cut,
    /// How long the cut body waits before it fails or ends.
    delay: Duration,
    pub seen: Mutex<Vec<Seen>>,
}

impl Cutting {
    pub fn new(inner: Arc<dyn Transport>, after_chunks: usize, cuts: usize, how: Cut) -> Self {
        Self {
            inner,
            after_chunks,
            cuts_left: AtomicUsize::new(cuts),
            how,
            delay: Duration::ZERO,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Waits `delay` before cutting (after the chunks let through).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The stream requests (GET .../stream) seen.
    pub fn stream_gets(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|seen| seen.method == "GET" && seen.path.contains("/stream"))
            .collect()
    }
}

impl Transport for Cutting {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'static, Result<TransportResponse, ClientError>> {
        let is_stream = request
            .headers()
            .get("accept")
            .is_some_and(|accept| accept == "text/event-stream");
        self.seen.lock().expect("lock").push(Seen {
            method: request.method().to_string(),
            path: request.uri().to_string(),
            last_event_id: request
                .headers()
                .get("last-event-id")
                .and_then(|id| id.to_str().ok())
                .map(str::to_owned),
        });
        let cut = is_stream
            && self
                .cuts_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                })
                .is_ok();
        let after = self.after_chunks;
        let how = self.how;
        let delay = self.delay;
        let sent = self.inner.send(request);
        async move {
            let response = sent.await?;
            if !cut {
                return Ok(response);
            }
            Ok(response.map(|body| {
                let kept = body.take(after);
                let tail: errand_client::transport::ResponseBody = match how {
                    Cut::Error => Box::pin(futures::stream::once(async move {
                        tokio::time::sleep(delay).await;
                        Err::<Bytes, _>(ClientError::Transport {
                            message: "cut by the test".into(),
                            connect: false,
                            source: None,
                        })
                    })),
                    Cut::Close => Box::pin(
                        futures::stream::once(async move {
                            tokio::time::sleep(delay).await;
                        })
                        .filter_map(|()| async { None::<Result<Bytes, ClientError>> }),
                    ),
                };
                let cut_body: errand_client::transport::ResponseBody = Box::pin(kept.chain(tail));
                cut_body
            }))
        }
        .boxed()
    }

    fn target(&self) -> &str {
        self.inner.target()
    }
}

/// A fresh thread id (for 404s).
pub fn unknown_id() -> Uuid {
    Uuid::now_v7()
}
