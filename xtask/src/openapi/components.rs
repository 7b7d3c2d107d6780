//! The document's component schemas: every wire type the calls read and write, generated
//! under the contract of each side, which must agree on the types they share.

use super::calls::{self, Answer, CALLS, ParamKind};
use super::{ERROR_ANSWER, Wire, events};
use anyhow::bail;
use errand_protocol::assistant_id_for_graph;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// The wire types the calls read (bodies, query parameters) and write (answers, events).
fn wire_types() -> (Vec<Wire>, Vec<Wire>) {
    let mut reads = Vec::new();
    let mut writes = events::EVENT_DATA.to_vec();
    writes.push(calls::ERROR_BODY);
    for call in CALLS {
        reads.extend(call.body);
        for param in call.query.iter().chain(call.headers) {
            if let ParamKind::Wire(wire) | ParamKind::ListOf(wire) = param.kind {
                reads.push(wire);
            }
        }
        match call.answer {
            Answer::Json(wire)
            | Answer::JsonList(wire)
            | Answer::JsonOrNull(wire)
            | Answer::Run(wire)
            | Answer::Joined(wire) => writes.push(wire),
            Answer::EventStream | Answer::Empty(_) | Answer::Cancelled => {}
        }
    }
    (reads, writes)
}

/// The definitions of `wires` under one contract of schemars.
fn definitions(settings: SchemaSettings, wires: &[Wire]) -> Map<String, Value> {
    let mut generator = settings
        .with(|settings| settings.definitions_path = "/components/schemas".into())
        .into_generator();
    for wire in wires {
        (wire.register)(&mut generator);
    }
    generator.take_definitions(true)
}

/// Marks the objects errand writes with only their own keys as having no others. A type that
/// keeps unknown keys (its `extra`) already says that it may have more; a type without one is
/// written with exactly its fields.
fn close_objects(definitions: &mut Map<String, Value>) {
    for schema in definitions.values_mut() {
        if let Value::Object(schema) = schema
            && schema.contains_key("properties")
            && !schema.contains_key("additionalProperties")
        {
            schema.insert("additionalProperties".into(), Value::Bool(false));
        }
    }
}

/// The graph `errand serve` always hosts, beside those of its config.
const HOSTED_GRAPH: &str = "echo";

/// Examples of the values that name a graph `errand serve` hosts, which no schema can say:
/// they tell a reader (and a fuzzer) what an accepted request looks like.
fn add_examples(schemas: &mut Map<String, Value>) {
    let assistant_id = assistant_id_for_graph(HOSTED_GRAPH).to_string();
    for (component, property, examples) in [
        (
            "RunCreate",
            "assistant_id",
            json!([HOSTED_GRAPH, assistant_id]),
        ),
        ("AssistantSearchRequest", "graph_id", json!([HOSTED_GRAPH])),
    ] {
        if let Some(property) = schemas
            .get_mut(component)
            .and_then(|schema| schema.get_mut("properties"))
            .and_then(|properties| properties.get_mut(property))
            .and_then(Value::as_object_mut)
        {
            property.insert("examples".into(), examples);
        }
    }
}

/// The component schemas: what errand reads and what it writes, which must agree on every
/// type they share.
pub(super) fn component_schemas() -> anyhow::Result<Map<String, Value>> {
    let (reads, writes) = wire_types();
    let mut schemas = definitions(SchemaSettings::draft2020_12().for_deserialize(), &reads);
    let mut written = definitions(SchemaSettings::draft2020_12().for_serialize(), &writes);
    close_objects(&mut written);
    for (name, schema) in written {
        match schemas.get(&name) {
            Some(read) if *read != schema => bail!(
                "the schema of {name} differs between what errand reads and what it writes; \
                 give the two sides types of their own"
            ),
            _ => {
                schemas.insert(name, schema);
            }
        }
    }
    for (name, schema) in events::event_components() {
        schemas.insert(name, schema);
    }
    add_examples(&mut schemas);
    schemas.insert(
        ERROR_ANSWER.into(),
        json!({
            "description": "An error as errand answers it: `{\"detail\": \"...\"}`.",
            "allOf": [calls::ERROR_BODY.reference()],
            "required": ["detail"]
        }),
    );
    schemas.sort_keys();
    Ok(schemas)
}
