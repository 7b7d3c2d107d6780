//! Retention: threads that ended longer ago than the configured time-to-live
//! ([`ExecutorConfig::thread_ttl`](super::ExecutorConfig::thread_ttl)) are deleted, so that a
//! long-lived database does not grow without bound. Every replica sweeps; pruning a thread
//! twice is harmless.

use super::Inner;
use errand_protocol::{SortOrder, ThreadSearchRequest, ThreadStatus, Timestamp, TtlStrategy};
use std::sync::Arc;
use std::time::Duration;

/// Threads looked at per page of a sweep.
const PAGE: u32 = 200;

impl Inner {
    /// Sweeps expired threads until the server stops; `ttl` is how long a thread is kept
    /// after its last change.
    pub(super) async fn retain(self: Arc<Self>, ttl: Duration) {
        // Often enough that a thread outlives its time by a tenth at most, rarely enough to
        // cost nothing (at least every second, at most every ten minutes).
        let period = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = self.shutdown.cancelled() => return,
            }
            match self.prune_expired(ttl).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "deleted threads past their time-to-live"),
                Err(error) => tracing::warn!(%error, "sweeping expired threads failed"),
            }
        }
    }

    /// Deletes the threads, not busy, last changed more than `ttl` ago; answers how many.
    pub(super) async fn prune_expired(&self, ttl: Duration) -> crate::storage::StorageResult<u64> {
        let now = Timestamp::now();
        let cutoff = Timestamp::from_timestamp_micros(
            now.timestamp_micros()
                .saturating_sub(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)),
        )
        .unwrap_or(now);
        let mut pruned = 0;
        for status in [
            ThreadStatus::Idle,
            ThreadStatus::Error,
            ThreadStatus::Interrupted,
        ] {
            loop {
                let search = ThreadSearchRequest {
                    status: Some(status),
                    limit: PAGE,
                    sort_by: Some("updated_at".into()),
                    sort_order: Some(SortOrder::Asc),
                    ..ThreadSearchRequest::default()
                };
                let threads = self.storage.search_threads(&search).await?;
                let expired: Vec<_> = threads
                    .iter()
                    .take_while(|thread| thread.updated_at < cutoff)
                    .map(|thread| thread.thread_id)
                    .collect();
                if expired.is_empty() {
                    break;
                }
                let count = self
                    .storage
                    .prune_threads(&expired, TtlStrategy::Delete)
                    .await?;
                pruned += count;
                // A page wholly expired and pruned may have more behind it; one that was not
                // (threads that turned busy meanwhile) is left for the next sweep.
                if expired.len() < threads.len() || count == 0 {
                    break;
                }
            }
        }
        Ok(pruned)
    }
}
