//! Accepting a run: a create request checked, turned into the run it asks for, stored under
//! its multitask strategy, and started, or queued, with the runs it replaces stopped.
//!
//! This is the one way runs come in, whatever the route (background, streamed, waited, on a
//! thread or stateless): the HTTP handlers only pick the [`RunScope`] and shape the answer.

use super::Executor;
use crate::hub::RunChannel;
use crate::storage::{NewRun, StorageError};
use crate::{ServerError, ServerResult};
use errand_protocol::{
    CancelAction, IfNotExists, JsonObject, MAX_AFTER_SECONDS, MultitaskStrategy, Nullable,
    OnCompletion, Run, RunCreate, RunKwargs, RunStatus, StreamModes, Timestamp,
};
use serde_json::{Number, Value};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Where a run lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunScope {
    /// On this thread.
    Thread(Uuid),
    /// Stateless, on a thread of its own made for it (deleted when it ends, unless
    /// `on_completion` is `keep`).
    Stateless,
}

/// A request to run: a create body, where the run lives, and whether the caller wants the
/// accepted run as a value beside its JSON.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Where the run lives.
    pub scope: RunScope,
    /// What the client sent.
    pub body: RunCreate,
    /// Answer the run itself in [`AcceptedRun::run`] (a caller in this process), not only
    /// its JSON.
    pub typed: bool,
}

/// A run just accepted.
#[derive(Debug)]
pub struct AcceptedRun {
    /// Its thread.
    pub thread_id: Uuid,
    /// The run.
    pub run_id: Uuid,
    /// The run as wire JSON, as stored (`pending`).
    pub json: String,
    /// The run as a value, when [`RunRequest::typed`] asked for it.
    pub run: Option<Run>,
    /// Its live events, for an answer that follows it (a stream, a wait).
    pub(crate) channel: Arc<RunChannel>,
}

impl Executor {
    /// Accepts a run: checks the request, stores the run under its multitask strategy
    /// (claimed at once when it may start and a worker is free), and stops the runs it
    /// replaces. Refused with 503 while storage cannot record the end of runs.
    pub async fn create_run(&self, request: RunRequest) -> ServerResult<AcceptedRun> {
        let RunRequest {
            scope,
            mut body,
            typed,
        } = request;
        check(&body)?;
        let hosted = self
            .graphs()
            .resolve(&body.assistant_id)?
            .ok_or_else(|| ServerError::NotFound("Thread or assistant not found.".into()))?;
        let (thread_id, if_not_exists, temporary) = match scope {
            RunScope::Thread(thread_id) => (
                thread_id,
                body.if_not_exists.unwrap_or(IfNotExists::Reject),
                false,
            ),
            RunScope::Stateless => (
                Uuid::now_v7(),
                IfNotExists::Create,
                body.on_completion.unwrap_or_default() == OnCompletion::Delete,
            ),
        };
        let now = Timestamp::now();
        let created_at = start_time(now, body.after_seconds.as_ref())?;
        let assistant = &hosted.assistant;
        let mut ids = JsonObject::new();
        ids.insert("graph_id".into(), Value::from(assistant.graph_id.as_str()));
        ids.insert(
            "assistant_id".into(),
            Value::from(assistant.assistant_id.to_string()),
        );
        let run_id = Uuid::now_v7();
        // The body's parts are moved into the run rather than copied.
        let mut metadata = assistant.metadata.clone();
        metadata.extend(body.metadata.take().unwrap_or_default());
        metadata.extend(ids.clone());
        let kwargs = kwargs_of(&mut body, (run_id, thread_id), &ids, &metadata, temporary);
        let strategy = body.multitask_strategy.unwrap_or_default();
        let run = Run {
            run_id,
            thread_id,
            assistant_id: assistant.assistant_id,
            created_at,
            updated_at: now,
            status: RunStatus::Pending,
            metadata,
            kwargs,
            multitask_strategy: strategy,
            extra: JsonObject::new(),
        };

        self.accepting()?;
        // A run that may start at once is claimed by the write that accepts it, for a worker
        // taken now; the worker is given back when the run has to wait.
        let worker = self.free_worker();
        let created = self
            .storage()
            .create_run(NewRun {
                run,
                if_not_exists,
                thread_metadata: ids,
                start: worker.as_ref().map(|_| self.replica()),
            })
            .await
            .map_err(|error| match error {
                StorageError::ThreadNotFound(_) => {
                    ServerError::NotFound("Thread or assistant not found.".into())
                }
                other => other.into(),
            })?;
        let typed = typed.then(|| created.run.clone());
        let bytes = created.json.len();
        let channel = self.submitted(created.run, bytes, created.started.zip(worker));
        let action = match strategy {
            MultitaskStrategy::Rollback => CancelAction::Rollback,
            _ => CancelAction::Interrupt,
        };
        for previous in created.to_cancel {
            self.stop_run(thread_id, previous, action).await?;
        }
        Ok(AcceptedRun {
            thread_id,
            run_id,
            json: created.json,
            run: typed,
            channel,
        })
    }
}

/// Refuses what this server does not do, and what contradicts itself.
fn check(body: &RunCreate) -> ServerResult<()> {
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
    Ok(())
}

/// What the run is asked to do, as the Python server keeps it: the body's input, command and
/// settings, with the run's ids in `config.configurable` and its `metadata` in `config`.
fn kwargs_of(
    body: &mut RunCreate,
    (run_id, thread_id): (Uuid, Uuid),
    ids: &JsonObject,
    metadata: &JsonObject,
    temporary: bool,
) -> RunKwargs {
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
    RunKwargs {
        input: match std::mem::take(&mut body.input) {
            Nullable::Present(input) => Nullable::Present(input),
            Nullable::Absent | Nullable::Null => Nullable::Null,
        },
        command: body.command.take().into(),
        config: Nullable::Present(config),
        context: Nullable::Present(body.context.take().unwrap_or_default()),
        stream_mode: Nullable::Present(StreamModes::Many(body.stream_modes().into_owned())),
        interrupt_before: body.interrupt_before.take().into(),
        interrupt_after: body.interrupt_after.take().into(),
        webhook: Nullable::Null,
        feedback_keys: body.feedback_keys.take().into(),
        temporary: Nullable::Present(temporary),
        subgraphs: Nullable::Present(body.stream_subgraphs.unwrap_or(false)),
        resumable: Nullable::Present(body.stream_resumable.unwrap_or(false)),
        checkpoint_during: Nullable::Absent,
        durability: body.durability.into(),
        on_disconnect: Nullable::Present(body.on_disconnect.unwrap_or_default()),
        extra: std::mem::take(&mut body.extra),
    }
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
