//! Threads, their state and history.

use super::AppState;
use super::answer::{Answer, Caller};
use super::extract::Path;
use super::extract::{ApiJson, parse_id};
use crate::storage::rules::contains;
use crate::storage::{CheckpointRecord, JsonText, NewCheckpoint, RunPage};
use crate::{ServerError, ServerResult};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use errand_protocol::{
    CancelAction, Checkpoint, HistoryRequest, IfExists, JsonObject, Nullable, RunStatus, Thread,
    ThreadCreate, ThreadPatch, ThreadPruneRequest, ThreadPruneResponse, ThreadSearchRequest,
    ThreadState, ThreadStateUpdate, Timestamp,
};
use errand_runtime::{add_messages, messages_from_value};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ThreadCreate>,
) -> ServerResult<Answer<Thread>> {
    if body
        .supersteps
        .as_ref()
        .is_some_and(|steps| !steps.is_empty())
    {
        return Err(ServerError::Unprocessable(
            "supersteps are not supported by this server".into(),
        ));
    }
    let thread = Thread::new(
        body.thread_id.unwrap_or_else(Uuid::now_v7),
        body.metadata.unwrap_or_default(),
        Timestamp::now(),
    );
    let stored = state
        .executor
        .storage()
        .create_thread(thread, body.if_exists.unwrap_or(IfExists::Raise))
        .await?;
    Ok(caller.answer(stored))
}

/// The thread, or the Python server's 404.
pub(crate) async fn existing_thread(state: &AppState, thread_id: Uuid) -> ServerResult<Thread> {
    state
        .executor
        .storage()
        .get_thread(thread_id)
        .await?
        .ok_or_else(|| ServerError::NotFound(format!("Thread with ID {thread_id} not found")))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
) -> ServerResult<Answer<Thread>> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let thread = existing_thread(&state, thread_id).await?;
    Ok(caller.answer(thread))
}

pub(crate) async fn patch(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    ApiJson(body): ApiJson<ThreadPatch>,
) -> ServerResult<Json<Thread>> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let thread = state
        .executor
        .storage()
        .patch_thread(
            thread_id,
            body.metadata.unwrap_or_default(),
            Timestamp::now(),
        )
        .await?;
    Ok(Json(thread))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
) -> ServerResult<StatusCode> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let storage = state.executor.storage();
    // Stop what runs on it first, so no worker writes to a thread that is gone.
    for status in [RunStatus::Running, RunStatus::Pending] {
        let page = RunPage {
            limit: u32::MAX,
            offset: 0,
            status: Some(status),
        };
        for run in storage.list_runs(thread_id, page).await? {
            state
                .executor
                .stop_run(thread_id, run.run_id, CancelAction::Interrupt)
                .await?;
        }
    }
    if storage.delete_thread(thread_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ServerError::NotFound(format!(
            "Thread with ID {thread_id} not found"
        )))
    }
}

pub(crate) async fn search(
    State(state): State<AppState>,
    ApiJson(search): ApiJson<ThreadSearchRequest>,
) -> ServerResult<Json<Vec<Thread>>> {
    Ok(Json(
        state.executor.storage().search_threads(&search).await?,
    ))
}

/// `POST /threads/prune`: threads with a pending or running run are left alone, so nothing
/// accepted is lost (unlike `DELETE /threads/{id}`, which stops them first).
pub(crate) async fn prune(
    State(state): State<AppState>,
    ApiJson(prune): ApiJson<ThreadPruneRequest>,
) -> ServerResult<Json<ThreadPruneResponse>> {
    let pruned_count = state
        .executor
        .storage()
        .prune_threads(&prune.thread_ids, prune.strategy)
        .await?;
    Ok(Json(ThreadPruneResponse { pruned_count }))
}

fn checkpoint_ref(thread_id: Uuid, checkpoint_id: &str) -> Checkpoint {
    Checkpoint {
        checkpoint_id: Some(checkpoint_id.to_owned()),
        thread_id: Some(thread_id),
        checkpoint_ns: Some(String::new()),
        ..Checkpoint::default()
    }
}

/// A checkpoint as the API shows it.
fn thread_state(record: CheckpointRecord) -> ThreadState {
    let parent = record
        .parent_checkpoint_id
        .as_deref()
        .map(|id| checkpoint_ref(record.thread_id, id));
    ThreadState {
        values: record.values,
        next: record.next,
        tasks: Vec::new(),
        metadata: Nullable::Present(record.metadata),
        created_at: Nullable::Present(record.created_at),
        checkpoint: Nullable::Present(checkpoint_ref(record.thread_id, &record.checkpoint_id)),
        parent_checkpoint: parent.into(),
        interrupts: Some(record.interrupts),
        checkpoint_id: Nullable::Present(record.checkpoint_id),
        parent_checkpoint_id: record.parent_checkpoint_id.into(),
        extra: JsonObject::new(),
    }
}

/// The state of a thread that has never run.
fn empty_state() -> ThreadState {
    ThreadState {
        values: Value::Object(JsonObject::new()),
        next: Vec::new(),
        tasks: Vec::new(),
        metadata: Nullable::Null,
        created_at: Nullable::Null,
        checkpoint: Nullable::Null,
        parent_checkpoint: Nullable::Null,
        interrupts: Some(Vec::new()),
        checkpoint_id: Nullable::Null,
        parent_checkpoint_id: Nullable::Null,
        extra: JsonObject::new(),
    }
}

async fn latest_state(state: &AppState, thread_id: Uuid) -> ServerResult<Option<CheckpointRecord>> {
    existing_thread(state, thread_id).await?;
    let mut latest = state
        .executor
        .storage()
        .list_checkpoints(thread_id, 1, None)
        .await?;
    Ok(latest.pop())
}

pub(crate) async fn get_state(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
) -> ServerResult<Json<ThreadState>> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let latest = latest_state(&state, thread_id).await?;
    Ok(Json(latest.map_or_else(empty_state, thread_state)))
}

/// Applies a state update through the `messages` reducer; other keys are replaced.
fn apply_update(current: Value, update: Value) -> ServerResult<Value> {
    let (Value::Object(mut current), Value::Object(update)) = (current, update.clone()) else {
        return Ok(update);
    };
    for (key, value) in update {
        if key == "messages" {
            let invalid = |error: errand_protocol::ProtocolError| {
                ServerError::Unprocessable(format!("values.messages: {error}"))
            };
            let mut messages =
                messages_from_value(&json!({ "messages": current.remove("messages") }))
                    .map_err(invalid)?;
            add_messages(
                &mut messages,
                messages_from_value(&json!({ "messages": value })).map_err(invalid)?,
            );
            let encoded = serde_json::to_value(messages)
                .map_err(|error| ServerError::Unprocessable(error.to_string()))?;
            current.insert(key, encoded);
        } else {
            current.insert(key, value);
        }
    }
    Ok(Value::Object(current))
}

pub(crate) async fn update_state(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    ApiJson(body): ApiJson<ThreadStateUpdate>,
) -> ServerResult<Json<StateUpdated>> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let current = latest_state(&state, thread_id)
        .await?
        .map_or_else(|| Value::Object(JsonObject::new()), |record| record.values);
    let values = match body.values {
        Nullable::Present(update) => apply_update(current, update)?,
        Nullable::Absent | Nullable::Null => current,
    };
    let mut metadata = JsonObject::new();
    metadata.insert("source".into(), json!("update"));
    if let Some(node) = &body.as_node {
        metadata.insert("writes".into(), json!({ node: Value::Null }));
    }
    let record = state
        .executor
        .storage()
        .update_thread_state(
            thread_id,
            NewCheckpoint {
                checkpoint_id: Uuid::now_v7().to_string(),
                run_id: None,
                values: JsonText::of(&values),
                metadata,
                next: Vec::new(),
                interrupts: Vec::new(),
                created_at: Timestamp::now(),
            },
        )
        .await?;
    let reference = CheckpointRef {
        thread_id,
        checkpoint_ns: "",
        checkpoint_id: record.checkpoint_id,
    };
    Ok(Json(StateUpdated {
        checkpoint_id: reference.checkpoint_id.clone(),
        configurable: reference.clone(),
        checkpoint: reference,
    }))
}

/// The answer to `POST /threads/{id}/state`: the checkpoint written, named each way the
/// Python server names it (as a checkpoint, as a config's `configurable`, and by its id).
#[derive(Debug, Serialize)]
pub(crate) struct StateUpdated {
    checkpoint: CheckpointRef,
    configurable: CheckpointRef,
    checkpoint_id: String,
}

/// Points at a checkpoint of a thread's root graph.
#[derive(Debug, Clone, Serialize)]
struct CheckpointRef {
    thread_id: Uuid,
    checkpoint_ns: &'static str,
    checkpoint_id: String,
}

pub(crate) async fn history(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    ApiJson(body): ApiJson<HistoryRequest>,
) -> ServerResult<Json<Vec<ThreadState>>> {
    let thread_id = parse_id(&thread_id, "thread")?;
    existing_thread(&state, thread_id).await?;
    // `before` comes as a checkpoint id, a checkpoint, or a config with `configurable`.
    let before = body.before.as_ref().and_then(|before| {
        before
            .as_str()
            .or_else(|| before.get("checkpoint_id").and_then(Value::as_str))
            .or_else(|| {
                before
                    .get("configurable")
                    .and_then(|c| c.get("checkpoint_id"))
                    .and_then(Value::as_str)
            })
    });
    let records = state
        .executor
        .storage()
        .list_checkpoints(thread_id, body.limit, before)
        .await?;
    let metadata_filter = body.metadata.unwrap_or_default();
    Ok(Json(
        records
            .into_iter()
            .filter(|record| contains(Some(&record.metadata), &metadata_filter))
            .map(thread_state)
            .collect(),
    ))
}
