//! A run's event stream: SSE decoded into typed [`StreamEvent`]s, resumed when it drops.

use crate::client::{Call, next_chunk};
use crate::path::RunRef;
use crate::retry::sleep;
use crate::transport::{ResponseBody, TransportResponse};
use crate::{Client, ClientError, RetryPolicy};
use errand_protocol::sse::{SseDecoder, SseItem};
use errand_protocol::{ProtocolError, Run, StreamEvent, StreamPart};
use futures::Stream;
use futures::stream::BoxStream;
use http::header::{CONTENT_LOCATION, CONTENT_TYPE, LOCATION};
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use uuid::Uuid;

/// The events of one run, as a [`Stream`] of `Result<StreamEvent, ClientError>`.
///
/// An event that does not decode is yielded as an error and the stream goes on; so is one larger
/// than the decoder keeps ([`DEFAULT_MAX_EVENT_SIZE`], dropped unread, reported after the events
/// that came in the same chunk); a stream that cannot be resumed yields its last error and ends.
///
/// [`DEFAULT_MAX_EVENT_SIZE`]: errand_protocol::sse::DEFAULT_MAX_EVENT_SIZE
///
/// # Resuming
///
/// A dropped stream is resumed the way the official client does it. When the connection fails
/// mid-stream, or closes before an `error` (or `end`) event said the run is over, the client
/// reads the run (`GET /threads/{tid}/runs/{rid}`, found from the `Location` or
/// `Content-Location` header, or from the ids it was called with):
///
/// - still `pending` or `running`: it opens `GET /threads/{tid}/runs/{rid}/stream` again with
///   `Last-Event-ID`, so the server sends only what was missed. The id sent is the one before
///   the last id seen, and the events of the last id that were already seen are dropped:
///   langgraph-api gives events of one millisecond the same id, and resuming after it would
///   lose the ones not seen yet;
/// - already ended: the rest of its stream is replayed once from the last id, then the stream
///   ends (an ended run is never waited on; without ids, nothing is replayed once events came);
/// - gone (404): the stream ends.
///
/// Tries are bounded ([`RetryPolicy::max_retries`], 5 by default). The first try after an
/// event arrived goes at once; the next ones back off, capped exponentially with jitter (1 s to
/// 5 s by default, see [`ClientBuilder::reconnect`]); the count starts again after each event
/// that arrives. When the tries run out, the stream yields the last error and ends.
///
/// A server that ends its streams with an `end` event (or a failed run's `error`) saves the
/// check; one that just closes (errand, langgraph-api) costs a run read and an empty replay
/// when each stream ends.
///
/// [`ClientBuilder::reconnect`]: crate::ClientBuilder::reconnect
pub struct RunStream {
    run: Option<RunRef>,
    inner: BoxStream<'static, Result<StreamEvent, ClientError>>,
}

impl fmt::Debug for RunStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunStream")
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl RunStream {
    /// The run being streamed, when the answer's headers named it.
    pub fn run(&self) -> Option<RunRef> {
        self.run
    }

    /// Opens the stream of `call` (a POST that creates a run, or a GET that joins one).
    ///
    /// `known` is the run when the caller knows it; `thread_id` the thread it is on, which,
    /// with the `metadata` event's run id, finds the run when the headers do not; `query` is
    /// kept for reconnects (`?stream_mode=...`).
    pub(crate) async fn open(
        client: Client,
        call: &Call,
        known: Option<RunRef>,
        thread_id: Option<Uuid>,
        query: String,
    ) -> Result<Self, ClientError> {
        let response = client.open(call).await?;
        expect_sse(&response)?;
        let run = known.or_else(|| run_from_headers(&response));
        // A caller resuming a stream it read part of gave the last id it saw.
        let last_id = call.last_event_id.clone();
        let state = Resume {
            client,
            run,
            thread_id: run.map(|run| run.thread_id).or(thread_id),
            query,
            body: Some(response.into_body()),
            decoder: SseDecoder::new(),
            oversized: 0,
            pending: VecDeque::new(),
            last_id,
            previous_id: None,
            at_last_id: 0,
            skip: None,
            seen_events: false,
            finished: false,
            replay_only: false,
            failures: 0,
            done: false,
        };
        let inner = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(Self {
            run,
            inner: Box::pin(inner),
        })
    }
}

impl Stream for RunStream {
    type Item = Result<StreamEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The run named by `Location` (preferred) or `Content-Location`.
pub(crate) fn run_from_headers(response: &TransportResponse) -> Option<RunRef> {
    [LOCATION, CONTENT_LOCATION].iter().find_map(|name| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(RunRef::from_location)
    })
}

/// Fails unless the answer is an event stream, as the official client does.
fn expect_sse(response: &TransportResponse) -> Result<(), ClientError> {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type.contains("text/event-stream") {
        return Ok(());
    }
    Err(ClientError::decode(
        "an event stream",
        Some(response.status()),
        Some(response.headers()),
        content_type.as_bytes(),
        format!("expected content type text/event-stream, got `{content_type}`"),
    ))
}

/// The state of a resumable stream.
struct Resume {
    client: Client,
    run: Option<RunRef>,
    /// The thread, to name the run once the `metadata` event gives its id.
    thread_id: Option<Uuid>,
    /// The query of reconnect requests, with its `?`, or empty.
    query: String,
    body: Option<ResponseBody>,
    decoder: SseDecoder,
    /// The decoder's count of oversized events already reported.
    oversized: u64,
    pending: VecDeque<Result<StreamEvent, ClientError>>,
    /// The id of the last event seen.
    last_id: Option<String>,
    /// The id seen before `last_id`, different from it.
    previous_id: Option<String>,
    /// How many events carried `last_id` (servers may give events of one millisecond the same
    /// id, as langgraph-api does).
    at_last_id: usize,
    /// Replayed events to drop: this many more carrying this id were seen already.
    skip: Option<(String, usize)>,
    /// Whether any event arrived (without ids, a replay would repeat them).
    seen_events: bool,
    /// An event said the run is over.
    finished: bool,
    /// The run has ended; the current body is its last replay.
    replay_only: bool,
    /// Reconnect tries since the last event.
    failures: u32,
    done: bool,
}

impl Resume {
    async fn next(&mut self) -> Option<Result<StreamEvent, ClientError>> {
        let read = self.client.timeouts().read;
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                self.done = true;
                continue;
            };
            match next_chunk(body, read).await {
                Ok(Some(chunk)) => {
                    let items = self.decoder.push(&chunk);
                    self.take(items);
                }
                Ok(None) => {
                    let items = self.decoder.finish();
                    self.take(items);
                    self.body = None;
                    if self.finished || self.replay_only {
                        self.done = true;
                    } else {
                        self.reconnect(None).await;
                    }
                }
                Err(error) => {
                    // An event cut in the middle is dropped; the server sends it again.
                    let _ = self.decoder.finish();
                    self.body = None;
                    if self.finished {
                        self.done = true;
                    } else {
                        self.reconnect(Some(error)).await;
                    }
                }
            }
        }
    }

    /// Turns decoded frames into events, then reports the events the decoder dropped for
    /// their size.
    fn take(&mut self, items: Vec<SseItem>) {
        self.take_frames(items);
        self.report_oversized();
    }

    /// Yields an error for each event dropped since the last report.
    fn report_oversized(&mut self) {
        let dropped = self.decoder.oversized_events();
        let limit = self.decoder.max_event_size();
        for _ in self.oversized..dropped {
            self.pending.push_back(Err(ClientError::decode(
                "a stream event",
                None,
                None,
                &[],
                ProtocolError::EventTooLarge { limit },
            )));
        }
        self.oversized = dropped;
    }

    /// Turns decoded frames into events.
    fn take_frames(&mut self, items: Vec<SseItem>) {
        for item in items {
            let SseItem::Frame(frame) = item else {
                continue;
            };
            self.seen_events = true;
            self.failures = 0;
            if let Some(id) = &frame.id {
                if let Some((skip_id, left)) = &mut self.skip
                    && skip_id == id
                    && *left > 0
                {
                    // Seen before the reconnect.
                    *left -= 1;
                    continue;
                }
                self.skip = None;
                if self.last_id.as_ref() == Some(id) {
                    self.at_last_id += 1;
                } else {
                    self.previous_id = self.last_id.replace(id.clone());
                    self.at_last_id = 1;
                }
            }
            match StreamEvent::from_frame(&frame) {
                Ok(event) => {
                    if event.is_final() {
                        self.finished = true;
                    }
                    if let (None, Some(thread_id), StreamPart::Metadata(metadata)) =
                        (self.run, self.thread_id, &event.part)
                    {
                        self.run = Some(RunRef {
                            thread_id,
                            run_id: metadata.run_id,
                        });
                    }
                    self.pending.push_back(Ok(event));
                }
                Err(error) => {
                    let data = frame.data.as_deref().unwrap_or_default();
                    self.pending.push_back(Err(ClientError::decode(
                        format!(
                            "the `{}` event",
                            frame.event.as_deref().unwrap_or("message")
                        ),
                        None,
                        None,
                        data.as_bytes(),
                        error,
                    )));
                }
            }
        }
    }

    /// The `Last-Event-ID` of a reconnect. Events of one millisecond may share an id on some
    /// servers, so resuming after the last id could lose one that came with it: resume after
    /// the id before it instead, and drop the events of the last id already seen.
    fn resume_from(&mut self) -> Option<String> {
        match (&self.previous_id, &self.last_id) {
            (Some(previous), Some(last)) => {
                self.skip = Some((last.clone(), self.at_last_id));
                Some(previous.clone())
            }
            (_, last) => {
                self.skip = None;
                last.clone()
            }
        }
    }

    /// Ends the stream, yielding `error` if there is one.
    fn stop(&mut self, error: Option<ClientError>) {
        if let Some(error) = error {
            self.pending.push_back(Err(error));
        }
        self.done = true;
    }

    /// Finds out where the run is and opens its stream again, or ends.
    async fn reconnect(&mut self, mut error: Option<ClientError>) {
        let Some(run) = self.run else {
            return self.stop(error);
        };
        let policy: RetryPolicy = self.client.reconnect_policy();
        loop {
            self.failures += 1;
            if self.failures > policy.max_retries {
                let error = error.unwrap_or_else(|| ClientError::Transport {
                    message: format!(
                        "the stream of run {} closed before the run ended, {} times",
                        run.run_id, self.failures
                    ),
                    connect: false,
                    source: None,
                });
                return self.stop(Some(error));
            }
            // The first try after progress goes at once (a stream that simply ended is checked
            // without delay); later ones back off.
            if self.failures > 1 {
                sleep(policy.delay(self.failures - 1)).await;
            }
            let status = match self.client.json::<Run>(&Call::get(run.path())).await {
                Ok(current) => current.status,
                Err(failure) if failure.is_not_found() => return self.stop(None),
                Err(failure) if failure.is_transient() => {
                    error = Some(failure);
                    continue;
                }
                Err(failure) => return self.stop(Some(failure)),
            };
            if status.is_terminal() {
                if self.last_id.is_none() && self.seen_events {
                    // Without ids a replay would repeat what was seen.
                    return self.stop(None);
                }
                self.replay_only = true;
            }
            let call =
                Call::get(format!("{}/stream{}", run.path(), self.query)).sse(self.resume_from());
            match self.client.open(&call).await {
                Ok(response) => {
                    if let Err(failure) = expect_sse(&response) {
                        return self.stop(Some(failure));
                    }
                    self.body = Some(response.into_body());
                    return;
                }
                Err(failure) if failure.is_not_found() => return self.stop(None),
                Err(failure) if failure.is_transient() => error = Some(failure),
                Err(failure) => return self.stop(Some(failure)),
            }
        }
    }
}
