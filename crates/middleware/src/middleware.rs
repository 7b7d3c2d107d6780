//! `AsyncSubAgentMiddleware`: the five tools, the board, and notices before each model call.

use crate::approval::Approver;
use crate::notice::{TaskEvent, notification};
use crate::settings::Settings;
use crate::shared::Shared;
use crate::spec::{self, AsyncSubAgent};
use crate::task::{self, AsyncTask, TASKS_CHANNEL};
use crate::watch::{NoticeHook, Watcher};
use crate::{Error, tools};
use async_trait::async_trait;
use errand_client::{Client, ClientBuilder, ClientCache};
use errand_runtime::Error as RuntimeError;
use errand_runtime::agent::{AgentState, Channel, RunContext};
use errand_runtime::hooks::Middleware;
use errand_runtime::model::ModelRequest;
use errand_runtime::tool::SharedTool;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

/// Gives a supervisor agent background tasks on subagents behind the Agent Protocol.
///
/// Add it to an agent with [`errand_runtime::agent::AgentBuilder::middleware`]. It brings the
/// tools `start_async_task`, `check_async_task`, `update_async_task`, `cancel_async_task` and
/// `list_async_tasks`, the `async_tasks` board, and a watcher on every run it starts, whose
/// status changes reach the supervisor's next model call as notices.
#[derive(Clone)]
pub struct AsyncSubAgentMiddleware {
    shared: Arc<Shared>,
}

impl AsyncSubAgentMiddleware {
    /// Starts building a middleware over these subagents.
    pub fn builder(
        specs: impl IntoIterator<Item = AsyncSubAgent>,
    ) -> AsyncSubAgentMiddlewareBuilder {
        AsyncSubAgentMiddlewareBuilder {
            specs: specs.into_iter().collect(),
            template: ClientBuilder::default(),
            local: None,
            settings: Settings::default(),
            approver: None,
            hook: None,
        }
    }

    /// The subagents it can start.
    pub fn subagents(&self) -> &[AsyncSubAgent] {
        &self.shared.specs
    }

    /// How many notices wait for the supervisor thread `thread_id`'s next model call.
    pub fn pending_notices(&self, thread_id: Uuid) -> usize {
        self.shared.watcher.pending(thread_id)
    }

    /// Stops watching; cancels the runs still going when the settings say so
    /// ([`Settings::cancel_on_exit`]).
    pub async fn shutdown(&self) {
        self.shared
            .watcher
            .shutdown(self.shared.settings.cancel_on_exit)
            .await;
    }
}

impl fmt::Debug for AsyncSubAgentMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSubAgentMiddleware")
            .field(
                "subagents",
                &self
                    .shared
                    .specs
                    .iter()
                    .map(|s| &s.name)
                    .collect::<Vec<_>>(),
            )
            .field("watcher", &self.shared.watcher)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AsyncSubAgentMiddleware`].
pub struct AsyncSubAgentMiddlewareBuilder {
    specs: Vec<AsyncSubAgent>,
    template: ClientBuilder,
    local: Option<Client>,
    settings: Settings,
    approver: Option<Approver>,
    hook: Option<NoticeHook>,
}

impl AsyncSubAgentMiddlewareBuilder {
    /// The client that reaches subagents without a `url`: usually
    /// `Client::in_process(server.router())` for a server in this program.
    #[must_use]
    pub fn local_client(mut self, client: Client) -> Self {
        self.local = Some(client);
        self
    }

    /// Settings (timeouts, retries, API key) for the HTTP clients of subagents with a `url`.
    #[must_use]
    pub fn client_template(mut self, template: ClientBuilder) -> Self {
        self.template = template;
        self
    }

    /// Replaces every setting.
    #[must_use]
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Asks `approver` before each start, update and cancel.
    #[must_use]
    pub fn approver(mut self, approver: Approver) -> Self {
        self.approver = Some(approver);
        self
    }

    /// Calls `hook` as soon as a task's status changes, with the supervisor thread that
    /// started it: how an application wakes an idle supervisor, or shows the change.
    #[must_use]
    pub fn on_notice(mut self, hook: impl Fn(Uuid, &TaskEvent) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The middleware, or why the subagents cannot be used.
    pub fn build(self) -> Result<AsyncSubAgentMiddleware, Error> {
        spec::validate(&self.specs)?;
        if self.local.is_none()
            && let Some(spec) = self.specs.iter().find(|spec| spec.url.is_none())
        {
            return Err(Error::NoLocalServer(spec.name.clone()));
        }
        let clients = match self.local {
            Some(local) => ClientCache::with_local(self.template, Arc::clone(local.transport())),
            None => ClientCache::new(self.template),
        };
        Ok(AsyncSubAgentMiddleware {
            shared: Arc::new(Shared {
                specs: self.specs,
                clients,
                watcher: Watcher::new(self.hook, self.settings.timing),
                settings: self.settings,
                approver: self.approver,
            }),
        })
    }
}

impl fmt::Debug for AsyncSubAgentMiddlewareBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSubAgentMiddlewareBuilder")
            .field("specs", &self.specs)
            .finish_non_exhaustive()
    }
}

/// What the middleware does before each model call.
impl AsyncSubAgentMiddleware {
    /// Watches every unfinished task on the board that is not watched yet: after a restart,
    /// or when the board came from an earlier process.
    fn reconcile(&self, parent: Uuid, board: &[AsyncTask]) {
        for task in board.iter().filter(|task| task.status.is_unfinished()) {
            if self.shared.watcher.is_watching(task.task_id, task.run_id) {
                continue;
            }
            let Some(spec) = self.shared.spec(&task.agent_name) else {
                continue;
            };
            match self.shared.client(spec) {
                Ok(client) => self.shared.watch(parent, task, spec, client),
                Err(error) => tracing::warn!(task = %task.task_id, %error, "cannot watch a task"),
            }
        }
    }

    /// Moves the notices waiting for this supervisor thread into its conversation, and their
    /// statuses onto the board. A change a check or list already showed is not repeated.
    fn deliver(&self, state: &mut AgentState, parent: Uuid) {
        for event in self.shared.watcher.take(parent) {
            let record = task::find_task(&state.channels, &event.task_id.to_string());
            let superseded = record
                .as_ref()
                .is_some_and(|task| task.superseded_run_ids.contains(&event.run_id));
            if let Some(mut record) = record.filter(|_| !superseded) {
                if record.run_id != event.run_id {
                    // A notice about a run the board has moved past (its follow-up replaced
                    // it): the board's run speaks for the task now.
                    continue;
                }
                if record.status == event.status {
                    continue;
                }
                record.observed(event.status, None, task::now());
                record.interrupts = event.interrupts.clone();
                merge_into_board(state, &record);
            }
            state.messages.push(notification(&event, superseded));
        }
    }
}

/// Writes `record` onto the board in `state` (the board's reducer runs for tool writes; here
/// the middleware edits the state directly, so it merges by hand).
fn merge_into_board(state: &mut AgentState, record: &AsyncTask) {
    let board = state
        .channels
        .entry(TASKS_CHANNEL)
        .or_insert_with(|| Value::Object(Default::default()));
    if let (Value::Object(board), Value::Object(write)) = (board, record.to_update()) {
        board.extend(write);
    }
}

#[async_trait]
impl Middleware for AsyncSubAgentMiddleware {
    fn name(&self) -> &str {
        "async_subagents"
    }

    fn tools(&self) -> Vec<SharedTool> {
        tools::all(&self.shared)
    }

    fn channels(&self) -> Vec<Channel> {
        vec![task::board_channel(
            self.shared.settings.keep_finished_tasks,
        )]
    }

    async fn before_model(
        &self,
        state: &mut AgentState,
        run: &RunContext,
    ) -> Result<(), RuntimeError> {
        let board = task::board(&state.channels);
        self.reconcile(run.thread_id, &board);
        self.deliver(state, run.thread_id);
        Ok(())
    }

    async fn modify_request(
        &self,
        request: &mut ModelRequest,
        _state: &AgentState,
    ) -> Result<(), RuntimeError> {
        if let Some(prompt) = &self.shared.settings.system_prompt {
            let agents: Vec<String> = self
                .shared
                .specs
                .iter()
                .map(|spec| format!("- {}: {}", spec.name, spec.description))
                .collect();
            request.append_system(&format!(
                "{prompt}\n\nAvailable async subagent types:\n\n{}",
                agents.join("\n")
            ));
        }
        Ok(())
    }
}
