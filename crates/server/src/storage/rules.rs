//! The rules every storage backend keeps the same way, as plain functions: what a new run's
//! multitask strategy makes of a busy thread, the status a thread takes as its runs end, and
//! how metadata is matched and merged, which writes an attempt may make, what becomes of a run
//! whose holder's lease ended, and how store namespaces are listed. A backend applies them inside its own transaction; they
//! hold no state and do no I/O, so they are tested here once for all backends.

use super::{StorageError, StorageResult};
use errand_protocol::{
    CancelAction, JsonObject, ListNamespacesResponse, MultitaskStrategy,
    StoreListNamespacesRequest, ThreadStatus,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use uuid::Uuid;

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

/// A thread after `ended` of its `active` runs ended or went (negative when runs became
/// active): how many it has left, its status ([`thread_status`]), and whether its row changes.
pub fn settle(
    current: ThreadStatus,
    active: i64,
    ended: i64,
    settled: Settled,
) -> (i64, ThreadStatus, bool) {
    let left = (active - ended).max(0);
    let status = thread_status(current, left.unsigned_abs(), settled);
    (left, status, ended != 0 || status != current)
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

/// Refuses a write of `attempt` unless that attempt holds the run ([`StorageError::Fenced`]):
/// it is `running` (`status` as stored: not put back to the queue by an expired lease, nor
/// ended) and no later attempt claimed it (`held`, the attempts it counted).
pub fn fence(run_id: Uuid, attempt: u32, status: &str, held: i64) -> StorageResult<()> {
    if status == "running" && held == i64::from(attempt) {
        Ok(())
    } else {
        Err(StorageError::Fenced { run_id, attempt })
    }
}

/// What one run's append of events comes to in a call for several runs
/// ([`Storage::append_event_batches`](super::Storage::append_event_batches)): the run, when
/// its attempt no longer holds it and its events were refused, or none when they were stored.
/// Any other failure fails the whole call.
pub fn refused_append(appended: StorageResult<()>) -> StorageResult<Option<Uuid>> {
    match appended {
        Ok(()) => Ok(None),
        Err(StorageError::Fenced { run_id, .. }) => Ok(Some(run_id)),
        Err(error) => Err(error),
    }
}

/// Whose running runs an end of leases takes up, by the replica ids `Id` as a backend stores
/// them: those of the ended replicas, or every replica's but one's (runs held by nobody, left
/// `running` by a server older than leases, included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeasesEnded<Id> {
    /// The runs these replicas hold.
    Replicas(Vec<Id>),
    /// The runs any other replica, or none, holds.
    AllBut(Id),
}

impl<Id> LeasesEnded<Id> {
    /// True when a run held by `holder` (or by nobody) is taken up.
    pub fn covers<H: ?Sized>(&self, holder: Option<&H>) -> bool
    where
        Id: PartialEq<H>,
    {
        match (self, holder) {
            (Self::Replicas(ended), Some(holder)) => ended.iter().any(|id| id == holder),
            (Self::Replicas(_), None) => false,
            (Self::AllBut(kept), holder) => holder.is_none_or(|holder| kept != holder),
        }
    }
}

/// What becomes of a running run whose holder's lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostRun {
    /// A cancel stored for it ends it `interrupted`.
    Interrupt,
    /// A cancel stored for it rolls it back.
    Rollback,
    /// It waits as `pending` for another attempt.
    Requeue,
    /// It ends in `error`, and its thread too ([`worker_lost_error`]).
    Fail,
}

/// The end of a run that had `attempts` attempts when its holder's lease ended: as the cancel
/// stored for it asks, else queued again while attempts are left (always when its holder gave
/// it back, `giving_back`), else failed.
pub fn lost_run(
    cancel: Option<CancelAction>,
    giving_back: bool,
    attempts: u32,
    max_attempts: u32,
) -> LostRun {
    match cancel {
        Some(CancelAction::Interrupt) => LostRun::Interrupt,
        Some(CancelAction::Rollback) => LostRun::Rollback,
        None if giving_back || attempts < max_attempts => LostRun::Requeue,
        None => LostRun::Fail,
    }
}

/// The error a thread keeps when its run failed for having had `attempts` attempts, each
/// lost with the server running it.
pub fn worker_lost_error(attempts: u32) -> Value {
    json!({
        "error": "WorkerLost",
        "message": format!(
            "the server running the run stopped, and it has had {attempts} attempts"
        ),
    })
}

/// One page of the distinct namespaces among `stored` that end with the request's suffix,
/// each cut to its `max_depth`, in order.
pub fn namespace_page(
    request: &StoreListNamespacesRequest,
    stored: impl IntoIterator<Item = Vec<String>>,
) -> ListNamespacesResponse {
    let suffix = request.suffix.as_deref().unwrap_or(&[]);
    let mut namespaces = BTreeSet::new();
    for mut namespace in stored {
        if !namespace.ends_with(suffix) {
            continue;
        }
        if let Some(depth) = request.max_depth {
            namespace.truncate(depth as usize);
        }
        namespaces.insert(namespace);
    }
    ListNamespacesResponse {
        namespaces: namespaces
            .into_iter()
            .skip(request.offset as usize)
            .take(request.limit as usize)
            .collect(),
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

    #[test]
    fn a_lost_run_ends_as_its_cancel_asks_else_is_queued_again_until_its_attempts_run_out() {
        use CancelAction::{Interrupt, Rollback};
        assert_eq!(lost_run(Some(Interrupt), false, 9, 3), LostRun::Interrupt);
        assert_eq!(lost_run(Some(Rollback), true, 1, 3), LostRun::Rollback);
        assert_eq!(lost_run(None, false, 2, 3), LostRun::Requeue);
        assert_eq!(lost_run(None, false, 3, 3), LostRun::Fail);
        // A run given back by its own replica was not lost by a crash: it never fails here.
        assert_eq!(lost_run(None, true, 3, 3), LostRun::Requeue);
    }

    #[test]
    fn ended_leases_cover_their_replicas_runs_and_all_but_one_covers_unheld_runs_too() {
        let ended = LeasesEnded::Replicas(vec!["a".to_owned()]);
        assert!(ended.covers(Some("a")));
        assert!(!ended.covers(Some("b")));
        assert!(!ended.covers::<str>(None));
        let all_but = LeasesEnded::AllBut("a".to_owned());
        assert!(!all_but.covers(Some("a")));
        assert!(all_but.covers(Some("b")));
        assert!(all_but.covers::<str>(None));
    }

    #[test]
    fn a_stale_attempt_is_fenced_off() {
        let run_id = Uuid::nil();
        assert!(fence(run_id, 2, "running", 2).is_ok());
        assert!(matches!(
            fence(run_id, 1, "running", 2),
            Err(StorageError::Fenced { attempt: 1, .. })
        ));
        assert!(fence(run_id, 2, "pending", 2).is_err());
    }

    #[test]
    fn a_thread_settles_busy_while_runs_are_left_and_changes_only_when_something_moved() {
        let busy = ThreadStatus::Busy;
        assert_eq!(settle(busy, 2, 1, Settled::Idle), (1, busy, true));
        assert_eq!(
            settle(busy, 1, 1, Settled::To(ThreadStatus::Error)),
            (0, ThreadStatus::Error, true)
        );
        assert_eq!(settle(busy, 1, -1, Settled::Idle), (2, busy, true));
        assert_eq!(
            settle(ThreadStatus::Idle, 0, 0, Settled::Idle),
            (0, ThreadStatus::Idle, false)
        );
        // A count gone wrong never goes below none.
        assert_eq!(
            settle(busy, 0, 1, Settled::Idle),
            (0, ThreadStatus::Idle, true)
        );
    }

    #[test]
    fn of_several_appends_a_refused_one_names_its_run_and_any_other_failure_fails_them_all() {
        let run_id = Uuid::from_u128(7);
        assert_eq!(refused_append(Ok(())).ok(), Some(None));
        let refused = refused_append(Err(StorageError::Fenced { run_id, attempt: 1 }));
        assert_eq!(refused.ok(), Some(Some(run_id)));
        assert!(matches!(
            refused_append(Err(StorageError::Full("disk".into()))),
            Err(StorageError::Full(_))
        ));
    }

    #[test]
    fn namespaces_are_listed_distinct_cut_to_depth_and_paged() {
        let request: StoreListNamespacesRequest = match serde_json::from_value(json!({
            "suffix": ["x"], "max_depth": 1, "limit": 1, "offset": 1
        })) {
            Ok(request) => request,
            Err(error) => panic!("a valid request: {error}"),
        };
        let stored = [["b", "x"], ["a", "x"], ["a", "x"], ["c", "y"]]
            .map(|labels| labels.map(str::to_owned).to_vec());
        let page = namespace_page(&request, stored);
        assert_eq!(page.namespaces, vec![vec!["b".to_owned()]]);
    }
}
