//! Reading a task's live status for a tool, and putting what was read onto its record.

use crate::observe::{Observation, observe};
use crate::shared::Shared;
use crate::spec::AsyncSubAgent;
use crate::task::{self, AsyncTask, TaskStatus};
use std::time::Duration;

/// How long a tool that reads many tasks at once waits for one task's server before it goes
/// by the status on the board.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the task's current run from its server, as the supervisor should see it.
pub(super) async fn observe_task(
    shared: &Shared,
    spec: &AsyncSubAgent,
    record: &AsyncTask,
) -> Result<Observation, String> {
    let client = shared.client(spec).map_err(|error| error.to_string())?;
    let mut observation = observe(&client, record.thread_id, record.run_id)
        .await
        .map_err(|error| error.to_string())?;
    // Cancelled at its deadline: the server says `interrupted`, but the task timed out.
    if record.status == TaskStatus::Timeout && observation.status == TaskStatus::Cancelled {
        observation.status = TaskStatus::Timeout;
        observation.error = Some("The task passed its deadline and was cancelled.".into());
    }
    // Cancelled by the supervisor: it stays cancelled while its run winds down, or when it
    // was cancelled while waiting for a human (its thread still shows the interrupt).
    if record.status == TaskStatus::Cancelled && observation.status.is_unfinished() {
        observation.status = TaskStatus::Cancelled;
        observation.interrupts.clear();
    }
    Ok(observation)
}

/// [`observe_task`] within [`READ_TIMEOUT`]; `None` when the server did not answer in time
/// or the status could not be read.
pub(super) async fn observe_quickly(
    shared: &Shared,
    spec: &AsyncSubAgent,
    record: &AsyncTask,
) -> Option<Observation> {
    match tokio::time::timeout(READ_TIMEOUT, observe_task(shared, spec, record)).await {
        Ok(Ok(observation)) => Some(observation),
        _ => None,
    }
}

/// Puts what a tool read onto the record, and tells the watcher the supervisor saw it.
pub(super) fn record_observation(
    shared: &Shared,
    record: &mut AsyncTask,
    observation: &Observation,
) {
    // A task the supervisor cancelled stays cancelled while its run winds down.
    let status = if record.status == TaskStatus::Cancelled && observation.status.is_unfinished() {
        TaskStatus::Cancelled
    } else {
        observation.status
    };
    record.observed(status, None, task::now());
    record.interrupts = observation.interrupts.clone();
    shared
        .watcher
        .mark_seen(record.task_id, record.run_id, status);
}
