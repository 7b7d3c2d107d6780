//! The writes a run's life cannot go on without (its end, its rollback, a stateless run's
//! thread going with it), tried again with backoff until storage takes them, while this server
//! takes no new work.

use super::Inner;
use crate::storage::{StorageError, StorageResult};
use errand_protocol::backoff::Backoff;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

impl Inner {
    /// Does a write that the life of a run cannot go on without (its end, its rollback),
    /// trying again with backoff until storage takes it. `write` is told how many tries failed
    /// for another reason than a full disk. Meanwhile the run stays claimed here and its
    /// joiners keep waiting, and this server takes no new work ([`Executor::accepting`](super::Executor::accepting)), so
    /// that none piles up behind a full disk; once space returns the write goes through and
    /// the server goes on by itself. A shutdown ends the tries (`None`): the run is left
    /// `running`, and the next start takes it up, as any run a stop cut off. So do
    /// [`GIVE_UP_AFTER`] failures that are not a full disk, which no waiting mends: the server
    /// goes on, and the run waits for the next start's recovery.
    pub(super) async fn until_written<T, F, W>(
        &self,
        run_id: Uuid,
        what: &str,
        mut write: W,
    ) -> Option<T>
    where
        W: FnMut(u32) -> F,
        F: Future<Output = StorageResult<T>>,
    {
        let mut other_failures = 0;
        let mut waiting: Option<Waiting<'_>> = None;
        for tries in 1_u32.. {
            let error = match write(other_failures).await {
                Ok(written) => {
                    if waiting.is_some() {
                        tracing::info!(%run_id, tries, "{what} succeeded after failing");
                    }
                    return Some(written);
                }
                Err(error) => error,
            };
            if let StorageError::Fenced { attempt, .. } = error {
                // Another attempt holds the run now (this one stalled past its lease): what
                // this one did is dropped, by design.
                tracing::warn!(%run_id, attempt, "{what} refused: the run's lease was lost");
                return None;
            }
            if !matches!(error, StorageError::Full(_)) {
                other_failures += 1;
                if other_failures >= GIVE_UP_AFTER {
                    tracing::error!(
                        %run_id,
                        %error,
                        tries,
                        "{what} failed for good; the run is left for the next start to recover"
                    );
                    return None;
                }
            }
            waiting.get_or_insert_with(|| Waiting::new(&self.ends_waiting));
            tracing::error!(
                %run_id,
                %error,
                tries,
                retry_in_ms = RETRY.delay(tries).as_millis(),
                "{what} failed; it is tried again"
            );
            tokio::select! {
                () = tokio::time::sleep(RETRY.delay(tries)) => {}
                () = self.shutdown.cancelled() => return None,
            }
        }
        None
    }
}

/// The waits between tries of a write: 50 ms before the second, doubling up to 5 s, without
/// jitter (one server retries its own writes; there is no crowd to spread out).
const RETRY: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
/// Failures of a write for another reason than a full disk after which it is given up
/// ([`Inner::until_written`]).
const GIVE_UP_AFTER: u32 = 10;
/// Counts a write that waits to be tried again while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
