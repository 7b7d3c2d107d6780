//! The events of a run's stream, as component schemas.
//!
//! An OpenAPI 3.1 document has no word for the items of a stream. OpenAPI 3.2 added
//! `itemSchema` to a media type for that, with `schema` then covering the whole stream; a 3.1
//! reader that knows server-sent events (schemathesis does) reads the `schema` of a
//! `text/event-stream` answer as the schema of one event instead, the event being
//! `{"event", "data", "id", "retry"}` as an SSE reader puts it together, with `data` the text
//! of its `data:` lines. That is the form here: it is valid 3.1, a validator that does not
//! know SSE has nothing to apply to a text body, and a 3.2 document would move the same
//! schema to `itemSchema`. Each event's JSON data is described with `contentMediaType` and
//! `contentSchema`, which JSON Schema 2020-12 defines for a string that holds a document.

use super::{Wire, component, wire};
use errand_protocol as protocol;
use serde_json::{Value, json};

/// The component of one event, any kind.
pub(super) const EVENT_COMPONENT: &str = "StreamEvent";

/// The wire types the events' data refer to.
pub(super) const EVENT_DATA: [Wire; 4] = [
    wire::<protocol::RunMetadata>(),
    wire::<protocol::MessageChunk>(),
    wire::<protocol::Message>(),
    wire::<protocol::RunError>(),
];

/// What a stream answer is, for its response object.
pub(super) const STREAM_DESCRIPTION: &str = "OK: server-sent events, `metadata` first, then one \
    event for each of the run's steps in each stream mode asked for, `error` last if the run \
    fails; the stream ends when the run has ended and every event is out. The schema is that \
    of one event (see `StreamEvent`).";

/// How streams are framed, for the document's description.
pub(super) const FRAMING_DESCRIPTION: &str = "Streams (`text/event-stream`) carry one JSON \
    document per event in its `data`. An event's `id` is its number in its run, from 1: send \
    the last one seen as `Last-Event-ID` to `GET /threads/{thread_id}/runs/{run_id}/stream` to \
    resume after it. A quiet stream sends an SSE comment (`: heartbeat`) every few seconds, \
    which SSE readers skip. With `stream_subgraphs`, an event of a subgraph is named \
    `mode|node:task_id`, one `|` segment per level. The answer's `schema` is that of one event, \
    as OpenAPI 3.2's `itemSchema` would be: OpenAPI 3.1 readers that know server-sent events \
    read it so.";

/// How an event's name is matched.
#[derive(Debug, Clone, Copy)]
enum Name {
    /// Exactly this: events of the run itself.
    Exact(&'static str),
    /// This stream mode, or it followed by subgraph namespace segments.
    Mode(&'static str),
}

impl Name {
    fn schema(self) -> Value {
        match self {
            Self::Exact(name) => json!({ "const": name }),
            Self::Mode(mode) => json!({
                "type": "string",
                "pattern": format!("^{mode}(\\|.+)?$"),
            }),
        }
    }
}

/// One kind of event: its component, name, data and what it means.
struct Kind {
    component: &'static str,
    name: Name,
    description: &'static str,
    data: Value,
    /// Whether the event has an `id:` line of its own.
    numbered: bool,
}

fn kinds() -> Vec<Kind> {
    let [metadata, chunk, message, error] = EVENT_DATA.map(Wire::reference);
    let any = json!({});
    let object = |description: &str| json!({ "type": "object", "description": description });
    let messages = json!({ "type": "array", "items": message });
    let kind = |component, name, description, data| Kind {
        component,
        name,
        description,
        data,
        numbered: true,
    };
    vec![
        kind(
            "MetadataEvent",
            Name::Exact("metadata"),
            "Always first: the run being streamed and its attempt.",
            metadata,
        ),
        kind(
            "ValuesEvent",
            Name::Mode("values"),
            "`values` mode: the whole state after a step.",
            object("The state values; `messages` holds LangChain messages"),
        ),
        kind(
            "UpdatesEvent",
            Name::Mode("updates"),
            "`updates` mode: what each node that ran wrote, `{node: writes}`.",
            object("`{node: writes}`"),
        ),
        kind(
            "MessagesTupleEvent",
            Name::Mode("messages"),
            "`messages-tuple` mode: one message chunk (a delta of a streamed message, or a whole one) with its metadata.",
            chunk,
        ),
        kind(
            "MessagesEvent",
            Name::Mode("messages/(partial|complete)"),
            "`messages` mode: the messages so far (`messages/partial`, each accumulated, not a delta) or finished (`messages/complete`).",
            messages,
        ),
        Kind {
            numbered: false,
            ..kind(
                "MessagesMetadataEvent",
                Name::Mode("messages/metadata"),
                "`messages` mode: sent before a message is first seen, `{message_id: {\"metadata\": ...}}`. It has no `id:` line: SSE readers give it the last event's id.",
                json!({
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": { "metadata": { "type": "object" } },
                        "required": ["metadata"]
                    }
                }),
            )
        },
        kind(
            "CustomEvent",
            Name::Mode("custom"),
            "`custom` mode: whatever the graph wrote to its stream writer.",
            any.clone(),
        ),
        kind(
            "TasksEvent",
            Name::Mode("tasks"),
            "`tasks` mode: a task started or finished.",
            any.clone(),
        ),
        kind(
            "CheckpointsEvent",
            Name::Mode("checkpoints"),
            "`checkpoints` mode: a checkpoint was written.",
            any.clone(),
        ),
        kind(
            "DebugEvent",
            Name::Mode("debug"),
            "`debug` mode: debug output.",
            any.clone(),
        ),
        kind(
            "EventsEvent",
            Name::Mode("events"),
            "`events` mode: LangChain callback events.",
            any,
        ),
        kind(
            "ErrorEvent",
            Name::Exact("error"),
            "The run failed: the error kind and its message. The last event.",
            error,
        ),
    ]
}

fn kind_schema(kind: &Kind) -> Value {
    let mut required = vec!["event", "data"];
    if kind.numbered {
        required.push("id");
    }
    json!({
        "type": "object",
        "description": kind.description,
        "properties": {
            "event": kind.name.schema(),
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": kind.data,
            },
            "id": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "The event's number in its run, from 1",
            },
        },
        "required": required,
        "additionalProperties": false,
    })
}

/// The components of the events: one per kind, and [`EVENT_COMPONENT`], any of them.
pub(super) fn event_components() -> Vec<(String, Value)> {
    let kinds = kinds();
    let mut components: Vec<(String, Value)> = kinds
        .iter()
        .map(|kind| (kind.component.to_owned(), kind_schema(kind)))
        .collect();
    components.push((
        EVENT_COMPONENT.to_owned(),
        json!({
            "description": "One server-sent event of a run's stream, as an SSE reader puts it \
                together: `event` is its name, `data` the text of its `data:` lines (one JSON \
                document), `id` its number. Heartbeats are SSE comments, not events.",
            "oneOf": kinds.iter().map(|kind| component(kind.component)).collect::<Vec<_>>(),
        }),
    ));
    components
}
