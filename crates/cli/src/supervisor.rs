//! The supervisor that `errand chat` and `errand demo` run: a model with the async subagent
//! tools, and the config's agents hosted in this process for the subagents without a url.

use crate::agents;
use crate::config::{Config, ModelConfig};
use anyhow::Context;
use errand::client::Client;
use errand::middleware::{Approver, AsyncSubAgent, AsyncSubAgentMiddleware, NoticeHook, Settings};
use errand::protocol::Message;
use errand::runtime::Graph;
use errand::runtime::agent::{Agent, AgentState, RunContext};
use errand::runtime::hooks::Summarization;
use errand::runtime::model::{ChatModel, ModelSettings};
use errand::server::Server;
use errand::server::graphs::Echo;
use errand::server::storage::SqliteStorage;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The supervisor's instructions unless the config gives its own.
pub(crate) const SUPERVISOR_PROMPT: &str = "You are a supervisor agent talking with a user. \
Hand long or parallel work to background subagents with `start_async_task`, then tell the user \
briefly what you started and give control back: never wait for a task or check it in a loop. \
You are told when a task finishes; report its result to the user then. Use `list_async_tasks` \
to recall tasks and `check_async_task` only when asked. Keep your answers short.";

/// Models named by the environment when the config names none, in order of preference.
const ENV_MODELS: [(&str, &str); 2] = [
    ("ANTHROPIC_API_KEY", "anthropic:claude-sonnet-4-5"),
    ("OPENAI_API_KEY", "openai:gpt-4o-mini"),
];

/// The supervisor's model: `ERRAND_MODEL`, else the config's `[model]`, else the first
/// provider with a key in the environment. The error says what to set.
pub(crate) fn model_config(config: &Config) -> anyhow::Result<ModelConfig> {
    let named = |name: String| ModelConfig {
        name,
        base_url: None,
        api_key: None,
        max_tokens: None,
        temperature: None,
    };
    if let Some(name) = env("ERRAND_MODEL") {
        return Ok(named(name));
    }
    if let Some(model) = &config.model {
        return Ok(model.clone());
    }
    if let Some((_, name)) = ENV_MODELS.iter().find(|(key, _)| env(key).is_some()) {
        return Ok(named((*name).to_owned()));
    }
    if env("OPENAI_BASE_URL").is_some() {
        return Ok(named("openai:default".to_owned()));
    }
    anyhow::bail!(
        "no model to run the supervisor: set ANTHROPIC_API_KEY or OPENAI_API_KEY (with \
         OPENAI_BASE_URL for a local server), name one in ERRAND_MODEL (e.g. \
         openai:llama3.1 with OPENAI_BASE_URL), or add a [model] table to the config. \
         `errand demo` runs offline without any of these."
    )
}

/// True when an environment variable holds something.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// What a supervisor is built from.
pub(crate) struct Options {
    /// Its model and that model's call settings.
    pub(crate) model: Arc<dyn ChatModel>,
    pub(crate) settings: ModelSettings,
    /// Graphs to host besides the config's agents (the demo's researcher).
    pub(crate) extra_graphs: Vec<(String, Arc<dyn Graph>, String)>,
    /// Where the in-process server keeps its threads and runs.
    pub(crate) db: PathBuf,
    /// Limits and pacing of the async subagent middleware.
    pub(crate) middleware: Settings,
    /// Asked before each start, update and cancel.
    pub(crate) approver: Option<Approver>,
    /// Told of each task status change as it happens.
    pub(crate) on_notice: Option<NoticeHook>,
    /// Summarise the supervisor's conversation past this many tokens.
    pub(crate) summarize_after_tokens: usize,
}

/// A running supervisor and the server hosting its local subagents.
pub(crate) struct Supervisor {
    pub(crate) agent: Agent,
    pub(crate) middleware: AsyncSubAgentMiddleware,
    pub(crate) server: Option<Server>,
    /// The conversation's ids; the thread id keys the notices meant for it.
    pub(crate) run: RunContext,
    pub(crate) state: AgentState,
}

impl Supervisor {
    /// Builds the supervisor: hosts the config's agents (and `extra_graphs`) in-process when a
    /// subagent needs them, and gives the model the five tools.
    pub(crate) async fn start(config: &Config, options: Options) -> anyhow::Result<Self> {
        let mut hosted: Vec<(String, Arc<dyn Graph>, String)> = agents::build_all(config)?
            .into_iter()
            .map(|(name, agent)| {
                let description = config.agents[&name]
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("The {name} agent."));
                (name, Arc::new(agent) as Arc<dyn Graph>, description)
            })
            .collect();
        hosted.extend(options.extra_graphs);
        let specs = if config.async_subagents.is_empty() {
            hosted
                .iter()
                .map(|(name, _, description)| AsyncSubAgent::new(name, description, name))
                .collect()
        } else {
            config.async_subagents.clone()
        };
        if specs.is_empty() {
            anyhow::bail!(
                "no subagents to hand tasks to: add [agents.NAME] tables for agents to host here, \
                 or [async_subagents.NAME] tables for agents on other servers"
            );
        }
        let mut builder =
            AsyncSubAgentMiddleware::builder(specs.clone()).settings(options.middleware);
        let server = if specs.iter().any(|spec| spec.url.is_none()) {
            let mut server = Server::builder().graph("echo", Echo).storage(Arc::new(
                SqliteStorage::open(&options.db)
                    .with_context(|| format!("opening {}", options.db.display()))?,
            ));
            for (name, graph, _) in hosted {
                server = server.shared_graph(name, graph);
            }
            let server = server.start().await.context("starting the local server")?;
            builder = builder.local_client(Client::in_process(server.router())?);
            Some(server)
        } else {
            None
        };
        if let Some(approver) = options.approver {
            builder = builder.approver(approver);
        }
        if let Some(hook) = options.on_notice {
            builder = builder.on_notice(move |thread, event| hook(thread, event));
        }
        let middleware = builder.build()?;
        let agent = Agent::builder(Arc::clone(&options.model))
            .name("supervisor")
            .system_prompt(SUPERVISOR_PROMPT)
            .settings(options.settings)
            .middleware(Summarization::new(
                options.model,
                options.summarize_after_tokens,
            ))
            .middleware(middleware.clone())
            .build()?;
        let mut run = RunContext::detached();
        run.graph_id = "supervisor".into();
        Ok(Self {
            agent,
            middleware,
            server,
            run,
            state: AgentState::default(),
        })
    }

    /// One turn: the user's words (or nothing, to let the supervisor read waiting notices),
    /// then the supervisor's loop until its answer. The answer's text.
    pub(crate) async fn turn(&mut self, text: Option<&str>) -> anyhow::Result<String> {
        let cancel = self.run.cancel.child_token();
        self.turn_until(text, cancel).await
    }

    /// [`Self::turn`], stopped early when `cancel` fires (the chat's Ctrl-C). A token of its
    /// own per turn, so cancelling one turn leaves the next ones alone. A turn that fails or is
    /// cancelled keeps what it did: the user's words, the notices it read, the tasks it started.
    pub(crate) async fn turn_until(
        &mut self,
        text: Option<&str>,
        cancel: CancellationToken,
    ) -> anyhow::Result<String> {
        let input = text
            .map(|text| vec![Message::human(text)])
            .unwrap_or_default();
        let mut run = self.run.clone();
        run.run_id = Uuid::now_v7();
        run.cancel = cancel;
        let state = std::mem::take(&mut self.state);
        let before = state.messages.len();
        let outcome = self.agent.run_keeping(state, input, &run).await;
        self.state = outcome.state;
        outcome.result?;
        Ok(self
            .state
            .messages
            .last()
            .filter(|_| self.state.messages.len() > before)
            .map(|answer| answer.text().into_owned())
            .unwrap_or_default())
    }

    /// How many notices wait for the supervisor's next turn.
    pub(crate) fn pending_notices(&self) -> usize {
        self.middleware.pending_notices(self.run.thread_id)
    }

    /// Stops watching tasks and the local server.
    pub(crate) async fn stop(self) {
        self.middleware.shutdown().await;
        if let Some(server) = self.server {
            server.shutdown(Duration::from_secs(2)).await;
        }
    }
}
