//! Fuzz target: the client's run stream reader, fed any bytes as an SSE answer.
//!
//! A transport answers the stream request with the input, cut into chunks anywhere, and every
//! other request (the run read that decides on a reconnect) with 404, so each stream ends when
//! its body does. Properties: the stream never panics and always ends; it yields, in order, one
//! item per frame the protocol's decoder finds (the typed event, or an error for a frame that
//! does not read), and one error for each event the decoder dropped for its size; comments are
//! not yielded. `PROPTEST_CASES` sets the number of cases.

use bytes::Bytes;
use errand_client::protocol::sse::{DEFAULT_MAX_EVENT_SIZE, SseDecoder, SseFrame, SseItem};
use errand_client::protocol::{ProtocolError, RunCreate, StreamEvent};
use errand_client::transport::{Transport, TransportRequest, TransportResponse};
use errand_client::{Client, ClientError, RetryPolicy};
use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::json;
use std::error::Error as _;
use std::time::Duration;
use uuid::Uuid;

/// The fuzz targets' shared parts (the case count above all), kept with the protocol's.
#[path = "../../protocol/tests/fuzz_support/mod.rs"]
mod fuzz_support;
use fuzz_support::config;

/// Answers a stream request with `chunks`, anything else with 404.
#[derive(Debug)]
struct Scripted {
    chunks: Vec<Bytes>,
}

impl Transport for Scripted {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'static, Result<TransportResponse, ClientError>> {
        let is_stream = request.method() == http::Method::POST;
        let chunks = self.chunks.clone();
        async move {
            let (status, content_type, body): (u16, &str, Vec<Bytes>) = if is_stream {
                (200, "text/event-stream; charset=utf-8", chunks)
            } else {
                (
                    404,
                    "application/json",
                    vec![Bytes::from_static(br#"{"detail":"Run not found"}"#)],
                )
            };
            let body = futures::stream::iter(body.into_iter().map(Ok)).boxed();
            Ok(http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(body)
                .expect("a response"))
        }
        .boxed()
    }

    fn target(&self) -> &str {
        "scripted"
    }
}

/// What one item of the stream is.
#[derive(Debug, PartialEq)]
enum Seen {
    Event(StreamEvent),
    /// A frame that did not read as a typed event.
    Unreadable,
    /// An event the decoder dropped for its size.
    Oversized,
}

/// What the stream must yield for `chunks`: the decoder's frames read one by one, and after
/// each chunk one error per event dropped in it.
fn expected(chunks: &[Bytes]) -> Vec<Seen> {
    let mut decoder = SseDecoder::new();
    let mut seen = Vec::new();
    let mut dropped = 0;
    let mut take = |items: Vec<SseItem>, decoder: &SseDecoder, seen: &mut Vec<Seen>| {
        for item in items {
            if let SseItem::Frame(frame) = item {
                seen.push(match StreamEvent::from_frame(&frame) {
                    Ok(event) => Seen::Event(event),
                    Err(_) => Seen::Unreadable,
                });
            }
        }
        let now = decoder.oversized_events();
        for _ in dropped..now {
            seen.push(Seen::Oversized);
        }
        dropped = now;
    };
    for chunk in chunks {
        let items = decoder.push(chunk);
        take(items, &decoder, &mut seen);
    }
    let items = decoder.finish();
    take(items, &decoder, &mut seen);
    seen
}

/// Streams a run through a client whose transport answers `chunks`.
async fn streamed(chunks: Vec<Bytes>) -> Vec<Seen> {
    let client = Client::builder()
        .transport(std::sync::Arc::new(Scripted { chunks }))
        .api_key(None)
        .retry(RetryPolicy::NEVER)
        .reconnect(RetryPolicy::fast(1))
        .build()
        .expect("a client");
    let mut stream = client
        .runs()
        .stream(Uuid::nil(), &RunCreate::new("agent", json!({})))
        .await
        .expect("the stream opens");
    let mut seen = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream goes on or ends")
    {
        seen.push(match item {
            Ok(event) => Seen::Event(event),
            Err(error) => {
                let source = error.source().and_then(|source| source.downcast_ref());
                match source {
                    Some(ProtocolError::EventTooLarge { .. }) => Seen::Oversized,
                    _ => Seen::Unreadable,
                }
            }
        });
    }
    seen
}

/// A frame of a run's stream, or not quite one.
fn frame_text() -> impl Strategy<Value = String> {
    let data = prop_oneof![
        Just(json!({"run_id": Uuid::nil(), "attempt": 1}).to_string()),
        Just(json!({"messages": []}).to_string()),
        Just(json!({"error": "ValueError", "message": "boom"}).to_string()),
        Just(json!([{"type": "ai", "content": "hi"}, {}]).to_string()),
        "\\PC{0,12}",
    ];
    let event = prop::sample::select(vec![
        "metadata", "values", "updates", "messages", "error", "end", "custom", "x|y",
    ]);
    prop_oneof![
        8 => (event, data, prop::option::of("[0-9]{1,3}-0")).prop_map(|(event, data, id)| {
            let frame = SseFrame { id, ..SseFrame::new(event, data) };
            frame.encode()
        }),
        1 => Just(": heartbeat\r\n\r\n".to_owned()),
        1 => "\\PC{0,16}",
    ]
}

fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => vec(any::<u8>(), 0..128),
        6 => (vec(frame_text(), 0..6), any::<prop::sample::Index>(), any::<u8>(), any::<bool>())
            .prop_map(|(frames, at, byte, flip)| {
                let mut bytes = frames.concat().into_bytes();
                if flip && !bytes.is_empty() {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                bytes
            }),
    ]
}

fn cut(bytes: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(Bytes::copy_from_slice(&bytes[start..cut]));
        start = cut;
    }
    chunks.push(Bytes::copy_from_slice(&bytes[start..]));
    chunks
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn the_stream_yields_what_the_bytes_hold(bytes in stream_bytes(), cuts in vec(any::<usize>(), 0..8)) {
        let chunks = cut(&bytes, &cuts);
        let want = expected(&chunks);
        let got = runtime().block_on(streamed(chunks));
        prop_assert_eq!(got, want);
    }
}

/// An endless line is dropped once it passes the decoder's limit, reported as one error, and
/// the events after it still arrive.
#[test]
fn an_oversized_event_is_an_error_and_the_stream_goes_on() {
    let mut chunks = vec![Bytes::from_static(b"event: values\r\ndata: ")];
    let filler = Bytes::from(vec![b'x'; 1024 * 1024]);
    chunks.extend(std::iter::repeat_n(
        filler,
        DEFAULT_MAX_EVENT_SIZE / (1024 * 1024) + 1,
    ));
    chunks.push(Bytes::from_static(
        b"\r\n\r\nevent: values\r\ndata: {\"n\": 1}\r\n\r\n",
    ));
    let seen = runtime().block_on(streamed(chunks));
    let after = StreamEvent::from_frame(&SseFrame::new("values", r#"{"n": 1}"#)).expect("typed");
    assert_eq!(seen, [Seen::Oversized, Seen::Event(after)]);
}
