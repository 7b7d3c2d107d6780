//! Agents: a model, tools and middleware in a loop, hosted as a [`Graph`].
//!
//! The loop asks the model, runs the tools it calls (concurrently), gives it their answers,
//! and asks again, until the model answers without tool calls or the step limit is reached.
//! Every await watches the run's cancellation token. It streams what the server streams:
//! `values` after each step, `updates` per node (`model`, `tools`), and `messages` chunks while
//! the model writes.

mod run;
mod state;

pub use state::{AgentState, Channel};

use crate::graph::{EventSink, Graph, GraphOutput, GraphRun};
use crate::hooks::Middleware;
use crate::model::{ChatModel, ModelSettings};
use crate::tool::SharedTool;
use crate::{Error, add_messages, messages_from_value};
use async_trait::async_trait;
use errand_protocol::{JsonObject, Message};
use serde_json::Value;
use state::Channels;
use std::fmt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

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

    /// Adds `input` to the conversation in `state` and runs the loop until the model's final
    /// answer; answers the new state.
    pub async fn run(
        &self,
        state: AgentState,
        input: Vec<Message>,
        run: &RunContext,
    ) -> Result<AgentState, Error> {
        let outcome = self.run_keeping(state, input, run).await;
        outcome.result.map(|()| outcome.state)
    }

    /// [`Agent::run`], answering the state even when the run fails or is cancelled: the input,
    /// what middleware added, and the steps that finished, with every tool call answered. What
    /// a conversation that goes on after an error or a cancel needs.
    pub async fn run_keeping(
        &self,
        mut state: AgentState,
        input: Vec<Message>,
        run: &RunContext,
    ) -> RunOutcome {
        add_messages(&mut state.messages, input);
        let result = run::Loop { agent: self, run }.run(&mut state).await;
        RunOutcome { state, result }
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

/// What one run of an agent is given besides its state.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The run.
    pub run_id: Uuid,
    /// The thread it runs on.
    pub thread_id: Uuid,
    /// The graph name it runs under.
    pub graph_id: String,
    /// The run's `config`.
    pub config: JsonObject,
    /// Fires when the run must stop.
    pub cancel: CancellationToken,
    /// Where the run's events go.
    pub events: EventSink,
}

impl RunContext {
    /// A context for running an agent outside a server: fresh ids, nothing streamed.
    pub fn detached() -> Self {
        Self {
            run_id: Uuid::now_v7(),
            thread_id: Uuid::now_v7(),
            graph_id: "agent".into(),
            config: JsonObject::new(),
            cancel: CancellationToken::new(),
            events: EventSink::discard(),
        }
    }
}

#[async_trait]
impl Graph for Agent {
    async fn invoke(&self, run: GraphRun) -> Result<GraphOutput, Error> {
        let mut state = AgentState::from_values(&run.values)?;
        if let Some(update) = run.command.as_ref().and_then(|c| c.update.clone()) {
            self.apply_update(&mut state, object_of(update, "command.update")?)?;
        }
        if run.command.as_ref().is_some_and(|c| c.resume.is_some()) {
            return Err(Error::failed(
                "InvalidUpdateError",
                "this agent never stops at an interrupt, so there is nothing to resume",
            ));
        }
        let mut input = Vec::new();
        if let Some(value) = run.input {
            input = messages_from_value(&value)
                .map_err(|error| Error::failed("InvalidUpdateError", error.to_string()))?;
            let mut rest = object_of(value, "input")?;
            rest.remove("messages");
            self.apply_update(&mut state, rest)?;
        }
        let context = RunContext {
            run_id: run.run_id,
            thread_id: run.thread_id,
            graph_id: run.graph_id,
            config: run.config,
            cancel: run.cancel,
            events: run.events,
        };
        let state = self.run(state, input, &context).await?;
        Ok(GraphOutput::finished(state.to_values()))
    }

    fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
}

fn object_of(value: Value, what: &str) -> Result<JsonObject, Error> {
    match value {
        Value::Object(object) => Ok(object),
        Value::Null => Ok(JsonObject::new()),
        other => Err(Error::failed(
            "InvalidUpdateError",
            format!("{what} must be an object of state keys, not {other}"),
        )),
    }
}
