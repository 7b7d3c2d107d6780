//! The HTTP edges of `errand serve`, over a real socket where the connection matters: auth
//! before routing, and keep-alive connections that survive answers given before the request
//! body was read (401, 404, 405, 413).
//!
//! The client here speaks HTTP/1.1 on a raw `TcpStream`, so that the test sees exactly what the
//! server does with the connection: one connection for many requests, headers and body sent in
//! two writes (as a client's body often arrives after its headers), `Connection: close` and the
//! end of the connection as they happen. No client library retries a request behind its back.

mod support;

use axum::http::{Method, StatusCode};
use errand_server::{ExecutorConfig, LocalServe};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use support::{Api, api_with};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long a test waits for an answer before it calls the server hung (a guard, not a timing
/// under test).
const PATIENCE: Duration = Duration::from_secs(20);

async fn server(key: Option<&str>) -> Api {
    api_with(ExecutorConfig::default(), key).await
}

/// A server on a local port; serving stops when the answer is dropped.
async fn served(key: Option<&str>) -> (Api, LocalServe) {
    let api = server(key).await;
    let serve = api
        .server
        .serve_local()
        .await
        .expect("serves on a local port");
    (api, serve)
}

/// An answer as read off the connection.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One HTTP/1.1 connection, kept for as many requests as the server allows.
struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connects");
        // Headers and body leave in separate segments, as they do from a busy client.
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (reader, writer) = stream.into_split();
        Self {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// Sends `head` (request line and headers, without the blank line), then `body` with its
    /// `Content-Length`, in two writes.
    async fn send(&mut self, head: &str, body: &[u8]) -> std::io::Result<()> {
        let head = format!(
            "{head}\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).await?;
        self.writer.flush().await?;
        self.writer.write_all(body).await?;
        self.writer.flush().await
    }

    /// The next answer, or `None` when the server ended the connection instead.
    async fn reply(&mut self) -> Option<Reply> {
        tokio::time::timeout(PATIENCE, read_reply(&mut self.reader))
            .await
            .expect("the server answers or closes")
            .ok()
            .flatten()
    }

    /// Sends a request and reads its answer; `None` if the connection ended instead.
    async fn exchange(&mut self, head: &str, body: &[u8]) -> Option<Reply> {
        self.send(head, body).await.ok()?;
        self.reply().await
    }

    /// Whether the server ended the connection (no more bytes come).
    async fn ended(&mut self) -> bool {
        let mut byte = [0; 1];
        matches!(
            tokio::time::timeout(PATIENCE, self.reader.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

/// Reads one answer off the connection; `None` when the connection ended first.
async fn read_reply(reader: &mut BufReader<OwnedReadHalf>) -> std::io::Result<Option<Reply>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header line");
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, value)| value.parse().expect("a length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok(Some(Reply {
        status,
        headers,
        body,
    }))
}

/// A JSON body of about `size` bytes.
fn json_body(size: usize) -> Vec<u8> {
    json!({"assistant_id": "echo", "input": {"padding": "x".repeat(size)}})
        .to_string()
        .into_bytes()
}

/// Rounds of (a request refused before its body is read, then a GET) on one connection: every
/// request is answered, none with `Connection: close`.
async fn refusals_keep_the_connection(addr: SocketAddr, refused: &str, status: u16, rounds: usize) {
    let mut connection = Connection::open(addr).await;
    for round in 0..rounds {
        // Sizes from a few bytes to 64 KiB: the body arrives in one segment or in many.
        let body = json_body(1 << (round % 17));
        let refusal = connection
            .exchange(refused, &body)
            .await
            .unwrap_or_else(|| panic!("round {round}: `{refused}` was not answered"));
        assert_eq!(refusal.status, status, "round {round}: {refusal:?}");
        assert!(refusal.json()["detail"].is_string(), "{refusal:?}");
        assert!(!refusal.closes(), "round {round}: {refusal:?}");
        let next = connection
            .exchange("GET /ok HTTP/1.1", b"")
            .await
            .unwrap_or_else(|| panic!("round {round}: the server disconnected after {status}"));
        assert_eq!(next.status, 200, "round {round}: {next:?}");
    }
}

#[tokio::test]
async fn a_keep_alive_connection_survives_a_refused_route() {
    let (_server, serve) = served(None).await;
    refusals_keep_the_connection(serve.addr(), "POST /nowhere HTTP/1.1", 404, 200).await;
}

#[tokio::test]
async fn a_keep_alive_connection_survives_a_refused_key() {
    let (_server, serve) = served(Some("s3cret")).await;
    refusals_keep_the_connection(serve.addr(), "POST /threads HTTP/1.1", 401, 200).await;
}

#[tokio::test]
async fn a_keep_alive_connection_survives_a_wrong_method() {
    let (_server, serve) = served(Some("s3cret")).await;
    refusals_keep_the_connection(
        serve.addr(),
        "PUT /threads HTTP/1.1\r\nx-api-key: s3cret",
        405,
        100,
    )
    .await;
}

#[tokio::test]
async fn a_read_body_keeps_the_connection() {
    let (_server, serve) = served(None).await;
    let mut connection = Connection::open(serve.addr()).await;
    for round in 0..20 {
        let created = connection
            .exchange("POST /threads HTTP/1.1", &json_body(1 << round))
            .await
            .expect("answered");
        assert_eq!(created.status, 200, "{created:?}");
        assert!(!created.closes(), "{created:?}");
    }
}

/// Sends `head` (with its blank line) and then `body_size` bytes of body, and reads the answer
/// meanwhile: a server may answer before it reads the body.
async fn upload(connection: &mut Connection, head: &str, body_size: usize) -> Option<Reply> {
    let send = async {
        let chunk = vec![b' '; 64 * 1024];
        let mut left = body_size;
        let mut sent = connection.writer.write_all(head.as_bytes()).await;
        while sent.is_ok() && left > 0 {
            let size = left.min(chunk.len());
            sent = connection.writer.write_all(&chunk[..size]).await;
            left -= size;
        }
    };
    let (reply, ()) = tokio::time::timeout(PATIENCE, async {
        tokio::join!(read_reply(&mut connection.reader), send)
    })
    .await
    .expect("the server answers and reads or closes");
    reply.ok().flatten()
}

#[tokio::test]
async fn a_body_too_large_to_discard_is_answered_with_connection_close() {
    let (_server, serve) = served(None).await;
    let mut connection = Connection::open(serve.addr()).await;
    let head = "POST /nowhere HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4194304\r\n\r\n";
    let refusal = upload(&mut connection, head, 4 << 20)
        .await
        .expect("answered");
    assert_eq!(refusal.status, 404, "{refusal:?}");
    assert!(refusal.closes(), "{refusal:?}");
    assert!(connection.ended().await);
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413_and_the_rest_discarded() {
    let (_server, serve) = served(None).await;
    let mut connection = Connection::open(serve.addr()).await;
    // 16 MiB are read before the limit is known to be passed; the last 700 KB are discarded.
    let size = 17_500_000;
    let head =
        format!("POST /threads HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n");
    let refusal = upload(&mut connection, &head, size)
        .await
        .expect("answered");
    assert_eq!(refusal.status, 413, "{refusal:?}");
    assert!(!refusal.closes(), "{refusal:?}");
    let next = connection
        .exchange("GET /ok HTTP/1.1", b"")
        .await
        .expect("the connection is kept");
    assert_eq!(next.status, 200);
}

#[tokio::test]
async fn a_body_that_waits_for_100_continue_is_not_solicited() {
    let (_server, serve) = served(Some("s3cret")).await;
    let mut connection = Connection::open(serve.addr()).await;
    let head = "POST /threads HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
                Content-Length: 1000\r\n\r\n";
    connection
        .writer
        .write_all(head.as_bytes())
        .await
        .expect("sends the head");
    // A final answer instead of 100 Continue; the body is never sent, so the server must close.
    let refusal = connection.reply().await.expect("answered");
    assert_eq!(refusal.status, 401, "{refusal:?}");
    assert!(refusal.closes(), "{refusal:?}");
    assert!(connection.ended().await);
}

#[tokio::test]
async fn a_chunked_body_is_discarded_after_a_refusal() {
    let (_server, serve) = served(None).await;
    let mut connection = Connection::open(serve.addr()).await;
    for _ in 0..20 {
        let head =
            "POST /nowhere HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
        connection
            .writer
            .write_all(head.as_bytes())
            .await
            .expect("sends the head");
        connection
            .writer
            .write_all(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            .await
            .expect("sends the body");
        let refusal = connection.reply().await.expect("answered");
        assert_eq!(refusal.status, 404, "{refusal:?}");
        assert!(!refusal.closes(), "{refusal:?}");
    }
    let next = connection
        .exchange("GET /ok HTTP/1.1", b"")
        .await
        .expect("the connection is kept");
    assert_eq!(next.status, 200);
}

// --- Auth before routing ---

/// The status and JSON body (or null) of a request with a `{}` body.
async fn call(
    api: &Api,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let answer = api.call_with(method, path, Some(json!({})), headers).await;
    let body = if answer.body.is_empty() {
        Value::Null
    } else {
        answer.json()
    };
    (answer.status, body)
}

/// Paths and methods that exist, that do not, and that exist with another method.
const PROBES: &[(&str, &str)] = &[
    ("POST", "/threads"),
    ("GET", "/info"),
    ("GET", "/nowhere"),
    ("POST", "/nowhere/at/all"),
    ("DELETE", "/threads"),
    ("PUT", "/info"),
    ("POST", "/ok"),
    ("DELETE", "/ok"),
    ("GET", "/ok/"),
    ("GET", "/"),
    ("OPTIONS", "/threads/search"),
];

#[tokio::test]
async fn without_a_key_every_path_but_get_ok_answers_401() {
    let server = server(Some("s3cret")).await;
    for (method, path) in PROBES {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        for headers in [
            &[][..],
            &[("x-api-key", "nope")],
            &[("authorization", "Bearer nope")],
            &[("authorization", "s3cret")],
            &[("authorization", "Basic s3cret")],
            &[("authorization", "Bearers3cret")],
            &[("x-api-key", "s3cret2")],
        ] {
            let (status, body) = call(&server, method.clone(), path, headers).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {headers:?}"
            );
            assert!(body["detail"].is_string(), "{method} {path}: {body}");
        }
    }
    for method in [Method::GET, Method::HEAD] {
        let (status, _) = call(&server, method, "/ok", &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn with_a_key_routing_answers_as_without_one() {
    let keyed = server(Some("s3cret")).await;
    let open = server(None).await;
    for (method, path) in PROBES {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let expected = call(&open, method.clone(), path, &[]).await.0;
        let (status, body) = call(&keyed, method.clone(), path, &[("x-api-key", "s3cret")]).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        if status.is_client_error() {
            assert!(body["detail"].is_string(), "{method} {path}: {body}");
        }
    }
    assert_eq!(
        call(&keyed, Method::GET, "/nowhere", &[("x-api-key", "s3cret")])
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &keyed,
            Method::DELETE,
            "/threads",
            &[("x-api-key", "s3cret")]
        )
        .await
        .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let server = server(Some("s3cret")).await;
    for authorization in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "bEaReR s3cret",
        "Bearer   s3cret",
        "Bearer\ts3cret",
        "Bearer s3cret ",
        " Bearer s3cret",
    ] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/threads",
            &[("authorization", authorization)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{authorization:?}: {body}");
    }
    // Either header may carry the key.
    let (status, _) = call(
        &server,
        Method::POST,
        "/threads",
        &[("x-api-key", "nope"), ("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
