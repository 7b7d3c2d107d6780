//! The dispatcher: claims the next run whenever a worker is free and the runs in flight are
//! within their budget, and sleeps until a run is submitted, a delayed run is due, or the
//! poll interval passes.

use super::Inner;
use errand_protocol::Timestamp;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

/// The dispatcher's knowledge of delayed runs. Kept in memory so that an idle dispatcher
/// need not ask storage every time it goes to sleep; storage is asked only when this is
/// `Unknown` (at start, and once the delay it knew of has passed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    Unknown,
    Never,
    At(Timestamp),
}

impl Inner {
    /// True while runs in flight hold more than their budget: no more are taken from storage.
    pub(super) fn over_budget(&self) -> bool {
        self.in_flight_bytes.load(Ordering::SeqCst) >= self.config.max_in_flight_bytes
    }

    pub(super) async fn dispatch(self: Arc<Self>) {
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
    pub(super) fn delayed_until(&self, at: Timestamp) {
        let mut due = self.next_due.lock().unwrap_or_else(PoisonError::into_inner);
        *due = match *due {
            Due::At(known) if known <= at => Due::At(known),
            // Unknown stays unknown: storage may know of an earlier one.
            Due::Unknown => Due::Unknown,
            Due::At(_) | Due::Never => Due::At(at),
        };
    }

    /// When the next delayed run is due, asking storage only when this server does not know.
    pub(super) async fn next_due(&self, now: Timestamp) -> Option<Timestamp> {
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
    pub(super) async fn idle(&self) {
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
