//! The rules every storage backend keeps the same way, as plain functions: what a new run's
//! multitask strategy makes of a busy thread, the status a thread takes as its runs end, and
//! how metadata is matched and merged. A backend applies them inside its own transaction; they
//! hold no state and do no I/O, so they are tested here once for all backends.

use super::{StorageError, StorageResult};
use errand_protocol::{JsonObject, MultitaskStrategy, ThreadStatus};

/// What a new run may do on its thread, by its multitask strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It joins the thread's queue, behind any run already there.
    Queue,
    /// It joins the queue, and the thread's active runs are to be cancelled (`interrupt`) or
    /// rolled back (`rollback`) so that it starts next.
    Replace,
}

/// Admits a new run with `strategy` on a thread that is `busy` (has a pending or running run):
/// `reject` refuses a busy thread ([`StorageError::ThreadBusy`]), `interrupt` and `rollback`
/// replace its active runs, `enqueue` waits behind them. On an idle thread every run queues
/// (and, being first, may start at once).
pub fn admit(strategy: MultitaskStrategy, busy: bool) -> StorageResult<Admission> {
    match strategy {
        _ if !busy => Ok(Admission::Queue),
        MultitaskStrategy::Reject => Err(StorageError::ThreadBusy),
        MultitaskStrategy::Interrupt | MultitaskStrategy::Rollback => Ok(Admission::Replace),
        MultitaskStrategy::Enqueue => Ok(Admission::Queue),
    }
}

/// What a thread's status becomes once it has no active run left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// `busy` becomes `idle`; any other status stays (a cancel or a delete of a run leaves an
    /// `error` or `interrupted` thread as it is).
    Idle,
    /// This status (how a finished run left it: `idle`, `error`, `interrupted`).
    To(ThreadStatus),
}

/// The status of a thread that has `active` pending or running runs left, and was `current`:
/// `busy` while any is left, else what its last run settled it to.
pub fn thread_status(current: ThreadStatus, active: u64, settled: Settled) -> ThreadStatus {
    match settled {
        _ if active > 0 => ThreadStatus::Busy,
        Settled::Idle if current == ThreadStatus::Busy => ThreadStatus::Idle,
        Settled::Idle => current,
        Settled::To(status) => status,
    }
}

/// True when every key of `filter` is in `object` with an equal value (a missing object
/// contains only the empty filter): how threads, runs, assistants, checkpoints and store items
/// are searched by metadata or values.
pub fn contains(object: Option<&JsonObject>, filter: &JsonObject) -> bool {
    filter.iter().all(|(key, expected)| {
        object
            .and_then(|object| object.get(key))
            .is_some_and(|found| found == expected)
    })
}

/// Adds `from` into `into`, key by key, a key of `from` replacing the same key of `into`: how
/// a thread's metadata takes a patch or a run's ids.
pub fn merge(into: &mut JsonObject, from: JsonObject) {
    for (key, value) in from {
        into.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: serde_json::Value) -> JsonObject {
        match value {
            serde_json::Value::Object(object) => object,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn a_busy_thread_admits_by_strategy_and_an_idle_one_queues_every_run() {
        use MultitaskStrategy::{Enqueue, Interrupt, Reject, Rollback};
        for strategy in [Reject, Interrupt, Rollback, Enqueue] {
            assert_eq!(admit(strategy, false).ok(), Some(Admission::Queue));
        }
        assert!(matches!(admit(Reject, true), Err(StorageError::ThreadBusy)));
        assert_eq!(admit(Interrupt, true).ok(), Some(Admission::Replace));
        assert_eq!(admit(Rollback, true).ok(), Some(Admission::Replace));
        assert_eq!(admit(Enqueue, true).ok(), Some(Admission::Queue));
    }

    #[test]
    fn a_thread_is_busy_while_a_run_is_left_then_takes_its_settled_status() {
        use ThreadStatus::{Busy, Error, Idle, Interrupted};
        for current in [Idle, Busy, Error, Interrupted] {
            for settled in [Settled::Idle, Settled::To(Error), Settled::To(Idle)] {
                assert_eq!(thread_status(current, 1, settled), Busy);
                assert_eq!(thread_status(current, 7, settled), Busy);
            }
            assert_eq!(
                thread_status(current, 0, Settled::To(Interrupted)),
                Interrupted
            );
        }
        assert_eq!(thread_status(Busy, 0, Settled::Idle), Idle);
        // A cancel or delete does not clear an error or an interrupt left by an earlier run.
        assert_eq!(thread_status(Error, 0, Settled::Idle), Error);
        assert_eq!(thread_status(Interrupted, 0, Settled::Idle), Interrupted);
        assert_eq!(thread_status(Idle, 0, Settled::Idle), Idle);
    }

    #[test]
    fn containment_compares_the_filters_keys_whole() {
        let thread = object(json!({"user": "ann", "tags": ["a", "b"], "n": 1}));
        assert!(contains(Some(&thread), &JsonObject::new()));
        assert!(contains(None, &JsonObject::new()));
        assert!(contains(Some(&thread), &object(json!({"user": "ann"}))));
        assert!(contains(
            Some(&thread),
            &object(json!({"user": "ann", "n": 1}))
        ));
        // Values are compared whole, not by containment of their own.
        assert!(!contains(Some(&thread), &object(json!({"tags": ["a"]}))));
        assert!(!contains(
            Some(&thread),
            &object(json!({"n": 1.0, "x": null}))
        ));
        assert!(!contains(None, &object(json!({"user": "ann"}))));
        assert!(!contains(Some(&thread), &object(json!({"missing": null}))));
    }

    #[test]
    fn merging_replaces_key_by_key_and_keeps_the_rest() {
        let mut into = object(json!({"a": 1, "b": {"deep": true}}));
        merge(&mut into, object(json!({"b": 2, "c": 3})));
        assert_eq!(into, object(json!({"a": 1, "b": 2, "c": 3})));
    }
}
