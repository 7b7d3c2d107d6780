//! Storing the events of runs in flight as they stream, so that a reader on any replica, or
//! one that reconnects after this server died, sees the stream as it goes.
//!
//! One task stores what every run in flight streamed since the last time, in one call per
//! period ([`ExecutorConfig::event_flush`](super::ExecutorConfig::event_flush)): a commit per
//! event, or per run, would cost more than the runs themselves. A run's end stores the rest
//! with its final status, as before.

use super::{Inner, Stop};
use crate::hub::RunChannel;
use crate::storage::EventBatch;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use uuid::Uuid;

/// The runs in flight, with how far their events are stored.
#[derive(Debug, Default)]
pub(super) struct Streams {
    // Held across a store, so that a run's end waits for a store of its events in progress
    // and then knows exactly which are stored.
    runs: Mutex<HashMap<Uuid, Streaming>>,
}

#[derive(Debug)]
struct Streaming {
    attempt: u32,
    channel: Arc<RunChannel>,
    /// The last `seq` stored.
    stored: u64,
}

impl Streams {
    /// Starts storing the events of a run's attempt as it streams them on `channel`, after
    /// the `stored` ones of earlier attempts.
    pub(super) async fn add(
        &self,
        run_id: Uuid,
        attempt: u32,
        channel: Arc<RunChannel>,
        stored: u64,
    ) {
        self.runs.lock().await.insert(
            run_id,
            Streaming {
                attempt,
                channel,
                stored,
            },
        );
    }

    /// Stops storing a run's events, answering the last `seq` stored: the events after it are
    /// the run's end's to store. `None` when they are not this server's to store (its
    /// attempt lost the run).
    pub(super) async fn remove(&self, run_id: Uuid) -> Option<u64> {
        self.runs
            .lock()
            .await
            .remove(&run_id)
            .map(|streaming| streaming.stored)
    }
}

impl Inner {
    /// Stores the events of the runs in flight once per period, until the server stops.
    pub(super) async fn store_streams(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.event_flush);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.shutdown.cancelled() => return,
            }
            self.store_streamed().await;
        }
    }

    async fn store_streamed(&self) {
        let mut runs = self.streams.runs.lock().await;
        let batches: Vec<EventBatch> = runs
            .iter()
            .filter_map(|(run_id, streaming)| {
                let events = streaming.channel.read_after(streaming.stored).events;
                (!events.is_empty()).then_some(EventBatch {
                    run_id: *run_id,
                    attempt: streaming.attempt,
                    events,
                })
            })
            .collect();
        if batches.is_empty() {
            return;
        }
        let fenced = match self.storage.append_event_batches(&batches).await {
            Ok(fenced) => fenced,
            Err(error) => {
                // Tried again next period; the run's end stores whatever is left.
                tracing::warn!(%error, "storing the events of runs in flight failed");
                return;
            }
        };
        for batch in &batches {
            if let Some(streaming) = runs.get_mut(&batch.run_id)
                && let Some(last) = batch.events.last()
            {
                streaming.stored = last.seq;
            }
        }
        for run_id in fenced {
            // Another attempt holds the run: this one's work is dropped.
            runs.remove(&run_id);
            if let Some(active) = self.active_run(run_id) {
                tracing::warn!(%run_id, "the run's lease was lost; it is stopped here");
                active.stop(Stop::Lost);
            }
        }
    }
}
