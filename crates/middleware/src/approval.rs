//! Approval of the tools that act: start, update and cancel ask first when an approver is set.

use futures::future::BoxFuture;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

/// What the supervisor is about to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a task.
    Start,
    /// Send a running task new instructions.
    Update,
    /// Cancel a task.
    Cancel,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Start => "start",
            Self::Update => "update",
            Self::Cancel => "cancel",
        })
    }
}

/// One request for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// What would be done.
    pub action: Action,
    /// The subagent it concerns.
    pub agent_name: String,
    /// The task, for update and cancel.
    pub task_id: Option<Uuid>,
    /// The task's description (start) or the new instructions (update).
    pub text: Option<String>,
}

/// The answer to an [`ApprovalRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Go ahead.
    Approve,
    /// Don't; the reason, if any, is shown to the model.
    Reject(Option<String>),
}

/// Decides on approval requests, e.g. by asking the user in a terminal.
pub type Approver = Arc<dyn Fn(ApprovalRequest) -> BoxFuture<'static, Approval> + Send + Sync>;
