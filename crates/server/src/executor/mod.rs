//! The run executor: claims pending runs from storage, runs their graphs, records how they end.
//!
//! One dispatcher claims runs in order (storage keeps one running run per thread and FIFO per
//! thread) and spawns a task per run, up to a limit of runs at once. A new run wakes it at once;
//! a delayed run (`after_seconds`) wakes it when due. Everything a run streams goes to the
//! [`RunHub`] for live joiners and, before the run's final status is written, to storage; so
//! whoever sees the final status can replay every event.
//!
//! Runs are held under this server's lease ([`ReplicaId`]): a heartbeat renews it, picks up
//! cancels stored for its runs by other replicas, and sweeps the runs of replicas whose lease
//! ran out back into the queue. Every write of a run's attempt is fenced by its attempt
//! number, so a server that stalled past its lease cannot overwrite the attempt that took its
//! run over.

mod admission;
mod execution;
mod lease;
mod recorder;
mod retention;
mod streams;

pub use admission::{AcceptedRun, RunRequest, RunScope};
use recorder::Charge;

use crate::hub::{RunChannel, RunHub};
use crate::registry::Graphs;
use crate::storage::{ClaimedRun, Leases, ReplicaId, Start, Storage};
use crate::{ServerError, ServerResult};
use errand_protocol::{CancelAction, Run, RunStatus, Timestamp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// How long this server holds its runs without renewing its lease: a server that dies
    /// leaves its runs for this long before another takes them up. It renews the lease three
    /// times per period, and sweeps expired leases as often.
    pub lease: Duration,
    /// How often an idle dispatcher looks for work it was not told about.
    pub idle_poll: Duration,
    /// Threads that have not changed for this long, and have no pending or running run, are
    /// deleted with their runs and checkpoints; `None` keeps them for ever.
    pub thread_ttl: Option<Duration>,
    /// How often the events that runs in flight streamed are stored, for readers on other
    /// replicas (and after a crash); a run's end stores the rest with its status.
    pub event_flush: Duration,
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
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_secs(1),
            event_flush: Duration::from_millis(100),
            thread_ttl: None,
            max_in_flight_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why a running run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancel(CancelAction),
    Shutdown,
    /// Another attempt holds the run: its lease ran out while this one stalled.
    Lost,
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
    /// This server, as the holder of the runs it claims.
    replica: ReplicaId,
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
    /// The runs in flight whose events are stored as they stream.
    streams: streams::Streams,
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

impl Executor {
    /// An executor over `storage` running `graphs`. Call [`Executor::start`] to run it.
    pub fn new(storage: Arc<dyn Storage>, graphs: Graphs, config: ExecutorConfig) -> Self {
        let slots = Arc::new(Semaphore::new(config.max_concurrent_runs.max(1)));
        Self {
            inner: Arc::new(Inner {
                storage,
                replica: ReplicaId::random(),
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
                streams: streams::Streams::default(),
            }),
        }
    }

    /// Takes this server's lease, takes up runs whose holders' leases ended (on a storage of
    /// one process, every other holder's: they have stopped), then starts the dispatcher, the
    /// heartbeat and, where storage carries them, the listener of other replicas' signals on
    /// the current tokio runtime.
    pub async fn start(&self) -> ServerResult<()> {
        let inner = &self.inner;
        let now = Timestamp::now();
        inner.renew(now).await?;
        let which = if inner.storage.shared() {
            Leases::DueBy(now)
        } else {
            Leases::AllBut(inner.replica)
        };
        let recovery = inner
            .storage
            .expire_leases(which, inner.config.max_attempts, now)
            .await?;
        inner.recovered(&recovery);
        let dispatcher = Arc::clone(inner);
        tokio::spawn(async move { dispatcher.dispatch().await });
        let heartbeat = Arc::clone(inner);
        tokio::spawn(async move { heartbeat.heartbeat().await });
        let streams = Arc::clone(inner);
        tokio::spawn(async move { streams.store_streams().await });
        if let Some(ttl) = inner.config.thread_ttl {
            let retention = Arc::clone(inner);
            tokio::spawn(async move { retention.retain(ttl).await });
        }
        if let Some(signals) = inner.storage.signals() {
            let listener = Arc::clone(inner);
            tokio::spawn(async move { listener.listen(signals).await });
        }
        Ok(())
    }

    /// Stops taking runs and stops the running ones without recording an end, waiting up to
    /// `grace` for them to let go, then gives them back to the queue, for another replica (or
    /// the next start) to take up at once rather than when the lease would have run out.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.shutdown.cancel();
        for active in inner.active_runs() {
            active.stop(Stop::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while !inner.active_runs().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match inner
            .storage
            .expire_leases(Leases::Of(inner.replica), u32::MAX, Timestamp::now())
            .await
        {
            Ok(recovery) if !recovery.is_empty() => tracing::info!(
                requeued = recovery.requeued.len(),
                cancelled = recovery.cancelled.len(),
                "gave this server's runs back to the queue"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                %error,
                "giving this server's runs back failed: they wait for its lease to run out"
            ),
        }
    }

    /// True while the run executes on this server.
    pub(crate) fn is_executing(&self, run_id: Uuid) -> bool {
        self.inner.active_run(run_id).is_some()
    }

    /// This server, as the holder of the runs it claims.
    pub fn replica(&self) -> ReplicaId {
        self.inner.replica
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
                RunStatus::Running if inner.active_run(run_id).is_some() => continue,
                // Running, but not here: stored for its holder, which stops it when it hears
                // of it (a signal, or its next heartbeat); if the holder died, the sweeper ends
                // it as asked once its lease runs out.
                RunStatus::Running => {
                    if inner.storage.request_cancel(run_id, action).await? {
                        if inner.storage.shared() {
                            return Ok(());
                        }
                        // One process: the holder is this one, between its claim and its
                        // registration; look again.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    continue;
                }
                status => status,
            };
            let ended = match action {
                CancelAction::Interrupt => inner
                    .storage
                    .transition_run(run_id, &[from], RunStatus::Interrupted, now)
                    .await?
                    .is_some_and(|run| run.status == RunStatus::Interrupted),
                CancelAction::Rollback => inner.storage.rollback_run(run_id, None, now).await?,
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
        // Boxed: the task keeps a pointer to the record, which it unpacks at once.
        let claimed = Box::new(claimed);
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
            match self
                .storage
                .claim_next_run(Timestamp::now(), self.replica)
                .await
            {
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
}
