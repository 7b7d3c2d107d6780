//! The OpenAPI 3.1 document: what `errand serve` answers, call by call.
//!
//! The components come from the wire types' schemas, generated twice: request bodies as
//! errand reads them (schemars' deserialize contract: a key with a default may be left out) and
//! answers as errand writes them (the serialize contract: a key it always writes is required).
//! A type used both ways must come out the same, or the document would say two things under
//! one name; [`document`] fails if it does not. The calls are in [`calls`], the stream events in
//! [`events`], and [`components`] makes the schemas.

mod calls;
mod components;
mod events;

use anyhow::bail;
use calls::{Answer, CALLS, Call, Param, ParamKind};
use components::component_schemas;
use errand_protocol::MAX_BODY_NESTING;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A wire type the document refers to: its component name, and how to add its schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wire {
    name: fn() -> Cow<'static, str>,
    register: fn(&mut SchemaGenerator),
}

impl Wire {
    fn name(self) -> String {
        (self.name)().into_owned()
    }

    /// `{"$ref": ...}` to its component.
    fn reference(self) -> Value {
        component(&self.name())
    }
}

/// The [`Wire`] of `T`.
pub(crate) const fn wire<T: JsonSchema>() -> Wire {
    Wire {
        name: T::schema_name,
        register: register::<T>,
    }
}

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) {
    generator.subschema_for::<T>();
}

fn component(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: &Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// The largest body the server reads, in MiB.
const BODY_LIMIT_MIB: usize = errand_protocol::MAX_BODY_BYTES / (1024 * 1024);

/// The seconds a client is asked to wait with `Retry-After`, as a header schema.
fn retry_after() -> Value {
    json!({
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": { "type": "integer", "minimum": 0 }
        }
    })
}

/// The component of errand's error answers: an [`ErrorBody`](errand_protocol::ErrorBody) with
/// `detail`, which errand always writes.
const ERROR_ANSWER: &str = "ErrorAnswer";

/// The answers of one status code: what it means on this call, with the error body.
fn refusal(status: u16, reasons: &[&str]) -> Value {
    let mut response = json!({
        "description": format!("{}: {}", reason_phrase(status), reasons.join("; ")),
        "content": json_content(&component(ERROR_ANSWER)),
    });
    if status == 503 {
        response["headers"] = retry_after();
    }
    response
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The refusals every call of its kind has, beside its own.
fn common_refusals(call: &Call) -> Vec<(u16, &'static str)> {
    let mut refusals = Vec::new();
    if call.authenticated {
        refusals.push((
            401,
            "the server has an API key and the request does not carry it",
        ));
    }
    if call.body.is_some() {
        refusals.push((400, "the body could not be read"));
        refusals.push((413, "the body is over the size limit (16 MiB)"));
        refusals.push((
            422,
            "the body is not JSON, does not fit its schema, or nests too deep",
        ));
    }
    if call.path.contains("_id}") {
        refusals.push((422, "an id in the path is not a UUID"));
    }
    if call.writes {
        refusals.push((
            503,
            "the server is stopping, or its disk is full and it takes no writes until space returns",
        ));
    }
    refusals
}

/// The success answer of a call: its status code and response object.
fn success(answer: Answer) -> Vec<(u16, Value)> {
    let ok = |schema: Value| json!({ "description": "OK", "content": json_content(&schema) });
    match answer {
        Answer::Json(wire) => vec![(200, ok(wire.reference()))],
        Answer::JsonList(wire) => vec![(
            200,
            ok(json!({ "type": "array", "items": wire.reference() })),
        )],
        Answer::JsonOrNull(wire) => vec![(
            200,
            ok(json!({ "anyOf": [wire.reference(), { "type": "null" }] })),
        )],
        Answer::Run(wire) => vec![(
            200,
            json!({
                "description": "OK: the run, stored as `pending`",
                "headers": { "Content-Location": {
                    "description": "The run's path",
                    "schema": { "type": "string" }
                }},
                "content": json_content(&wire.reference()),
            }),
        )],
        Answer::Joined(wire) => vec![(
            200,
            json!({
                "description": "OK: the run's final values, or `{\"__error__\": ...}` when it \
                    failed. While the run goes on, the body starts with a newline every few \
                    seconds, which JSON readers skip.",
                "content": json_content(&wire.reference()),
            }),
        )],
        Answer::EventStream => vec![(
            200,
            json!({
                "description": events::STREAM_DESCRIPTION,
                "content": { "text/event-stream": {
                    "schema": component(events::EVENT_COMPONENT)
                }}
            }),
        )],
        Answer::Empty(status) => vec![(status, json!({ "description": "No body" }))],
        Answer::Cancelled => vec![
            (
                202,
                json!({ "description": "Accepted: the run is being stopped (without `wait`)" }),
            ),
            (
                200,
                json!({
                    "description": "OK: with `wait`, once the run has stopped",
                    "content": json_content(&json!({ "type": "object", "maxProperties": 0 })),
                }),
            ),
        ],
    }
}

fn parameter(param: &Param, location: &str, query_wire: &mut Vec<Wire>) -> Value {
    let schema = match param.kind {
        ParamKind::Uuid => json!({ "type": "string", "format": "uuid" }),
        ParamKind::Text => json!({ "type": "string" }),
        ParamKind::NonEmpty => json!({ "type": "string", "minLength": 1 }),
        ParamKind::Flag => json!({ "type": "boolean" }),
        ParamKind::Count => json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
        ParamKind::OneOf(values) => json!({ "type": "string", "enum": values }),
        ParamKind::Wire(wire) => {
            query_wire.push(wire);
            wire.reference()
        }
        ParamKind::ListOf(wire) => {
            query_wire.push(wire);
            json!({ "type": "array", "items": wire.reference() })
        }
    };
    json!({
        "name": param.name,
        "in": location,
        "required": param.required || location == "path",
        "description": param.description,
        "schema": schema,
    })
}

fn path_parameters(path: &str) -> Vec<Param> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| Param {
            name: match name {
                "thread_id" => "thread_id",
                "run_id" => "run_id",
                _ => "assistant_id",
            },
            description: match name {
                "thread_id" => "The thread's id",
                "run_id" => "The run's id",
                _ => "The assistant's id (the uuid5 of its graph's name for a hosted graph)",
            },
            kind: ParamKind::Uuid,
            required: true,
        })
        .collect()
}

/// Whether the body of `wire` must be sent: an empty body reads as `{}`, which is enough
/// for a body type with no required key.
fn body_required(schemas: &Map<String, Value>, wire: Wire) -> bool {
    schemas
        .get(&wire.name())
        .and_then(|schema| schema.get("required"))
        .and_then(Value::as_array)
        .is_some_and(|required| !required.is_empty())
}

fn operation(call: &Call, schemas: &Map<String, Value>, query_wire: &mut Vec<Wire>) -> Value {
    let mut responses = BTreeMap::new();
    for (status, response) in success(call.answer) {
        responses.insert(status, response);
    }
    let mut reasons: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (status, reason) in common_refusals(call)
        .into_iter()
        .chain(call.refusals.iter().copied())
    {
        reasons.entry(status).or_default().push(reason);
    }
    for (status, reasons) in &reasons {
        responses.insert(*status, refusal(*status, reasons));
    }
    let mut parameters: Vec<Value> = path_parameters(call.path)
        .iter()
        .map(|param| parameter(param, "path", query_wire))
        .collect();
    parameters.extend(
        call.query
            .iter()
            .map(|param| parameter(param, "query", query_wire)),
    );
    parameters.extend(
        call.headers
            .iter()
            .map(|param| parameter(param, "header", query_wire)),
    );

    let mut operation = Map::new();
    operation.insert("summary".into(), Value::from(call.summary));
    if !call.authenticated {
        operation.insert("security".into(), json!([]));
    }
    if !parameters.is_empty() {
        operation.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = call.body {
        operation.insert(
            "requestBody".into(),
            json!({
                "required": body_required(schemas, body),
                "content": json_content(&body.reference()),
            }),
        );
    }
    let responses: Map<String, Value> = responses
        .into_iter()
        .map(|(status, response)| (status.to_string(), response))
        .collect();
    operation.insert("responses".into(), Value::Object(responses));
    Value::Object(operation)
}

fn description() -> String {
    format!(
        "The Agent Protocol (LangGraph server API) as errand serves it.\n\n\
         - Errors are `{{\"detail\": \"...\"}}` (JSON), with the status codes each operation lists. \
         A path errand does not serve answers 404, and a method that a served path does not take \
         answers 405; OpenAPI has no operation to list them under.\n\
         - When the server has an API key (`errand serve --api-key`), a request without it in \
         `x-api-key` or as a bearer token answers 401 on every path but `GET /ok`, before 404 \
         or 405.\n\
         - Request bodies are JSON whatever their content type; an empty body reads as `{{}}`. \
         A body may be at most {BODY_LIMIT_MIB} MiB (413 past that) and nest at most \
         {MAX_BODY_NESTING} levels of arrays and objects, the body itself counting as the first \
         (422 deeper), so that whatever is accepted can be stored and read back.\n\
         - 500 means storage failed; 503, with `Retry-After`, that the server is stopping or that \
         its disk is full: it takes no writes until space returns, and recovers by itself.\n\
         - {}",
        events::FRAMING_DESCRIPTION
    )
}

/// The whole OpenAPI document.
pub(crate) fn document() -> anyhow::Result<Value> {
    let schemas = component_schemas()?;
    let mut paths = Map::new();
    let mut query_wire = Vec::new();
    for call in CALLS {
        let item = paths
            .entry(call.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(
                call.method.into(),
                operation(call, &schemas, &mut query_wire),
            );
        }
    }
    if let Some(missing) = query_wire
        .iter()
        .find(|wire| !schemas.contains_key(&wire.name()))
    {
        bail!("no component for {}", missing.name());
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "errand",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description(),
        },
        "security": [{}, { "apiKey": [] }, { "bearer": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "The server's API key, when it has one"
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The server's API key as a bearer token"
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests;
