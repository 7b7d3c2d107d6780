//! When a call may be repeated, and how long to wait before it is.

use crate::{ClientError, RetryPolicy};
use errand_protocol::backoff::Backoff;
use http::StatusCode;
use std::time::Duration;

/// Whether a call can be sent twice without a different outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Safety {
    /// Reads, deletes, puts, searches: repeated on connection failures, timeouts and 502/503/504.
    Idempotent,
    /// Creates runs, creates threads without an id, cancels: repeated only when the connection
    /// was never made, so the server never saw it.
    Unsafe,
}

/// True when an answer with this status should be tried again (safe calls only).
pub(crate) fn retry_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

/// True when a failed try may be repeated.
pub(crate) fn retry_error(error: &ClientError, safety: Safety) -> bool {
    match error {
        ClientError::Transport { connect: true, .. } => true,
        ClientError::Transport { .. } | ClientError::Timeout { .. } => safety == Safety::Idempotent,
        _ => false,
    }
}

impl RetryPolicy {
    /// The delay before try `attempt` (1 for the first repeat), with jitter.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        Backoff::new(self.initial_backoff, self.max_backoff)
            .jitter(1.0, 1.0 + self.jitter.clamp(0.0, 1.0))
            .delay(attempt)
    }
}

/// The retries one call has left: every failure of the call, whether the send failed or the
/// answer's body was cut off, spends from this one budget, so a call is sent at most
/// `max_retries + 1` times.
#[derive(Debug)]
pub(crate) struct Retries {
    policy: RetryPolicy,
    spent: u32,
}

impl Retries {
    /// The whole budget of `policy`, nothing spent.
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self { policy, spent: 0 }
    }

    /// After a failure that may be `repeatable`: true, once the backoff has passed, when the
    /// call is to be sent again; false when it is not repeatable or the budget is spent.
    pub(crate) async fn again(&mut self, repeatable: bool) -> bool {
        if !repeatable || self.spent >= self.policy.max_retries {
            return false;
        }
        self.spent += 1;
        sleep(self.policy.delay(self.spent)).await;
        true
    }
}

/// Sleeps `delay` (tokio timer).
pub(crate) async fn sleep(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_bounded_jitter() {
        let policy = RetryPolicy::RECONNECT;
        for (attempt, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0), (40, 5.0)] {
            let delay = policy.delay(attempt).as_secs_f64();
            assert!(
                delay >= base && delay <= base * 1.25,
                "attempt {attempt}: {delay}"
            );
        }
        let none = RetryPolicy {
            jitter: 0.0,
            ..policy
        };
        assert_eq!(none.delay(2), Duration::from_secs(2));
        assert_eq!(RetryPolicy::NEVER.delay(1), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_call_repeats_max_retries_times_then_stops_and_never_when_not_repeatable() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::fast(3)
        };
        let mut retries = Retries::new(policy);
        assert!(!retries.again(false).await, "not repeatable");
        for _ in 0..3 {
            assert!(retries.again(true).await);
        }
        assert!(!retries.again(true).await, "the budget is spent");
        assert!(!Retries::new(RetryPolicy::NEVER).again(true).await);
    }

    #[test]
    fn which_failures_repeat() {
        let refused = ClientError::Transport {
            message: "refused".into(),
            connect: true,
            source: None,
        };
        let reset = ClientError::Transport {
            message: "reset".into(),
            connect: false,
            source: None,
        };
        assert!(retry_error(&refused, Safety::Unsafe));
        assert!(retry_error(&refused, Safety::Idempotent));
        assert!(!retry_error(&reset, Safety::Unsafe));
        assert!(retry_error(&reset, Safety::Idempotent));
        assert!(retry_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retry_status(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
