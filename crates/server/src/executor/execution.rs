//! Executing a claimed run: its graph, its outcome, and the writes of its end.

use super::recorder::{Charge, Recorder, checkpoint_metadata, panic_message};
use super::{ActiveRun, Inner, Stop};
use crate::hub::{RunChannel, RunEnd};
use crate::storage::{ClaimedRun, FinishedRun, JsonText, NewCheckpoint, Start, StoredEvent};
use errand_protocol::{
    CancelAction, Interrupt, JsonObject, Run, RunMetadata, RunStatus, StreamPart, ThreadStatus,
    Timestamp,
};
use errand_runtime::{Error as RuntimeError, Graph, GraphOutput, GraphRun};
use futures::FutureExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

/// How a graph's run came out, before it is recorded.
enum Outcome {
    Done(GraphOutput),
    Failed { kind: String, message: String },
    TimedOut,
    Stopped,
}

/// What a run in flight keeps of its claimed record to record its end. The record is unpacked
/// before the first await, so that the task of each run in flight holds this and
/// [`GraphStart`], not the whole run (its kwargs alone are most of a kilobyte, held several
/// times over by the nested futures of the run's task).
struct InFlight {
    run_id: Uuid,
    thread_id: Uuid,
    attempt: u32,
    events_stored: u64,
    metadata: JsonObject,
    /// The graph the run asks for, as its metadata names it.
    graph_id: String,
    /// A stateless run: its thread goes with it.
    temporary: bool,
}

/// What the graph of a run in flight starts from; given up to the graph when it starts.
struct GraphStart {
    input: Option<Value>,
    command: Option<errand_protocol::Command>,
    config: JsonObject,
    start: Start,
}

impl InFlight {
    fn of(claimed: Box<ClaimedRun>) -> (Self, GraphStart) {
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
        let graph_id = metadata
            .get("graph_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let in_flight = Self {
            run_id,
            thread_id,
            attempt,
            events_stored,
            metadata,
            graph_id,
            temporary: kwargs.is_temporary(),
        };
        let graph_start = GraphStart {
            input: kwargs.input.into_option(),
            command: kwargs.command.into_option(),
            config: kwargs.config.into_option().unwrap_or_default(),
            start,
        };
        (in_flight, graph_start)
    }

    /// The end to record of the run: how it ended, the checkpoints of the `states` it
    /// streamed, and the `events` of its stream not stored yet.
    fn finished(
        &self,
        ending: Ending,
        states: Vec<JsonText>,
        events: Vec<StoredEvent>,
        at: Timestamp,
    ) -> FinishedRun {
        let checkpoints = self.checkpoints(states, &ending.interrupts, at);
        FinishedRun {
            run_id: self.run_id,
            attempt: self.attempt,
            status: ending.status,
            values: ending.values,
            thread_status: ending.thread_status,
            error: ending.error,
            interrupts: if ending.interrupts.is_empty() {
                BTreeMap::new()
            } else {
                BTreeMap::from([(self.run_id.simple().to_string(), ending.interrupts)])
            },
            events: events.into(),
            checkpoints,
            at,
        }
    }

    /// The checkpoints of the run's end: one per state it streamed, oldest first, the last
    /// holding the interrupts it stopped at.
    fn checkpoints(
        &self,
        states: Vec<JsonText>,
        interrupts: &[Interrupt],
        at: Timestamp,
    ) -> Vec<NewCheckpoint> {
        let last_step = states.len().saturating_sub(1);
        states
            .into_iter()
            .enumerate()
            .map(|(step, values)| NewCheckpoint {
                checkpoint_id: Uuid::now_v7().to_string(),
                run_id: Some(self.run_id),
                values,
                metadata: checkpoint_metadata(
                    &self.metadata,
                    self.run_id,
                    self.thread_id,
                    &self.graph_id,
                    self.attempt,
                    step,
                ),
                next: Vec::new(),
                interrupts: if step == last_step {
                    interrupts.to_vec()
                } else {
                    Vec::new()
                },
                created_at: at,
            })
            .collect()
    }
}

/// How a run ends, as its end is written: its status and its thread's, the error shown on the
/// thread, the values it leaves there, and the interrupts it stopped at.
struct Ending {
    status: RunStatus,
    thread_status: ThreadStatus,
    error: Option<Value>,
    values: Option<JsonText>,
    interrupts: Vec<Interrupt>,
}

impl Ending {
    /// The end of a run whose graph came out as `outcome`, having streamed `states` (the last
    /// of which is the thread's values unless the graph answers others, which are added to
    /// them). A failure is streamed as an `error` event, as the Python server does.
    fn of(outcome: Outcome, states: &mut Vec<JsonText>, recorder: &Recorder) -> Self {
        let last_state = states.last().cloned();
        match outcome {
            Outcome::Stopped => Self {
                status: RunStatus::Interrupted,
                thread_status: ThreadStatus::Interrupted,
                error: Some(json!({
                    "error": "UserInterrupt",
                    "message": "interrupt requested via POST /threads/{thread_id}/runs/{run_id}/cancel"
                })),
                values: last_state,
                interrupts: Vec::new(),
            },
            Outcome::Done(output) => {
                let thread_status = if output.interrupts.is_empty() {
                    ThreadStatus::Idle
                } else {
                    ThreadStatus::Interrupted
                };
                let values = JsonText::of(&output.values);
                drop(output.values);
                // One checkpoint per state the run streamed, and the final values last.
                if last_state.as_ref() != Some(&values) {
                    states.push(values.clone());
                }
                Self {
                    status: RunStatus::Success,
                    thread_status,
                    error: None,
                    values: Some(values),
                    interrupts: output.interrupts,
                }
            }
            Outcome::Failed { kind, message } => {
                let error = json!({ "error": kind, "message": message });
                recorder.record_raw("error", &error);
                Self {
                    status: RunStatus::Error,
                    thread_status: ThreadStatus::Error,
                    error: Some(error),
                    values: last_state,
                    interrupts: Vec::new(),
                }
            }
            Outcome::TimedOut => Self {
                status: RunStatus::Timeout,
                thread_status: ThreadStatus::Error,
                error: Some(json!({ "error": "TimeoutError", "message": "" })),
                values: last_state,
                interrupts: Vec::new(),
            },
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
        let (run, graph_start) = InFlight::of(claimed);
        self.run_to_end(&run, graph_start, &active, charge).await;
        self.unregister(run.run_id);
        self.hub.close(run.run_id);
    }

    /// A run's life here: its graph runs to an outcome, which is recorded as the run's end, or
    /// left for another attempt, or rolled back, as the reason it stopped for asks.
    async fn run_to_end(
        &self,
        run: &InFlight,
        graph_start: GraphStart,
        active: &ActiveRun,
        charge: Charge,
    ) {
        let run_id = run.run_id;
        let channel = self.hub.channel(run_id);
        self.streams
            .add(run_id, run.attempt, Arc::clone(&channel), run.events_stored)
            .await;
        let recorder = Arc::new(Recorder::new(
            Arc::clone(&channel),
            charge,
            run.events_stored,
        ));
        recorder.record(&StreamPart::Metadata(RunMetadata {
            run_id,
            attempt: run.attempt,
            extra: JsonObject::new(),
        }));
        let outcome = self.run_graph(run, graph_start, &recorder, active).await;
        let stored = self
            .streams
            .remove(run_id)
            .await
            .unwrap_or(run.events_stored);
        let now = Timestamp::now();
        match (&outcome, active.reason()) {
            // Left as it is: a shutdown gives it back to the queue; a lost lease means another
            // attempt has it.
            (Outcome::Stopped, Some(Stop::Shutdown | Stop::Lost)) => return,
            (Outcome::Stopped, Some(Stop::Cancel(CancelAction::Rollback))) => {
                self.roll_back(run, now).await;
                return;
            }
            _ => {}
        }
        let mut states = recorder.states();
        if matches!(outcome, Outcome::TimedOut) {
            // Whatever the graph left running is told to stop.
            active.token.cancel();
        }
        let ending = Ending::of(outcome, &mut states, &recorder);
        // The rest of the stream goes with the final status, in one transaction: whoever
        // reads the final status can replay every event.
        let events = channel.read_after(stored).events;
        let finished = run.finished(ending, states, events, now);
        if !self.record_end(finished, &channel).await {
            // Stopping, or given up: the run stays `running`, for the next start to take up.
            return;
        }
        if run.temporary {
            self.until_written(run_id, "deleting a stateless run's thread", |_| {
                self.storage.delete_thread(run.thread_id)
            })
            .await;
        }
    }

    /// Starts the run's graph, or fails the run when it cannot start (its record cannot be
    /// read, or its graph is not hosted here), and runs it to its outcome.
    async fn run_graph(
        &self,
        run: &InFlight,
        graph_start: GraphStart,
        recorder: &Arc<Recorder>,
        active: &ActiveRun,
    ) -> Outcome {
        let GraphStart {
            input,
            command,
            config,
            start,
        } = graph_start;
        let values = match start {
            Start::Unreadable(reason) => {
                return Outcome::Failed {
                    kind: "UnreadableRun".into(),
                    message: reason,
                };
            }
            Start::Values(values) => values,
        };
        let Some(hosted) = self.graphs.by_name(&run.graph_id) else {
            return Outcome::Failed {
                kind: "GraphNotFound".into(),
                message: format!("graph `{}` is not hosted by this server", run.graph_id),
            };
        };
        let graph_run = GraphRun {
            run_id: run.run_id,
            thread_id: run.thread_id,
            graph_id: run.graph_id.clone(),
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

    /// Rolls back a run its cancel asked to roll back: deleted with what it wrote.
    async fn roll_back(&self, run: &InFlight, at: Timestamp) {
        let rolled_back = self
            .until_written(run.run_id, "rolling back a run", |_| {
                self.storage.rollback_run(run.run_id, Some(run.attempt), at)
            })
            .await;
        if rolled_back.is_some() {
            // The run that asked for the rollback waits on the thread: it may start now.
            self.wake.notify_one();
        }
    }

    /// Writes the run's end and tells its joiners how it ended. Past a few failures that are
    /// not a full disk, what the run produced is what storage cannot take: its bare end is
    /// written instead, so the run does not stay claimed. False when neither could be written
    /// (stopping, or given up): the run is left claimed.
    async fn record_end(&self, finished: FinishedRun, channel: &RunChannel) -> bool {
        let bare = finished.bare();
        let wrote_bare = AtomicBool::new(false);
        let ended = self
            .until_written(finished.run_id, "recording the end of a run", |failures| {
                let give_up = failures >= BARE_END_AFTER;
                wrote_bare.store(give_up, Ordering::Relaxed);
                self.storage
                    .finish_run(if give_up { &bare } else { &finished })
            })
            .await;
        let Some(ended) = ended else {
            return false;
        };
        // `None`: the run was deleted meanwhile; nobody is told of an end.
        if let Some(ended) = ended {
            // Joiners following the run live answer from this, without reading storage.
            channel.set_end(if wrote_bare.load(Ordering::Relaxed) {
                RunEnd {
                    status: bare.status,
                    interrupts: Vec::new(),
                }
            } else {
                RunEnd {
                    status: finished.status,
                    interrupts: finished.interrupts.into_values().flatten().collect(),
                }
            });
            // The next run on the thread may start now.
            if ended.thread_busy {
                self.wake.notify_one();
            }
        }
        true
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
}

/// Failures of a run's whole end, for another reason than a full disk, after which its bare
/// end is written instead ([`FinishedRun::bare`]).
const BARE_END_AFTER: u32 = 3;
