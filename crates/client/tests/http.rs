//! HTTP only: retries against a scripted server (503 then 200, a dropped connection, a body cut
//! off, a server that is down then up, and how many times a failing call is sent), the headers
//! sent, HTTP/2, and a stream cut by a TCP proxy.

mod support;

use errand_client::protocol::{
    JsonObject, RunStatus, StreamEvent, StreamPart, Thread, ThreadCreate, ThreadSearchRequest,
    ThreadStatus, Timestamp,
};
use errand_client::transport::{HttpOptions, HttpTransport, Transport};
use errand_client::{CancelOptions, Client, ClientError, RetryPolicy, Timeouts};
use futures::StreamExt as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{echo, echo_streamed, fast, new_thread, texts};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// What the scripted server answers to one request.
#[derive(Debug, Clone)]
enum Answer {
    /// A status with a JSON body and extra headers.
    Json(u16, String, Vec<(&'static str, &'static str)>),
    /// Close the connection without answering.
    Close,
    /// A 200 whose body stops short of its `content-length`: the connection closes mid-body.
    CutOff,
}

/// One request the scripted server read: its head (request line and headers).
type Head = String;

/// A hand-written HTTP/1.1 server on 127.0.0.1:0 that answers by request number, counts
/// requests and keeps their heads. It stops when dropped.
struct Scripted {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<Head>>>,
    task: JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    async fn start(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let count = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let task = {
            let (count, heads) = (Arc::clone(&count), Arc::clone(&heads));
            tokio::spawn(async move {
                let mut connections = Vec::new();
                while let Ok((socket, _)) = listener.accept().await {
                    let (count, heads, script) =
                        (Arc::clone(&count), Arc::clone(&heads), Arc::clone(&script));
                    connections.push(tokio::spawn(async move {
                        let _ = serve_connection(socket, &count, &heads, &*script).await;
                    }));
                }
            })
        };
        Self {
            addr,
            count,
            heads,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn heads(&self) -> Vec<Head> {
        self.heads.lock().expect("lock").clone()
    }
}

/// Answers the requests of one connection, at most 100.
async fn serve_connection(
    mut socket: TcpStream,
    count: &AtomicUsize,
    heads: &Mutex<Vec<Head>>,
    script: &(dyn Fn(usize) -> Answer + Send + Sync),
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    for _ in 0..100 {
        // The head.
        let end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 4096];
            let read = socket.read(&mut chunk).await?;
            if read == 0 || buffer.len() > 1 << 20 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buffer.len() < end + length {
            let mut chunk = [0u8; 4096];
            let read = socket.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        buffer.drain(..end + length);
        let number = count.fetch_add(1, Ordering::SeqCst);
        heads.lock().expect("lock").push(head);
        match script(number) {
            Answer::Close => return Ok(()),
            Answer::CutOff => {
                let body = r#"{"ok":"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len() + 100
                );
                socket.write_all(answer.as_bytes()).await?;
                return Ok(());
            }
            Answer::Json(status, body, extra) => {
                let mut answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (name, value) in extra {
                    answer.push_str(&format!("{name}: {value}\r\n"));
                }
                answer.push_str("\r\n");
                answer.push_str(&body);
                socket.write_all(answer.as_bytes()).await?;
            }
        }
    }
    Ok(())
}

fn thread_json(id: Uuid) -> String {
    serde_json::to_string(&Thread::new(id, JsonObject::new(), Timestamp::now())).expect("json")
}

fn overloaded() -> Answer {
    Answer::Json(503, r#"{"detail":"overloaded"}"#.into(), vec![])
}

/// A client of `url`: [`fast`], reconnecting as often as it retries.
fn client(url: &str) -> Client {
    fast(Client::builder().url(url))
        .reconnect(RetryPolicy::fast(3))
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_safe_call_is_retried_after_503_and_succeeds() {
    let id = Uuid::now_v7();
    let server = Scripted::start(move |n| match n {
        0 => overloaded(),
        _ => Answer::Json(200, thread_json(id), vec![]),
    })
    .await;
    let thread = client(&server.url())
        .threads()
        .get(id)
        .await
        .expect("retried");
    assert_eq!(thread.thread_id, id);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_safe_post_is_retried_after_502_and_504() {
    let server = Scripted::start(|n| match n {
        0 => Answer::Json(502, "{}".into(), vec![]),
        1 => Answer::Json(504, "{}".into(), vec![]),
        _ => Answer::Json(200, "[]".into(), vec![]),
    })
    .await;
    let found = client(&server.url())
        .threads()
        .search(&ThreadSearchRequest::default())
        .await
        .expect("retried");
    assert!(found.is_empty());
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn unsafe_calls_are_not_repeated_after_503() {
    let server = Scripted::start(|_| overloaded()).await;
    let client = client(&server.url());
    let thread = Uuid::now_v7();

    let error = client
        .runs()
        .create(thread, &echo("x"))
        .await
        .expect_err("503");
    assert!(
        matches!(&error, ClientError::Server(e) if e.detail == "overloaded"),
        "{error}"
    );
    assert_eq!(server.count(), 1, "run create was repeated");

    assert!(client.runs().stream(thread, &echo("x")).await.is_err());
    assert_eq!(server.count(), 2, "run stream was repeated");
    assert!(client.runs().wait(None, &echo("x")).await.is_err());
    assert_eq!(server.count(), 3, "run wait was repeated");
    assert!(
        client
            .threads()
            .create(&ThreadCreate::default())
            .await
            .is_err()
    );
    assert_eq!(server.count(), 4, "thread create was repeated");
    let cancel = client
        .runs()
        .cancel(thread, Uuid::now_v7(), CancelOptions::default())
        .await;
    assert!(cancel.is_err());
    assert_eq!(server.count(), 5, "cancel was repeated");

    // A thread create with an id is safe to repeat.
    let named = ThreadCreate {
        thread_id: Some(thread),
        ..ThreadCreate::default()
    };
    assert!(client.threads().create(&named).await.is_err());
    assert_eq!(server.count(), 5 + 4);
}

#[tokio::test]
async fn a_safe_call_gives_up_after_its_retries() {
    let server = Scripted::start(|_| overloaded()).await;
    let error = client(&server.url())
        .runs()
        .get(Uuid::now_v7(), Uuid::now_v7())
        .await
        .expect_err("503");
    assert!(matches!(error, ClientError::Server(_)), "{error}");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(server.count(), 1 + 3);
}

#[tokio::test]
async fn a_dropped_connection_repeats_only_safe_calls() {
    let server = Scripted::start(|_| Answer::Close).await;
    let client = client(&server.url());
    let error = client
        .runs()
        .create(Uuid::now_v7(), &echo("x"))
        .await
        .expect_err("closed");
    assert!(
        matches!(error, ClientError::Transport { connect: false, .. }),
        "{error:?}"
    );
    assert_eq!(server.count(), 1);
    let error = client.health().await.expect_err("closed");
    assert!(matches!(error, ClientError::Transport { .. }), "{error}");
    assert_eq!(server.count(), 1 + 1 + 3);
}

/// How many times a safe call (`GET /ok`, three retries) reached a server answering by
/// `script`, once it failed.
async fn sends_of_a_failing_safe_call(script: fn(usize) -> Answer) -> usize {
    let server = Scripted::start(script).await;
    let error = client(&server.url()).health().await.expect_err("fails");
    assert!(error.is_transient(), "{error:?}");
    server.count()
}

#[tokio::test]
async fn a_safe_call_answered_503_and_cut_off_in_turn_is_sent_at_most_retries_plus_one_times() {
    let sends = sends_of_a_failing_safe_call(|n| {
        if n % 2 == 0 {
            overloaded()
        } else {
            Answer::CutOff
        }
    })
    .await;
    assert_eq!(sends, 1 + 3);
}

#[tokio::test]
async fn a_safe_call_dropped_and_cut_off_in_turn_is_sent_at_most_retries_plus_one_times() {
    let sends = sends_of_a_failing_safe_call(|n| {
        if n % 2 == 0 {
            Answer::Close
        } else {
            Answer::CutOff
        }
    })
    .await;
    assert_eq!(sends, 1 + 3);
}

#[tokio::test]
async fn a_safe_call_whose_bodies_are_all_cut_off_is_sent_retries_plus_one_times() {
    assert_eq!(
        sends_of_a_failing_safe_call(|_| Answer::CutOff).await,
        1 + 3
    );
}

#[tokio::test]
async fn rate_limits_and_request_ids_are_reported() {
    let server = Scripted::start(|n| match n {
        0 => Answer::Json(
            429,
            r#"{"detail":"slow down"}"#.into(),
            vec![("retry-after", "7"), ("x-request-id", "req-429")],
        ),
        _ => Answer::Json(
            404,
            r#"{"detail":"Not Found"}"#.into(),
            vec![("x-request-id", "req-404")],
        ),
    })
    .await;
    let client = client(&server.url());
    let limited = client.health().await.expect_err("429");
    assert!(
        matches!(&limited, ClientError::RateLimited { retry_after: Some(d), .. } if *d == Duration::from_secs(7)),
        "{limited}"
    );
    assert_eq!(limited.detail(), Some("slow down"));
    assert_eq!(limited.request_id(), Some("req-429"));
    let missing = client.health().await.expect_err("404");
    assert_eq!(missing.request_id(), Some("req-404"));
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn bad_json_is_a_decode_error() {
    let server = Scripted::start(|_| Answer::Json(200, "{not json".into(), vec![])).await;
    let error = client(&server.url()).health().await.expect_err("decode");
    assert!(
        matches!(&error, ClientError::Decode { snippet, .. } if snippet == "{not json"),
        "{error}"
    );
    assert_eq!(error.status().map(|s| s.as_u16()), Some(200));
}

#[tokio::test]
async fn headers_carry_the_user_agent_the_key_and_custom_headers() {
    let server = Scripted::start(|_| Answer::Json(200, r#"{"ok":true}"#.into(), vec![])).await;
    let keyed = Client::builder()
        .url(server.url())
        .api_key(Some("\"k1\""))
        .header("X-Tenant", "t1")
        .build()
        .expect("client");
    keyed.health().await.expect("ok");
    let bare = Client::builder()
        .url(server.url())
        .api_key(None)
        .build()
        .expect("client");
    bare.health().await.expect("ok");
    let heads: Vec<String> = server.heads().iter().map(|h| h.to_lowercase()).collect();
    assert!(heads[0].contains(&format!("user-agent: {}", errand_client::USER_AGENT_VALUE)));
    assert!(heads[0].contains("x-api-key: k1\r\n"), "{}", heads[0]);
    assert!(heads[0].contains("x-tenant: t1\r\n"));
    assert!(!heads[1].contains("x-api-key"));

    let refused = Client::builder()
        .url(server.url())
        .header("x-api-key", "k")
        .build()
        .expect_err("reserved header");
    assert!(matches!(refused, ClientError::Config(_)), "{refused}");
    assert!(matches!(
        Client::http("ftp://example.com"),
        Err(ClientError::Config(_))
    ));
}

#[tokio::test]
async fn a_server_that_is_down_then_up_is_reached() {
    // A free port, closed again: nothing listens there until the server comes up.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address")
    };
    let server = support::server(None).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    {
        let server = server.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let listener = TcpListener::bind(addr).await.expect("bind again");
            let _ = server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await;
        });
    }
    let client = Client::builder()
        .url(format!("http://{addr}"))
        .api_key(None)
        .retry(RetryPolicy {
            max_retries: 40,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            jitter: 0.25,
        })
        .build()
        .expect("client");
    // An unsafe call whose connection was never made is sent again: the server never saw it.
    let thread = client
        .threads()
        .create(&ThreadCreate::default())
        .await
        .expect("reached once up");
    let all = client
        .threads()
        .search(&ThreadSearchRequest::default())
        .await
        .expect("search");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].thread_id, thread.thread_id);
    let _ = stop.send(());
}

#[tokio::test]
async fn a_server_that_stays_down_fails_with_a_connect_error() {
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address")
    };
    let error = client(&format!("http://{addr}"))
        .health()
        .await
        .expect_err("down");
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn http2_with_prior_knowledge() {
    let server = support::server(None).await;
    let served = support::serve(&server).await;
    let transport = HttpTransport::with_options(
        &served.url(),
        Timeouts::default(),
        HttpOptions {
            http2_prior_knowledge: true,
            ..HttpOptions::default()
        },
    )
    .expect("transport");
    let response = transport
        .send(
            http::Request::get("/ok")
                .body(bytes::Bytes::new())
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(response.version(), http::Version::HTTP_2);

    let client = Client::builder()
        .transport(Arc::new(transport))
        .api_key(None)
        .build()
        .expect("client");
    let thread = new_thread(&client).await;
    let result = client
        .runs()
        .wait(thread.thread_id, &echo("h2"))
        .await
        .expect("wait");
    let values = match result {
        errand_client::protocol::RunResult::Values(values) => values,
        other => panic!("{other:?}"),
    };
    assert_eq!(texts(&values), ["h2", "echo: h2"]);
}

/// A TCP proxy on 127.0.0.1:0 to `upstream` that, once, drops a connection right after
/// forwarding a response piece holding `event: values` (so a stream is cut mid-run). It stops
/// when dropped.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let cut = Arc::new(AtomicBool::new(false));
        let task = {
            let cut = Arc::clone(&cut);
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let cut = Arc::clone(&cut);
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        let (mut client_read, mut client_write) = client.into_split();
                        let (mut server_read, mut server_write) = server.into_split();
                        let upload = tokio::spawn(async move {
                            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                        });
                        let mut seen = Vec::new();
                        let mut chunk = vec![0u8; 16 * 1024];
                        while let Ok(read) = server_read.read(&mut chunk).await {
                            if read == 0 || client_write.write_all(&chunk[..read]).await.is_err() {
                                break;
                            }
                            seen.extend_from_slice(&chunk[..read]);
                            let holds_values = seen.windows(13).any(|w| w == b"event: values");
                            if holds_values && !cut.swap(true, Ordering::SeqCst) {
                                // Drop both sides at once.
                                break;
                            }
                        }
                        upload.abort();
                    });
                }
            })
        };
        Self { addr, cut, task }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_a_proxy_resumes_with_every_event_once() {
    let server = support::server(None).await;
    let served = support::serve(&server).await;
    let proxy = Proxy::start(served.addr()).await;
    let client = fast(Client::builder().url(format!("http://{}", proxy.addr)))
        .build()
        .expect("client");
    let thread = new_thread(&client).await;
    let mut stream = client
        .runs()
        .stream(thread.thread_id, &echo_streamed("sleep=0.5"))
        .await
        .expect("stream");
    let run = stream.run().expect("run");
    let mut events: Vec<StreamEvent> = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("in time")
    {
        events.push(event.expect("event"));
    }
    assert!(proxy.cut.load(Ordering::SeqCst), "the proxy cut a stream");
    let ids: Vec<&str> = events.iter().filter_map(|e| e.id.as_deref()).collect();
    assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    let StreamPart::Values(last) = &events[4].part else {
        panic!("values last");
    };
    assert_eq!(texts(last), ["sleep=0.5", "echo: sleep=0.5"]);
    let done = client
        .runs()
        .get(run.thread_id, run.run_id)
        .await
        .expect("run");
    assert_eq!(done.status, RunStatus::Success);
    let thread = client
        .threads()
        .get(thread.thread_id)
        .await
        .expect("thread");
    assert_eq!(thread.status, ThreadStatus::Idle);
}
