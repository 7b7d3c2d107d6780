//! How long to wait before trying a call again: capped exponential backoff with jitter.
//!
//! It lives here, in the crate every other one builds on, because three layers repeat calls
//! over the wire — the client its requests and stream resumptions, the runtime's providers
//! their model calls, the server's PostgreSQL storage its transactions — and each should back
//! off the same way. It is plain arithmetic on [`Duration`]s: the caller sleeps.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The delay before try `n` (1 for the first repeat) is `initial * 2^(n-1)`, at most `max`,
/// times a random factor between `low` and `high`.
///
/// The random factor spreads out clients that failed together, so they do not all come back
/// at the same instant.
///
/// ```
/// use errand_protocol::backoff::Backoff;
/// use std::time::Duration;
///
/// // Up to a quarter more than the doubled delay.
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1)).jitter(1.0, 1.25);
/// let third = backoff.delay(3);
/// assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(500));
/// // Capped.
/// assert!(backoff.delay(20) <= Duration::from_millis(1250));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay before the first repeat, before jitter.
    pub initial: Duration,
    /// The longest delay, before jitter.
    pub max: Duration,
    /// The smallest random factor.
    pub low: f64,
    /// The largest random factor.
    pub high: f64,
}

impl Backoff {
    /// Doubling from `initial` up to `max`, without jitter.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            low: 1.0,
            high: 1.0,
        }
    }

    /// The same delays times a random factor in `[low, high]` (both at least 0).
    pub const fn jitter(self, low: f64, high: f64) -> Self {
        Self { low, high, ..self }
    }

    /// The delay before try `attempt` (1 for the first repeat; 0 reads as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << doublings).min(self.max);
        let low = self.low.max(0.0);
        let high = self.high.max(low);
        base.mul_f64(low + (high - low) * random_unit())
    }
}

/// A random number in `[0, 1)`, from the standard library's per-process random hash keys: no
/// random-number crate for a wait that only needs to differ between callers.
pub fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let bits = RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed));
    // The top 53 bits, as a fraction of 2^53.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_inside_the_jitter() {
        let backoff =
            Backoff::new(Duration::from_millis(100), Duration::from_millis(1000)).jitter(0.5, 1.0);
        for (attempt, full) in [(0, 100), (1, 100), (2, 200), (3, 400), (4, 800), (5, 1000)] {
            let full = Duration::from_millis(full);
            let delay = backoff.delay(attempt);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?}"
            );
        }
        assert!(backoff.delay(u32::MAX) <= Duration::from_millis(1000));
        let fixed = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(fixed.delay(2), Duration::from_secs(2));
        assert_eq!(fixed.delay(9), Duration::from_secs(5));
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::ZERO)
                .jitter(1.0, 2.0)
                .delay(4),
            Duration::ZERO
        );
    }

    #[test]
    fn random_unit_is_in_range_and_varies() {
        let values: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.windows(2).any(|pair| pair[0] != pair[1]));
    }
}
