//! The body that asks for a run ([`RunCreate`]) and the options it carries: what happens on a
//! busy thread, a missing thread, a disconnect, the end of a stateless run; where the graph
//! stops; when checkpoints are written; a command instead of input; the config.

use super::{StreamMode, StreamModes};
use crate::{Checkpoint, JsonObject, Nullable};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use std::borrow::Cow;

/// What a new run does when its thread already has a pending or running run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MultitaskStrategy {
    /// Refuse the new run with 409.
    Reject,
    /// Cancel the current run, keep what it wrote, then run the new one.
    Interrupt,
    /// Cancel the current run, delete it and what it wrote, then run the new one.
    Rollback,
    /// Run the new one after the current one (the Python server's default).
    #[default]
    Enqueue,
}

/// Whether a run may create its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IfNotExists {
    /// Create the thread when it is missing.
    Create,
    /// Answer 404 when it is missing.
    #[default]
    Reject,
}

/// What happens to the temporary thread of a stateless run when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnCompletion {
    /// Delete it.
    #[default]
    Delete,
    /// Keep it.
    Keep,
}

/// What happens to a run when the client that streams or waits on it goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDisconnect {
    /// Cancel the run.
    Cancel,
    /// Let it finish (the Python server's default).
    #[default]
    Continue,
}

/// When the graph's checkpoints are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Before the next step starts.
    Sync,
    /// While the next step runs.
    Async,
    /// Only when the run ends.
    Exit,
}

/// Nodes before or after which a graph stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum InterruptNodes {
    /// `"*"`: every node.
    All(AllNodes),
    /// These nodes.
    Nodes(Vec<String>),
}

/// The literal `"*"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AllNodes {
    /// `"*"`.
    #[serde(rename = "*")]
    All,
}

/// A command for a run instead of input: resume an interrupt, update state, jump to nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Command {
    /// A state update to apply first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Value>,
    /// The value to resume an interrupt with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Value>,
    /// The node or nodes to go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goto: Option<Value>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The `config` of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunConfig {
    /// Tags for tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// The most steps the graph may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursion_limit: Option<u32>,
    /// Values the graph reads from its config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configurable: Option<JsonObject>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The body of every run-creating call: `POST /threads/{id}/runs` (and `/stream`, `/wait`) and the
/// stateless `POST /runs` (and `/stream`, `/wait`), with every key the official client sends.
///
/// ```
/// use errand_protocol::{MultitaskStrategy, RunCreate};
/// let body: RunCreate = serde_json::from_str(r#"{
///     "assistant_id": "echo",
///     "input": {"messages": [{"role": "user", "content": "hi"}]},
///     "stream_mode": "values", "stream_subgraphs": false, "stream_resumable": false,
///     "multitask_strategy": "interrupt", "some_future_key": 1
/// }"#).unwrap();
/// assert_eq!(body.multitask_strategy, Some(MultitaskStrategy::Interrupt));
/// assert_eq!(body.extra["some_future_key"], 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunCreate {
    /// An assistant id (UUID) or a graph name.
    pub assistant_id: String,
    /// The input to the graph, typically `{"messages": [...]}`.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub input: Nullable<Value>,
    /// A command instead of input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// Run configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// Static context for the graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<JsonObject>,
    /// Metadata for the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// The checkpoint to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// The checkpoint id to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_id: Option<String>,
    /// Deprecated: whether to checkpoint during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_during: Option<bool>,
    /// When checkpoints are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<Durability>,
    /// Stop before these nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupt_before: Option<InterruptNodes>,
    /// Stop after these nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupt_after: Option<InterruptNodes>,
    /// Feedback keys to make signed URLs for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_keys: Option<Vec<String>>,
    /// A URL to call when the run ends (errand refuses it: it does not call webhooks yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// What to do when the thread is busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multitask_strategy: Option<MultitaskStrategy>,
    /// Whether a missing thread is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_not_exists: Option<IfNotExists>,
    /// What to do when the client disconnects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disconnect: Option<OnDisconnect>,
    /// Stateless runs: what happens to the temporary thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_completion: Option<OnCompletion>,
    /// Seconds to wait before the run may start: 0 to `MAX_AFTER_SECONDS` (ten years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = crate::MAX_AFTER_SECONDS))]
    pub after_seconds: Option<Number>,
    /// The output to stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_mode: Option<StreamModes>,
    /// Whether to stream subgraph output too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_subgraphs: Option<bool>,
    /// Whether to keep the stream so a client can resume it with `Last-Event-ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_resumable: Option<bool>,
    /// LangSmith tracing settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub langsmith_tracer: Option<Value>,
    /// Whether a resume must match a pending interrupt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_resume: Option<bool>,
    /// Keys this version of errand does not know, kept so they can be echoed in `kwargs`.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl RunCreate {
    /// A body that runs `assistant_id` (an id or a graph name) on `input`.
    pub fn new(assistant_id: impl Into<String>, input: Value) -> Self {
        Self {
            assistant_id: assistant_id.into(),
            input: Nullable::Present(input),
            ..Self::default()
        }
    }

    /// The stream modes asked for, or `["values"]`.
    pub fn stream_modes(&self) -> Cow<'_, [StreamMode]> {
        match &self.stream_mode {
            Some(modes) => Cow::Borrowed(modes.modes()),
            None => Cow::Owned(StreamModes::default().modes().to_vec()),
        }
    }
}
