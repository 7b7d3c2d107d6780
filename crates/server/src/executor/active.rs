//! The runs executing on this server, each with the token that stops its graph and the reason
//! it was stopped for.

use super::Inner;
use errand_protocol::CancelAction;
use std::sync::{Arc, Mutex, PoisonError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why a running run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    Cancel(CancelAction),
    Shutdown,
    /// Another attempt holds the run: its lease ran out while this one stalled.
    Lost,
}

/// A run executing on this server.
#[derive(Debug)]
pub(super) struct ActiveRun {
    pub(super) token: CancellationToken,
    stop: Mutex<Option<Stop>>,
}

impl ActiveRun {
    pub(super) fn stop(&self, reason: Stop) {
        let mut stop = self.stop.lock().unwrap_or_else(PoisonError::into_inner);
        // A cancel that came first is the one that counts; shutdown never overrides it.
        if stop.is_none() {
            *stop = Some(reason);
        }
        self.token.cancel();
    }

    pub(super) fn reason(&self) -> Option<Stop> {
        *self.stop.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    pub(super) fn active_run(&self, run_id: Uuid) -> Option<Arc<ActiveRun>> {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&run_id)
            .cloned()
    }

    pub(super) fn active_runs(&self) -> Vec<Arc<ActiveRun>> {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub(super) fn register(&self, run_id: Uuid) -> Arc<ActiveRun> {
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

    pub(super) fn unregister(&self, run_id: Uuid) {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&run_id);
    }
}
