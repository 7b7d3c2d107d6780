//! How the executor runs: its limits, its lease, its polls and its budgets.

use std::time::Duration;

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
