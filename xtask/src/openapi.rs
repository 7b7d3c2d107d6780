//! The OpenAPI 3.1 document: components from the wire types' schemas, and the table of calls.

use crate::codegen::register_wire_types;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// What a call answers with on success.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// JSON of a component type.
    Json(&'static str),
    /// A JSON array of a component type.
    JsonList(&'static str),
    /// JSON of the component type, or `null`.
    JsonOrNull(&'static str),
    /// A stream of server-sent events.
    EventStream,
    /// No body, with this status.
    Empty(u16),
}

/// One call of the API.
#[derive(Debug)]
struct Call {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    query: &'static [(&'static str, &'static str)],
    answer: Answer,
    errors: &'static [u16],
}

const fn call(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    answer: Answer,
    errors: &'static [u16],
) -> Call {
    Call {
        method,
        path,
        summary,
        body,
        query: &[],
        answer,
        errors,
    }
}

use Answer::{Empty, EventStream, Json, JsonList, JsonOrNull};

/// The calls of DESIGN.md's wire contract, in the LangGraph form the official clients send.
const CALLS: &[Call] = &[
    call("get", "/ok", "Health check", None, Json("Health"), &[]),
    call(
        "get",
        "/info",
        "Server version and features",
        None,
        Json("ServerInfo"),
        &[],
    ),
    call(
        "post",
        "/assistants/search",
        "Search assistants",
        Some("AssistantSearchRequest"),
        JsonList("Assistant"),
        &[422],
    ),
    call(
        "get",
        "/assistants/{assistant_id}",
        "Get an assistant",
        None,
        Json("Assistant"),
        &[404, 422],
    ),
    call(
        "post",
        "/threads",
        "Create a thread",
        Some("ThreadCreate"),
        Json("Thread"),
        &[409, 422],
    ),
    call(
        "post",
        "/threads/search",
        "Search threads",
        Some("ThreadSearchRequest"),
        JsonList("Thread"),
        &[422],
    ),
    call(
        "get",
        "/threads/{thread_id}",
        "Get a thread",
        None,
        Json("Thread"),
        &[404, 422],
    ),
    call(
        "patch",
        "/threads/{thread_id}",
        "Update a thread's metadata",
        Some("ThreadPatch"),
        Json("Thread"),
        &[404, 422],
    ),
    call(
        "delete",
        "/threads/{thread_id}",
        "Delete a thread",
        None,
        Empty(204),
        &[404, 422],
    ),
    call(
        "get",
        "/threads/{thread_id}/state",
        "Get a thread's state",
        None,
        Json("ThreadState"),
        &[404, 422],
    ),
    call(
        "post",
        "/threads/{thread_id}/state",
        "Update a thread's state",
        Some("ThreadStateUpdate"),
        Json("ThreadStateUpdateResponse"),
        &[404, 422],
    ),
    call(
        "post",
        "/threads/{thread_id}/history",
        "A thread's past states, newest first",
        Some("HistoryRequest"),
        JsonList("ThreadState"),
        &[404, 422],
    ),
    call(
        "post",
        "/threads/{thread_id}/runs",
        "Start a run in the background",
        Some("RunCreate"),
        Json("Run"),
        &[404, 409, 422],
    ),
    call(
        "get",
        "/threads/{thread_id}/runs",
        "List a thread's runs",
        None,
        JsonList("Run"),
        &[404, 422],
    ),
    call(
        "post",
        "/threads/{thread_id}/runs/stream",
        "Start a run and stream its output",
        Some("RunCreate"),
        EventStream,
        &[404, 409, 422],
    ),
    call(
        "post",
        "/threads/{thread_id}/runs/wait",
        "Start a run and wait for its result",
        Some("RunCreate"),
        Json("RunResult"),
        &[404, 409, 422],
    ),
    call(
        "get",
        "/threads/{thread_id}/runs/{run_id}",
        "Get a run",
        None,
        Json("Run"),
        &[404, 422],
    ),
    call(
        "delete",
        "/threads/{thread_id}/runs/{run_id}",
        "Delete a run",
        None,
        Empty(204),
        &[404, 422],
    ),
    Call {
        query: &[
            ("wait", "Wait for the run to stop and answer its result"),
            (
                "action",
                "interrupt (keep what it wrote) or rollback (delete it)",
            ),
        ],
        ..call(
            "post",
            "/threads/{thread_id}/runs/{run_id}/cancel",
            "Cancel a run",
            None,
            Empty(202),
            &[404, 422],
        )
    },
    call(
        "get",
        "/threads/{thread_id}/runs/{run_id}/join",
        "Wait for a run's result",
        None,
        Json("RunResult"),
        &[404, 422],
    ),
    Call {
        query: &[
            (
                "stream_mode",
                "Only these modes (repeated key, or a JSON list)",
            ),
            (
                "cancel_on_disconnect",
                "Cancel the run when this client goes away",
            ),
        ],
        ..call(
            "get",
            "/threads/{thread_id}/runs/{run_id}/stream",
            "Join a run's stream; resumes after `Last-Event-ID`",
            None,
            EventStream,
            &[404, 422],
        )
    },
    call(
        "post",
        "/runs",
        "Start a stateless run in the background",
        Some("RunCreate"),
        Json("Run"),
        &[404, 422],
    ),
    call(
        "post",
        "/runs/stream",
        "Start a stateless run and stream its output",
        Some("RunCreate"),
        EventStream,
        &[404, 422],
    ),
    call(
        "post",
        "/runs/wait",
        "Start a stateless run and wait for its result",
        Some("RunCreate"),
        Json("RunResult"),
        &[404, 422],
    ),
    call(
        "post",
        "/runs/cancel",
        "Cancel many runs",
        Some("RunCancelManyRequest"),
        Empty(204),
        &[404, 422],
    ),
    call(
        "put",
        "/store/items",
        "Put an item",
        Some("StorePutRequest"),
        Empty(204),
        &[422],
    ),
    Call {
        query: &[
            ("namespace", "The namespace, its labels joined with `.`"),
            ("key", "The item's key"),
        ],
        ..call(
            "get",
            "/store/items",
            "Get an item; `null` when missing",
            None,
            JsonOrNull("StoreItem"),
            &[422],
        )
    },
    call(
        "delete",
        "/store/items",
        "Delete an item",
        Some("StoreDeleteRequest"),
        Empty(204),
        &[404, 422],
    ),
    call(
        "post",
        "/store/items/search",
        "Search items",
        Some("StoreSearchRequest"),
        Json("SearchItemsResponse"),
        &[422],
    ),
    call(
        "post",
        "/store/namespaces",
        "List namespaces",
        Some("StoreListNamespacesRequest"),
        Json("ListNamespacesResponse"),
        &[422],
    ),
];

fn component(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: &Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn success(answer: Answer) -> (String, Value) {
    let (status, content) = match answer {
        Json(name) => (200, Some(json_content(&component(name)))),
        JsonList(name) => (
            200,
            Some(json_content(
                &json!({ "type": "array", "items": component(name) }),
            )),
        ),
        JsonOrNull(name) => (
            200,
            Some(json_content(
                &json!({ "anyOf": [component(name), { "type": "null" }] }),
            )),
        ),
        EventStream => (
            200,
            Some(json!({ "text/event-stream": {
                "schema": { "type": "string", "description": "Server-sent events: `metadata` first, then one event per requested stream mode, `error` if the run fails" }
            }})),
        ),
        Empty(status) => (status, None),
    };
    let mut response = Map::new();
    response.insert("description".into(), Value::from(reason(status)));
    if let Some(content) = content {
        response.insert("content".into(), content);
    }
    (status.to_string(), Value::Object(response))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        404 => "Not Found",
        409 => "Conflict: the thread exists, or is busy under `multitask_strategy: reject`",
        422 => "Unprocessable: a malformed body or id",
        _ => "",
    }
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = if name == "assistant_id" {
                json!({ "type": "string", "description": "An assistant id (UUID) or a graph name" })
            } else {
                json!({ "type": "string", "format": "uuid" })
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect()
}

fn operation(call: &Call) -> Value {
    let mut responses = Map::new();
    let (status, response) = success(call.answer);
    responses.insert(status, response);
    for &error in call.errors {
        responses.insert(
            error.to_string(),
            json!({ "description": reason(error), "content": json_content(&component("ErrorBody")) }),
        );
    }
    let mut parameters = path_parameters(call.path);
    parameters.extend(call.query.iter().map(|(name, description)| {
        json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } })
    }));
    let mut operation = Map::new();
    operation.insert("summary".into(), Value::from(call.summary));
    if !parameters.is_empty() {
        operation.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = call.body {
        operation.insert(
            "requestBody".into(),
            json!({ "required": true, "content": json_content(&component(body)) }),
        );
    }
    operation.insert("responses".into(), Value::Object(responses));
    Value::Object(operation)
}

/// The whole OpenAPI document.
pub(crate) fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas".into())
        .into_generator();
    register_wire_types(&mut generator);
    let schemas = generator.take_definitions(true);

    let mut paths = Map::new();
    for call in CALLS {
        let item = paths
            .entry(call.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(call.method.into(), operation(call));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "errand",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Agent Protocol (LangGraph server API) as errand serves it. Errors are `{\"detail\": \"...\"}`."
        },
        "paths": paths,
        "components": {
            "schemas": schemas
        }
    })
}
