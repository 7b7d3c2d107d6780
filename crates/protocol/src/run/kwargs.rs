//! What a run was asked to do, as the server keeps it in the run's `kwargs`.

use super::{Command, Durability, InterruptNodes, OnDisconnect, StreamModes};
use crate::{JsonObject, Nullable};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
