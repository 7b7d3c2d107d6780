//! What storage keeps of a thread's states (checkpoints) and of a run's stream (events), and
//! the JSON text both are written as.

use super::{StorageError, StorageResult};
use errand_protocol::{Interrupt, JsonObject, Timestamp};
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// One recorded state of a thread.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointRecord {
    /// Its id (a UUIDv7 string, so ids sort by time).
    pub checkpoint_id: String,
    /// The checkpoint before it on the thread.
    pub parent_checkpoint_id: Option<String>,
    /// The thread.
    pub thread_id: Uuid,
    /// The run that wrote it; none for a state update by hand.
    pub run_id: Option<Uuid>,
    /// The state values.
    pub values: Value,
    /// Checkpoint metadata (`source`, `step`, `run_id`, ...).
    pub metadata: JsonObject,
    /// Nodes to run next; empty when the graph finished.
    pub next: Vec<String>,
    /// Interrupts waiting at it.
    pub interrupts: Vec<Interrupt>,
    /// When it was written.
    pub created_at: Timestamp,
}

/// A JSON value as text, encoded once and shared: the states a run streamed are kept as the
/// text its stream carried, and written to storage as they are, neither decoded nor copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(Arc<str>);

impl JsonText {
    /// The text of `value`.
    pub fn of(value: &Value) -> Self {
        Self(value.to_string().into())
    }

    /// Text that serde_json wrote, kept as it is.
    pub(crate) fn encoded(text: Arc<str>) -> Self {
        Self(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value again.
    pub fn decode(&self) -> StorageResult<Value> {
        serde_json::from_str(&self.0)
            .map_err(|error| StorageError::backend(format!("corrupt JSON: {error}")))
    }
}

/// A checkpoint to write; storage fills in the parent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCheckpoint {
    /// Its id.
    pub checkpoint_id: String,
    /// The run that wrote it.
    pub run_id: Option<Uuid>,
    /// The state values.
    pub values: JsonText,
    /// Checkpoint metadata.
    pub metadata: JsonObject,
    /// Nodes to run next.
    pub next: Vec<String>,
    /// Interrupts waiting at it.
    pub interrupts: Vec<Interrupt>,
    /// When it was written.
    pub created_at: Timestamp,
}

/// One stored event of a run's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its position in the run's stream, from 1.
    pub seq: u64,
    /// The SSE event name (`values`, `updates|child:...`, `error`, ...).
    pub event: String,
    /// The data, one line of JSON; shared, since the same text is kept for live readers,
    /// replayed to each of them, and written to storage.
    pub data: Arc<str>,
}

/// Events of one attempt of a run, for [`Storage::append_event_batches`](super::Storage::append_event_batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch {
    /// The run.
    pub run_id: Uuid,
    /// The attempt that streamed them.
    pub attempt: u32,
    /// The events, in order.
    pub events: Vec<StoredEvent>,
}
