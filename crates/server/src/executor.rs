//! The run executor: claims pending runs from storage, runs their graphs, records how they end.
//!
//! One dispatcher claims runs in order (storage keeps one running run per thread and FIFO per
//! thread) and spawns a task per run, up to a limit of runs at once. A new run wakes it at once;
//! a delayed run (`after_seconds`) wakes it when due. Everything a run streams goes to the
//! [`RunHub`] for live joiners and, before the run's final status is written, to storage; so
//! whoever sees the final status can replay every event.

use crate::hub::{RunChannel, RunEnd, RunHub};
use crate::registry::Graphs;
use crate::storage::{
    ClaimedRun, FinishedRun, JsonText, NewCheckpoint, Start, Storage, StorageError, StorageResult,
    StoredEvent,
};
use crate::{ServerError, ServerResult};
use errand_protocol::{
    CancelAction, Command, JsonObject, Run, RunMetadata, RunStatus, StreamPart, ThreadStatus,
    Timestamp,
};
use errand_runtime::{Error as RuntimeError, EventSink, Graph, GraphOutput, GraphRun};
use futures::FutureExt;
use serde_json::{Value, json};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How the executor runs.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// The most runs executing at once.
    pub max_concurrent_runs: usize,
    /// A run still going after this long ends in `timeout`.
    pub run_timeout: Duration,
    /// How many times a run cut off by a server stop is tried in all.
    pub max_attempts: u32,
    /// How often an idle dispatcher looks for work it was not told about.
    pub idle_poll: Duration,
    /// The most bytes the runs in flight may hold together, counted as the size of each one's
    /// stored record plus the events it has streamed. Past it no more runs are claimed: they
    /// wait in storage (pending), not in memory, until runs end. One run over the budget is
    /// still taken when none is in flight, so no run waits for ever.
    pub max_in_flight_bytes: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 10_000,
            // The Python server's default (BG_JOB_TIMEOUT_SECS).
            run_timeout: Duration::from_secs(24 * 60 * 60),
            max_attempts: 3,
            idle_poll: Duration::from_secs(1),
            max_in_flight_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why a running run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancel(CancelAction),
    Shutdown,
}

/// A run executing on this server.
#[derive(Debug)]
struct ActiveRun {
    token: CancellationToken,
    stop: Mutex<Option<Stop>>,
}

impl ActiveRun {
    fn stop(&self, reason: Stop) {
        let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        // A cancel that came first is the one that counts; shutdown never overrides it.
        if stop.is_none() {
            *stop = Some(reason);
        }
        self.token.cancel();
    }

    fn reason(&self) -> Option<Stop> {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The executor; cheap to clone.
#[derive(Clone, Debug)]
pub struct Executor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    storage: Arc<dyn Storage>,
    graphs: Graphs,
    hub: RunHub,
    config: ExecutorConfig,
    wake: Notify,
    /// When the next delayed run (`after_seconds`) is due, as far as this server knows.
    next_due: Mutex<Due>,
    active: Mutex<HashMap<Uuid, Arc<ActiveRun>>>,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    /// Writes of runs' ends (or rollbacks) that failed and wait to be tried again: while there
    /// are any, no new run is accepted or claimed.
    ends_waiting: AtomicUsize,
    /// What the runs in flight hold ([`Charge`]).
    in_flight_bytes: AtomicUsize,
}

/// The dispatcher's knowledge of delayed runs. Kept in memory so that an idle dispatcher
/// need not ask storage every time it goes to sleep; storage is asked only when this is
/// `Unknown` (at start, and once the delay it knew of has passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    Unknown,
    Never,
    At(Timestamp),
}

/// A free place in the executor for one run (see [`Executor::free_worker`]).
#[derive(Debug)]
pub(crate) struct Worker(OwnedSemaphorePermit);

/// How a graph's run came out, before it is recorded.
enum Outcome {
    Done(GraphOutput),
    Failed { kind: String, message: String },
    TimedOut,
    Stopped,
}

impl Executor {
    /// An executor over `storage` running `graphs`. Call [`Executor::start`] to run it.
    pub fn new(storage: Arc<dyn Storage>, graphs: Graphs, config: ExecutorConfig) -> Self {
        let slots = Arc::new(Semaphore::new(config.max_concurrent_runs.max(1)));
        Self {
            inner: Arc::new(Inner {
                storage,
                graphs,
                hub: RunHub::default(),
                config,
                wake: Notify::new(),
                next_due: Mutex::new(Due::Unknown),
                active: Mutex::new(HashMap::new()),
                slots,
                shutdown: CancellationToken::new(),
                ends_waiting: AtomicUsize::new(0),
                in_flight_bytes: AtomicUsize::new(0),
            }),
        }
    }

    /// Recovers runs cut off by the last stop, then starts the dispatcher on the current tokio
    /// runtime.
    pub async fn start(&self) -> ServerResult<()> {
        let recovery = self
            .inner
            .storage
            .recover(self.inner.config.max_attempts, Timestamp::now())
            .await?;
        if !recovery.requeued.is_empty() || !recovery.failed.is_empty() {
            tracing::warn!(
                requeued = recovery.requeued.len(),
                failed = recovery.failed.len(),
                "recovered runs cut off by the last stop"
            );
        }
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.dispatch().await });
        Ok(())
    }

    /// Stops taking runs and stops the running ones without recording an end, so the next
    /// start takes them up again. Waits up to `grace` for them to let go.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.cancel();
        for active in self.inner.active_runs() {
            active.stop(Stop::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !self.inner.active_runs().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// True once [`Executor::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// The storage the executor works on.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// The hosted graphs.
    pub fn graphs(&self) -> &Graphs {
        &self.inner.graphs
    }

    pub(crate) fn hub(&self) -> &RunHub {
        &self.inner.hub
    }

    /// Completes when [`Executor::shutdown`] is called.
    pub(crate) async fn stopping(&self) {
        self.inner.shutdown.cancelled().await;
    }

    /// A free worker for a run about to be created, so that storage may claim the run in the
    /// same write that accepts it ([`NewRun::start`](crate::storage::NewRun::start)). None
    /// when every worker is busy (or others wait for one) or the server is stopping.
    pub(crate) fn free_worker(&self) -> Option<Worker> {
        if self.inner.shutdown.is_cancelled()
            || self.inner.ends_waiting() > 0
            || self.inner.over_budget()
        {
            return None;
        }
        // `try_acquire` never takes a permit that the dispatcher is queued for.
        Arc::clone(&self.inner.slots)
            .try_acquire_owned()
            .ok()
            .map(Worker)
    }

    /// Tells the executor that `run` was accepted, and opens its channel for joiners. A run
    /// storage already claimed for `worker` ([`CreatedRun::started`], with its thread's values)
    /// starts here; any other wakes the dispatcher. The channel is answered so a caller can
    /// follow a run that may end (and, if stateless, be deleted) before it looks.
    ///
    /// [`CreatedRun::started`]: crate::storage::CreatedRun::started
    pub(crate) fn submitted(
        &self,
        run: Run,
        bytes: usize,
        started: Option<(Start, Worker)>,
    ) -> Arc<RunChannel> {
        let channel = self.inner.hub.channel(run.run_id);
        match started {
            Some((start, Worker(slot))) => self
                .inner
                .spawn_run(ClaimedRun::first_attempt(run, start, bytes), slot),
            None => {
                if run.created_at > run.updated_at {
                    self.inner.delayed_until(run.created_at);
                }
                self.inner.wake.notify_one();
            }
        }
        channel
    }

    /// Whether new runs are taken: not while the ends of runs wait to be written (storage is
    /// failing, most likely for a full disk), so that no more work is accepted than can be
    /// finished; a 503 tells the client to come back, and the server takes runs again by
    /// itself once the waiting ends are written.
    pub fn accepting(&self) -> ServerResult<()> {
        match self.inner.ends_waiting() {
            0 => Ok(()),
            waiting => Err(ServerError::Unavailable(format!(
                "storage cannot record the end of {waiting} run(s) (is its disk full?): new runs \
                 are refused until it can, which the server finds out by itself"
            ))),
        }
    }

    /// Cancels a run that is pending or running. Answers 404 as the Python server does when
    /// the run does not exist or has already ended.
    pub async fn cancel(
        &self,
        thread_id: Uuid,
        run_id: Uuid,
        action: CancelAction,
    ) -> ServerResult<()> {
        let run = self
            .inner
            .storage
            .get_run(thread_id, run_id)
            .await?
            .ok_or_else(|| ServerError::NotFound("No runs found to cancel.".into()))?;
        if run.status.is_terminal() {
            return Err(ServerError::NotFound(
                "No matching runs to cancel. Please verify the thread ID and run IDs are correct, and the runs haven't been deleted or completed.".into(),
            ));
        }
        self.stop_run(thread_id, run_id, action).await
    }

    /// Stops a run wherever it is: running here (its graph is cancelled and the worker records
    /// the end), pending (ended or deleted at once), or running on a server that died.
    pub(crate) async fn stop_run(
        &self,
        thread_id: Uuid,
        run_id: Uuid,
        action: CancelAction,
    ) -> ServerResult<()> {
        let inner = &self.inner;
        // A run can be between "claimed" and "registered as active" for an instant; look again.
        for _ in 0..50 {
            if let Some(active) = inner.active_run(run_id) {
                active.stop(Stop::Cancel(action));
                return Ok(());
            }
            let Some(run) = inner.storage.get_run(thread_id, run_id).await? else {
                inner.hub.close(run_id);
                return Ok(());
            };
            let now = Timestamp::now();
            let from = match run.status {
                status if status.is_terminal() => return Ok(()),
                // Running, but not here: its server stopped, and nothing else will end it.
                RunStatus::Running if inner.active_run(run_id).is_some() => continue,
                status => status,
            };
            let ended = match action {
                CancelAction::Interrupt => inner
                    .storage
                    .transition_run(run_id, &[from], RunStatus::Interrupted, now)
                    .await?
                    .is_some_and(|run| run.status == RunStatus::Interrupted),
                CancelAction::Rollback => inner.storage.rollback_run(run_id, now).await?,
            };
            if ended {
                inner.hub.close(run_id);
                // A run queued behind it on its thread may start now.
                inner.wake.notify_one();
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Waits until the run has ended and answers it as stored; `None` if it does not exist
    /// (or was rolled back).
    pub async fn wait_for_end(&self, thread_id: Uuid, run_id: Uuid) -> ServerResult<Option<Run>> {
        let inner = &self.inner;
        loop {
            if inner.shutdown.is_cancelled() {
                // Runs in flight are left for the next start; nobody here will see them end.
                return Err(ServerError::ShuttingDown);
            }
            let channel = inner.hub.channel(run_id);
            let mut changes = channel.subscribe();
            let run = inner.storage.get_run(thread_id, run_id).await?;
            match run {
                Some(run) if !run.status.is_terminal() => {}
                other => {
                    // Ended (or gone): its events are in storage; drop the channel if we made it.
                    inner.hub.close(run_id);
                    return Ok(other);
                }
            }
            if channel.is_closed() {
                continue;
            }
            // The executor closes the channel when the run ends; the timeout covers a run
            // ended by another path this server did not see.
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(5), changes.changed()) => {}
                () = inner.shutdown.cancelled() => {}
            }
        }
    }
}

impl Inner {
    fn ends_waiting(&self) -> usize {
        self.ends_waiting.load(Ordering::SeqCst)
    }

    fn active_run(&self, run_id: Uuid) -> Option<Arc<ActiveRun>> {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&run_id)
            .cloned()
    }

    fn active_runs(&self) -> Vec<Arc<ActiveRun>> {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn register(&self, run_id: Uuid) -> Arc<ActiveRun> {
        let active = Arc::new(ActiveRun {
            token: CancellationToken::new(),
            stop: Mutex::new(None),
        });
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run_id, Arc::clone(&active));
        active
    }

    fn unregister(&self, run_id: Uuid) {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&run_id);
    }

    /// Executes a claimed run on its own task, holding `slot` until it ends.
    fn spawn_run(self: &Arc<Self>, claimed: ClaimedRun, slot: OwnedSemaphorePermit) {
        let active = self.register(claimed.run.run_id);
        let charge = Charge::new(Arc::clone(self), claimed.bytes);
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            inner.execute(claimed, active, charge).await;
            drop(slot);
        });
    }

    /// True while runs in flight hold more than their budget: no more are taken from storage.
    fn over_budget(&self) -> bool {
        self.in_flight_bytes.load(Ordering::SeqCst) >= self.config.max_in_flight_bytes
    }

    async fn dispatch(self: Arc<Self>) {
        while !self.shutdown.is_cancelled() {
            let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
                return;
            };
            if self.over_budget() {
                // The runs in flight hold their share of memory: the rest wait in storage until
                // one ends (which wakes this).
                drop(slot);
                self.idle().await;
                continue;
            }
            if self.ends_waiting() > 0 {
                // Storage cannot finish what runs now; new claims would only pile up more.
                drop(slot);
                tokio::select! {
                    () = tokio::time::sleep(self.config.idle_poll) => {}
                    () = self.shutdown.cancelled() => {}
                }
                continue;
            }
            match self.storage.claim_next_run(Timestamp::now()).await {
                Ok(Some(claimed)) => self.spawn_run(claimed, slot),
                Ok(None) => {
                    drop(slot);
                    self.idle().await;
                }
                Err(error) => {
                    drop(slot);
                    tracing::error!(%error, "claiming a run failed");
                    tokio::select! {
                        () = tokio::time::sleep(self.config.idle_poll) => {}
                        () = self.shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Notes a run delayed until `at`.
    fn delayed_until(&self, at: Timestamp) {
        let mut due = self.next_due.lock().unwrap_or_else(PoisonError::into_inner);
        *due = match *due {
            Due::At(known) if known <= at => Due::At(known),
            // Unknown stays unknown: storage may know of an earlier one.
            Due::Unknown => Due::Unknown,
            Due::At(_) | Due::Never => Due::At(at),
        };
    }

    /// When the next delayed run is due, asking storage only when this server does not know.
    async fn next_due(&self, now: Timestamp) -> Option<Timestamp> {
        let known = *self.next_due.lock().unwrap_or_else(PoisonError::into_inner);
        match known {
            Due::At(at) if at > now => return Some(at),
            Due::Never => return None,
            Due::At(_) | Due::Unknown => {}
        }
        let stored = match self.storage.next_pending_after(now).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "looking for delayed runs failed");
                return None;
            }
        };
        let mut due = self.next_due.lock().unwrap_or_else(PoisonError::into_inner);
        // A run submitted meanwhile may be due earlier than what storage answered.
        let merged = match (*due, stored) {
            (Due::At(at), Some(stored)) if at > now => at.min(stored),
            (Due::At(at), None) if at > now => at,
            (_, Some(stored)) => stored,
            (_, None) => {
                *due = Due::Never;
                return None;
            }
        };
        *due = Due::At(merged);
        Some(merged)
    }

    /// Sleeps until a run is submitted or can follow one that ended, a delayed run is due, or
    /// the poll interval passes.
    async fn idle(&self) {
        let mut wait = self.config.idle_poll;
        let now = Timestamp::now();
        if let Some(due) = self.next_due(now).await {
            let until_due = due
                .timestamp_micros()
                .saturating_sub(now.timestamp_micros());
            let until_due = Duration::from_micros(u64::try_from(until_due).unwrap_or(0));
            wait = wait.min(until_due);
        }
        tokio::select! {
            () = self.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = self.shutdown.cancelled() => {}
        }
    }

    async fn execute(&self, claimed: ClaimedRun, active: Arc<ActiveRun>, charge: Charge) {
        let run_id = claimed.run.run_id;
        self.run_to_end(claimed, &active, charge).await;
        self.unregister(run_id);
        self.hub.close(run_id);
    }

    async fn run_to_end(&self, claimed: ClaimedRun, active: &ActiveRun, charge: Charge) {
        let ClaimedRun {
            run,
            attempt,
            start,
            ..
        } = claimed;
        // Keep what the end of the run needs; the rest of the run (its kwargs) goes to the
        // graph or is dropped, so a run in flight holds little memory.
        let Run {
            run_id,
            thread_id,
            metadata,
            mut kwargs,
            ..
        } = run;
        let temporary = kwargs.get("temporary").and_then(Value::as_bool) == Some(true);
        let mut take = |key: &str| kwargs.remove(key).filter(|value| !value.is_null());
        let input = take("input");
        let command = take("command").and_then(|v| serde_json::from_value::<Command>(v).ok());
        let config = match take("config") {
            Some(Value::Object(config)) => config,
            _ => JsonObject::new(),
        };
        drop(kwargs);
        let channel = self.hub.channel(run_id);
        let recorder = Arc::new(Recorder::new(Arc::clone(&channel), charge));
        recorder.record(&StreamPart::Metadata(RunMetadata {
            run_id,
            attempt,
            extra: JsonObject::new(),
        }));

        let graph_id = metadata
            .get("graph_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let outcome = match (start, self.graphs.by_name(&graph_id)) {
            (Start::Unreadable(reason), _) => Outcome::Failed {
                kind: "UnreadableRun".into(),
                message: reason,
            },
            (Start::Values(_), None) => Outcome::Failed {
                kind: "GraphNotFound".into(),
                message: format!("graph `{graph_id}` is not hosted by this server"),
            },
            (Start::Values(values), Some(hosted)) => {
                let graph_run = GraphRun {
                    run_id,
                    thread_id,
                    graph_id: graph_id.clone(),
                    input,
                    command,
                    values: if values.is_null() {
                        Value::Object(JsonObject::new())
                    } else {
                        values
                    },
                    config,
                    cancel: active.token.clone(),
                    events: recorder.sink(),
                };
                self.invoke(&*hosted.graph, graph_run, active).await
            }
        };

        let now = Timestamp::now();
        let stop = active.reason();
        // The states the run streamed, as streamed; the last is the thread's values unless the
        // graph answers others.
        let mut states = recorder.states();
        let (status, thread_status, error, output_values, interrupts) = match outcome {
            Outcome::Stopped if stop == Some(Stop::Shutdown) => {
                // Leave it `running`: the next start puts it back in the queue.
                return;
            }
            Outcome::Stopped if stop == Some(Stop::Cancel(CancelAction::Rollback)) => {
                let rolled_back = self
                    .until_written(run_id, "rolling back a run", |_| {
                        self.storage.rollback_run(run_id, now)
                    })
                    .await;
                if rolled_back.is_some() {
                    // The run that asked for the rollback waits on the thread: it may start now.
                    self.wake.notify_one();
                }
                return;
            }
            Outcome::Stopped => (
                RunStatus::Interrupted,
                ThreadStatus::Interrupted,
                Some(json!({
                    "error": "UserInterrupt",
                    "message": "interrupt requested via POST /threads/{thread_id}/runs/{run_id}/cancel"
                })),
                states.last().cloned(),
                Vec::new(),
            ),
            Outcome::Done(output) => {
                let thread_status = if output.interrupts.is_empty() {
                    ThreadStatus::Idle
                } else {
                    ThreadStatus::Interrupted
                };
                let values = JsonText::of(&output.values);
                drop(output.values);
                // One checkpoint per state the run streamed, and the final values last.
                if states.last() != Some(&values) {
                    states.push(values.clone());
                }
                (
                    RunStatus::Success,
                    thread_status,
                    None,
                    Some(values),
                    output.interrupts,
                )
            }
            Outcome::Failed { kind, message } => {
                let error = json!({ "error": kind, "message": message });
                recorder.record_raw("error", &error);
                (
                    RunStatus::Error,
                    ThreadStatus::Error,
                    Some(error),
                    states.last().cloned(),
                    Vec::new(),
                )
            }
            Outcome::TimedOut => {
                active.token.cancel();
                (
                    RunStatus::Timeout,
                    ThreadStatus::Error,
                    Some(json!({ "error": "TimeoutError", "message": "" })),
                    states.last().cloned(),
                    Vec::new(),
                )
            }
        };

        let last_step = states.len().saturating_sub(1);
        let checkpoints = states
            .into_iter()
            .enumerate()
            .map(|(step, values)| NewCheckpoint {
                checkpoint_id: Uuid::now_v7().to_string(),
                run_id: Some(run_id),
                values,
                metadata: checkpoint_metadata(
                    &metadata, run_id, thread_id, &graph_id, attempt, step,
                ),
                next: Vec::new(),
                interrupts: if step == last_step {
                    interrupts.clone()
                } else {
                    Vec::new()
                },
                created_at: now,
            })
            .collect();
        let ended_interrupts = interrupts.clone();
        let interrupts = if interrupts.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([(run_id.simple().to_string(), interrupts)])
        };
        let finished = FinishedRun {
            run_id,
            status,
            values: output_values,
            thread_status,
            error,
            interrupts,
            // With the final status, in one transaction: whoever reads the final status can
            // replay every event.
            events: channel.snapshot(),
            checkpoints,
            at: now,
        };
        // Past a few failures that are not a full disk, what the run produced is what storage
        // cannot take: its bare end is written instead, so the run does not stay claimed.
        let bare = finished.bare();
        let wrote_bare = AtomicBool::new(false);
        let ended = self
            .until_written(run_id, "recording the end of a run", |failures| {
                let give_up = failures >= BARE_END_AFTER;
                wrote_bare.store(give_up, Ordering::Relaxed);
                self.storage
                    .finish_run(if give_up { &bare } else { &finished })
            })
            .await;
        let Some(ended) = ended else {
            // Stopping, or given up: the run stays `running`, for the next start to take up.
            return;
        };
        if let Some(ended) = ended {
            // Joiners following the run live answer from this, without reading storage.
            channel.set_end(if wrote_bare.load(Ordering::Relaxed) {
                RunEnd {
                    status: bare.status,
                    interrupts: Vec::new(),
                }
            } else {
                RunEnd {
                    status,
                    interrupts: ended_interrupts,
                }
            });
            // The next run on the thread may start now.
            if ended.thread_busy {
                self.wake.notify_one();
            }
        }
        if temporary {
            self.until_written(run_id, "deleting a stateless run's thread", |_| {
                self.storage.delete_thread(thread_id)
            })
            .await;
        }
    }

    /// Runs a graph to its outcome: its output, its error, its timeout, or its stop. A graph
    /// that panics fails its run; it must not take the worker with it.
    async fn invoke(&self, graph: &dyn Graph, graph_run: GraphRun, active: &ActiveRun) -> Outcome {
        let invoke = AssertUnwindSafe(graph.invoke(graph_run))
            .catch_unwind()
            .map(|result| {
                result.unwrap_or_else(|panic| {
                    Err(RuntimeError::failed(
                        "GraphPanicked",
                        panic_message(&*panic),
                    ))
                })
            });
        tokio::select! {
            result = tokio::time::timeout(self.config.run_timeout, invoke) => match result {
                Ok(Ok(output)) => Outcome::Done(output),
                Ok(Err(RuntimeError::Cancelled)) => Outcome::Stopped,
                Ok(Err(error)) => Outcome::Failed {
                    kind: error.kind().to_owned(),
                    message: error.message(),
                },
                Err(_elapsed) => Outcome::TimedOut,
            },
            () = active.token.cancelled() => Outcome::Stopped,
        }
    }

    /// Does a write that the life of a run cannot go on without (its end, its rollback),
    /// trying again with backoff until storage takes it. `write` is told how many tries failed
    /// for another reason than a full disk. Meanwhile the run stays claimed here and its
    /// joiners keep waiting, and this server takes no new work ([`Executor::accepting`]), so
    /// that none piles up behind a full disk; once space returns the write goes through and
    /// the server goes on by itself. A shutdown ends the tries (`None`): the run is left
    /// `running`, and the next start takes it up, as any run a stop cut off. So do
    /// [`GIVE_UP_AFTER`] failures that are not a full disk, which no waiting mends: the server
    /// goes on, and the run waits for the next start's recovery.
    async fn until_written<T, F, W>(&self, run_id: Uuid, what: &str, mut write: W) -> Option<T>
    where
        W: FnMut(u32) -> F,
        F: Future<Output = StorageResult<T>>,
    {
        let mut delay = RETRY_FIRST;
        let mut other_failures = 0;
        let mut waiting: Option<Waiting<'_>> = None;
        for tries in 1_u32.. {
            let error = match write(other_failures).await {
                Ok(written) => {
                    if waiting.is_some() {
                        tracing::info!(%run_id, tries, "{what} succeeded after failing");
                    }
                    return Some(written);
                }
                Err(error) => error,
            };
            if !matches!(error, StorageError::Full(_)) {
                other_failures += 1;
                if other_failures >= GIVE_UP_AFTER {
                    tracing::error!(
                        %run_id,
                        %error,
                        tries,
                        "{what} failed for good; the run is left for the next start to recover"
                    );
                    return None;
                }
            }
            waiting.get_or_insert_with(|| Waiting::new(&self.ends_waiting));
            tracing::error!(
                %run_id,
                %error,
                tries,
                retry_in_ms = delay.as_millis(),
                "{what} failed; it is tried again"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shutdown.cancelled() => return None,
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
        None
    }
}

/// The first wait before a failed write of a run's end is tried again; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest wait between two tries of a run's end.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Failures of a write for another reason than a full disk after which it is given up
/// ([`Inner::until_written`]).
const GIVE_UP_AFTER: u32 = 10;
/// Failures of a run's whole end, for another reason than a full disk, after which its bare
/// end is written instead ([`FinishedRun::bare`]).
const BARE_END_AFTER: u32 = 3;

/// Counts a write that waits to be tried again while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The text of a panic payload, when it has one.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the graph panicked".to_owned())
}

fn checkpoint_metadata(
    run_metadata: &JsonObject,
    run_id: Uuid,
    thread_id: Uuid,
    graph_id: &str,
    attempt: u32,
    step: usize,
) -> JsonObject {
    let mut metadata = run_metadata.clone();
    metadata.insert("graph_id".into(), Value::from(graph_id));
    metadata.insert("run_id".into(), Value::from(run_id.to_string()));
    metadata.insert("thread_id".into(), Value::from(thread_id.to_string()));
    metadata.insert("run_attempt".into(), Value::from(attempt));
    metadata.insert("source".into(), Value::from("loop"));
    metadata.insert("step".into(), Value::from(step));
    metadata
}

/// Numbers a run's events and publishes them to its channel, charging their bytes to the
/// run's share of the in-flight budget. The states the run streamed are read back from the
/// channel when it ends, as the text it holds, rather than kept twice while it runs.
struct Recorder {
    channel: Arc<RunChannel>,
    seq: AtomicU64,
    charge: Charge,
}

impl Recorder {
    fn new(channel: Arc<RunChannel>, charge: Charge) -> Self {
        Self {
            channel,
            seq: AtomicU64::new(0),
            charge,
        }
    }

    fn record(&self, part: &StreamPart) {
        match part.data_json() {
            Ok(data) => self.publish(part.event_name(), data.unwrap_or_default()),
            Err(error) => tracing::warn!(%error, "dropped a stream event that is not JSON"),
        }
    }

    fn record_raw(&self, event: &str, data: &Value) {
        self.publish(event, data.to_string());
    }

    fn publish(&self, event: &str, data: String) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.charge.add(event.len() + data.len());
        self.channel.publish(StoredEvent {
            seq,
            event: event.to_owned(),
            data: data.into(),
        });
    }

    /// Every state the run streamed (its `values` events), oldest first, as streamed.
    fn states(&self) -> Vec<JsonText> {
        self.channel
            .snapshot()
            .into_iter()
            .filter(|event| event.event == "values")
            .map(|event| JsonText::encoded(event.data))
            .collect()
    }

    fn sink(self: &Arc<Self>) -> EventSink {
        let recorder = Arc::clone(self);
        EventSink::new(move |part| recorder.record(&part))
    }
}

/// A run's share of the memory that runs in flight may hold ([`ExecutorConfig::max_in_flight_bytes`]):
/// the bytes of its stored record and of the events it streamed, given back when it ends.
#[derive(Debug)]
struct Charge {
    inner: Arc<Inner>,
    bytes: AtomicUsize,
}

impl Charge {
    fn new(inner: Arc<Inner>, bytes: usize) -> Self {
        inner.in_flight_bytes.fetch_add(bytes, Ordering::SeqCst);
        Self {
            inner,
            bytes: AtomicUsize::new(bytes),
        }
    }

    fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.inner
            .in_flight_bytes
            .fetch_add(bytes, Ordering::SeqCst);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let before = self
            .inner
            .in_flight_bytes
            .fetch_sub(bytes, Ordering::SeqCst);
        // Over budget until now: the dispatcher may be waiting to claim again.
        if before >= self.inner.config.max_in_flight_bytes {
            self.inner.wake.notify_one();
        }
    }
}
