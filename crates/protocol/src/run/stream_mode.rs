//! The kinds of output a run's stream carries, and the `stream_mode` of a request (one mode or
//! a list).

use crate::ProtocolError;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

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
