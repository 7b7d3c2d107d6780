//! The server against its OpenAPI document, `spec/openapi.json`: each answer to a table of
//! requests, good and bad, over every operation, has a status code that the document lists for
//! the operation, with the media type it lists; streams are described event by event, and
//! their events are what the document says. (schemathesis, `cargo xtask schemathesis`, checks
//! the bodies against the schemas with generated requests; this is the cheap check that runs
//! with `cargo test`.)

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use errand_protocol::sse::{SseDecoder, SseItem};
use errand_protocol::{StreamEvent, assistant_id_for_graph};
use errand_server::storage::SqliteStorage;
use errand_server::{Server, graphs::Echo};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;

fn document() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/openapi.json");
    let text = std::fs::read_to_string(&path).expect("spec/openapi.json is readable");
    serde_json::from_str(&text).expect("spec/openapi.json is JSON")
}

/// The operation of the document that serves `method` on `path` (without its query): the
/// template that matches it with the fewest `{parameters}`, as a router picks a literal
/// segment over a parameter.
fn operation<'a>(document: &'a Value, method: &Method, path: &str) -> Option<&'a Value> {
    let segments: Vec<&str> = path.split('/').collect();
    let method = method.as_str().to_ascii_lowercase();
    document["paths"]
        .as_object()?
        .iter()
        .filter(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment)
                && item.get(&method).is_some()
        })
        .min_by_key(|(template, _)| template.matches('{').count())
        .map(|(_, item)| &item[&method])
}

/// Follows a `$ref` to its component.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .expect("refs point at components");
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

struct Api {
    server: Server,
    router: Router,
    document: Value,
}

impl Api {
    async fn start(api_key: Option<&str>) -> Self {
        let mut builder = Server::builder()
            .graph("echo", Echo)
            .storage(Arc::new(SqliteStorage::in_memory().expect("storage")));
        if let Some(key) = api_key {
            builder = builder.api_key(key);
        }
        let server = builder.start().await.expect("the server starts");
        let router = server.router();
        Self {
            server,
            router,
            document: document(),
        }
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).expect("a request"))
            .await
            .expect("the router is infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        // Streams and joins end with their runs, which end within milliseconds here.
        let body = tokio::time::timeout(
            Duration::from_secs(10),
            axum::body::to_bytes(response.into_body(), usize::MAX),
        )
        .await
        .expect("the answer ends within 10 s")
        .expect("a body");
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// Sends the request and checks the answer against the document: its status is listed
    /// for the operation, and so is its media type (or no body, when none is listed).
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
        self.call_raw(method, uri, body, &[]).await
    }

    async fn call_raw(
        &self,
        method: Method,
        uri: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Answer {
        let answer = self.send(method.clone(), uri, body, headers).await;
        let path = uri.split('?').next().unwrap_or(uri);
        let operation = operation(&self.document, &method, path)
            .unwrap_or_else(|| panic!("the document has no operation for {method} {path}"));
        let status = answer.status.as_u16().to_string();
        let response = operation["responses"].get(&status).unwrap_or_else(|| {
            panic!(
                "{method} {uri} answered {status}, which the document does not list: {}",
                String::from_utf8_lossy(&answer.body)
            )
        });
        match response["content"].as_object() {
            Some(content) => {
                let essence = answer
                    .content_type
                    .as_deref()
                    .and_then(|value| value.split(';').next())
                    .map(str::trim)
                    .unwrap_or_else(|| {
                        panic!("{method} {uri} answered {status} with no content type")
                    });
                assert!(
                    content.contains_key(essence),
                    "{method} {uri} answered {status} as {essence}; the document lists {:?}",
                    content.keys().collect::<Vec<_>>()
                );
            }
            None => assert!(
                answer.body.is_empty(),
                "{method} {uri} answered {status} with a body the document does not list"
            ),
        }
        answer
    }

    async fn create_thread(&self) -> String {
        let answer = self.call(Method::POST, "/threads", Some(json!({}))).await;
        answer.json()["thread_id"]
            .as_str()
            .expect("a thread id")
            .to_owned()
    }
}

fn echo_run(text: &str) -> Value {
    json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": text}]}})
}

/// The events of a stream answer; the document describes them one by one.
fn stream_events(document: &Value, operation_path: &str, answer: &Answer) -> Vec<StreamEvent> {
    let schema = &document["paths"][operation_path]["post"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"];
    let event = resolve(document, schema);
    assert!(
        event["oneOf"]
            .as_array()
            .is_some_and(|kinds| kinds.len() > 1),
        "{operation_path}: the stream is not described event by event: {schema}"
    );
    SseDecoder::decode_all(&answer.body)
        .into_iter()
        .filter_map(|item| match item {
            SseItem::Frame(frame) => {
                Some(StreamEvent::from_frame(&frame).expect("an event the protocol reads"))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_answer_is_one_the_document_lists() {
    let api = Api::start(None).await;
    let echo = assistant_id_for_graph("echo");
    let unknown = Uuid::now_v7();

    api.call(Method::GET, "/ok", None).await;
    api.call(Method::GET, "/info", None).await;
    api.call(Method::POST, "/assistants/search", Some(json!({})))
        .await;
    api.call(Method::GET, &format!("/assistants/{echo}"), None)
        .await;
    api.call(Method::GET, &format!("/assistants/{unknown}"), None)
        .await;
    api.call(Method::GET, "/assistants/echo", None).await;

    let thread = api.create_thread().await;
    let refusals = [
        json!({"thread_id": thread}),
        json!({"supersteps": [{"updates": []}]}),
        json!({"metadata": 1}),
    ];
    for body in refusals {
        let answer = api.call(Method::POST, "/threads", Some(body)).await;
        assert!(answer.status.is_client_error());
    }
    let too_large = Body::from(vec![b' '; 16 * 1024 * 1024 + 1]);
    let answer = api.call_raw(Method::POST, "/threads", too_large, &[]).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    api.call(Method::POST, "/threads/search", Some(json!({"limit": 5})))
        .await;
    let threads = format!("/threads/{thread}");
    api.call(Method::GET, &threads, None).await;
    api.call(Method::GET, &format!("/threads/{unknown}"), None)
        .await;
    api.call(Method::GET, "/threads/not-a-uuid", None).await;
    api.call(Method::PATCH, &threads, Some(json!({"metadata": {"a": 1}})))
        .await;
    api.call(Method::GET, &format!("{threads}/state"), None)
        .await;
    api.call(
        Method::POST,
        &format!("{threads}/state"),
        Some(json!({"values": {"messages": [{"role": "user", "content": "hi"}]}})),
    )
    .await;
    api.call(
        Method::POST,
        &format!("{threads}/state"),
        Some(json!({"values": {"messages": [1]}})),
    )
    .await;
    api.call(Method::POST, &format!("{threads}/history"), Some(json!({})))
        .await;

    // Runs on the thread: created, refused, listed, streamed, waited for, joined, cancelled.
    let runs = format!("{threads}/runs");
    let run = api.call(Method::POST, &runs, Some(echo_run("one"))).await;
    let run_id = run.json()["run_id"].as_str().expect("a run id").to_owned();
    let mut both = echo_run("two");
    both["config"] = json!({"configurable": {"a": 1}});
    both["context"] = json!({"a": 1});
    let answer = api.call(Method::POST, &runs, Some(both)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let mut webhook = echo_run("three");
    webhook["webhook"] = json!("https://example.invalid/hook");
    api.call(Method::POST, &runs, Some(webhook)).await;
    api.call(
        Method::POST,
        &format!("/threads/{unknown}/runs"),
        Some(echo_run("four")),
    )
    .await;
    let run = format!("{runs}/{run_id}");
    api.call(Method::GET, &format!("{run}/join"), None).await;
    api.call(Method::GET, &runs, None).await;
    api.call(Method::GET, &format!("{runs}?limit=two"), None)
        .await;
    api.call(Method::GET, &format!("{runs}?status=asleep"), None)
        .await;

    // The legacy `messages` mode shows message chunks as `messages/*` events.
    for (modes, expected) in [
        (
            json!(["values", "updates", "messages-tuple"]),
            &["metadata", "values", "updates", "messages"][..],
        ),
        (
            json!("messages"),
            &["metadata", "messages/metadata", "messages/complete"][..],
        ),
    ] {
        let mut streamed = echo_run("five");
        streamed["stream_mode"] = modes;
        let answer = api
            .call(Method::POST, &format!("{runs}/stream"), Some(streamed))
            .await;
        let events = stream_events(&api.document, "/threads/{thread_id}/runs/stream", &answer);
        let names: Vec<&str> = events.iter().map(|event| event.part.event_name()).collect();
        assert_eq!(names.first(), Some(&"metadata"), "{names:?}");
        for name in expected {
            assert!(names.contains(name), "no {name} event in {names:?}");
        }
        for event in &events {
            // Every event carries its number, but for `messages/metadata`, which the document
            // says has none of its own.
            let numbered = event.part.event_name() != "messages/metadata";
            assert_eq!(event.id.is_some(), numbered, "{event:?}");
        }
    }
    api.call(Method::POST, &format!("{runs}/wait"), Some(echo_run("six")))
        .await;

    api.call(Method::GET, &run, None).await;
    api.call(Method::GET, &format!("{runs}/{unknown}"), None)
        .await;
    api.call(Method::GET, &format!("{run}/stream"), None).await;
    api.call(
        Method::GET,
        &format!("{run}/stream?stream_mode=bogus"),
        None,
    )
    .await;
    api.call(Method::POST, &format!("{run}/cancel"), None).await;
    api.call(Method::POST, &format!("{run}/cancel?action=bogus"), None)
        .await;
    let sleeper = api
        .call(Method::POST, &runs, Some(echo_run("sleep=5")))
        .await;
    let sleeper = sleeper.json()["run_id"]
        .as_str()
        .expect("a run id")
        .to_owned();
    let mut reject = echo_run("seven");
    reject["multitask_strategy"] = json!("reject");
    let answer = api.call(Method::POST, &runs, Some(reject)).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let answer = api
        .call(
            Method::POST,
            &format!("{runs}/{sleeper}/cancel?wait=1"),
            None,
        )
        .await;
    assert_eq!(answer.json(), json!({}));

    // Stateless runs, and cancelling many.
    api.call(Method::POST, "/runs", Some(echo_run("eight")))
        .await;
    api.call(
        Method::POST,
        "/runs",
        Some(json!({"assistant_id": unknown})),
    )
    .await;
    let answer = api
        .call(Method::POST, "/runs/stream", Some(echo_run("nine")))
        .await;
    stream_events(&api.document, "/runs/stream", &answer);
    api.call(Method::POST, "/runs/wait", Some(echo_run("ten")))
        .await;
    api.call(Method::POST, "/runs/cancel", Some(json!({})))
        .await;
    api.call(Method::POST, "/runs/cancel", Some(json!({"status": "all"})))
        .await;

    // The store.
    let item = json!({"namespace": ["notes"], "key": "k", "value": {"text": "hi"}});
    api.call(Method::PUT, "/store/items", Some(item)).await;
    let dotted = json!({"namespace": ["a.b"], "key": "k", "value": {}});
    api.call(Method::PUT, "/store/items", Some(dotted)).await;
    api.call(Method::GET, "/store/items?namespace=notes&key=k", None)
        .await;
    let answer = api
        .call(Method::GET, "/store/items?namespace=notes", None)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    api.call(Method::POST, "/store/items/search", Some(json!({})))
        .await;
    api.call(
        Method::POST,
        "/store/items/search",
        Some(json!({"query": "hi"})),
    )
    .await;
    api.call(Method::POST, "/store/namespaces", Some(json!({})))
        .await;
    api.call(
        Method::DELETE,
        "/store/items",
        Some(json!({"namespace": ["notes"], "key": "k"})),
    )
    .await;

    api.call(Method::DELETE, &run, None).await;
    api.call(Method::DELETE, &threads, None).await;
    api.call(Method::DELETE, &threads, None).await;
    api.server.shutdown(Duration::from_secs(1)).await;
}

/// With an API key, every operation but `/ok` may answer 401, and does without the key.
#[tokio::test]
async fn a_missing_key_is_an_answer_the_document_lists() {
    let api = Api::start(Some("secret")).await;
    let answer = api.call(Method::GET, "/ok", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    for (method, uri) in [
        (Method::GET, "/info"),
        (Method::POST, "/threads"),
        (Method::GET, "/store/items?key=k"),
    ] {
        let answer = api.call(method, uri, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let answer = api
        .call_raw(
            Method::GET,
            "/info",
            Body::empty(),
            &[("x-api-key", "secret")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    api.server.shutdown(Duration::from_secs(1)).await;
}

/// An id in the path that is not even UTF-8 is no UUID either: the 422 with `{"detail"}` that
/// the document lists, not a plain-text 400.
#[tokio::test]
async fn a_path_id_that_is_not_utf8_gets_the_listed_422() {
    let api = Api::start(None).await;
    for (method, uri) in [
        (Method::GET, "/threads/%FF"),
        (Method::DELETE, "/threads/%FF"),
        (Method::GET, "/threads/%C3%28/state"),
        (Method::POST, "/threads/%FF/history"),
        (Method::GET, "/threads/%FF/runs/%FF"),
        (Method::GET, "/assistants/%FF"),
    ] {
        let answer = api.call(method, uri, None).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
        assert!(answer.json()["detail"].is_string(), "{uri}");
    }
    api.server.shutdown(Duration::from_secs(1)).await;
}
