//! Threads, their state, checkpoints and interrupts.

use crate::{JsonObject, Nullable, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A conversation: the unit that holds state and runs one run at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Thread {
    /// The thread id, a UUID (the server makes UUIDv7s).
    pub thread_id: Uuid,
    /// When the thread was created.
    pub created_at: Timestamp,
    /// When the thread last changed.
    pub updated_at: Timestamp,
    /// When its state last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_updated_at: Option<Timestamp>,
    /// User metadata, plus `graph_id` and `assistant_id` once a run has used it.
    #[serde(default)]
    pub metadata: JsonObject,
    /// Idle, busy, interrupted (waiting for a human) or error.
    pub status: ThreadStatus,
    /// The config of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<JsonObject>,
    /// The current state values; `null` until a run has written some.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub values: Nullable<Value>,
    /// Pending interrupts by task id. Absent on a new thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupts: Option<BTreeMap<String, Vec<Interrupt>>>,
    /// The error of the last run. Absent on a new thread, `null` after a run that did not fail.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub error: Nullable<Value>,
    /// Time-to-live, only with `?include=ttl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Value>,
    /// Values extracted by a search with `extract`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extracted: Option<JsonObject>,
    /// Keys this version of errand does not know, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Thread {
    /// A new, idle thread with no values, as `POST /threads` answers it.
    pub fn new(thread_id: Uuid, metadata: JsonObject, at: Timestamp) -> Self {
        Self {
            thread_id,
            created_at: at,
            updated_at: at,
            state_updated_at: Some(at),
            metadata,
            status: ThreadStatus::Idle,
            config: Some(JsonObject::new()),
            values: Nullable::Null,
            interrupts: None,
            error: Nullable::Absent,
            ttl: None,
            extracted: None,
            extra: JsonObject::new(),
        }
    }
}

/// The status of a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThreadStatus {
    /// No run is pending or running.
    Idle,
    /// A run is pending or running.
    Busy,
    /// The graph stopped at an interrupt and waits for input.
    Interrupted,
    /// The last run failed.
    Error,
}

impl ThreadStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Interrupted => "interrupted",
            Self::Error => "error",
        }
    }

    /// The status of a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "idle" => Some(Self::Idle),
            "busy" => Some(Self::Busy),
            "interrupted" => Some(Self::Interrupted),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// A pause in a graph that waits for a human or another system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interrupt {
    /// The interrupt id, used to resume it.
    #[serde(default)]
    pub id: Option<String>,
    /// What the graph asked.
    pub value: Value,
    /// Other keys (`response_schema`, ...), kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// Points at one checkpoint of a thread.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Checkpoint {
    /// The checkpoint id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_id: Option<String>,
    /// The thread it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Uuid>,
    /// The namespace; `""` for the root graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_ns: Option<String>,
    /// Checkpoint ids of parent graphs.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub checkpoint_map: Nullable<JsonObject>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The state of a thread at one checkpoint: `GET /threads/{id}/state` and history entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadState {
    /// The state values; `{}` for a thread that never ran.
    pub values: Value,
    /// Nodes that run next; empty when the graph has finished.
    #[serde(default)]
    pub next: Vec<String>,
    /// The tasks of the next step, with their interrupts.
    #[serde(default)]
    pub tasks: Vec<ThreadTask>,
    /// Checkpoint metadata (step, source, run id...); `null` for a thread that never ran.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub metadata: Nullable<JsonObject>,
    /// When the checkpoint was written.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub created_at: Nullable<Timestamp>,
    /// This checkpoint.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub checkpoint: Nullable<Checkpoint>,
    /// The one before it.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub parent_checkpoint: Nullable<Checkpoint>,
    /// Interrupts waiting at this checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupts: Option<Vec<Interrupt>>,
    /// Deprecated copy of `checkpoint.checkpoint_id`, still sent.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub checkpoint_id: Nullable<String>,
    /// Deprecated copy of `parent_checkpoint.checkpoint_id`, still sent.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub parent_checkpoint_id: Nullable<String>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// A task of the next step of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadTask {
    /// The task id.
    pub id: String,
    /// The node it runs.
    pub name: String,
    /// The error it raised, if any.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub error: Nullable<Value>,
    /// The interrupts it raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupts: Option<Vec<Interrupt>>,
    /// Other keys (`path`, `checkpoint`, `state`, `result`), kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// What to do when `POST /threads` names a thread that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IfExists {
    /// Answer 409.
    #[default]
    Raise,
    /// Answer the existing thread.
    DoNothing,
}

/// A thread's time-to-live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadTtl {
    /// What happens when it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<TtlStrategy>,
    /// Minutes from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Number>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// What happens to a thread when its time-to-live runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TtlStrategy {
    /// Delete the thread.
    Delete,
    /// Keep the thread and its latest state, prune older checkpoints.
    KeepLatest,
}

/// The body of `POST /threads`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadCreate {
    /// The id to use; the server makes one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Uuid>,
    /// Metadata for the thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// What to do when the id is taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_exists: Option<IfExists>,
    /// A time-to-live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<ThreadTtl>,
    /// State updates to apply at creation, as supersteps (errand refuses a list that is not empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersteps: Option<Vec<Value>>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The body of `PATCH /threads/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadPatch {
    /// Metadata to merge into the thread's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// A new time-to-live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<ThreadTtl>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The body of `POST /threads/prune`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadPruneRequest {
    /// The threads to prune.
    pub thread_ids: Vec<Uuid>,
    /// `delete` (the default) removes each thread with its runs and checkpoints;
    /// `keep_latest` keeps the thread, its values and its latest checkpoint and run.
    #[serde(default = "prune_deletes")]
    pub strategy: TtlStrategy,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

fn prune_deletes() -> TtlStrategy {
    TtlStrategy::Delete
}

/// The answer to `POST /threads/prune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadPruneResponse {
    /// How many of the threads were pruned (missing threads, and threads with a pending or
    /// running run, are not).
    pub pruned_count: u64,
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// The body of `POST /threads/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadSearchRequest {
    /// Only these threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<Uuid>>,
    /// Metadata that must match exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// State values that must match exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<JsonObject>,
    /// Only threads with this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ThreadStatus>,
    /// At most this many (1 to 1000).
    #[serde(default = "default_page_limit")]
    pub limit: u32,
    /// Skip this many.
    #[serde(default)]
    pub offset: u32,
    /// The field to sort by: `thread_id`, `status`, `created_at`, `updated_at`, `state_updated_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    /// The sort order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<SortOrder>,
    /// Only these fields of each thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    /// Values to extract: alias to a path such as `values.messages[-1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<BTreeMap<String, String>>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Default for ThreadSearchRequest {
    fn default() -> Self {
        Self {
            ids: None,
            metadata: None,
            values: None,
            status: None,
            limit: default_page_limit(),
            offset: 0,
            sort_by: None,
            sort_order: None,
            select: None,
            extract: None,
            extra: JsonObject::new(),
        }
    }
}

/// The page size the official client and server use when none is given.
pub(crate) fn default_page_limit() -> u32 {
    10
}

/// The body of `POST /threads/{id}/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryRequest {
    /// At most this many states, newest first.
    #[serde(default = "default_page_limit")]
    pub limit: u32,
    /// Only states before this checkpoint (a checkpoint object or an id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// Checkpoint metadata that must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Only states of this checkpoint namespace or subgraph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Default for HistoryRequest {
    fn default() -> Self {
        Self {
            limit: default_page_limit(),
            before: None,
            metadata: None,
            checkpoint: None,
            extra: JsonObject::new(),
        }
    }
}

/// The body of `POST /threads/{id}/state`: write values as if a node had.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadStateUpdate {
    /// The values to write, through the graph's reducers.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub values: Nullable<Value>,
    /// The node to write them as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_node: Option<String>,
    /// The checkpoint to write on top of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// The checkpoint id to write on top of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_id: Option<String>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The answer to `POST /threads/{id}/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThreadStateUpdateResponse {
    /// The checkpoint written.
    pub checkpoint: Checkpoint,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}
