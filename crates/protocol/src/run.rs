//! Runs: one execution of a graph on a thread, and the body that asks for one.

use crate::{Checkpoint, Interrupt, JsonObject, Nullable, ProtocolError, Timestamp};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A run as the server reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// The run id (UUIDv7).
    pub run_id: Uuid,
    /// The thread it runs on (a temporary one for stateless runs).
    pub thread_id: Uuid,
    /// The assistant it runs.
    pub assistant_id: Uuid,
    /// When it was created, plus `after_seconds` if it was delayed.
    pub created_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
    /// Where it is in its life.
    pub status: RunStatus,
    /// Assistant, thread and request metadata merged.
    #[serde(default)]
    pub metadata: JsonObject,
    /// What it was asked to do: input, command, config, stream modes... as the server keeps it.
    #[serde(default)]
    pub kwargs: RunKwargs,
    /// What happens to it when its thread is busy.
    pub multitask_strategy: MultitaskStrategy,
    /// Other keys (`langsmith_session_name`, ...), kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// What a run was asked to do, as the server keeps it in the run's `kwargs`: the parts of its
/// create request the graph and the stream need. Every field tells an absent key from a `null`
/// one, and keys this version does not know stay in `extra`, so a run read from the Python
/// server and written back is the same JSON.
///
/// ```
/// use errand_protocol::{Nullable, RunKwargs};
/// let kwargs: RunKwargs = serde_json::from_str(
///     r#"{"input": {"messages": []}, "command": null, "temporary": false, "webhook": null, "x": 1}"#,
/// ).unwrap();
/// assert_eq!(kwargs.command, Nullable::Null);
/// assert_eq!(kwargs.temporary, Nullable::Present(false));
/// assert_eq!(kwargs.extra["x"], 1);
/// assert_eq!(serde_json::to_string(&kwargs).unwrap(),
///     r#"{"input":{"messages":[]},"command":null,"webhook":null,"temporary":false,"x":1}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunKwargs {
    /// The input to the graph.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub input: Nullable<Value>,
    /// A command instead of input.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub command: Nullable<Command>,
    /// The run's configuration, with the ids the server adds under `configurable` and the run's
    /// `metadata`.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub config: Nullable<JsonObject>,
    /// Static context for the graph.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub context: Nullable<JsonObject>,
    /// The modes its stream carries.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub stream_mode: Nullable<StreamModes>,
    /// Stop before these nodes.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub interrupt_before: Nullable<InterruptNodes>,
    /// Stop after these nodes.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub interrupt_after: Nullable<InterruptNodes>,
    /// A URL to call when the run ends.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub webhook: Nullable<String>,
    /// Feedback keys to make signed URLs for.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub feedback_keys: Nullable<Vec<String>>,
    /// A stateless run's: its thread is deleted when it ends.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub temporary: Nullable<bool>,
    /// Whether its stream carries subgraph output too.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub subgraphs: Nullable<bool>,
    /// Whether its stream can be resumed with `Last-Event-ID`.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub resumable: Nullable<bool>,
    /// Deprecated: whether to checkpoint during the run.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub checkpoint_during: Nullable<bool>,
    /// When checkpoints are written.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub durability: Nullable<Durability>,
    /// What happens when the client that streams it goes away.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub on_disconnect: Nullable<OnDisconnect>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl RunKwargs {
    /// The stream modes asked for; `["values"]` when none were.
    pub fn stream_modes(&self) -> StreamModes {
        self.stream_mode.as_option().cloned().unwrap_or_default()
    }

    /// True for a stateless run's, whose thread goes when it ends.
    pub fn is_temporary(&self) -> bool {
        self.temporary == Nullable::Present(true)
    }
}

/// The status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker (or for `after_seconds`, or for an earlier run on its thread).
    Pending,
    /// A worker is running it.
    Running,
    /// It raised an error.
    Error,
    /// It finished; a graph that stopped at an interrupt also ends here.
    Success,
    /// It ran past its time limit.
    Timeout,
    /// It was cancelled.
    Interrupted,
}

impl RunStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Error => "error",
            Self::Success => "success",
            Self::Timeout => "timeout",
            Self::Interrupted => "interrupted",
        }
    }

    /// The status of a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "running" => Some(Self::Running),
            "error" => Some(Self::Error),
            "success" => Some(Self::Success),
            "timeout" => Some(Self::Timeout),
            "interrupted" => Some(Self::Interrupted),
            _ => None,
        }
    }

    /// True once the run can no longer change.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// How a cancel stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelAction {
    /// Stop it and keep what it wrote; it ends `interrupted`.
    #[default]
    Interrupt,
    /// Stop it and delete it with what it wrote.
    Rollback,
}

impl CancelAction {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Interrupt => "interrupt",
            Self::Rollback => "rollback",
        }
    }

    /// The action of a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "interrupt" => Some(Self::Interrupt),
            "rollback" => Some(Self::Rollback),
            _ => None,
        }
    }
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

/// One kind of output a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StreamMode {
    /// The whole state after each step.
    Values,
    /// Each node's writes.
    Updates,
    /// Messages as they are produced: `messages/partial`, `messages/complete`, `messages/metadata`.
    Messages,
    /// Message chunks with their metadata, as `messages` events of `[chunk, metadata]`.
    MessagesTuple,
    /// What the graph writes with its stream writer.
    Custom,
    /// Task starts and results.
    Tasks,
    /// Checkpoints as they are written.
    Checkpoints,
    /// LangChain callback events.
    Events,
    /// Everything, for debugging.
    Debug,
}

impl StreamMode {
    /// Every mode, in wire order.
    pub const ALL: [Self; 9] = [
        Self::Values,
        Self::Messages,
        Self::MessagesTuple,
        Self::Tasks,
        Self::Checkpoints,
        Self::Updates,
        Self::Events,
        Self::Debug,
        Self::Custom,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Values => "values",
            Self::Updates => "updates",
            Self::Messages => "messages",
            Self::MessagesTuple => "messages-tuple",
            Self::Custom => "custom",
            Self::Tasks => "tasks",
            Self::Checkpoints => "checkpoints",
            Self::Events => "events",
            Self::Debug => "debug",
        }
    }
}

impl fmt::Display for StreamMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StreamMode {
    type Err = ProtocolError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == name)
            .ok_or_else(|| ProtocolError::UnknownVariant {
                what: "stream mode",
                value: name.to_owned(),
                expected: "values, messages, messages-tuple, tasks, checkpoints, updates, events, debug, custom",
            })
    }
}

/// The `stream_mode` of a request: one mode or a list, kept in the form it was given.
///
/// ```
/// use errand_protocol::{StreamMode, StreamModes};
/// let one: StreamModes = serde_json::from_str(r#""updates""#).unwrap();
/// let many: StreamModes = serde_json::from_str(r#"["values", "messages-tuple"]"#).unwrap();
/// assert_eq!(one.modes(), [StreamMode::Updates]);
/// assert_eq!(many.modes(), [StreamMode::Values, StreamMode::MessagesTuple]);
/// assert!(serde_json::from_str::<StreamModes>(r#""bogus""#).unwrap_err().to_string().contains("bogus"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamModes {
    /// A single mode, written as a string.
    One(StreamMode),
    /// A list of modes.
    Many(Vec<StreamMode>),
}

impl StreamModes {
    /// The modes, as a slice.
    pub fn modes(&self) -> &[StreamMode] {
        match self {
            Self::One(mode) => std::slice::from_ref(mode),
            Self::Many(modes) => modes,
        }
    }

    /// True if `mode` is among them.
    pub fn contains(&self, mode: StreamMode) -> bool {
        self.modes().contains(&mode)
    }
}

impl Default for StreamModes {
    /// `["values"]`, what the server assumes when none is given.
    fn default() -> Self {
        Self::Many(vec![StreamMode::Values])
    }
}

impl From<StreamMode> for StreamModes {
    fn from(mode: StreamMode) -> Self {
        Self::One(mode)
    }
}

impl From<Vec<StreamMode>> for StreamModes {
    fn from(modes: Vec<StreamMode>) -> Self {
        Self::Many(modes)
    }
}

impl Serialize for StreamModes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::One(mode) => mode.serialize(serializer),
            Self::Many(modes) => modes.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for StreamModes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read names first and parse them after, so an unknown mode is reported by name
        // rather than as "did not match any variant".
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Names<'a> {
            One(#[serde(borrow)] Cow<'a, str>),
            Many(Vec<Cow<'a, str>>),
        }
        let parse = |name: &str| name.parse::<StreamMode>().map_err(serde::de::Error::custom);
        match Names::deserialize(deserializer)? {
            Names::One(name) => parse(&name).map(Self::One),
            Names::Many(names) => names
                .iter()
                .map(|name| parse(name))
                .collect::<Result<_, _>>()
                .map(Self::Many),
        }
    }
}

impl JsonSchema for StreamModes {
    fn schema_name() -> Cow<'static, str> {
        "StreamModes".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mode = generator.subschema_for::<StreamMode>();
        json_schema!({
            "description": "One stream mode, or a list of them.",
            "anyOf": [mode, { "type": "array", "items": mode }]
        })
    }
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

/// Which runs `POST /runs/cancel` cancels by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelStatusFilter {
    /// Pending runs.
    Pending,
    /// Running runs.
    Running,
    /// Both.
    All,
}

/// The body of `POST /runs/cancel`: either `status`, or `thread_id` with `run_ids`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunCancelManyRequest {
    /// The thread of `run_ids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Uuid>,
    /// The runs to cancel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_ids: Option<Vec<Uuid>>,
    /// Cancel every run with this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CancelStatusFilter>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// An error a run ended with: the exception class and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunError {
    /// The error kind, e.g. `ValueError`.
    pub error: String,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// What `runs/wait` and `runs/{id}/join` answer: the final values, or the error.
///
/// ```
/// use errand_protocol::RunResult;
/// let failed: RunResult =
///     serde_json::from_str(r#"{"__error__": {"error": "ValueError", "message": "boom"}}"#).unwrap();
/// assert_eq!(failed.error().unwrap().message, "boom");
/// let done: RunResult = serde_json::from_str(r#"{"messages": []}"#).unwrap();
/// assert!(done.error().is_none() && done.interrupts().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    /// `{"__error__": {...}}`: the run failed.
    Error(RunError),
    /// The final state values; at an interrupt they hold `__interrupt__`.
    Values(Value),
}

impl RunResult {
    /// The error, if the run failed.
    pub fn error(&self) -> Option<&RunError> {
        match self {
            Self::Error(error) => Some(error),
            Self::Values(_) => None,
        }
    }

    /// The interrupts the run stopped at, if any.
    pub fn interrupts(&self) -> Vec<Interrupt> {
        match self {
            Self::Values(values) => values
                .get("__interrupt__")
                .and_then(|found| serde_json::from_value(found.clone()).ok())
                .unwrap_or_default(),
            Self::Error(_) => Vec::new(),
        }
    }
}

const ERROR_KEY: &str = "__error__";

impl Serialize for RunResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Error(error) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(ERROR_KEY, error)?;
                map.end()
            }
            Self::Values(values) => values.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RunResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match value.as_object() {
            Some(object) if object.len() == 1 && object.contains_key(ERROR_KEY) => {
                serde_json::from_value(object[ERROR_KEY].clone())
                    .map(Self::Error)
                    .map_err(serde::de::Error::custom)
            }
            _ => Ok(Self::Values(value)),
        }
    }
}

impl JsonSchema for RunResult {
    fn schema_name() -> Cow<'static, str> {
        "RunResult".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let error = generator.subschema_for::<RunError>();
        json_schema!({
            "description": "The final state values of a run, or `{\"__error__\": RunError}` when it failed.",
            "anyOf": [
                { "type": "object", "properties": { "__error__": error }, "required": ["__error__"] },
                {}
            ]
        })
    }
}
