//! Hooks: middleware that shapes an agent's loop without changing it.
//!
//! A [`Middleware`] can give the agent tools and state channels, rewrite the state before each
//! model call ([`Middleware::before_model`]: what summarisation and completion notices do), edit
//! the request itself ([`Middleware::modify_request`]: add to the system prompt, add or hide
//! tools), wrap each tool call ([`Middleware::around_tool`]), and look at the state when the run
//! ends ([`Middleware::after_run`]). Hooks run in the order the middleware were added; around a
//! tool call the first one added is the outermost.
//!
//! The module is `hooks` so that it is not mistaken for the `errand-middleware` crate, which is
//! one implementation of this trait (the async subagent tools) on the layer above. The trait
//! keeps LangChain's name, `Middleware`, which [`AgentBuilder::middleware`] and every
//! implementation use.
//!
//! [`AgentBuilder::middleware`]: crate::agent::AgentBuilder::middleware

mod summarization;

pub use summarization::{SUMMARY_PREFIX, Summarization, approximate_tokens};

use crate::Error;
use crate::model::ModelRequest;
use crate::state::{AgentState, Channel, RunContext};
use crate::tool::{SharedTool, Tool, ToolContext, ToolOutput};
use async_trait::async_trait;
use errand_protocol::ToolCall;
use std::fmt;
use std::sync::Arc;

/// Hooks around an agent's model and tool calls. Every hook has a default that does nothing.
#[async_trait]
pub trait Middleware: Send + Sync + fmt::Debug {
    /// A short name, for logs and errors.
    fn name(&self) -> &str;

    /// Tools this middleware gives the agent.
    fn tools(&self) -> Vec<SharedTool> {
        Vec::new()
    }

    /// State channels this middleware keeps beside the messages.
    fn channels(&self) -> Vec<Channel> {
        Vec::new()
    }

    /// Runs before each model call, with the state the request will be made from. Changes to
    /// the state are kept in the thread (a summary replacing old messages, a notice added).
    async fn before_model(&self, state: &mut AgentState, run: &RunContext) -> Result<(), Error> {
        let _ = (state, run);
        Ok(())
    }

    /// Edits the request just before it goes to the model; the state is not changed.
    async fn modify_request(
        &self,
        request: &mut ModelRequest,
        state: &AgentState,
    ) -> Result<(), Error> {
        let _ = (request, state);
        Ok(())
    }

    /// Wraps one tool call: call `next.run(call, context)` to go on, or answer without it.
    async fn around_tool(
        &self,
        call: &ToolCall,
        context: ToolContext,
        next: ToolNext<'_>,
    ) -> Result<ToolOutput, Error> {
        next.run(call, context).await
    }

    /// Runs once when the model has given its final answer, before the state is returned.
    async fn after_run(&self, state: &mut AgentState, run: &RunContext) -> Result<(), Error> {
        let _ = (state, run);
        Ok(())
    }
}

/// The rest of a tool call's middleware chain, ending in the tool itself.
pub struct ToolNext<'a> {
    rest: &'a [Arc<dyn Middleware>],
    tool: &'a dyn Tool,
}

impl<'a> ToolNext<'a> {
    pub(crate) fn new(chain: &'a [Arc<dyn Middleware>], tool: &'a dyn Tool) -> Self {
        Self { rest: chain, tool }
    }

    /// Runs the rest of the chain and the tool.
    pub async fn run(self, call: &ToolCall, context: ToolContext) -> Result<ToolOutput, Error> {
        match self.rest.split_first() {
            Some((first, rest)) => {
                first
                    .around_tool(
                        call,
                        context,
                        ToolNext {
                            rest,
                            tool: self.tool,
                        },
                    )
                    .await
            }
            None => self.tool.call(call.args.clone(), context).await,
        }
    }
}

impl fmt::Debug for ToolNext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolNext")
            .field("middleware_left", &self.rest.len())
            .field("tool", &self.tool.name())
            .finish()
    }
}
