//! This server's lease on its runs: the heartbeat that renews it, the sweep of other replicas'
//! expired leases, and the signals of other replicas.

use super::{Inner, Stop};
use crate::storage::{Leases, Recovery, Signal, StorageResult};
use errand_protocol::{CancelAction, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use uuid::Uuid;

impl Inner {
    /// How often the lease is renewed and expired leases are swept: three times per lease, so
    /// that two heartbeats can fail before the lease runs out.
    fn heartbeat_period(&self) -> Duration {
        (self.config.lease / 3).max(Duration::from_millis(10))
    }

    /// Renews this server's lease from `now`, and stops the runs that a cancel was stored on.
    pub(super) async fn renew(&self, now: Timestamp) -> StorageResult<()> {
        let until = now.after(self.config.lease);
        let renewal = self.storage.renew_lease(self.replica, until).await?;
        for (run_id, action) in renewal.cancels {
            self.cancel_here(run_id, action);
        }
        Ok(())
    }

    /// Stops a run executing here that a cancel was stored on; false when it does not run
    /// here.
    fn cancel_here(&self, run_id: Uuid, action: CancelAction) -> bool {
        match self.active_run(run_id) {
            Some(active) => {
                active.stop(Stop::Cancel(action));
                true
            }
            None => false,
        }
    }

    /// Says what ending leases did, and lets the dispatcher and the runs' waiters know.
    pub(super) fn recovered(&self, recovery: &Recovery) {
        if recovery.is_empty() {
            return;
        }
        tracing::warn!(
            requeued = recovery.requeued.len(),
            failed = recovery.failed.len(),
            cancelled = recovery.cancelled.len(),
            "took up runs whose server's lease ended"
        );
        for run_id in recovery.failed.iter().chain(&recovery.cancelled) {
            self.hub.close(*run_id);
        }
        self.wake.notify_one();
    }

    /// Renews the lease and sweeps expired ones, once per [`Inner::heartbeat_period`], until
    /// the server stops.
    pub(super) async fn heartbeat(self: Arc<Self>) {
        let period = self.heartbeat_period();
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = self.shutdown.cancelled() => return,
            }
            let now = Timestamp::now();
            if let Err(error) = self.renew(now).await {
                // The runs held here go on; if renewing keeps failing past the lease, another
                // replica takes them up, and this one's writes of them are refused.
                tracing::error!(%error, "renewing this server's lease failed");
            }
            match self
                .storage
                .expire_leases(Leases::DueBy(now), self.config.max_attempts, now)
                .await
            {
                Ok(recovery) => self.recovered(&recovery),
                Err(error) => tracing::error!(%error, "sweeping expired leases failed"),
            }
        }
    }

    /// Acts on other replicas' signals until the server stops.
    pub(super) async fn listen(self: Arc<Self>, mut signals: broadcast::Receiver<Signal>) {
        loop {
            let signal = tokio::select! {
                signal = signals.recv() => signal,
                () = self.shutdown.cancelled() => return,
            };
            match signal {
                Ok(Signal::RunQueued) => self.wake.notify_one(),
                Ok(Signal::CancelRequested { run_id, action }) => {
                    self.cancel_here(run_id, action);
                }
                // Followers of a run held elsewhere listen for its events themselves.
                Ok(Signal::Events { .. }) => {}
                Ok(Signal::RunEnded { run_id }) => {
                    self.hub.close(run_id);
                    self.wake.notify_one();
                }
                // Signals were dropped: act as if each might have come.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "missed signals of other replicas");
                    self.wake.notify_one();
                    if let Err(error) = self.renew(Timestamp::now()).await {
                        tracing::error!(%error, "renewing this server's lease failed");
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}
