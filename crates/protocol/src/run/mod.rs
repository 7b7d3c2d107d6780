//! Runs: one execution of a graph on a thread, and the body that asks for one.
//!
//! The [`Run`] resource is here; beside it, one module per job: its status ([`RunStatus`]),
//! what it was asked to do as the server keeps it ([`RunKwargs`]), the body that asks for one
//! ([`RunCreate`]) and its options, the stream modes ([`StreamModes`]), cancelling
//! ([`RunCancelManyRequest`]), and what `wait` and `join` answer ([`RunResult`]).

mod cancel;
mod create;
mod kwargs;
mod result;
mod status;
mod stream_mode;

pub use cancel::{CancelAction, CancelStatusFilter, RunCancelManyRequest};
pub use create::{
    AllNodes, Command, Durability, IfNotExists, InterruptNodes, MultitaskStrategy, OnCompletion,
    OnDisconnect, RunConfig, RunCreate,
};
pub use kwargs::RunKwargs;
pub use result::{RunError, RunResult};
pub use status::RunStatus;
pub use stream_mode::{StreamMode, StreamModes};

use crate::{JsonObject, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A run as the server reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    /// The run id (UUIDv7).
    pub run_id: Uuid,
    /// The thread it runs on (a temporary one for stateless runs).
    pub thread_id: Uuid,
    /// The assistant it runs.
    pub assistant_id: Uuid,
    /// When it was created, plus `after_seconds` if it was delayed.
    pub created_at: Timestamp,
    /// When its status last changed.
    pub updated_at: Timestamp,
    /// Where it is in its life.
    pub status: RunStatus,
    /// Assistant, thread and request metadata merged.
    #[serde(default)]
    pub metadata: JsonObject,
    /// What it was asked to do: input, command, config, stream modes... as the server keeps it.
    #[serde(default)]
    pub kwargs: RunKwargs,
    /// What happens to it when its thread is busy.
    pub multitask_strategy: MultitaskStrategy,
    /// Other keys (`langsmith_session_name`, ...), kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}
