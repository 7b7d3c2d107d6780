//! The typed events of a run's stream, and their SSE frames.
//!
//! An event's SSE name is its stream mode, followed by the subgraph namespace when
//! `stream_subgraphs` is on: `values`, `updates|child:3f2a...`, `messages/partial`. Its data is
//! one line of JSON. [`StreamEvent::from_frame`] reads a frame into a typed event and
//! [`StreamEvent::to_frame`] writes it back.
//!
//! ```
//! use errand_protocol::sse::SseFrame;
//! use errand_protocol::{StreamEvent, StreamPart};
//! let frame = SseFrame::new("updates|child:1", r#"{"echo":{"n":1}}"#).with_id("7-0");
//! let event = StreamEvent::from_frame(&frame).unwrap();
//! assert!(matches!(event.part, StreamPart::Updates(_)));
//! assert_eq!(event.namespace, ["child:1"]);
//! assert_eq!(event.to_frame().unwrap(), frame);
//! ```

use crate::sse::SseFrame;
use crate::{JsonObject, Message, ProtocolError, RunError};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One event of a run's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// The SSE id, present when the run is resumable; send the last one back as
    /// `Last-Event-ID` to resume.
    pub id: Option<String>,
    /// The subgraph the event came from, outermost first (`node:task_id` segments); empty for
    /// the root graph.
    pub namespace: Vec<String>,
    /// What happened.
    pub part: StreamPart,
}

/// The payload of a stream event, by event name.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamPart {
    /// `metadata`: always first; names the run and the attempt.
    Metadata(RunMetadata),
    /// `values`: the whole state after a step.
    Values(Value),
    /// `updates`: `{node: writes}` for each node that ran.
    Updates(Value),
    /// `messages` (the `messages-tuple` mode): one message chunk with its metadata.
    Messages(Box<MessageChunk>),
    /// `messages/partial`: the messages so far, each accumulated, not a delta.
    MessagesPartial(Vec<Message>),
    /// `messages/complete`: finished messages.
    MessagesComplete(Vec<Message>),
    /// `messages/metadata`: `{message_id: {"metadata": ...}}` for each new message.
    MessagesMetadata(JsonObject),
    /// `custom`: whatever the graph wrote to its stream writer.
    Custom(Value),
    /// `tasks`: a task started or finished.
    Tasks(Value),
    /// `checkpoints`: a checkpoint was written.
    Checkpoints(Value),
    /// `debug`: debug output.
    Debug(Value),
    /// `events`: LangChain callback events.
    Events(Value),
    /// `error`: the run failed; the last event.
    Error(RunError),
    /// Any other event, kept as given.
    Other {
        /// The event name (without the namespace).
        event: String,
        /// The data, if the frame had any.
        data: Option<Value>,
    },
}

/// The data of the `metadata` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunMetadata {
    /// The run being streamed.
    pub run_id: Uuid,
    /// Which attempt of the run this is, from 1.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

fn first_attempt() -> u32 {
    1
}

/// The data of a `messages` event: `[chunk, metadata]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageChunk(
    /// The message chunk (a delta for streamed tokens, or a whole message).
    pub Message,
    /// Where it came from: `langgraph_node`, `langgraph_step`, ...
    pub JsonObject,
);

impl StreamPart {
    /// The event name, without namespace.
    pub fn event_name(&self) -> &str {
        match self {
            Self::Metadata(_) => "metadata",
            Self::Values(_) => "values",
            Self::Updates(_) => "updates",
            Self::Messages(_) => "messages",
            Self::MessagesPartial(_) => "messages/partial",
            Self::MessagesComplete(_) => "messages/complete",
            Self::MessagesMetadata(_) => "messages/metadata",
            Self::Custom(_) => "custom",
            Self::Tasks(_) => "tasks",
            Self::Checkpoints(_) => "checkpoints",
            Self::Debug(_) => "debug",
            Self::Events(_) => "events",
            Self::Error(_) => "error",
            Self::Other { event, .. } => event,
        }
    }

    /// The data as JSON text; `None` only for an [`StreamPart::Other`] without data.
    pub fn data_json(&self) -> Result<Option<String>, ProtocolError> {
        let text = match self {
            Self::Metadata(data) => serde_json::to_string(data),
            Self::Values(data)
            | Self::Updates(data)
            | Self::Custom(data)
            | Self::Tasks(data)
            | Self::Checkpoints(data)
            | Self::Debug(data)
            | Self::Events(data) => serde_json::to_string(data),
            Self::Messages(data) => serde_json::to_string(data),
            Self::MessagesPartial(data) | Self::MessagesComplete(data) => {
                serde_json::to_string(data)
            }
            Self::MessagesMetadata(data) => serde_json::to_string(data),
            Self::Error(data) => serde_json::to_string(data),
            Self::Other { data: None, .. } => return Ok(None),
            Self::Other {
                data: Some(data), ..
            } => serde_json::to_string(data),
        };
        text.map(Some).map_err(|source| ProtocolError::Json {
            what: "stream event data",
            source,
        })
    }

    fn parse(event: &str, data: Option<&str>) -> Result<Self, ProtocolError> {
        let invalid = |reason: String| ProtocolError::InvalidStreamEvent {
            event: event.to_owned(),
            reason,
        };
        let Some(data) = data else {
            return match event {
                "metadata" | "values" | "updates" | "messages" | "messages/partial"
                | "messages/complete" | "messages/metadata" | "custom" | "tasks"
                | "checkpoints" | "debug" | "events" | "error" => {
                    Err(invalid("the frame has no data".to_owned()))
                }
                _ => Ok(Self::Other {
                    event: event.to_owned(),
                    data: None,
                }),
            };
        };
        fn read<T: DeserializeOwned>(data: &str) -> Result<T, String> {
            serde_json::from_str(data).map_err(|error| error.to_string())
        }
        let part = match event {
            "metadata" => read(data).map(Self::Metadata),
            "values" => read(data).map(Self::Values),
            "updates" => read(data).map(Self::Updates),
            "messages" => read(data).map(Self::Messages),
            "messages/partial" => read(data).map(Self::MessagesPartial),
            "messages/complete" => read(data).map(Self::MessagesComplete),
            "messages/metadata" => read(data).map(Self::MessagesMetadata),
            "custom" => read(data).map(Self::Custom),
            "tasks" => read(data).map(Self::Tasks),
            "checkpoints" => read(data).map(Self::Checkpoints),
            "debug" => read(data).map(Self::Debug),
            "events" => read(data).map(Self::Events),
            "error" => read(data).map(Self::Error),
            other => read(data).map(|data| Self::Other {
                event: other.to_owned(),
                data: Some(data),
            }),
        };
        part.map_err(invalid)
    }
}

impl StreamEvent {
    /// An event of the root graph with no id.
    pub fn new(part: StreamPart) -> Self {
        Self {
            id: None,
            namespace: Vec::new(),
            part,
        }
    }

    /// Sets the SSE id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The full SSE event name: the mode, then `|`-separated namespace segments.
    pub fn event_name(&self) -> String {
        let mut name = self.part.event_name().to_owned();
        for segment in &self.namespace {
            name.push('|');
            name.push_str(segment);
        }
        name
    }

    /// True for an event after which the run has ended (`error`, or an `end` some servers send).
    pub fn is_final(&self) -> bool {
        let ends_run = match &self.part {
            StreamPart::Error(_) => true,
            StreamPart::Other { event, .. } => event == "end",
            _ => false,
        };
        ends_run && self.namespace.is_empty()
    }

    /// Reads a decoded SSE frame. A frame without an event name is a `message` event, as in
    /// the SSE standard.
    pub fn from_frame(frame: &SseFrame) -> Result<Self, ProtocolError> {
        let name = frame.event.as_deref().unwrap_or("message");
        let mut segments = name.split('|');
        let mode = segments.next().unwrap_or_default();
        let namespace = segments.map(str::to_owned).collect();
        Ok(Self {
            id: frame.id.clone(),
            namespace,
            part: StreamPart::parse(mode, frame.data.as_deref())?,
        })
    }

    /// The SSE frame for this event, with compact one-line JSON data.
    pub fn to_frame(&self) -> Result<SseFrame, ProtocolError> {
        Ok(SseFrame {
            event: Some(self.event_name()),
            data: self.part.data_json()?,
            id: self.id.clone(),
            retry: None,
        })
    }
}
