//! Runs: create (background, streamed, waited), read, cancel, join, delete.

use super::AppState;
use super::answer::{Answer, Caller, with_typed};
use super::extract::Path;
use super::extract::{ApiJson, parse_id, query_flag, query_value};
use super::stream::{Follow, ModeFilter, event_stream, wait_body};
use super::threads::existing_thread;
use crate::executor::{AcceptedRun, RunRequest, RunScope};
use crate::hub::RunChannel;
use crate::storage::RunPage;
use crate::{ServerError, ServerResult};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errand_protocol::{
    CancelAction, CancelStatusFilter, OnDisconnect, Run, RunCancelManyRequest, RunCreate,
    RunStatus, StreamMode, StreamModes,
};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

type QueryPairs = Query<Vec<(String, String)>>;

/// Accepts a run from a client; see [`crate::Executor::create_run`].
async fn create_run(
    state: &AppState,
    caller: Caller,
    scope: RunScope,
    body: RunCreate,
) -> ServerResult<AcceptedRun> {
    state
        .executor
        .create_run(RunRequest {
            scope,
            body,
            typed: caller.is_in_process(),
        })
        .await
}

fn run_path(accepted: &AcceptedRun, stateless: bool) -> String {
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

fn created_response(accepted: AcceptedRun, stateless: bool) -> Response {
    let location = run_path(&accepted, stateless);
    let json = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )];
    let response = with_typed((json, accepted.json).into_response(), accepted.run);
    with_header(response, header::CONTENT_LOCATION, &location)
}

/// What a streamed create asks of its stream, taken from the body before the run takes it.
#[derive(Debug)]
struct StreamAsked {
    modes: Vec<StreamMode>,
    cancel_on_disconnect: bool,
}

impl StreamAsked {
    fn of(body: &RunCreate) -> Self {
        Self {
            modes: body.stream_modes().into_owned(),
            cancel_on_disconnect: body.on_disconnect == Some(OnDisconnect::Cancel),
        }
    }
}

fn stream_response(state: AppState, accepted: AcceptedRun, asked: StreamAsked) -> Response {
    let AcceptedRun {
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
        cancel_on_disconnect: asked.cancel_on_disconnect,
    };
    let filter = ModeFilter::new(asked.modes);
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
fn accepted_join_response(state: AppState, accepted: AcceptedRun) -> Response {
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
    let accepted = create_run(&state, caller, RunScope::Thread(thread_id), body).await?;
    Ok(created_response(accepted, false))
}

pub(crate) async fn create_stream(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let asked = StreamAsked::of(&body);
    let scope = RunScope::Thread(thread_id);
    let accepted = create_run(&state, Caller::default(), scope, body).await?;
    Ok(stream_response(state, accepted, asked))
}

pub(crate) async fn create_wait(
    State(state): State<AppState>,
    Path(thread_id): Path<String>,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let thread_id = parse_id(&thread_id, "thread")?;
    let scope = RunScope::Thread(thread_id);
    let accepted = create_run(&state, Caller::default(), scope, body).await?;
    Ok(accepted_join_response(state, accepted))
}

pub(crate) async fn create_stateless(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let accepted = create_run(&state, caller, RunScope::Stateless, body).await?;
    Ok(created_response(accepted, true))
}

pub(crate) async fn create_stateless_stream(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let asked = StreamAsked::of(&body);
    let accepted = create_run(&state, Caller::default(), RunScope::Stateless, body).await?;
    Ok(stream_response(state, accepted, asked))
}

pub(crate) async fn create_stateless_wait(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RunCreate>,
) -> ServerResult<Response> {
    let accepted = create_run(&state, Caller::default(), RunScope::Stateless, body).await?;
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

fn run_modes(run: &Run) -> Vec<StreamMode> {
    run.kwargs.stream_modes().modes().to_vec()
}
