//! What a run in flight records: its numbered events, its checkpoints' metadata, and its
//! share of the in-flight memory budget.

use super::Inner;
use crate::hub::RunChannel;
use crate::storage::{JsonText, StoredEvent};
use errand_protocol::{JsonObject, StreamPart};
use errand_runtime::EventSink;
use serde_json::Value;
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use uuid::Uuid;

/// The text of a panic payload, when it has one.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the graph panicked".to_owned())
}

pub(super) fn checkpoint_metadata(
    run_metadata: &JsonObject,
    run_id: Uuid,
    thread_id: Uuid,
    graph_id: &str,
    attempt: u32,
    step: usize,
) -> JsonObject {
    let mut metadata = run_metadata.clone();
    metadata.insert("graph_id".into(), Value::from(graph_id));
    metadata.insert("run_id".into(), Value::from(run_id.to_string()));
    metadata.insert("thread_id".into(), Value::from(thread_id.to_string()));
    metadata.insert("run_attempt".into(), Value::from(attempt));
    metadata.insert("source".into(), Value::from("loop"));
    metadata.insert("step".into(), Value::from(step));
    metadata
}

/// Numbers a run's events and publishes them to its channel, charging their bytes to the
/// run's share of the in-flight budget. The states the run streamed are read back from the
/// channel when it ends, as the text it holds, rather than kept twice while it runs.
pub(super) struct Recorder {
    channel: Arc<RunChannel>,
    seq: AtomicU64,
    charge: Charge,
}

impl Recorder {
    /// A recorder whose first event follows `after` (what earlier attempts of the run stored).
    pub(super) fn new(channel: Arc<RunChannel>, charge: Charge, after: u64) -> Self {
        channel.set_base(after);
        Self {
            channel,
            seq: AtomicU64::new(after),
            charge,
        }
    }

    pub(super) fn record(&self, part: &StreamPart) {
        match part.data_json() {
            Ok(data) => self.publish(part.event_name(), data.unwrap_or_default()),
            Err(error) => tracing::warn!(%error, "dropped a stream event that is not JSON"),
        }
    }

    pub(super) fn record_raw(&self, event: &str, data: &Value) {
        self.publish(event, data.to_string());
    }

    fn publish(&self, event: &str, data: String) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.charge.add(event.len() + data.len());
        self.channel.publish(StoredEvent {
            seq,
            event: event.to_owned(),
            data: data.into(),
        });
    }

    /// Every state the run streamed (its `values` events), oldest first, as streamed.
    pub(super) fn states(&self) -> Vec<JsonText> {
        self.channel
            .data_named("values")
            .into_iter()
            .map(JsonText::encoded)
            .collect()
    }

    pub(super) fn sink(self: &Arc<Self>) -> EventSink {
        let recorder = Arc::clone(self);
        EventSink::new(move |part| recorder.record(&part))
    }
}

/// A run's share of the memory that runs in flight may hold ([`ExecutorConfig::max_in_flight_bytes`]):
/// the bytes of its stored record and of the events it streamed, given back when it ends.
#[derive(Debug)]
pub(super) struct Charge {
    inner: Arc<Inner>,
    bytes: AtomicUsize,
}

impl Charge {
    pub(super) fn new(inner: Arc<Inner>, bytes: usize) -> Self {
        inner.in_flight_bytes.fetch_add(bytes, Ordering::SeqCst);
        Self {
            inner,
            bytes: AtomicUsize::new(bytes),
        }
    }

    pub(super) fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.inner
            .in_flight_bytes
            .fetch_add(bytes, Ordering::SeqCst);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let before = self
            .inner
            .in_flight_bytes
            .fetch_sub(bytes, Ordering::SeqCst);
        // Over budget until now: the dispatcher may be waiting to claim again.
        if before >= self.inner.config.max_in_flight_bytes {
            self.inner.wake.notify_one();
        }
    }
}
