//! Live stream events of the runs in flight, for joiners to follow.
//!
//! While a run executes, its events are kept here in memory and every joiner reads them from
//! its own position, so a slow client never makes the run wait and never misses an event. When
//! the run ends its events are already in storage; the channel is closed and dropped, and later
//! joiners replay from storage.

use crate::storage::StoredEvent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;
use uuid::Uuid;

/// The events of one run so far.
#[derive(Debug)]
pub(crate) struct RunChannel {
    state: Mutex<ChannelState>,
    changed: watch::Sender<()>,
}

#[derive(Debug, Default)]
struct ChannelState {
    events: Vec<StoredEvent>,
    closed: bool,
}

/// What a reader gets: the events from its position, and whether more may come.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) events: Vec<StoredEvent>,
    pub(crate) closed: bool,
}

impl RunChannel {
    fn new() -> Self {
        Self {
            state: Mutex::new(ChannelState::default()),
            changed: watch::Sender::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ChannelState> {
        // A panic while holding this lock leaves only a Vec behind; it stays usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an event and wakes the readers.
    pub(crate) fn publish(&self, event: StoredEvent) {
        self.lock().events.push(event);
        self.changed.send_replace(());
    }

    /// Marks the run ended and wakes the readers.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.send_replace(());
    }

    /// Every event so far.
    pub(crate) fn snapshot(&self) -> Vec<StoredEvent> {
        self.lock().events.clone()
    }

    /// The events with `seq > after`.
    pub(crate) fn read_after(&self, after: u64) -> Batch {
        let state = self.lock();
        let start = state.events.partition_point(|event| event.seq <= after);
        Batch {
            events: state.events[start..].to_vec(),
            closed: state.closed,
        }
    }

    /// A receiver that wakes on every change; subscribe before reading so no change is missed.
    pub(crate) fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// True once the run has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// Channels of the runs this server holds in flight.
#[derive(Debug, Default)]
pub(crate) struct RunHub {
    channels: Mutex<HashMap<Uuid, Arc<RunChannel>>>,
}

impl RunHub {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<RunChannel>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The run's channel, made if there is none.
    pub(crate) fn channel(&self, run_id: Uuid) -> Arc<RunChannel> {
        Arc::clone(
            self.lock()
                .entry(run_id)
                .or_insert_with(|| Arc::new(RunChannel::new())),
        )
    }

    /// The run's channel, if it has one.
    pub(crate) fn get(&self, run_id: Uuid) -> Option<Arc<RunChannel>> {
        self.lock().get(&run_id).cloned()
    }

    /// Closes the run's channel and forgets it; readers holding it see it closed.
    pub(crate) fn close(&self, run_id: Uuid) {
        if let Some(channel) = self.lock().remove(&run_id) {
            channel.close();
        }
    }

    /// How many runs have channels (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> StoredEvent {
        StoredEvent {
            seq,
            event: "values".into(),
            data: format!("{{\"n\":{seq}}}"),
        }
    }

    #[tokio::test]
    async fn readers_get_every_event_after_their_position_then_the_close() {
        let hub = RunHub::default();
        let run = Uuid::now_v7();
        let channel = hub.channel(run);
        let mut changes = channel.subscribe();
        channel.publish(event(1));
        channel.publish(event(2));
        changes.changed().await.unwrap();
        let batch = channel.read_after(1);
        assert_eq!(batch.events, vec![event(2)]);
        assert!(!batch.closed);
        hub.close(run);
        assert_eq!(hub.len(), 0);
        assert!(channel.read_after(2).closed);
        assert!(hub.get(run).is_none());
    }
}
