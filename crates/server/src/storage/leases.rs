//! Who holds runs, and what replicas sharing a storage tell each other: the types of the
//! lease calls ([`Storage::renew_lease`](super::Storage::renew_lease),
//! [`Storage::expire_leases`](super::Storage::expire_leases)) and of the signals.

use errand_protocol::{CancelAction, Timestamp};
use uuid::Uuid;

/// One server process working on a storage: what a claim records as a run's holder. A new id
/// is drawn at each start, so a process that restarts never mistakes its predecessor's runs
/// for its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaId(Uuid);

impl ReplicaId {
    /// A fresh id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for ReplicaId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whose leases [`Storage::expire_leases`](super::Storage::expire_leases) ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leases {
    /// Those of replicas that have not renewed them by this time: the sweeper's.
    DueBy(Timestamp),
    /// Every replica's but this one's: a storage only one process can open, at its start
    /// (whatever held runs before it has stopped).
    AllBut(ReplicaId),
    /// This replica's own, given back as it stops cleanly; the runs do not count it as a
    /// failed attempt.
    Of(ReplicaId),
}

/// What replicas sharing a storage tell each other (through the database, e.g. PostgreSQL's
/// `NOTIFY`), so that none waits for its next poll. A signal may be lost, as a connection may
/// drop; each is also found by polling, only later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A run became pending, or may start because the run before it on its thread ended.
    RunQueued,
    /// A cancel was stored on a running run ([`Storage::request_cancel`](super::Storage::request_cancel)): its holder stops it.
    CancelRequested {
        /// The run.
        run_id: Uuid,
        /// How to stop it.
        action: CancelAction,
    },
    /// Events of a run were stored: readers following its stream on other replicas read them.
    Events {
        /// The run.
        run_id: Uuid,
    },
    /// A run ended (or was deleted): its waiters look at its final status.
    RunEnded {
        /// The run.
        run_id: Uuid,
    },
}

/// What the holder of runs learns when it renews its lease ([`Storage::renew_lease`](super::Storage::renew_lease)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// Runs it holds that a cancel was stored on, by any replica, with how to stop them.
    pub cancels: Vec<(Uuid, CancelAction)>,
}

/// What [`Storage::expire_leases`](super::Storage::expire_leases) did with runs whose holder's lease ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Put back to `pending` for another attempt.
    pub requeued: Vec<Uuid>,
    /// Out of attempts: ended in `error`.
    pub failed: Vec<Uuid>,
    /// A cancel was stored on them: ended as it asked (`interrupted`, or rolled back).
    pub cancelled: Vec<Uuid>,
}

impl Recovery {
    /// True when no run was touched.
    pub fn is_empty(&self) -> bool {
        self.requeued.is_empty() && self.failed.is_empty() && self.cancelled.is_empty()
    }
}
