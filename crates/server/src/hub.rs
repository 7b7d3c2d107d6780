//! Live stream events of the runs in flight, for joiners to follow.
//!
//! While a run executes, its events are kept here in memory and every joiner reads them from
//! its own position, so a slow client never makes the run wait and never misses an event. When
//! the run ends its events are already in storage; the channel is closed and dropped, and later
//! joiners replay from storage.

use crate::storage::StoredEvent;
use errand_protocol::{Interrupt, RunStatus};
use std::collections::{HashMap, VecDeque};
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
    /// The last `seq` of the run's stream before this channel's first event: what earlier
    /// attempts stored, found in storage only.
    base: u64,
    events: Vec<StoredEvent>,
    closed: bool,
    end: Option<Arc<RunEnd>>,
}

/// How a run ended, as recorded in storage, kept on its channel so that whoever follows the
/// run live can answer from memory (a join needs no reads).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunEnd {
    /// The final status stored.
    pub(crate) status: RunStatus,
    /// The interrupts it left on its thread.
    pub(crate) interrupts: Vec<Interrupt>,
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

    /// Says that this channel's events follow `base`, stored by earlier attempts of the run.
    pub(crate) fn set_base(&self, base: u64) {
        self.lock().base = base;
    }

    /// The last `seq` before this channel's events ([`RunChannel::set_base`]).
    pub(crate) fn base(&self) -> u64 {
        self.lock().base
    }

    /// Marks the run ended and wakes the readers.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.send_replace(());
    }

    /// Records how the run ended, once that is committed; the channel is closed after.
    pub(crate) fn set_end(&self, end: RunEnd) {
        self.lock().end = Some(Arc::new(end));
    }

    /// How the run ended, when it ended here with its end recorded.
    pub(crate) fn end(&self) -> Option<Arc<RunEnd>> {
        self.lock().end.clone()
    }

    /// The bytes its events hold.
    fn bytes(&self) -> usize {
        self.lock()
            .events
            .iter()
            .map(|event| event.event.len() + event.data.len())
            .sum()
    }

    /// Every event so far.
    pub(crate) fn snapshot(&self) -> Vec<StoredEvent> {
        self.lock().events.clone()
    }

    /// The data of every event named `name` so far, in order: the texts are shared, not copied,
    /// and no other event is.
    pub(crate) fn data_named(&self, name: &str) -> Vec<Arc<str>> {
        self.lock()
            .events
            .iter()
            .filter(|event| event.event == name)
            .map(|event| Arc::clone(&event.data))
            .collect()
    }

    /// The events with `seq > after`.
    pub(crate) fn read_after(&self, after: u64) -> Batch {
        let state = self.lock();
        let start = state.events.partition_point(|event| event.seq <= after);
        Batch {
            events: state.events.get(start..).unwrap_or_default().to_vec(),
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

/// How many ended runs keep their channel (events and end) after they are closed.
const RECENT: usize = 256;

/// The most bytes of events the ended runs kept may hold together: a run that streamed a
/// long answer token by token can hold megabytes, and this cache must stay small.
const RECENT_BYTES: usize = 4 << 20;

/// Channels of the runs this server holds in flight, and of the last few that ended here.
#[derive(Debug, Default)]
pub(crate) struct RunHub {
    channels: Mutex<HashMap<Uuid, Arc<RunChannel>>>,
    /// The last [`RECENT`] runs that ended here with their end recorded (fewer when their
    /// events pass [`RECENT_BYTES`]), oldest first: a
    /// client that creates a run and then joins it often arrives just after a short run
    /// ended, and this answers it without reading the run's events and thread back.
    recent: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    /// Run ids with the bytes their events hold.
    order: VecDeque<(Uuid, usize)>,
    channels: HashMap<Uuid, Arc<RunChannel>>,
    bytes: usize,
}

impl RunHub {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<RunChannel>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The closed channel of a run that ended here lately, with its end recorded. Callers
    /// check first that the run still exists (it may have been deleted since).
    pub(crate) fn ended(&self, run_id: Uuid) -> Option<Arc<RunChannel>> {
        self.recent().channels.get(&run_id).cloned()
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
        let Some(channel) = self.lock().remove(&run_id) else {
            return;
        };
        channel.close();
        if channel.end().is_some() {
            let size = channel.bytes();
            let mut recent = self.recent();
            if recent.channels.insert(run_id, channel).is_none() {
                recent.order.push_back((run_id, size));
                recent.bytes += size;
            }
            while recent.order.len() > RECENT || recent.bytes > RECENT_BYTES {
                let Some((oldest, size)) = recent.order.pop_front() else {
                    break;
                };
                recent.channels.remove(&oldest);
                recent.bytes -= size;
            }
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
            data: format!("{{\"n\":{seq}}}").into(),
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
        // Closed without an end recorded (stopped, rolled back): not kept.
        assert!(hub.ended(run).is_none());
    }

    #[test]
    fn the_last_runs_that_ended_keep_their_events_and_end() {
        let hub = RunHub::default();
        let runs: Vec<Uuid> = (0..=RECENT).map(|_| Uuid::now_v7()).collect();
        for run in &runs {
            let channel = hub.channel(*run);
            channel.publish(event(1));
            channel.set_end(RunEnd {
                status: RunStatus::Success,
                interrupts: Vec::new(),
            });
            hub.close(*run);
        }
        assert_eq!(hub.len(), 0);
        // The oldest was let go; the others answer with their events and end.
        assert!(hub.ended(runs[0]).is_none());
        let kept = hub.ended(runs[RECENT]).expect("kept");
        assert_eq!(kept.snapshot(), vec![event(1)]);
        assert_eq!(kept.end().map(|end| end.status), Some(RunStatus::Success));
        assert_eq!(hub.recent().order.len(), RECENT);

        // A run with a large stream pushes older ones out, and goes itself when too large.
        let big = Uuid::now_v7();
        let channel = hub.channel(big);
        channel.publish(StoredEvent {
            seq: 1,
            event: "values".into(),
            data: "x".repeat(RECENT_BYTES / 2).into(),
        });
        channel.set_end(RunEnd {
            status: RunStatus::Success,
            interrupts: Vec::new(),
        });
        hub.close(big);
        assert!(hub.ended(big).is_some());
        assert!(hub.recent().bytes <= RECENT_BYTES);
        let huge = Uuid::now_v7();
        let channel = hub.channel(huge);
        channel.publish(StoredEvent {
            seq: 1,
            event: "values".into(),
            data: "x".repeat(RECENT_BYTES + 1).into(),
        });
        channel.set_end(RunEnd {
            status: RunStatus::Success,
            interrupts: Vec::new(),
        });
        hub.close(huge);
        assert!(hub.ended(huge).is_none());
        assert_eq!(hub.recent().bytes, 0);
    }
}
