//! `client.runs()`: create runs (in the background, streamed or waited on), read, list, cancel,
//! join and delete them.

use crate::client::{Call, collect, decode_json};
use crate::path::{PathQuery, RunRef};
use crate::retry::{Safety, sleep};
use crate::stream::{RunStream, run_from_headers};
use crate::{Client, ClientError};
use errand_protocol::{
    CancelAction, Run, RunCancelManyRequest, RunCreate, RunResult, RunStatus, StreamMode,
};
use http::Method;
use uuid::Uuid;

/// The run calls of a [`Client`]; see [`Client::runs`].
///
/// The creating calls take `thread_id: impl Into<Option<Uuid>>`: a thread id runs on that
/// thread, `None` makes a stateless run on a temporary thread (`POST /runs...`).
#[derive(Debug, Clone, Copy)]
pub struct Runs<'a> {
    client: &'a Client,
}

/// Which runs [`Runs::list`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListRuns {
    /// At most this many (default 10).
    pub limit: u32,
    /// Skip this many (default 0).
    pub offset: u32,
    /// Only runs with this status.
    pub status: Option<RunStatus>,
}

impl Default for ListRuns {
    fn default() -> Self {
        Self {
            limit: 10,
            offset: 0,
            status: None,
        }
    }
}

/// How [`Runs::cancel`] cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CancelOptions {
    /// Answer only once the run has stopped.
    pub wait: bool,
    /// Keep what the run wrote (`interrupt`, the default) or delete it with the run (`rollback`).
    pub action: CancelAction,
}

/// How [`Runs::join_stream`] follows a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinStreamOptions {
    /// Only these modes; empty means the run's own.
    pub stream_mode: Vec<StreamMode>,
    /// Resume after this event id (`Last-Event-ID`).
    pub last_event_id: Option<String>,
    /// Cancel the run if this stream goes away.
    pub cancel_on_disconnect: bool,
}

fn action_name(action: CancelAction) -> &'static str {
    match action {
        CancelAction::Interrupt => "interrupt",
        CancelAction::Rollback => "rollback",
    }
}

/// `/threads/{thread_id}/runs{suffix}`, or `/runs{suffix}` for a stateless run.
fn runs_path(thread_id: Option<Uuid>, suffix: &str) -> String {
    match thread_id {
        Some(thread_id) => format!("/threads/{thread_id}/runs{suffix}"),
        None => format!("/runs{suffix}"),
    }
}

impl<'a> Runs<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `POST /threads/{thread_id}/runs` (or `POST /runs`): starts a run in the background and
    /// answers it, `pending`. Never repeated once sent.
    pub async fn create(
        &self,
        thread_id: impl Into<Option<Uuid>>,
        body: &RunCreate,
    ) -> Result<Run, ClientError> {
        let path = runs_path(thread_id.into(), "");
        let call = Call::with_json(Method::POST, path, body, Safety::Unsafe)?;
        self.client.json(&call).await
    }

    /// `POST /threads/{thread_id}/runs/stream` (or `POST /runs/stream`): starts a run and
    /// streams its events; a dropped stream is resumed (see [`RunStream`]). Ask for
    /// `stream_resumable: true` on servers that send event ids only then (the Python server).
    pub async fn stream(
        &self,
        thread_id: impl Into<Option<Uuid>>,
        body: &RunCreate,
    ) -> Result<RunStream, ClientError> {
        let thread_id = thread_id.into();
        let path = runs_path(thread_id, "/stream");
        let call = Call::with_json(Method::POST, path, body, Safety::Unsafe)?.sse(None);
        RunStream::open(self.client.clone(), &call, None, thread_id, String::new()).await
    }

    /// `POST /threads/{thread_id}/runs/wait` (or `POST /runs/wait`): starts a run and answers
    /// its final values, or its error. When the answer is cut off, the run is joined again
    /// (its `Location`) with the reconnect policy; the run itself is never started twice.
    pub async fn wait(
        &self,
        thread_id: impl Into<Option<Uuid>>,
        body: &RunCreate,
    ) -> Result<RunResult, ClientError> {
        let path = runs_path(thread_id.into(), "/wait");
        let call = Call::with_json(Method::POST, path, body, Safety::Unsafe)?;
        let response = self.client.open(&call).await?;
        let run = run_from_headers(&response);
        let (parts, body) = response.into_parts();
        match collect(body, self.client.timeouts().read).await {
            Ok(bytes) => decode_json(&call, parts.status, &parts.headers, &bytes),
            Err(error) => match run {
                Some(run) if error.is_transient() => self.rejoin(run, error).await,
                _ => Err(error),
            },
        }
    }

    /// Joins `run` again after its wait answer was cut off.
    async fn rejoin(&self, run: RunRef, mut error: ClientError) -> Result<RunResult, ClientError> {
        let policy = self.client.reconnect_policy();
        for attempt in 1..=policy.max_retries {
            sleep(policy.delay(attempt)).await;
            match self.join(run.thread_id, run.run_id).await {
                Ok(result) => return Ok(result),
                Err(failure) if failure.is_transient() => error = failure,
                Err(failure) => return Err(failure),
            }
        }
        Err(error)
    }

    /// `GET /threads/{thread_id}/runs/{run_id}`.
    pub async fn get(&self, thread_id: Uuid, run_id: Uuid) -> Result<Run, ClientError> {
        let run = RunRef { thread_id, run_id };
        self.client.json(&Call::get(run.path())).await
    }

    /// `GET /threads/{thread_id}/runs?limit=..&offset=..[&status=..]`: newest first.
    pub async fn list(&self, thread_id: Uuid, options: ListRuns) -> Result<Vec<Run>, ClientError> {
        let path = PathQuery::new(format!("/threads/{thread_id}/runs"))
            .pair("limit", &options.limit.to_string())
            .pair("offset", &options.offset.to_string())
            .maybe("status", options.status.map(RunStatus::as_str))
            .finish();
        self.client.json(&Call::get(path)).await
    }

    /// `POST /threads/{thread_id}/runs/{run_id}/cancel?wait=0&action=interrupt`. A run that
    /// has already ended answers 404 ([`ClientError::NotFound`]). Never repeated once sent.
    pub async fn cancel(
        &self,
        thread_id: Uuid,
        run_id: Uuid,
        options: CancelOptions,
    ) -> Result<(), ClientError> {
        let run = RunRef { thread_id, run_id };
        let path = PathQuery::new(format!("{}/cancel", run.path()))
            .pair("wait", if options.wait { "1" } else { "0" })
            .pair("action", action_name(options.action))
            .finish();
        self.client
            .send(&Call::post_empty(path, Safety::Unsafe))
            .await
    }

    /// `POST /runs/cancel?action=..`: cancels every run with a status, or the listed runs of a
    /// thread.
    pub async fn cancel_many(
        &self,
        request: &RunCancelManyRequest,
        action: CancelAction,
    ) -> Result<(), ClientError> {
        let path = PathQuery::new("/runs/cancel")
            .pair("action", action_name(action))
            .finish();
        let call = Call::with_json(Method::POST, path, request, Safety::Unsafe)?;
        self.client.send(&call).await
    }

    /// `GET /threads/{thread_id}/runs/{run_id}/join`: waits for the run to end and answers its
    /// final values, or its error.
    pub async fn join(&self, thread_id: Uuid, run_id: Uuid) -> Result<RunResult, ClientError> {
        let run = RunRef { thread_id, run_id };
        self.client
            .json(&Call::get(format!("{}/join", run.path())))
            .await
    }

    /// `GET /threads/{thread_id}/runs/{run_id}/stream`: follows a run's events (from the start
    /// for errand; from after `last_event_id` when given), resumed when dropped.
    pub async fn join_stream(
        &self,
        thread_id: Uuid,
        run_id: Uuid,
        options: JoinStreamOptions,
    ) -> Result<RunStream, ClientError> {
        let run = RunRef { thread_id, run_id };
        let mut query = PathQuery::new(String::new());
        if options.cancel_on_disconnect {
            query = query.pair("cancel_on_disconnect", "true");
        }
        for mode in &options.stream_mode {
            query = query.pair("stream_mode", mode.as_str());
        }
        let query = query.finish();
        let call = Call::get(format!("{}/stream{query}", run.path())).sse(options.last_event_id);
        RunStream::open(
            self.client.clone(),
            &call,
            Some(run),
            Some(thread_id),
            query,
        )
        .await
    }

    /// `DELETE /threads/{thread_id}/runs/{run_id}`: stops the run if needed and deletes it.
    pub async fn delete(&self, thread_id: Uuid, run_id: Uuid) -> Result<(), ClientError> {
        let run = RunRef { thread_id, run_id };
        self.client.send(&Call::delete(run.path())).await
    }
}
