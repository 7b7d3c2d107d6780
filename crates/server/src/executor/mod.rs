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
//!
//! Here: the executor, its start and stop, and the hand-over of runs created claimed. The jobs
//! below it: `config.rs` (its settings), `admission.rs` (accepting a run),
//! `dispatch.rs` (claiming runs), `active.rs` (the runs executing here), `execution.rs` (one
//! run, from its graph to its recorded end), `recorder.rs` (what a run streams), `streams.rs`
//! (storing events as they stream), `cancel.rs` (stopping runs, waiting for ends),
//! `lease.rs` (the heartbeat, the sweep, the signals) and `retention.rs` (the thread TTL).

mod active;
mod admission;
mod cancel;
mod config;
mod dispatch;
mod execution;
mod lease;
mod recorder;
mod retention;
mod streams;
mod writes;

use active::{ActiveRun, Stop};
pub use admission::{AcceptedRun, RunRequest, RunScope};
pub use config::ExecutorConfig;
use dispatch::Due;
use recorder::Charge;

use crate::hub::{RunChannel, RunHub};
use crate::registry::Graphs;
use crate::storage::{ClaimedRun, Leases, ReplicaId, Start, Storage};
use crate::{ServerError, ServerResult};
use errand_protocol::{Run, Timestamp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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
}

impl Inner {
    fn ends_waiting(&self) -> usize {
        self.ends_waiting.load(Ordering::SeqCst)
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
}
