//! Where a run is in its life: its status and the wire names of the statuses.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker (or for `after_seconds`, or for an earlier run on its thread).
    Pending,
    /// A worker is running it.
    Running,
    /// It raised an error.
    Error,
    /// It finished; a graph that stopped at an interrupt also ends here.
    Success,
    /// It ran past its time limit.
    Timeout,
    /// It was cancelled.
    Interrupted,
}

impl RunStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Error => "error",
            Self::Success => "success",
            Self::Timeout => "timeout",
            Self::Interrupted => "interrupted",
        }
    }

    /// The status of a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "running" => Some(Self::Running),
            "error" => Some(Self::Error),
            "success" => Some(Self::Success),
            "timeout" => Some(Self::Timeout),
            "interrupted" => Some(Self::Interrupted),
            _ => None,
        }
    }

    /// True once the run can no longer change.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
