//! Executing a claimed run: its graph, its outcome, and the writes of its end.

use super::recorder::{Charge, Recorder, checkpoint_metadata, panic_message};
use super::{ActiveRun, Inner, Stop};
use crate::hub::RunEnd;
use crate::storage::{
    ClaimedRun, FinishedRun, JsonText, NewCheckpoint, Start, StorageError, StorageResult,
};
use errand_protocol::{
    CancelAction, JsonObject, Run, RunMetadata, RunStatus, StreamPart, ThreadStatus, Timestamp,
};
use errand_runtime::{Error as RuntimeError, Graph, GraphOutput, GraphRun};
use futures::FutureExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// How a graph's run came out, before it is recorded.
enum Outcome {
    Done(GraphOutput),
    Failed { kind: String, message: String },
    TimedOut,
    Stopped,
}

/// What a run in flight keeps of its claimed record: the few fields its execution and its end
/// need. The record is unpacked before the first await, so that the task of each run in flight
/// holds this, not the whole run (its kwargs alone are most of a kilobyte, held several times
/// over by the nested futures of the run's task).
struct InFlight {
    run_id: Uuid,
    thread_id: Uuid,
    attempt: u32,
    events_stored: u64,
    metadata: JsonObject,
    temporary: bool,
    input: Option<Value>,
    command: Option<errand_protocol::Command>,
    config: JsonObject,
    start: Start,
}

impl InFlight {
    fn of(claimed: Box<ClaimedRun>) -> Self {
        let ClaimedRun {
            run,
            attempt,
            start,
            events_stored,
            ..
        } = *claimed;
        let Run {
            run_id,
            thread_id,
            metadata,
            kwargs,
            ..
        } = run;
        Self {
            run_id,
            thread_id,
            attempt,
            events_stored,
            metadata,
            temporary: kwargs.is_temporary(),
            input: kwargs.input.into_option(),
            command: kwargs.command.into_option(),
            config: kwargs.config.into_option().unwrap_or_default(),
            start,
        }
    }
}

impl Inner {
    pub(super) async fn execute(
        &self,
        claimed: Box<ClaimedRun>,
        active: Arc<ActiveRun>,
        charge: Charge,
    ) {
        let run = InFlight::of(claimed);
        let run_id = run.run_id;
        self.run_to_end(run, &active, charge).await;
        self.unregister(run_id);
        self.hub.close(run_id);
    }

    async fn run_to_end(&self, run: InFlight, active: &ActiveRun, charge: Charge) {
        let InFlight {
            run_id,
            thread_id,
            attempt,
            events_stored,
            metadata,
            temporary,
            input,
            command,
            config,
            start,
        } = run;
        let channel = self.hub.channel(run_id);
        self.streams
            .add(run_id, attempt, Arc::clone(&channel), events_stored)
            .await;
        let recorder = Arc::new(Recorder::new(Arc::clone(&channel), charge, events_stored));
        recorder.record(&StreamPart::Metadata(RunMetadata {
            run_id,
            attempt,
            extra: JsonObject::new(),
        }));

        let graph_id = metadata
            .get("graph_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let outcome = match (start, self.graphs.by_name(&graph_id)) {
            (Start::Unreadable(reason), _) => Outcome::Failed {
                kind: "UnreadableRun".into(),
                message: reason,
            },
            (Start::Values(_), None) => Outcome::Failed {
                kind: "GraphNotFound".into(),
                message: format!("graph `{graph_id}` is not hosted by this server"),
            },
            (Start::Values(values), Some(hosted)) => {
                let graph_run = GraphRun {
                    run_id,
                    thread_id,
                    graph_id: graph_id.clone(),
                    input,
                    command,
                    values: if values.is_null() {
                        Value::Object(JsonObject::new())
                    } else {
                        values
                    },
                    config,
                    cancel: active.token.clone(),
                    events: recorder.sink(),
                };
                self.invoke(&*hosted.graph, graph_run, active).await
            }
        };

        let stored = self.streams.remove(run_id).await.unwrap_or(events_stored);
        let now = Timestamp::now();
        let stop = active.reason();
        // The states the run streamed, as streamed; the last is the thread's values unless the
        // graph answers others.
        let mut states = recorder.states();
        let (status, thread_status, error, output_values, interrupts) = match outcome {
            Outcome::Stopped if matches!(stop, Some(Stop::Shutdown | Stop::Lost)) => {
                // Leave it as it is: a shutdown gives it back to the queue; a lost lease means
                // another attempt has it.
                return;
            }
            Outcome::Stopped if stop == Some(Stop::Cancel(CancelAction::Rollback)) => {
                let rolled_back = self
                    .until_written(run_id, "rolling back a run", |_| {
                        self.storage.rollback_run(run_id, Some(attempt), now)
                    })
                    .await;
                if rolled_back.is_some() {
                    // The run that asked for the rollback waits on the thread: it may start now.
                    self.wake.notify_one();
                }
                return;
            }
            Outcome::Stopped => (
                RunStatus::Interrupted,
                ThreadStatus::Interrupted,
                Some(json!({
                    "error": "UserInterrupt",
                    "message": "interrupt requested via POST /threads/{thread_id}/runs/{run_id}/cancel"
                })),
                states.last().cloned(),
                Vec::new(),
            ),
            Outcome::Done(output) => {
                let thread_status = if output.interrupts.is_empty() {
                    ThreadStatus::Idle
                } else {
                    ThreadStatus::Interrupted
                };
                let values = JsonText::of(&output.values);
                drop(output.values);
                // One checkpoint per state the run streamed, and the final values last.
                if states.last() != Some(&values) {
                    states.push(values.clone());
                }
                (
                    RunStatus::Success,
                    thread_status,
                    None,
                    Some(values),
                    output.interrupts,
                )
            }
            Outcome::Failed { kind, message } => {
                let error = json!({ "error": kind, "message": message });
                recorder.record_raw("error", &error);
                (
                    RunStatus::Error,
                    ThreadStatus::Error,
                    Some(error),
                    states.last().cloned(),
                    Vec::new(),
                )
            }
            Outcome::TimedOut => {
                active.token.cancel();
                (
                    RunStatus::Timeout,
                    ThreadStatus::Error,
                    Some(json!({ "error": "TimeoutError", "message": "" })),
                    states.last().cloned(),
                    Vec::new(),
                )
            }
        };

        let last_step = states.len().saturating_sub(1);
        let checkpoints = states
            .into_iter()
            .enumerate()
            .map(|(step, values)| NewCheckpoint {
                checkpoint_id: Uuid::now_v7().to_string(),
                run_id: Some(run_id),
                values,
                metadata: checkpoint_metadata(
                    &metadata, run_id, thread_id, &graph_id, attempt, step,
                ),
                next: Vec::new(),
                interrupts: if step == last_step {
                    interrupts.clone()
                } else {
                    Vec::new()
                },
                created_at: now,
            })
            .collect();
        let ended_interrupts = interrupts.clone();
        let interrupts = if interrupts.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([(run_id.simple().to_string(), interrupts)])
        };
        let finished = FinishedRun {
            run_id,
            attempt,
            status,
            values: output_values,
            thread_status,
            error,
            interrupts,
            // The rest of the stream, with the final status, in one transaction: whoever
            // reads the final status can replay every event.
            events: channel.read_after(stored).events,
            checkpoints,
            at: now,
        };
        // Past a few failures that are not a full disk, what the run produced is what storage
        // cannot take: its bare end is written instead, so the run does not stay claimed.
        let bare = finished.bare();
        let wrote_bare = AtomicBool::new(false);
        let ended = self
            .until_written(run_id, "recording the end of a run", |failures| {
                let give_up = failures >= BARE_END_AFTER;
                wrote_bare.store(give_up, Ordering::Relaxed);
                self.storage
                    .finish_run(if give_up { &bare } else { &finished })
            })
            .await;
        let Some(ended) = ended else {
            // Stopping, or given up: the run stays `running`, for the next start to take up.
            return;
        };
        if let Some(ended) = ended {
            // Joiners following the run live answer from this, without reading storage.
            channel.set_end(if wrote_bare.load(Ordering::Relaxed) {
                RunEnd {
                    status: bare.status,
                    interrupts: Vec::new(),
                }
            } else {
                RunEnd {
                    status,
                    interrupts: ended_interrupts,
                }
            });
            // The next run on the thread may start now.
            if ended.thread_busy {
                self.wake.notify_one();
            }
        }
        if temporary {
            self.until_written(run_id, "deleting a stateless run's thread", |_| {
                self.storage.delete_thread(thread_id)
            })
            .await;
        }
    }

    /// Runs a graph to its outcome: its output, its error, its timeout, or its stop. A graph
    /// that panics fails its run; it must not take the worker with it.
    async fn invoke(&self, graph: &dyn Graph, graph_run: GraphRun, active: &ActiveRun) -> Outcome {
        let invoke = AssertUnwindSafe(graph.invoke(graph_run))
            .catch_unwind()
            .map(|result| {
                result.unwrap_or_else(|panic| {
                    Err(RuntimeError::failed(
                        "GraphPanicked",
                        panic_message(&*panic),
                    ))
                })
            });
        tokio::select! {
            result = tokio::time::timeout(self.config.run_timeout, invoke) => match result {
                Ok(Ok(output)) => Outcome::Done(output),
                Ok(Err(RuntimeError::Cancelled)) => Outcome::Stopped,
                Ok(Err(error)) => Outcome::Failed {
                    kind: error.kind().to_owned(),
                    message: error.message(),
                },
                Err(_elapsed) => Outcome::TimedOut,
            },
            () = active.token.cancelled() => Outcome::Stopped,
        }
    }

    /// Does a write that the life of a run cannot go on without (its end, its rollback),
    /// trying again with backoff until storage takes it. `write` is told how many tries failed
    /// for another reason than a full disk. Meanwhile the run stays claimed here and its
    /// joiners keep waiting, and this server takes no new work ([`Executor::accepting`]), so
    /// that none piles up behind a full disk; once space returns the write goes through and
    /// the server goes on by itself. A shutdown ends the tries (`None`): the run is left
    /// `running`, and the next start takes it up, as any run a stop cut off. So do
    /// [`GIVE_UP_AFTER`] failures that are not a full disk, which no waiting mends: the server
    /// goes on, and the run waits for the next start's recovery.
    async fn until_written<T, F, W>(&self, run_id: Uuid, what: &str, mut write: W) -> Option<T>
    where
        W: FnMut(u32) -> F,
        F: Future<Output = StorageResult<T>>,
    {
        let mut delay = RETRY_FIRST;
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
                retry_in_ms = delay.as_millis(),
                "{what} failed; it is tried again"
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shutdown.cancelled() => return None,
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
        None
    }
}

/// The first wait before a failed write of a run's end is tried again; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest wait between two tries of a run's end.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Failures of a write for another reason than a full disk after which it is given up
/// ([`Inner::until_written`]).
const GIVE_UP_AFTER: u32 = 10;
/// Failures of a run's whole end, for another reason than a full disk, after which its bare
/// end is written instead ([`FinishedRun::bare`]).
const BARE_END_AFTER: u32 = 3;

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
