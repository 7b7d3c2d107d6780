//! Cancelling runs: how a cancel stops a run, and the body of `POST /runs/cancel`.

use crate::JsonObject;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a cancel stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelAction {
    /// Stop it and keep what it wrote; it ends `interrupted`.
    #[default]
    Interrupt,
    /// Stop it and delete it with what it wrote.
    Rollback,
}

impl CancelAction {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Interrupt => "interrupt",
            Self::Rollback => "rollback",
        }
    }

    /// The action of a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "interrupt" => Some(Self::Interrupt),
            "rollback" => Some(Self::Rollback),
            _ => None,
        }
    }
}

/// Which runs `POST /runs/cancel` cancels by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelStatusFilter {
    /// Pending runs.
    Pending,
    /// Running runs.
    Running,
    /// Both.
    All,
}

/// The body of `POST /runs/cancel`: either `status`, or `thread_id` with `run_ids`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunCancelManyRequest {
    /// The thread of `run_ids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<Uuid>,
    /// The runs to cancel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_ids: Option<Vec<Uuid>>,
    /// Cancel every run with this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CancelStatusFilter>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}
