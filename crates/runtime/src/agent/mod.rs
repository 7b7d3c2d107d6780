//! Agents: a model, tools and middleware in a loop, hosted as a [`Graph`].
//!
//! The loop asks the model, runs the tools it calls (concurrently), gives it their answers,
//! and asks again, until the model answers without tool calls or the step limit is reached.
//! Every await watches the run's cancellation token. It streams what the server streams:
//! `values` after each step, `updates` per node (`model`, `tools`), and `messages` chunks while
//! the model writes.
//!
//! This file holds the [`Agent`] and its builder; `run.rs` the loop ([`Agent::run`]) and
//! `hosting.rs` the [`Graph`] implementation. Both import this file, and it imports neither.
//! [`AgentState`], [`Channel`] and [`RunContext`] live in the crate's `state` module, below
//! the agent, the tools and the hooks, and are re-exported here.
//!
//! [`Graph`]: crate::Graph

mod hosting;
mod run;

pub use crate::state::{AgentState, Channel, RunContext};

use crate::Error;
use crate::hooks::Middleware;
use crate::model::{ChatModel, ModelSettings};
use crate::state::Channels;
use crate::tool::SharedTool;
use errand_protocol::JsonObject;
use std::fmt;
use std::sync::Arc;

/// How many model calls a run may make unless told otherwise.
pub const DEFAULT_MAX_STEPS: usize = 25;

/// An LLM agent: a model, a system prompt, tools and middleware.
///
/// ```
/// use errand_runtime::agent::{Agent, AgentState, RunContext};
/// use errand_runtime::model::{ScriptedModel, Turn};
/// use errand_runtime::tool::FunctionTool;
/// use errand_protocol::Message;
/// use std::sync::Arc;
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Shout { text: String }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let model = ScriptedModel::new([
///     Turn::tool_call("shout", serde_json::json!({"text": "hi"})),
///     Turn::text("It says HI."),
/// ]);
/// let agent = Agent::builder(Arc::new(model))
///     .system_prompt("Be brief.")
///     .tool(FunctionTool::new("shout", "Upper-cases text.", |args: Shout, _| async move {
///         Ok(args.text.to_uppercase().into())
///     }))
///     .build()
///     .unwrap();
/// let state = agent
///     .run(AgentState::default(), vec![Message::human("shout hi")], &RunContext::detached())
///     .await
///     .unwrap();
/// let texts: Vec<_> = state.messages.iter().map(|m| m.text().into_owned()).collect();
/// assert_eq!(texts, ["shout hi", "", "HI", "It says HI."]);
/// # });
/// ```
pub struct Agent {
    name: String,
    description: Option<String>,
    model: Arc<dyn ChatModel>,
    system_prompt: Option<String>,
    tools: Vec<SharedTool>,
    middleware: Vec<Arc<dyn Middleware>>,
    channels: Channels,
    settings: ModelSettings,
    max_steps: usize,
}

impl Agent {
    /// Starts building an agent on `model`.
    pub fn builder(model: Arc<dyn ChatModel>) -> AgentBuilder {
        AgentBuilder {
            name: "agent".into(),
            description: None,
            model,
            system_prompt: None,
            tools: Vec::new(),
            middleware: Vec::new(),
            channels: Vec::new(),
            settings: ModelSettings::default(),
            max_steps: DEFAULT_MAX_STEPS,
        }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model it runs on.
    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    /// Every tool it can call, its own and its middleware's.
    pub fn tools(&self) -> &[SharedTool] {
        &self.tools
    }

    /// Applies a write to the state through the agent's channel reducers (`messages` through
    /// `add_messages`).
    pub fn apply_update(&self, state: &mut AgentState, update: JsonObject) -> Result<(), Error> {
        self.channels.apply(state, update)
    }
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("model", &self.model)
            .field(
                "tools",
                &self.tools.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field("middleware", &self.middleware)
            .field("max_steps", &self.max_steps)
            .finish_non_exhaustive()
    }
}

/// What [`Agent::run_keeping`] answers.
#[derive(Debug)]
pub struct RunOutcome {
    /// The state at the end of the run, or where it stopped.
    pub state: AgentState,
    /// How the run ended.
    pub result: Result<(), Error>,
}

/// Builds an [`Agent`]; see [`Agent::builder`].
#[derive(Debug)]
pub struct AgentBuilder {
    name: String,
    description: Option<String>,
    model: Arc<dyn ChatModel>,
    system_prompt: Option<String>,
    tools: Vec<SharedTool>,
    middleware: Vec<Arc<dyn Middleware>>,
    channels: Vec<Channel>,
    settings: ModelSettings,
    max_steps: usize,
}

impl AgentBuilder {
    /// Names the agent (the graph name it is usually hosted under).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Says what the agent is for, shown as its assistant's description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the system prompt.
    #[must_use]
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(prompt.into());
        self
    }

    /// Adds a tool.
    #[must_use]
    pub fn tool(mut self, tool: impl crate::tool::Tool + 'static) -> Self {
        self.tools.push(Arc::new(tool));
        self
    }

    /// Adds tools that are already shared.
    #[must_use]
    pub fn tools(mut self, tools: impl IntoIterator<Item = SharedTool>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// Adds a middleware, with its tools and channels.
    #[must_use]
    pub fn middleware(mut self, middleware: impl Middleware + 'static) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Adds a middleware that is already shared.
    #[must_use]
    pub fn shared_middleware(mut self, middleware: Arc<dyn Middleware>) -> Self {
        self.middleware.push(middleware);
        self
    }

    /// Adds a state channel of the agent's own.
    #[must_use]
    pub fn channel(mut self, channel: Channel) -> Self {
        self.channels.push(channel);
        self
    }

    /// Sets the settings of every model call.
    #[must_use]
    pub fn settings(mut self, settings: ModelSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Sets how many model calls one run may make (at least 1).
    #[must_use]
    pub fn max_steps(mut self, steps: usize) -> Self {
        self.max_steps = steps.max(1);
        self
    }

    /// The agent, or an error when two tools or two channels share a name.
    pub fn build(self) -> Result<Agent, Error> {
        let mut tools = self.tools;
        let mut channels = Channels::default();
        for channel in self.channels {
            channels.add(channel)?;
        }
        for middleware in &self.middleware {
            tools.extend(middleware.tools());
            for channel in middleware.channels() {
                channels.add(channel)?;
            }
        }
        for (at, tool) in tools.iter().enumerate() {
            if tools[..at].iter().any(|other| other.name() == tool.name()) {
                return Err(Error::Config(format!(
                    "agent `{}` has two tools named `{}`",
                    self.name,
                    tool.name()
                )));
            }
        }
        Ok(Agent {
            name: self.name,
            description: self.description,
            model: self.model,
            system_prompt: self.system_prompt,
            tools,
            middleware: self.middleware,
            channels,
            settings: self.settings,
            max_steps: self.max_steps,
        })
    }
}
