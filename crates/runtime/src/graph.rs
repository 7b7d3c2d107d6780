//! The interface between a hosted graph and the server that runs it.
//!
//! A server hands each run to a [`Graph`]: the run's input, the thread's current values, a
//! cancellation token and an [`EventSink`] for what it streams. The graph answers the new values
//! of the thread, or an error. It lives in the runtime, below the server, so agents built here
//! are graphs without the runtime knowing the server.

use crate::Error;
use async_trait::async_trait;
use errand_protocol::{Command, Interrupt, JsonObject, StreamPart};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Something a server can host and run: an agent, or any async function of the thread state.
#[async_trait]
pub trait Graph: Send + Sync + 'static {
    /// Runs once on a thread and answers its new values.
    ///
    /// Implementations should stop soon after `run.cancel` fires, answering
    /// [`Error::Cancelled`]; the server stops waiting for them then anyway.
    async fn invoke(&self, run: GraphRun) -> Result<GraphOutput, Error>;

    /// A one-line description, shown as the assistant's description.
    fn description(&self) -> Option<&str> {
        None
    }
}

/// What a graph is given for one run.
#[derive(Debug, Clone)]
pub struct GraphRun {
    /// The run being executed.
    pub run_id: Uuid,
    /// The thread it runs on.
    pub thread_id: Uuid,
    /// The graph's name.
    pub graph_id: String,
    /// The run's input (`{"messages": [...]}` for agents), if it had one.
    pub input: Option<Value>,
    /// The run's command (resume, update, goto), if it had one.
    pub command: Option<Command>,
    /// The thread's values before this run; an empty object for a new thread.
    pub values: Value,
    /// The run's `config`, with `configurable` holding the run and thread ids.
    pub config: JsonObject,
    /// Fires when the run is cancelled, interrupted by a newer run, or timed out.
    pub cancel: CancellationToken,
    /// Where the graph sends what it streams.
    pub events: EventSink,
}

/// What a graph answers when it has finished or stopped at an interrupt.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphOutput {
    /// The thread's new values.
    pub values: Value,
    /// The interrupts it stopped at, waiting for a human; empty when it finished.
    pub interrupts: Vec<Interrupt>,
}

impl GraphOutput {
    /// A finished run with these values.
    pub fn finished(values: Value) -> Self {
        Self {
            values,
            interrupts: Vec::new(),
        }
    }
}

/// Where a running graph sends its stream events; cheap to clone.
#[derive(Clone)]
pub struct EventSink(Arc<dyn Fn(StreamPart) + Send + Sync>);

impl EventSink {
    /// A sink that hands every event to `emit`.
    pub fn new(emit: impl Fn(StreamPart) + Send + Sync + 'static) -> Self {
        Self(Arc::new(emit))
    }

    /// A sink that drops everything, for running a graph outside a server.
    pub fn discard() -> Self {
        Self::new(|_| {})
    }

    /// Sends one event.
    pub fn emit(&self, part: StreamPart) {
        (self.0)(part);
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventSink")
    }
}
