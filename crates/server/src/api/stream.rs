//! Streamed answers: a run's server-sent events, and the wait/join body with its keep-alives.

use super::AppState;
use crate::ServerResult;
use crate::hub::{RunChannel, RunEnd};
use crate::storage::{Signal, StoredEvent};
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use errand_protocol::sse::{HEARTBEAT, SseFrame};
use errand_protocol::{
    CancelAction, JsonObject, MessageChunk, MessageKind, RunError, RunResult, StreamMode,
};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// How often a quiet stream sends a heartbeat, and a waiting join a newline.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How often a stream of a run executing on another replica looks at storage when no signal
/// came (signals can be lost while a connection is down).
const REMOTE_POLL: Duration = Duration::from_millis(500);

/// Which stored events a client asked for, and how to show them.
#[derive(Debug, Clone)]
pub(crate) struct ModeFilter {
    modes: Vec<StreamMode>,
    /// Message ids already announced with `messages/metadata` (legacy `messages` mode).
    announced: HashSet<String>,
}

impl ModeFilter {
    pub(crate) fn new(modes: Vec<StreamMode>) -> Self {
        Self {
            modes,
            announced: HashSet::new(),
        }
    }

    fn wants(&self, mode: StreamMode) -> bool {
        self.modes.contains(&mode)
    }

    /// Appends the SSE frames for one stored event: as stored, converted for the legacy
    /// `messages` mode, or nothing when the client did not ask for its mode.
    fn encode(&mut self, event: &StoredEvent, out: &mut String) {
        let id = event.seq.to_string();
        let mode = event.event.split('|').next().unwrap_or_default();
        let frame = |name: &str, data: String| SseFrame {
            event: Some(name.to_owned()),
            data: Some(data),
            id: None,
            retry: None,
        };
        let wanted = match mode {
            "metadata" | "error" => true,
            "messages" if self.wants(StreamMode::MessagesTuple) => true,
            "messages" if self.wants(StreamMode::Messages) => {
                self.encode_legacy_message(event, &id, out);
                false
            }
            "messages/partial" | "messages/complete" | "messages/metadata" => {
                self.wants(StreamMode::Messages)
            }
            other => other.parse().is_ok_and(|mode| self.wants(mode)),
        };
        if wanted {
            let mut stored = frame(&event.event, event.data.to_string());
            stored.id = Some(id);
            stored.encode_into(out);
        }
    }

    /// A `[message, metadata]` chunk shown the way the legacy `messages` mode shows messages:
    /// `messages/metadata` the first time an id is seen, then the message as
    /// `messages/partial` (a streamed chunk) or `messages/complete` (a whole message).
    fn encode_legacy_message(&mut self, event: &StoredEvent, id: &str, out: &mut String) {
        let Ok(MessageChunk(message, metadata)) = serde_json::from_str(&event.data) else {
            return;
        };
        let message_id = message.id.clone().unwrap_or_default();
        if self.announced.insert(message_id.clone()) {
            let mut announcement = JsonObject::new();
            announcement.insert(message_id, json!({ "metadata": metadata }));
            SseFrame::new("messages/metadata", Value::Object(announcement).to_string())
                .encode_into(out);
        }
        let name = if message.kind == MessageKind::AiChunk {
            "messages/partial"
        } else {
            "messages/complete"
        };
        if let Ok(data) = serde_json::to_string(&[message]) {
            SseFrame::new(name, data).with_id(id).encode_into(out);
        }
    }
}

/// A body fed by a task; the task stops when the client goes away.
fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
    let (sender, mut receiver) = mpsc::channel::<Bytes>(16);
    let stream = futures::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(Ok::<_, Infallible>))
    });
    (sender, Body::from_stream(stream))
}

fn response(body: Body, content_type: &'static str) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Which run a stream follows, and from where.
#[derive(Debug)]
pub(crate) struct Follow {
    pub(crate) thread_id: Uuid,
    pub(crate) run_id: Uuid,
    /// The run's live channel, when the caller holds it already.
    pub(crate) channel: Option<Arc<RunChannel>>,
    /// Send only events after this one.
    pub(crate) after: u64,
    /// Cancel the run when the client goes away.
    pub(crate) cancel_on_disconnect: bool,
}

/// The SSE stream of a run from just after event `after`: what is stored, then the live tail,
/// with a heartbeat every few seconds. It ends when the run has ended and every event is out.
pub(crate) fn event_stream(state: AppState, follow: Follow, filter: ModeFilter) -> Response {
    let (sender, body) = channel_body();
    tokio::spawn(async move {
        let (thread_id, run_id) = (follow.thread_id, follow.run_id);
        let cancel_on_disconnect = follow.cancel_on_disconnect;
        let outcome = pump_events(&state, &sender, follow, filter).await;
        match outcome {
            Err(Disconnected) if cancel_on_disconnect => {
                let _ = state
                    .executor
                    .stop_run(thread_id, run_id, CancelAction::Interrupt)
                    .await;
            }
            Err(Disconnected) | Ok(()) => {}
        }
    });
    response(body, "text/event-stream; charset=utf-8")
}

/// The client went away.
#[derive(Debug)]
struct Disconnected;

async fn send(sender: &mpsc::Sender<Bytes>, text: String) -> Result<(), Disconnected> {
    if text.is_empty() {
        return Ok(());
    }
    sender
        .send(Bytes::from(text))
        .await
        .map_err(|_| Disconnected)
}

async fn pump_events(
    state: &AppState,
    sender: &mpsc::Sender<Bytes>,
    follow: Follow,
    mut filter: ModeFilter,
) -> Result<(), Disconnected> {
    let executor = &state.executor;
    let Follow {
        thread_id,
        run_id,
        channel: mut live,
        after: mut position,
        ..
    } = follow;
    let mut last_sent = tokio::time::Instant::now();
    let mut write = |events: &[StoredEvent], position: &mut u64| {
        let mut text = String::new();
        for event in events {
            filter.encode(event, &mut text);
            *position = event.seq;
        }
        text
    };
    let shared = executor.storage().shared();
    loop {
        // The live channel of a run executing here, or that ended here (a stateless run's
        // events are nowhere else once it ended). On a storage shared by replicas, a run not
        // executing here may be executing on another one: its events are followed in storage.
        let here = live
            .take()
            .or_else(|| executor.hub().get(run_id))
            .filter(|channel| !shared || channel.is_closed() || executor.is_executing(run_id));
        let Some(channel) = here else {
            let storage = executor.storage();
            if !shared {
                // Not live here: replay what storage has once the run has ended.
                let Ok(Some(run)) = storage.get_run(thread_id, run_id).await else {
                    return Ok(());
                };
                if !run.status.is_terminal() {
                    executor.hub().channel(run_id);
                    continue;
                }
                let events = storage
                    .events_after(run_id, position)
                    .await
                    .unwrap_or_default();
                return send(sender, write(&events, &mut position)).await;
            }
            // Subscribed before reading, so that no signal between the read and the wait is
            // missed.
            let mut signals = storage.signals();
            let local = executor.hub().get(run_id);
            let mut local_changes = local.as_ref().map(|channel| channel.subscribe());
            let Ok(Some(run)) = storage.get_run(thread_id, run_id).await else {
                return Ok(());
            };
            let events = storage
                .events_after(run_id, position)
                .await
                .unwrap_or_default();
            send(sender, write(&events, &mut position)).await?;
            if run.status.is_terminal() {
                // Its status is stored after its last events: a read after it has them all.
                let events = storage
                    .events_after(run_id, position)
                    .await
                    .unwrap_or_default();
                return send(sender, write(&events, &mut position)).await;
            }
            let woken =
                async {
                    match signals.as_mut() {
                        Some(signals) => loop {
                            match signals.recv().await {
                                Ok(
                                    Signal::Events { run_id: id } | Signal::RunEnded { run_id: id },
                                ) if id == run_id => return,
                                Ok(_) => {}
                                Err(broadcast::error::RecvError::Lagged(_)) => return,
                                Err(broadcast::error::RecvError::Closed) => {
                                    std::future::pending::<()>().await;
                                }
                            }
                        },
                        None => std::future::pending().await,
                    }
                };
            let started_here = async {
                match local_changes.as_mut() {
                    Some(changes) => {
                        let _ = changes.changed().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = executor.stopping() => return Ok(()),
                () = woken => {}
                () = started_here => {}
                // Signals can be lost (a dropped connection): look again anyway.
                () = tokio::time::sleep(REMOTE_POLL) => {}
            }
            if last_sent.elapsed() >= KEEP_ALIVE {
                send(sender, HEARTBEAT.to_owned()).await?;
                last_sent = tokio::time::Instant::now();
            }
            continue;
        };
        live = Some(Arc::clone(&channel));
        let mut changes = channel.subscribe();
        let base = channel.base();
        if position < base {
            // Earlier attempts' events are in storage only.
            let earlier: Vec<StoredEvent> = executor
                .storage()
                .events_after(run_id, position)
                .await
                .unwrap_or_default()
                .into_iter()
                .take_while(|event| event.seq <= base)
                .collect();
            send(sender, write(&earlier, &mut position)).await?;
            position = position.max(base);
        }
        let batch = channel.read_after(position);
        send(sender, write(&batch.events, &mut position)).await?;
        if batch.closed {
            let events = executor
                .storage()
                .events_after(run_id, position)
                .await
                .unwrap_or_default();
            return send(sender, write(&events, &mut position)).await;
        }
        tokio::select! {
            // A stopping server leaves runs for the next start: end the stream, the client
            // resumes it there.
            () = executor.stopping() => return Ok(()),
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            () = tokio::time::sleep(KEEP_ALIVE) => {
                send(sender, HEARTBEAT.to_owned()).await?;
                last_sent = tokio::time::Instant::now();
                // A channel made for a run that then ended elsewhere is never closed; look.
                if let Ok(Some(run)) = executor.storage().get_run(thread_id, run_id).await
                    && run.status.is_terminal()
                    && !channel.is_closed()
                {
                    executor.hub().close(run_id);
                }
            }
        }
    }
}

/// The wait/join answer: newlines every few seconds while the run goes on, then the result.
/// `ended` says the run is known to have ended already.
pub(crate) fn wait_body(
    state: AppState,
    thread_id: Uuid,
    run_id: Uuid,
    live: Option<Arc<RunChannel>>,
    ended: bool,
) -> Response {
    let (sender, body) = channel_body();
    tokio::spawn(async move {
        let result = run_result(&state, thread_id, run_id, live, ended);
        tokio::pin!(result);
        // The first keep-alive is due after one period. (Awaiting an interval's immediate
        // first tick is not free: the timer rounds its deadline up to the next millisecond,
        // which delayed every join by about a millisecond.)
        let start = tokio::time::Instant::now() + KEEP_ALIVE;
        let mut keep_alive = tokio::time::interval_at(start, KEEP_ALIVE);
        loop {
            tokio::select! {
                result = &mut result => {
                    let text = match result {
                        Ok(value) => value.to_string(),
                        // The error as a failed run's result: `{"__error__": {...}}`.
                        Err(error) => serde_json::to_string(&RunResult::Error(RunError {
                            error: "ServerError".into(),
                            message: error.to_string(),
                        }))
                        .unwrap_or_default(),
                    };
                    let _ = sender.send(Bytes::from(text)).await;
                    return;
                }
                _ = keep_alive.tick() => {
                    if sender.send(Bytes::from_static(b"\n")).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    response(body, "application/json")
}

/// Waits until the live channel closes; answers how the run ended when it ended here with its
/// end recorded, `None` when it was closed any other way or stayed quiet too long (a channel
/// made for a run that ended elsewhere is never closed).
async fn follow_to_end(
    executor: &crate::Executor,
    channel: &RunChannel,
) -> ServerResult<Option<Arc<RunEnd>>> {
    loop {
        let mut changes = channel.subscribe();
        if channel.is_closed() {
            return Ok(channel.end());
        }
        tokio::select! {
            changed = tokio::time::timeout(KEEP_ALIVE, changes.changed()) => {
                if !matches!(changed, Ok(Ok(()))) {
                    return Ok(None);
                }
            }
            () = executor.stopping() => return Err(crate::ServerError::ShuttingDown),
        }
    }
}

/// What wait and join answer once the run has ended: `{"__error__": ...}` for a failed run,
/// else the last state it streamed (with `__interrupt__` when it stopped at one), else the
/// thread's values.
async fn run_result(
    state: &AppState,
    thread_id: Uuid,
    run_id: Uuid,
    live: Option<Arc<RunChannel>>,
    ended: bool,
) -> ServerResult<Value> {
    let executor = &state.executor;
    // The live channel, held from the run's creation: a stateless run's thread, with its
    // stored events, is deleted as soon as the run ends. A run that ends here leaves its end
    // on the channel; any other way (stopped by a shutdown, rolled back, ended elsewhere) is
    // found in storage.
    let end = match &live {
        Some(channel) => follow_to_end(executor, channel).await?,
        None => None,
    };
    if end.is_none() && !ended {
        executor.wait_for_end(thread_id, run_id).await?;
    }
    let events = match live.map(|channel| channel.snapshot()) {
        Some(events) if !events.is_empty() => events,
        _ => executor.storage().events_after(run_id, 0).await?,
    };
    let last = |name: &str| {
        events
            .iter()
            .rev()
            .find(|event| event.event == name)
            .and_then(|event| serde_json::from_str::<Value>(&event.data).ok())
    };
    if let Some(error) = last("error") {
        return Ok(json!({ "__error__": error }));
    }
    let (mut values, interrupts) = match (last("values"), end) {
        // Ended here, with its last state streamed: all known without a read.
        (Some(values), Some(end)) => (values, end.interrupts.clone()),
        (values, _) => {
            let thread = executor.storage().get_thread(thread_id).await?;
            let values = match values {
                Some(values) => values,
                None => thread
                    .as_ref()
                    .and_then(|thread| thread.values.as_option().cloned())
                    .unwrap_or_else(|| json!({})),
            };
            let interrupts: Vec<_> = thread
                .and_then(|thread| thread.interrupts)
                .map(|by_task| by_task.into_values().flatten().collect())
                .unwrap_or_default();
            (values, interrupts)
        }
    };
    if !interrupts.is_empty()
        && let Value::Object(object) = &mut values
    {
        object.insert("__interrupt__".into(), json!(interrupts));
    }
    Ok(values)
}
