//! What the CLI tests share: `errand serve` as a child process, and the pieces of an
//! OpenAI-compatible Chat Completions stream for fake models.

// Each test binary uses its own part of this module.
#![allow(dead_code, clippy::unwrap_used)]

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An `errand serve` process, killed when dropped.
pub(crate) struct Served {
    pub(crate) child: Child,
    /// Where it listens, `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// The same, `127.0.0.1:PORT`.
    pub(crate) address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `errand serve --port 0` with `args` and no model keys from the environment; waits
/// for its `listening on` line.
pub(crate) fn serve<I, S>(args: I) -> Served
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    serve_logging_to(args, Stdio::inherit())
}

/// [`serve`], its log (`warn` and worse) going to `stderr`.
pub(crate) fn serve_logging_to<I, S>(args: I, stderr: Stdio) -> Served
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["serve", "--port", "0"])
        .args(args)
        .env("ERRAND_LOG", "warn")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let address = url.trim_start_matches("http://").to_owned();
    Served {
        child,
        url,
        address,
    }
}

/// One HTTP/1.1 request on a fresh connection to `address` (`127.0.0.1:PORT`); the status
/// and the JSON body (`null` when it is not JSON).
pub(crate) fn call(address: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let (status, body) = call_text(address, method, path, body, &[]);
    (
        status,
        serde_json::from_str(body.trim()).unwrap_or(Value::Null),
    )
}

/// [`call`] with extra header lines, answering the body as text.
pub(crate) fn call_text(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// The body of a chunked answer.
pub(crate) fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// One `chat.completion.chunk` with a delta and a finish reason.
pub(crate) fn chunk(model: &str, delta: &Value, finish: &Value) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

/// The chunks of a streamed text answer.
pub(crate) fn text_chunks(model: &str, pieces: &[&str]) -> Vec<Value> {
    let mut chunks = vec![chunk(
        model,
        &json!({"role": "assistant", "content": ""}),
        &Value::Null,
    )];
    chunks.extend(
        pieces
            .iter()
            .map(|piece| chunk(model, &json!({"content": piece}), &Value::Null)),
    );
    chunks.push(chunk(model, &json!({}), &json!("stop")));
    chunks
}

/// A streamed answer as OpenAI sends it: the chunks, a usage chunk, then `[DONE]`.
pub(crate) fn sse(model: &str, mut chunks: Vec<Value>, usage: (u64, u64)) -> Response {
    chunks.push(json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [],
        "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}
    }));
    let mut body: String = chunks
        .iter()
        .map(|chunk| format!("data: {chunk}\n\n"))
        .collect();
    body.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], body).into_response()
}
