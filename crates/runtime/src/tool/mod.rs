//! Tools: what an agent can do besides talking.
//!
//! A [`Tool`] has a name, a description and a JSON schema for its arguments, and an async call.
//! [`FunctionTool`] makes one from an async function whose argument type derives
//! [`schemars::JsonSchema`], so the schema the model sees is the type the function gets.
//! The agent loop checks every call's arguments against the schema before the tool runs
//! ([`check_arguments`]); a call that does not fit, or a tool that fails, answers the model
//! with an error message and the conversation goes on.

pub(crate) mod function;
mod schema;

pub use function::FunctionTool;
pub use schema::check_arguments;

use crate::state::AgentState;
use crate::{Error, EventSink, model::ToolSpec};
use async_trait::async_trait;
use errand_protocol::JsonObject;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Something an agent's model can call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model calls it by; unique within an agent.
    fn name(&self) -> &str;

    /// What it does and when to use it, for the model.
    fn description(&self) -> &str;

    /// The JSON schema of its arguments: an object schema.
    fn parameters(&self) -> Value;

    /// Runs one call. `args` already fit [`Tool::parameters`].
    ///
    /// An `Err` does not end the run: its message goes back to the model as the tool's answer.
    async fn call(&self, args: JsonObject, context: ToolContext) -> Result<ToolOutput, Error>;

    /// The tool as the model sees it.
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name().to_owned(),
            description: self.description().to_owned(),
            parameters: self.parameters(),
        }
    }
}

impl fmt::Debug for dyn Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool").field("name", &self.name()).finish()
    }
}

/// What a tool answers: text for the model, and writes to the agent's state channels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolOutput {
    /// The answer the model reads.
    pub content: String,
    /// Writes to state channels, merged by each channel's reducer after the call
    /// (e.g. `{"async_tasks": {"<task id>": {...}}}`).
    pub update: JsonObject,
}

impl ToolOutput {
    /// An answer with text only.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            update: JsonObject::new(),
        }
    }

    /// Adds a write of `value` to the channel `channel`.
    #[must_use]
    pub fn with_update(mut self, channel: impl Into<String>, value: Value) -> Self {
        self.update.insert(channel.into(), value);
        self
    }
}

impl From<String> for ToolOutput {
    fn from(content: String) -> Self {
        Self::text(content)
    }
}

impl From<&str> for ToolOutput {
    fn from(content: &str) -> Self {
        Self::text(content)
    }
}

/// What a tool call is given besides its arguments.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The id of the call, which the tool message answers.
    pub call_id: String,
    /// The agent's state as it was when the model asked for the call: the conversation up to
    /// and including the call, and the channels.
    pub state: Arc<AgentState>,
    /// The run the call belongs to.
    pub run_id: Uuid,
    /// The thread of the agent that made the call.
    pub thread_id: Uuid,
    /// Fires when the run is cancelled; long tools should stop soon after.
    pub cancel: CancellationToken,
    /// Where the tool may stream `custom` events.
    pub events: EventSink,
}

impl ToolContext {
    /// A context for calling a tool outside an agent: an empty state, nil ids, nothing streamed.
    pub fn detached(call_id: impl Into<String>) -> Self {
        Self {
            call_id: call_id.into(),
            state: Arc::default(),
            run_id: Uuid::nil(),
            thread_id: Uuid::nil(),
            cancel: CancellationToken::new(),
            events: EventSink::discard(),
        }
    }
}

/// A shared tool, as agents hold them.
pub type SharedTool = Arc<dyn Tool>;
