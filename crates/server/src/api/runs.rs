//! Runs: create (background, streamed, waited), read, cancel, join, delete.

use super::AppState;
use super::answer::{Answer, Caller, with_typed};
use super::extract::Path;
use super::extract::{ApiJson, parse_id, query_flag, query_value};
use super::stream::{Follow, ModeFilter, event_stream, wait_body};
use super::threads::existing_thread;
use crate::hub::RunChannel;
use crate::storage::{NewRun, RunPage};
use crate::{ServerError, ServerResult};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errand_protocol::{
    CancelAction, CancelStatusFilter, IfNotExists, JsonObject, MAX_AFTER_SECONDS,
    MultitaskStrategy, Nullable, OnCompletion, OnDisconnect, Run, RunCancelManyRequest, RunCreate,
    RunStatus, StreamModes, Timestamp,
};
use serde_json::{Number, Value, json};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

type QueryPairs = Query<Vec<(String, String)>>;

/// Where a run lives: on a thread, or stateless on a temporary one.
#[derive(Debug, Clone, Copy)]
enum Scope {
    Thread(Uuid),
    Stateless,
}

/// A run just accepted: what the answers to its create need.
#[derive(Debug)]
struct Accepted {
    thread_id: Uuid,
    run_id: Uuid,
    /// The run as wire JSON, as stored.
    json: String,
    /// The run itself, for a caller in this process.
    typed: Option<Run>,
    channel: Arc<RunChannel>,
}

/// Validates a run-creation body, turns it into a run, and stores it under its multitask
/// strategy; runs it replaces are cancelled.
async fn create_run(
    state: &AppState,
    caller: Caller,
    scope: Scope,
    mut body: RunCreate,
) -> ServerResult<Accepted> {
    if body.webhook.is_some() {
        return Err(ServerError::Unprocessable(
            "webhook: this server does not call webhooks yet; join or stream the run instead"
                .into(),
        ));
    }
    let has_configurable = body
        .config
        .as_ref()
        .and_then(|config| config.configurable.as_ref())
        .is_some_and(|configurable| !configurable.is_empty());
    if has_configurable && body.context.is_some() {
        return Err(ServerError::BadRequest(
            "Cannot specify both configurable and context. Prefer setting context alone.".into(),
        ));
    }
    let executor = &state.executor;
    let hosted = executor
        .graphs()
        .resolve(&body.assistant_id)?
        .ok_or_else(|| ServerError::NotFound("Thread or assistant not found.".into()))?;
    let graph_id = hosted.assistant.graph_id.clone();
    let assistant_id = hosted.assistant.assistant_id;

    let (thread_id, if_not_exists, temporary) = match scope {
        Scope::Thread(thread_id) => (
            thread_id,
            body.if_not_exists.unwrap_or(IfNotExists::Reject),
            false,
        ),
        Scope::Stateless => (
            Uuid::now_v7(),
            IfNotExists::Create,
            body.on_completion.unwrap_or_default() == OnCompletion::Delete,
        ),
    };
    let run_id = Uuid::now_v7();
    let now = Timestamp::now();
    let created_at = start_time(now, body.after_seconds.as_ref())?;

    let mut ids = JsonObject::new();
    ids.insert("graph_id".into(), Value::from(graph_id.as_str()));
    ids.insert("assistant_id".into(), Value::from(assistant_id.to_string()));
    // The body's parts are moved into the run rather than copied.
    let mut metadata = hosted.assistant.metadata.clone();
    metadata.extend(body.metadata.take().unwrap_or_default());
    metadata.extend(ids.clone());

    let mut config = body.config.take().unwrap_or_default();
    let mut configurable = config.configurable.take().unwrap_or_default();
    configurable.insert("run_id".into(), Value::from(run_id.to_string()));
    configurable.insert("thread_id".into(), Value::from(thread_id.to_string()));
    configurable.extend(ids.clone());
    let mut config = match serde_json::to_value(config) {
        Ok(Value::Object(config)) => config,
        _ => JsonObject::new(),
    };
    config.insert("configurable".into(), Value::Object(configurable));
    config.insert("metadata".into(), Value::Object(metadata.clone()));

    let stream_mode: Vec<Value> = body
        .stream_modes()
        .iter()
        .map(|mode| Value::from(mode.as_str()))
        .collect();
    let mut kwargs = JsonObject::new();
    let input = match std::mem::take(&mut body.input) {
        Nullable::Present(input) => input,
        Nullable::Absent | Nullable::Null => Value::Null,
    };
    kwargs.insert("input".into(), input);
    kwargs.insert("command".into(), json!(body.command));
    kwargs.insert("config".into(), Value::Object(config));
    kwargs.insert(
        "context".into(),
        Value::Object(body.context.take().unwrap_or_default()),
    );
    kwargs.insert("stream_mode".into(), Value::Array(stream_mode));
    kwargs.insert("interrupt_before".into(), json!(body.interrupt_before));
    kwargs.insert("interrupt_after".into(), json!(body.interrupt_after));
    kwargs.insert("webhook".into(), Value::Null);
    kwargs.insert("feedback_keys".into(), json!(body.feedback_keys));
    kwargs.insert("temporary".into(), Value::Bool(temporary));
    kwargs.insert(
        "subgraphs".into(),
        json!(body.stream_subgraphs.unwrap_or(false)),
    );
    kwargs.insert(
        "resumable".into(),
        json!(body.stream_resumable.unwrap_or(false)),
    );
    kwargs.insert("durability".into(), json!(body.durability));
    kwargs.insert(
        "on_disconnect".into(),
        json!(body.on_disconnect.unwrap_or_default()),
    );
    kwargs.extend(std::mem::take(&mut body.extra));

    let strategy = body.multitask_strategy.unwrap_or_default();
    let run = Run {
        run_id,
        thread_id,
        assistant_id,
        created_at,
        updated_at: now,
        status: RunStatus::Pending,
        metadata,
        kwargs,
        multitask_strategy: strategy,
        extra: JsonObject::new(),
    };
    executor.accepting()?;
    // A run that may start at once is claimed by the write that accepts it, for a worker
    // taken now; the worker is given back when the run has to wait.
    let worker = executor.free_worker();
    let created = executor
        .storage()
        .create_run(NewRun {
            run,
            if_not_exists,
            thread_metadata: ids,
            start: worker.is_some(),
        })
        .await
        .map_err(|error| match error {
            crate::storage::StorageError::ThreadNotFound(_) => {
                ServerError::NotFound("Thread or assistant not found.".into())
            }
            other => other.into(),
        })?;
    let run_id = created.run.run_id;
    let typed = caller.copy(&created.run);
    let bytes = created.json.len();
    let channel = executor.submitted(created.run, bytes, created.started.zip(worker));
    let action = match strategy {
        MultitaskStrategy::Rollback => CancelAction::Rollback,
        _ => CancelAction::Interrupt,
    };
    for previous in created.to_cancel {
        executor.stop_run(thread_id, previous, action).await?;
    }
    Ok(Accepted {
        thread_id,
        run_id,
        json: created.json,
        typed,
        channel,
    })
}

/// When a run created `now` may start: `now`, or later by `after_seconds`, which must lie
/// between 0 and [`MAX_AFTER_SECONDS`] (a time storage can write and read back).
fn start_time(now: Timestamp, after_seconds: Option<&Number>) -> ServerResult<Timestamp> {
    let Some(after_seconds) = after_seconds else {
        return Ok(now);
    };
    let out_of_range = || {
        ServerError::Unprocessable(format!(
            "after_seconds: {after_seconds} is not a number of seconds from 0 to \
             {MAX_AFTER_SECONDS} (ten years)"
        ))
    };
    // `as f64` is exact for the limit, which is far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    let limit = MAX_AFTER_SECONDS as f64;
    let delay = after_seconds
        .as_f64()
        .filter(|seconds| (0.0..=limit).contains(seconds))
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(out_of_range)?;
    let micros = i64::try_from(delay.as_micros()).map_err(|_| out_of_range())?;
    now.timestamp_micros()
        .checked_add(micros)
        .and_then(Timestamp::from_timestamp_micros)
        .ok_or_else(out_of_range)
}

fn run_path(accepted: &Accepted, stateless: bool) -> String {
    if stateless {
        format!("/runs/{}", accepted.run_id)
    } else {
        format!("/threads/{}/runs/{}", accepted.thread_id, accepted.run_id)
    }
}

fn with_header(mut response: Response, name: header::HeaderName, value: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
    response
}

fn created_response(accepted: Accepted, stateless: bool) -> Response {
    let location = run_path(&accepted, stateless);
    let json = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    let response = with_typed((json, accepted.json).into_response(), accepted.typed);
    with_header(response, header::CONTENT_LOCATION, &location)
}

fn stream_response(state: AppState, accepted: Accepted, body: &RunCreate) -> Response {
    let Accepted {
        thread_id,
        run_id,
        channel,
        ..
    } = accepted;
    let follow = Follow {
        thread_id,
        run_id,
        channel: Some(channel),
        after: 0,
        cancel_on_disconnect: body.on_disconnect == Some(OnDisconnect::Cancel),
    };
    let filter = ModeFilter::new(body.stream_modes().into_owned());
    let response = event_stream(state, follow, filter);
    let base = format!("/threads/{thread_id}/runs/{run_id}");
    let response = with_header(response, header::LOCATION, &format!("{base}/stream"));
    with_header(response, header::CONTENT_LOCATION, &base)
}

/// Waits for the run and answers its thread's values. A run read as `ended` needs no waiting
/// (and no second read to see that it ended).
fn join_response(
    state: AppState,
    (thread_id, run_id): (Uuid, Uuid),
    ended: bool,
    channel: Option<Arc<RunChannel>>,
) -> Response {
    let response = wait_body(state, thread_id, run_id, channel, ended);
    let base = format!("/threads/{thread_id}/runs/{run_id}");
    let response = with_header(response, header::LOCATION, &format!("{base}/join"));
    with_header(response, header::CONTENT_LOCATION, &base)
}

/// Waits for a run just accepted.
fn accepted_join_response(state: AppState, accepted: Accepted) -> Response {
    let ids = (accepted.thread_id, accepted.run_id);
    join_response(state, ids, false, Some(accepted.channel))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(thread_id): Path<String>,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let accepted = create_run(&state, caller, Scope::Thread(thread_id), body).await?;
    Ok(created_response(accepted, false))
}

pub(crate) async fn create_stream(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let accepted = create_run(
        &state,
        Caller::default(),
        Scope::Thread(thread_id),
        body.clone(),
    )
    .await?;
    Ok(stream_response(state, accepted, &body))
}

pub(crate) async fn create_wait(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let accepted = create_run(&state, Caller::default(), Scope::Thread(thread_id), body).await?;
    Ok(accepted_join_response(state, accepted))
}

pub(crate) async fn create_stateless(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let accepted = create_run(&state, caller, Scope::Stateless, body).await?;
    Ok(created_response(accepted, true))
}

pub(crate) async fn create_stateless_stream(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let accepted = create_run(&state, Caller::default(), Scope::Stateless, body.clone()).await?;
    Ok(stream_response(state, accepted, &body))
}

pub(crate) async fn create_stateless_wait(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let accepted = create_run(&state, Caller::default(), Scope::Stateless, body).await?;
    Ok(accepted_join_response(state, accepted))
}

/// The run, or the Python server's 404.
async fn existing_run(state: &AppState, thread_id: &str, run_id: &str) -> ServerResult<Run> {
    let thread_id = parse_id(thread_id, "thread")?;
    let run_id = parse_id(run_id, "run")?;
    state
        .executor
        .storage()
        .get_run(thread_id, run_id)
        .await?
        .ok_or_else(ServerError::not_found)
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((thread_id, run_id)): Path<(String, String)>,
) -> ServerResult<Answer<Run>> {
    let run = existing_run(&state, &thread_id, &run_id).await?;
    Ok(caller.answer(run))
}

fn parse_number(pairs: &[(String, String)], key: &str, default: u32) -> ServerResult<u32> {
    query_value(pairs, key).map_or(Ok(default), |text| {
        text.parse()
            .map_err(|_| ServerError::Unprocessable(format!("{key}: `{text}` is not a number")))
    })
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    Query(query): QueryPairs,
) -> ServerResult<Json<Vec<Run>>> {
    let thread_id = parse_id(&thread_id, "thread")?;
    existing_thread(&state, thread_id).await?;
    let status = query_value(&query, "status")
        .filter(|status| !status.is_empty())
        .map(|status| {
            serde_json::from_value::<RunStatus>(Value::from(status))
                .map_err(|error| ServerError::Unprocessable(format!("status: {error}")))
        })
        .transpose()?;
    let page = RunPage {
        limit: parse_number(&query, "limit", 10)?,
        offset: parse_number(&query, "offset", 0)?,
        status,
    };
    Ok(Json(
        state.executor.storage().list_runs(thread_id, page).await?,
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((thread_id, run_id)): Path<(String, String)>,
) -> ServerResult<StatusCode> {
    let run = existing_run(&state, &thread_id, &run_id).await?;
    if !run.status.is_terminal() {
        state
            .executor
            .stop_run(run.thread_id, run.run_id, CancelAction::Interrupt)
            .await?;
        state
            .executor
            .wait_for_end(run.thread_id, run.run_id)
            .await?;
    }
    state
        .executor
        .storage()
        .delete_run(run.thread_id, run.run_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn cancel_action(pairs: &[(String, String)]) -> ServerResult<CancelAction> {
    match query_value(pairs, "action") {
        None | Some("" | "interrupt") => Ok(CancelAction::Interrupt),
        Some("rollback") => Ok(CancelAction::Rollback),
        Some(other) => Err(ServerError::Unprocessable(format!(
            "action: `{other}` is not one of interrupt, rollback"
        ))),
    }
}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path((thread_id, run_id)): Path<(String, String)>,
    Query(query): QueryPairs,
) -> ServerResult<Response> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let run_id = parse_id(&run_id, "run")?;
    let action = cancel_action(&query)?;
    state.executor.cancel(thread_id, run_id, action).await?;
    if query_flag(query_value(&query, "wait")) {
        state.executor.wait_for_end(thread_id, run_id).await?;
        return Ok(Json(json!({})).into_response());
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

pub(crate) async fn cancel_many(
    State(state): State<AppState>,
    Query(query): QueryPairs,
    ApiJson(body): ApiJson<RunCancelManyRequest>,
) -> ServerResult<StatusCode> {
    let action = cancel_action(&query)?;
    let storage = state.executor.storage();
    let targets: Vec<(Uuid, Uuid)> = match (&body.status, &body.thread_id, &body.run_ids) {
        (Some(filter), None, None) => {
            let statuses: &[RunStatus] = match filter {
                CancelStatusFilter::Pending => &[RunStatus::Pending],
                CancelStatusFilter::Running => &[RunStatus::Running],
                CancelStatusFilter::All => &[RunStatus::Pending, RunStatus::Running],
            };
            storage
                .runs_with_status(statuses)
                .await?
                .into_iter()
                .map(|run| (run.thread_id, run.run_id))
                .collect()
        }
        (None, Some(thread_id), Some(run_ids)) => {
            run_ids.iter().map(|run_id| (*thread_id, *run_id)).collect()
        }
        _ => {
            return Err(ServerError::Unprocessable(
                "give either `status`, or `thread_id` with `run_ids`".into(),
            ));
        }
    };
    for (thread_id, run_id) in targets {
        state.executor.stop_run(thread_id, run_id, action).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn join(
    State(state): State<AppState>,
    Path((thread_id, run_id)): Path<(String, String)>,
) -> ServerResult<Response> {
    let run = existing_run(&state, &thread_id, &run_id).await?;
    // In flight here, or ended here lately: its events and end are in memory.
    let hub = state.executor.hub();
    let channel = hub.get(run.run_id).or_else(|| hub.ended(run.run_id));
    let ended = run.status.is_terminal();
    Ok(join_response(
        state,
        (run.thread_id, run.run_id),
        ended,
        channel,
    ))
}

pub(crate) async fn join_stream(
    State(state): State<AppState>,
    Path((thread_id, run_id)): Path<(String, String)>,
    Query(query): QueryPairs,
    headers: HeaderMap,
) -> ServerResult<Response> {
    let run = existing_run(&state, &thread_id, &run_id).await?;
    let modes =
        requested_modes(&query)?.map_or_else(|| run_modes(&run), |modes| modes.modes().to_vec());
    // Our ids are sequence numbers; an id from elsewhere replays everything.
    let after = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|id| id.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let follow = Follow {
        thread_id: run.thread_id,
        run_id: run.run_id,
        channel: state.executor.hub().get(run.run_id),
        after,
        cancel_on_disconnect: query_flag(query_value(&query, "cancel_on_disconnect")),
    };
    Ok(event_stream(state, follow, ModeFilter::new(modes)))
}

/// The modes of the `stream_mode` query: absent or empty means the run's own modes; repeated
/// keys and a JSON list are both read.
fn requested_modes(pairs: &[(String, String)]) -> ServerResult<Option<StreamModes>> {
    let values: Vec<&str> = pairs
        .iter()
        .filter(|(key, value)| key == "stream_mode" && !value.is_empty())
        .map(|(_, value)| value.as_str())
        .collect();
    if values.is_empty() {
        return Ok(None);
    }
    let parsed = if let [single] = values.as_slice()
        && single.trim_start().starts_with('[')
    {
        serde_json::from_str::<StreamModes>(single)
    } else {
        serde_json::from_value::<StreamModes>(json!(values))
    };
    parsed
        .map(Some)
        .map_err(|error| ServerError::Unprocessable(format!("stream_mode: {error}")))
}

fn run_modes(run: &Run) -> Vec<errand_protocol::StreamMode> {
    run.kwargs
        .get("stream_mode")
        .and_then(|modes| serde_json::from_value::<StreamModes>(modes.clone()).ok())
        .unwrap_or_default()
        .modes()
        .to_vec()
}
