//! Stopping a run wherever it is (running here, pending, or held by another replica), and
//! waiting for a run's end.

use super::{Executor, Stop};
use crate::{ServerError, ServerResult};
use errand_protocol::{CancelAction, Run, RunStatus, Timestamp};
use std::time::Duration;
use uuid::Uuid;

impl Executor {
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
