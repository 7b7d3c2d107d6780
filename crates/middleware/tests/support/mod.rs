//! What the middleware's integration tests share: a real errand server hosting the echo graph
//! (and small fixed graphs), and a supervisor harness that calls the five tools the way the
//! agent loop does, carrying the `async_tasks` board from call to call.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use errand_client::Client;
use errand_middleware::runtime::agent::{AgentState, Channel, RunContext};
use errand_middleware::runtime::hooks::Middleware;
use errand_middleware::runtime::tool::{SharedTool, ToolContext, ToolOutput};
use errand_middleware::runtime::{
    EventSink, Graph, GraphOutput, GraphRun, async_trait, messages_from_value,
};
use errand_middleware::{
    AsyncSubAgent, AsyncSubAgentMiddleware, AsyncTask, Settings, TASKS_CHANNEL, board_channel,
    find_task, is_notification,
};
use errand_protocol::{
    JsonObject, Message, MessageKind, Run, RunStatus, Thread, ThreadSearchRequest, ToolCall,
};
use errand_server::graphs::Echo;
use errand_server::storage::SqliteStorage;
use errand_server::{LocalServe, Server};
use serde_json::{Value, json};
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The longest any condition is waited for.
pub const WAIT: Duration = Duration::from_secs(30);

/// A graph that ignores its input and ends with fixed values: for results echo cannot make
/// (no messages at all, content blocks with reasoning and tool use).
#[derive(Debug, Clone)]
pub struct Fixed(pub Value);

#[async_trait]
impl Graph for Fixed {
    async fn invoke(
        &self,
        _run: GraphRun,
    ) -> Result<GraphOutput, errand_middleware::runtime::Error> {
        Ok(GraphOutput::finished(self.0.clone()))
    }
}

/// A graph that answers, then stops at an interrupt asking a human to approve a purchase: its
/// run succeeds and its thread is left `interrupted`, so the task is `waiting`.
#[derive(Debug, Clone, Copy)]
pub struct Asks;

#[async_trait]
impl Graph for Asks {
    async fn invoke(
        &self,
        run: GraphRun,
    ) -> Result<GraphOutput, errand_middleware::runtime::Error> {
        let interrupt: errand_protocol::Interrupt = serde_json::from_value(json!({
            "id": format!("ask-{}", run.run_id.simple()),
            "value": {"question": "Approve the purchase?"}
        }))
        .unwrap();
        Ok(GraphOutput {
            values: json!({"messages": [
                {"type": "ai", "id": format!("a-{}", run.run_id.simple()), "content": "I need approval first."}
            ]}),
            interrupts: vec![interrupt],
        })
    }
}

/// An errand server on in-memory SQLite hosting `echo`, plus `silent` (ends with no messages),
/// `thinker` (ends with an answer made of reasoning, text and tool-use blocks) and `asks`
/// (stops at an interrupt).
pub async fn server() -> Server {
    server_with(|builder| builder).await
}

/// The same server, with more graphs added by `more`.
pub async fn server_with(
    more: impl FnOnce(errand_server::ServerBuilder) -> errand_server::ServerBuilder,
) -> Server {
    let builder = Server::builder()
        .graph("echo", Echo)
        .graph("silent", Fixed(json!({"messages": []})))
        .graph("asks", Asks)
        .graph(
            "thinker",
            Fixed(json!({"messages": [
                {"type": "human", "content": "think", "id": "h1"},
                {"type": "ai", "id": "a1", "content": [
                    {"type": "reasoning", "reasoning": "private chain of thought"},
                    {"type": "text", "text": "The answer is 42."},
                    {"type": "tool_use", "id": "tu1", "name": "calc", "input": {"x": 1}},
                    {"type": "text", "text": "Checked twice."}
                ]}
            ]})),
        )
        .storage(Arc::new(SqliteStorage::in_memory().unwrap()));
    more(builder).start().await.unwrap()
}

/// A client of `server` in-process.
pub fn local(server: &Server) -> Client {
    Client::in_process(server.router()).unwrap()
}

/// The subagent most tests start: the echo graph.
pub fn echoer() -> AsyncSubAgent {
    AsyncSubAgent::new("echoer", "Repeats what it is told.", "echo")
}

/// The middleware for `specs`, reaching `server` in-process, with the default settings.
pub fn middleware(server: &Server, specs: Vec<AsyncSubAgent>) -> AsyncSubAgentMiddleware {
    middleware_with(server, specs, Settings::default())
}

/// The middleware for `specs`, reaching `server` in-process, with `settings`.
pub fn middleware_with(
    server: &Server,
    specs: Vec<AsyncSubAgent>,
    settings: Settings,
) -> AsyncSubAgentMiddleware {
    AsyncSubAgentMiddleware::builder(specs)
        .local_client(local(server))
        .settings(settings)
        .build()
        .unwrap()
}

/// A server, a client of it in-process, and a supervisor of the [`echoer`] on it: where most
/// tests begin.
pub async fn echo_supervisor() -> (Server, Client, Supervisor) {
    let server = server().await;
    let client = local(&server);
    let supervisor = Supervisor::new(middleware(&server, vec![echoer()]));
    (server, client, supervisor)
}

/// The answer of the start tool that launched a task ("Launched async subagent. task_id: X"):
/// the task id, or `None` for any other text.
pub fn launch_id(text: &str) -> Option<&str> {
    text.strip_prefix("Launched async subagent. task_id: ")
}

/// The task id in the latest answer of the start tool in `messages`.
pub fn launched_task(messages: &[Message]) -> Option<String> {
    messages
        .iter()
        .rev()
        .find_map(|message| launch_id(&message.text()).map(str::to_owned))
}

/// Task ids in the order the start tool's answers in `messages` launched them.
pub fn launched(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter(|message| message.kind == MessageKind::Tool)
        .filter_map(|message| launch_id(&message.text()).map(str::to_owned))
        .collect()
}

/// Serves `server` on 127.0.0.1 at a free port until the answer is dropped.
pub async fn serve(server: &Server) -> LocalServe {
    server.serve_local().await.expect("serving on a local port")
}

/// Waits until `condition` holds, for at most [`WAIT`]; panics naming `what` otherwise.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if condition().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The run of a task, as its server has it now.
pub async fn server_run(client: &Client, task: &AsyncTask) -> Run {
    run_of(client, &task.thread_id, &task.run_id).await
}

/// A run, as its server has it now; the ids as UUIDs or as the strings the tools answer.
pub async fn run_of(client: &Client, thread_id: impl Display, run_id: impl Display) -> Run {
    client
        .runs()
        .get(uuid(thread_id), uuid(run_id))
        .await
        .unwrap()
}

/// Waits until the run has `status` on its server.
pub async fn wait_run_status(
    client: &Client,
    thread_id: impl Display,
    run_id: impl Display,
    status: RunStatus,
) {
    let (thread_id, run_id) = (uuid(thread_id), uuid(run_id));
    wait_until(&format!("run {run_id} to be {status:?}"), || async {
        run_of(client, thread_id, run_id).await.status == status
    })
    .await;
}

/// An id the tools answered, or a UUID already.
pub fn uuid(id: impl Display) -> Uuid {
    Uuid::parse_str(&id.to_string()).unwrap()
}

/// The threads on the server made for the subagent `name`.
pub async fn threads_of(client: &Client, name: &str) -> Vec<Thread> {
    let mut metadata = JsonObject::new();
    metadata.insert("subagent_name".into(), json!(name));
    client
        .threads()
        .search(&ThreadSearchRequest {
            metadata: Some(metadata),
            ..ThreadSearchRequest::default()
        })
        .await
        .unwrap()
}

/// The task id in a start tool's answer ("Launched async subagent. task_id: X").
pub fn task_id_of(output: &ToolOutput) -> Uuid {
    let id = launch_id(&output.content)
        .unwrap_or_else(|| panic!("not a launch answer: {}", output.content));
    uuid(id)
}

/// The JSON a check answered.
pub fn json_of(output: &ToolOutput) -> Value {
    serde_json::from_str(&output.content)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", output.content))
}

/// A supervisor without a model: its conversation and board, and the middleware's tools,
/// called the way the agent loop calls them.
pub struct Supervisor {
    pub middleware: AsyncSubAgentMiddleware,
    pub tools: Vec<SharedTool>,
    pub state: AgentState,
    pub thread_id: Uuid,
    pub run_id: Uuid,
    channel: Channel,
    calls: AtomicUsize,
}

impl Supervisor {
    /// A supervisor with an empty conversation, on a fresh thread.
    pub fn new(middleware: AsyncSubAgentMiddleware) -> Self {
        Self::with_state(middleware, AgentState::default(), Uuid::now_v7())
    }

    /// A supervisor that continues `state` on `thread_id` (e.g. after its config changed).
    pub fn with_state(
        middleware: AsyncSubAgentMiddleware,
        state: AgentState,
        thread_id: Uuid,
    ) -> Self {
        let tools = middleware.tools();
        let channel = middleware
            .channels()
            .into_iter()
            .find(|channel| channel.name() == TASKS_CHANNEL)
            .unwrap_or_else(|| board_channel(100));
        Self {
            middleware,
            tools,
            state,
            thread_id,
            run_id: Uuid::now_v7(),
            channel,
            calls: AtomicUsize::new(0),
        }
    }

    /// The tool named `name`.
    pub fn tool(&self, name: &str) -> SharedTool {
        Arc::clone(
            self.tools
                .iter()
                .find(|tool| tool.name() == name)
                .unwrap_or_else(|| panic!("no tool {name}")),
        )
    }

    /// One model turn calling one tool: its answer, with the board updated.
    /// Starts a task on `agent` and answers its id.
    pub async fn start(&mut self, agent: &str, description: &str) -> Uuid {
        let args = serde_json::json!({"description": description, "subagent_type": agent});
        task_id_of(&self.call("start_async_task", args).await)
    }

    pub async fn call(&mut self, name: &str, args: Value) -> ToolOutput {
        self.turn(vec![(name, args)]).await.remove(0)
    }

    /// One model turn calling several tools (as one AI message): their answers in order. Every
    /// call sees the state as it was when the model asked, as in the agent loop.
    pub async fn turn(&mut self, calls: Vec<(&str, Value)>) -> Vec<ToolOutput> {
        let calls: Vec<ToolCall> = calls
            .into_iter()
            .map(|(name, args)| {
                let n = self.calls.fetch_add(1, Ordering::Relaxed);
                let Value::Object(args) = args else {
                    panic!("tool arguments must be an object");
                };
                ToolCall::new(format!("call_{n}"), name, args)
            })
            .collect();
        self.state
            .messages
            .push(Message::ai_with_tool_calls("", calls.clone()));
        let snapshot = Arc::new(self.state.clone());
        let mut outputs = Vec::new();
        for call in &calls {
            let context = ToolContext {
                call_id: call.id.clone().unwrap(),
                state: Arc::clone(&snapshot),
                run_id: self.run_id,
                thread_id: self.thread_id,
                cancel: CancellationToken::new(),
                events: EventSink::discard(),
            };
            let output = self
                .tool(&call.name)
                .call(call.args.clone(), context)
                .await
                .unwrap();
            outputs.push(output);
        }
        for (call, output) in calls.iter().zip(&outputs) {
            self.state.messages.push(Message::tool(
                call.id.clone().unwrap(),
                output.content.clone(),
            ));
            self.apply(&output.update);
        }
        outputs
    }

    /// Applies a tool's writes to the board through its reducer.
    pub fn apply(&mut self, update: &JsonObject) {
        for (name, write) in update {
            assert_eq!(name, TASKS_CHANNEL, "tools write only the board");
            let merged = self
                .channel
                .reduce(self.state.channels.get(name), write.clone());
            self.state.channels.insert(name.clone(), merged);
        }
    }

    /// The task on the board.
    pub fn task(&self, task_id: impl Display) -> AsyncTask {
        let task_id = task_id.to_string();
        find_task(&self.state.channels, &task_id)
            .unwrap_or_else(|| panic!("task {task_id} is not on the board"))
    }

    /// Waits until the current run of the task on the board has `status` on its server, and
    /// answers the task.
    pub async fn wait_run(
        &self,
        client: &Client,
        task_id: impl Display,
        status: RunStatus,
    ) -> AsyncTask {
        let task = self.task(task_id);
        wait_run_status(client, &task.thread_id, &task.run_id, status).await;
        task
    }

    /// Edits a task on the board in place.
    pub fn edit_task(&mut self, task_id: impl Display, edit: impl FnOnce(&mut AsyncTask)) {
        let task_id = task_id.to_string();
        let mut task = self.task(&task_id);
        edit(&mut task);
        let mut write = JsonObject::new();
        write.insert(task_id, serde_json::to_value(&task).unwrap());
        let mut update = JsonObject::new();
        update.insert(TASKS_CHANNEL.to_owned(), Value::Object(write));
        self.apply(&update);
    }

    /// Runs the middleware's `before_model` hook, as before the supervisor's next model call.
    pub async fn before_model(&mut self) {
        let mut run = RunContext::detached();
        run.thread_id = self.thread_id;
        run.run_id = self.run_id;
        self.middleware
            .before_model(&mut self.state, &run)
            .await
            .unwrap();
    }

    /// The notices delivered into the conversation so far.
    pub fn notices(&self) -> Vec<Message> {
        self.state
            .messages
            .iter()
            .filter(|message| is_notification(message))
            .cloned()
            .collect()
    }

    /// Waits until `count` notices wait for this supervisor's next model call.
    pub async fn wait_notices(&self, count: usize) {
        wait_until(&format!("{count} notice(s)"), || async {
            self.middleware.pending_notices(self.thread_id) >= count
        })
        .await;
    }
}

/// The messages of a thread's values, as the server has them.
pub async fn thread_messages(client: &Client, thread_id: impl Display) -> Vec<Message> {
    let thread = client.threads().get(uuid(thread_id)).await.unwrap();
    thread
        .values
        .as_option()
        .map(|values| messages_from_value(values).unwrap())
        .unwrap_or_default()
}
