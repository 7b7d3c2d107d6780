//! What the server's API tests share: a server on in-memory storage called in-process through
//! its router, and readers for its answers.
#![allow(dead_code, unreachable_pub)]

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use errand_protocol::sse::{SseDecoder, SseItem};
use errand_protocol::{Run, RunStatus, StreamEvent, StreamPart, Thread};
use errand_server::storage::SqliteStorage;
use errand_server::{ExecutorConfig, Server, graphs::Echo};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

pub struct Api {
    pub server: Server,
    pub router: Router,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A graph that panics, to show a panic fails the run and nothing else.
pub struct Panics;

#[errand_server::runtime::async_trait]
impl errand_server::runtime::Graph for Panics {
    async fn invoke(
        &self,
        _: errand_server::runtime::GraphRun,
    ) -> Result<errand_server::runtime::GraphOutput, errand_server::runtime::Error> {
        panic!("deliberately")
    }
}

pub async fn api_with(config: ExecutorConfig, key: Option<&str>) -> Api {
    let mut builder = Server::builder()
        .graph("echo", Echo)
        .graph("panics", Panics)
        .storage(Arc::new(SqliteStorage::in_memory().expect("storage")))
        .executor_config(config);
    if let Some(key) = key {
        builder = builder.api_key(key);
    }
    let server = builder.start().await.expect("server starts");
    let router = server.router();
    Api { server, router }
}

pub async fn api() -> Api {
    api_with(ExecutorConfig::default(), None).await
}

impl Api {
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn thread(&self) -> Thread {
        let answer = self.call(Method::POST, "/threads", Some(json!({}))).await;
        assert_eq!(answer.status, StatusCode::OK);
        serde_json::from_slice(&answer.body).expect("thread")
    }

    pub async fn start(&self, thread: &Thread, text: &str, extra: Value) -> Answer {
        let mut body = json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": text}]}});
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        self.call(
            Method::POST,
            &format!("/threads/{}/runs", thread.thread_id),
            Some(body),
        )
        .await
    }

    pub async fn run(&self, thread: &Thread, text: &str) -> Run {
        let answer = self.start(thread, text, json!({})).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        serde_json::from_slice(&answer.body).expect("run")
    }

    pub async fn get_run(&self, run: &Run) -> Answer {
        self.call(
            Method::GET,
            &format!("/threads/{}/runs/{}", run.thread_id, run.run_id),
            None,
        )
        .await
    }

    /// Polls the run until it has `status`, for at most 10 s.
    pub async fn wait_status(&self, run: &Run, status: RunStatus) -> Run {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self.get_run(run).await;
            if answer.status == StatusCode::OK {
                let current: Run = serde_json::from_slice(&answer.body).expect("run");
                if current.status == status {
                    return current;
                }
                assert!(
                    Instant::now() < deadline,
                    "run stuck in {:?}, wanted {status:?}",
                    current.status
                );
            } else {
                assert!(Instant::now() < deadline, "run gone: {}", answer.status);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the run's graph has taken its input (its first `values` event is out), for
    /// at most 10 s. A run may show `running` from its creation, before its graph has begun, so
    /// a test that cancels a run and then looks for the input in its thread waits for this.
    pub async fn wait_input_taken(&self, run: &Run) {
        let path = format!(
            "/threads/{}/runs/{}/stream?stream_mode=values",
            run.thread_id, run.run_id
        );
        let request = Request::builder().method(Method::GET).uri(path);
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let mut body = response.into_body().into_data_stream();
        let mut seen = Vec::new();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .expect("the run takes its input within 10 s")
                .expect("the stream ended before the run took its input");
            // Lines may end in CRLF; only whole frames (each ends with a blank line) are decoded.
            let chunk = chunk.expect("stream body");
            seen.extend(chunk.iter().copied().filter(|byte| *byte != b'\r'));
            let whole = seen.windows(2).rposition(|end| end == b"\n\n");
            let Some(end) = whole else { continue };
            let events = decode_events(&seen[..end + 2]);
            if events
                .iter()
                .any(|event| matches!(event.part, StreamPart::Values(_)))
            {
                return;
            }
        }
    }

    pub async fn join(&self, run: &Run) -> Value {
        let answer = self
            .call(
                Method::GET,
                &format!("/threads/{}/runs/{}/join", run.thread_id, run.run_id),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.json()
    }

    pub async fn get_thread(&self, thread: &Thread) -> Thread {
        let answer = self
            .call(Method::GET, &format!("/threads/{}", thread.thread_id), None)
            .await;
        serde_json::from_slice(&answer.body).expect("thread")
    }
}

pub fn last_text(values: &Value) -> String {
    values["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

pub fn texts(values: &Value) -> Vec<String> {
    values["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["content"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn decode_events(body: &[u8]) -> Vec<StreamEvent> {
    SseDecoder::decode_all(body)
        .into_iter()
        .filter_map(|item| match item {
            SseItem::Frame(frame) => Some(StreamEvent::from_frame(&frame).expect("typed event")),
            SseItem::Comment(_) => None,
        })
        .collect()
}
