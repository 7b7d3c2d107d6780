//! What the CLI tests share: `errand serve` as a child process, and the pieces of an
//! OpenAI-compatible Chat Completions stream for fake models.

// Each test binary uses its own part of this module.
#![allow(dead_code, clippy::unwrap_used)]

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// An `errand serve` process, killed when dropped.
pub(crate) struct Served {
    child: Child,
    /// Where it listens, `http://127.0.0.1:PORT`.
    pub(crate) url: String,
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["serve", "--port", "0"])
        .args(args)
        .env("ERRAND_LOG", "warn")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
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
    Served { child, url }
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
