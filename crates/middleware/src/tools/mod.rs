//! The five tools, with Deep Agents' names, arguments and answers: one module per tool, each
//! with its argument type, its description and its answers.
//!
//! What more than one tool needs lives here: the list of tools and the constructor that turns a
//! handler over the [`Shared`] state into a tool, the run a tool creates, and the replies for a
//! task that is not on the board, whose subagent is gone, or whose action was not approved.

mod cancel;
mod check;
mod list;
mod live;
mod start;
mod update;

use crate::shared::Shared;
use crate::spec::AsyncSubAgent;
use crate::task::AsyncTask;
use errand_protocol::{MultitaskStrategy, RunConfig, RunCreate};
use errand_runtime::Error as RuntimeError;
use errand_runtime::tool::{FunctionTool, SharedTool, ToolContext, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

/// The tool names, in Deep Agents' order.
pub const TOOL_NAMES: [&str; 5] = [
    start::NAME,
    check::NAME,
    update::NAME,
    cancel::NAME,
    list::NAME,
];

/// The five tools over the middleware's state, in the order of [`TOOL_NAMES`].
pub(crate) fn all(shared: &Arc<Shared>) -> Vec<SharedTool> {
    vec![
        tool(
            shared,
            start::NAME,
            start::description(&shared.specs),
            |shared, args, context| async move { start::start(&shared, args, context).await },
        ),
        tool(
            shared,
            check::NAME,
            check::DESCRIPTION.into(),
            |shared, args, context| async move { check::check(&shared, args, context).await },
        ),
        tool(
            shared,
            update::NAME,
            update::description(&shared.specs),
            |shared, args, context| async move { update::update(&shared, args, context).await },
        ),
        tool(
            shared,
            cancel::NAME,
            cancel::DESCRIPTION.into(),
            |shared, args, context| async move { cancel::cancel(&shared, args, context).await },
        ),
        tool(
            shared,
            list::NAME,
            list::DESCRIPTION.into(),
            |shared, args, context| async move { list::list(&shared, args, context).await },
        ),
    ]
}

/// A tool whose handler works on the middleware's shared state. A handler never fails: what
/// goes wrong is told to the model in its answer.
fn tool<A, F, Fut>(shared: &Arc<Shared>, name: &str, description: String, handler: F) -> SharedTool
where
    A: for<'de> Deserialize<'de> + JsonSchema + Send + 'static,
    F: Fn(Arc<Shared>, A, ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ToolOutput> + Send + 'static,
{
    let shared = Arc::clone(shared);
    let handler = Arc::new(handler);
    Arc::new(FunctionTool::new(
        name,
        description,
        move |args: A, context| {
            let shared = Arc::clone(&shared);
            let handler = Arc::clone(&handler);
            async move { Ok::<_, RuntimeError>(handler(shared, args, context).await) }
        },
    ))
}

/// The run a tool creates for `spec` on behalf of the supervisor thread `parent`.
fn run_create(
    spec: &AsyncSubAgent,
    parent: Uuid,
    messages: &Value,
    strategy: Option<MultitaskStrategy>,
) -> RunCreate {
    let mut configurable = Map::new();
    configurable.insert(
        "deepagents_parent".into(),
        json!({ "thread_id": parent.to_string() }),
    );
    let mut run = RunCreate::new(spec.graph_id.clone(), json!({ "messages": messages }));
    run.multitask_strategy = strategy;
    run.webhook = spec.webhook.clone();
    run.config = Some(RunConfig {
        configurable: Some(configurable),
        ..RunConfig::default()
    });
    run
}

/// The answer for a task id that is not on the board.
fn not_found(task_id: &str) -> ToolOutput {
    ToolOutput::text(format!(
        "No tracked task found for task_id: '{}'",
        task_id.trim()
    ))
}

/// The answer for a task whose subagent is no longer configured, so `what` (cannot be done).
fn removed_agent(shared: &Shared, task: &AsyncTask, what: &str) -> ToolOutput {
    ToolOutput::text(format!(
        "Task {} was started on the async subagent `{}`, which is no longer configured, so {what}. \
         Its last known status was {}. The subagents available now are {}.",
        task.task_id,
        task.agent_name,
        task.status,
        shared.names()
    ))
}

/// The answer when the approver refused to let the supervisor do `what`.
fn declined(what: &str, reason: &str) -> ToolOutput {
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(" Their reason: {}.", reason.trim_end_matches('.'))
    };
    ToolOutput::text(format!(
        "The user did not approve: you may not {what}.{reason} Don't try again unless they ask for it."
    ))
}
