//! One run of the agent loop: [`Agent::run`] and what it does at each step.

use super::{Agent, RunOutcome};
use crate::hooks::ToolNext;
use crate::model::{MessageBuilder, ModelDelta, ModelRequest};
use crate::state::{AgentState, RunContext};
use crate::tool::{ToolContext, ToolOutput, check_arguments};
use crate::{Error, add_messages};
use errand_protocol::{JsonObject, Message, MessageChunk, MessageKind, StreamPart, ToolCall};
use futures::StreamExt;
use futures::future::join_all;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;

const MODEL_NODE: &str = "model";
const TOOLS_NODE: &str = "tools";

impl Agent {
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
        let result = Loop { agent: self, run }.run(&mut state).await;
        RunOutcome { state, result }
    }
}

struct Loop<'a> {
    agent: &'a Agent,
    run: &'a RunContext,
}

impl Loop<'_> {
    /// Runs the loop on `state` in place, so that a run that fails or is cancelled leaves
    /// what it did so far (its input, notices, the tool calls that finished).
    async fn run(&self, state: &mut AgentState) -> Result<(), Error> {
        self.emit(StreamPart::Values(state.to_values()));
        for step in 1..=self.agent.max_steps {
            for middleware in &self.agent.middleware {
                self.cancellable(middleware.before_model(state, self.run))
                    .await?;
            }
            let request = self.request(state).await?;
            let answer = self.cancellable(self.ask_model(&request, step)).await?;
            state.messages.push(answer.clone());
            self.emit(StreamPart::Updates(
                json!({ MODEL_NODE: { "messages": [&answer] } }),
            ));
            self.emit(StreamPart::Values(state.to_values()));

            if answer.tool_calls().is_empty() {
                for middleware in &self.agent.middleware {
                    self.cancellable(middleware.after_run(state, self.run))
                        .await?;
                }
                return Ok(());
            }
            let snapshot = Arc::new(state.clone());
            let outputs = join_all(
                answer
                    .tool_calls()
                    .iter()
                    .map(|call| self.call_tool(call, Arc::clone(&snapshot))),
            )
            .await;
            let mut update = JsonObject::new();
            let mut tool_messages = Vec::with_capacity(outputs.len());
            let mut cancelled = false;
            for (call, output) in answer.tool_calls().iter().zip(outputs) {
                // A cancelled call still gets an answer, so the conversation never holds a
                // call without one; the calls that finished keep their writes.
                let output = output.unwrap_or_else(|_| {
                    cancelled = true;
                    Err("the call was cancelled before it finished.".to_owned())
                });
                let (message, writes) = tool_answer(call, output);
                tool_messages.push(message);
                for (channel, write) in writes {
                    self.agent.channels.apply(
                        state,
                        [(channel.clone(), write.clone())].into_iter().collect(),
                    )?;
                    update.insert(channel, write);
                }
            }
            update.insert("messages".into(), json!(tool_messages));
            add_messages(&mut state.messages, tool_messages);
            self.emit(StreamPart::Updates(json!({ TOOLS_NODE: update })));
            self.emit(StreamPart::Values(state.to_values()));
            if cancelled {
                return Err(Error::Cancelled);
            }
        }
        Err(Error::StepLimit {
            steps: self.agent.max_steps,
        })
    }

    async fn request(&self, state: &AgentState) -> Result<ModelRequest, Error> {
        let mut request = ModelRequest {
            system: self.agent.system_prompt.clone(),
            messages: state.messages.clone(),
            tools: self.agent.tools.iter().map(|tool| tool.spec()).collect(),
            settings: self.agent.settings.clone(),
        };
        for middleware in &self.agent.middleware {
            self.cancellable(middleware.modify_request(&mut request, state))
                .await?;
        }
        Ok(request)
    }

    /// Streams one answer, forwarding each delta as a `messages` chunk, and answers the
    /// whole message.
    async fn ask_model(&self, request: &ModelRequest, step: usize) -> Result<Message, Error> {
        let model = &self.agent.model;
        let id = format!("run-{}", uuid::Uuid::new_v4());
        let metadata = self.chunk_metadata(step);
        let mut builder = MessageBuilder::new(model.provider());
        let mut deltas = model.stream(request).await?;
        while let Some(delta) = deltas.next().await {
            let delta = delta?;
            if let Some(chunk) = chunk_of(&delta, &id) {
                self.emit(StreamPart::Messages(Box::new(MessageChunk(
                    chunk,
                    metadata.clone(),
                ))));
            }
            builder.push(delta);
        }
        let mut message = builder.finish()?;
        message.id = Some(id);
        message.name = None;
        Ok(message)
    }

    /// Runs one tool call through the middleware chain. An unknown tool, arguments that do not
    /// fit, or a failing tool give an error text for the model; only cancellation is an `Err`.
    async fn call_tool(
        &self,
        call: &ToolCall,
        state: Arc<AgentState>,
    ) -> Result<Result<ToolOutput, String>, Error> {
        let Some(tool) = self.agent.tools.iter().find(|t| t.name() == call.name) else {
            let known: Vec<_> = self.agent.tools.iter().map(|t| t.name()).collect();
            return Ok(Err(format!(
                "`{}` is not a valid tool, try one of [{}].",
                call.name,
                known.join(", ")
            )));
        };
        if let Err(problem) = check_arguments(&tool.parameters(), &Value::Object(call.args.clone()))
        {
            return Ok(Err(format!(
                "the arguments do not fit the tool `{}`: {problem}",
                call.name
            )));
        }
        let context = ToolContext {
            call_id: call.id.clone().unwrap_or_default(),
            state,
            run_id: self.run.run_id,
            thread_id: self.run.thread_id,
            cancel: self.run.cancel.child_token(),
            events: self.run.events.clone(),
        };
        let chain = ToolNext::new(&self.agent.middleware, tool.as_ref()).run(call, context);
        match self.cancellable(chain).await {
            Ok(output) => Ok(Ok(output)),
            Err(Error::Cancelled) if self.run.cancel.is_cancelled() => Err(Error::Cancelled),
            Err(error) => {
                tracing::debug!(tool = %call.name, %error, "tool call failed");
                Ok(Err(error.message()))
            }
        }
    }

    /// Runs `work` unless the run is cancelled first.
    async fn cancellable<T>(
        &self,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::select! {
            biased;
            () = self.run.cancel.cancelled() => Err(Error::Cancelled),
            result = work => result,
        }
    }

    fn emit(&self, part: StreamPart) {
        self.run.events.emit(part);
    }

    fn chunk_metadata(&self, step: usize) -> JsonObject {
        let model = &self.agent.model;
        let mut metadata = JsonObject::new();
        metadata.insert("graph_id".into(), Value::from(self.run.graph_id.clone()));
        metadata.insert("run_id".into(), Value::from(self.run.run_id.to_string()));
        metadata.insert(
            "thread_id".into(),
            Value::from(self.run.thread_id.to_string()),
        );
        metadata.insert("langgraph_step".into(), Value::from(step));
        metadata.insert("langgraph_node".into(), Value::from(MODEL_NODE));
        metadata.insert("ls_provider".into(), Value::from(model.provider()));
        metadata.insert("ls_model_name".into(), Value::from(model.model_name()));
        metadata
    }
}

/// The tool message answering `call`, and the channel writes the tool asked for.
fn tool_answer(call: &ToolCall, output: Result<ToolOutput, String>) -> (Message, JsonObject) {
    let call_id = call.id.clone().unwrap_or_default();
    match output {
        Ok(output) => {
            let message = Message::tool(call_id, output.content)
                .with_name(call.name.clone())
                .with_id(uuid::Uuid::new_v4().to_string());
            (message, output.update)
        }
        Err(problem) => {
            let mut message = Message::tool(
                call_id,
                format!("Error: {problem}\n Please fix your mistakes."),
            )
            .with_name(call.name.clone())
            .with_id(uuid::Uuid::new_v4().to_string());
            message.extra.insert("status".into(), Value::from("error"));
            (message, JsonObject::new())
        }
    }
}

/// The `AIMessageChunk` a client sees for one delta, if the delta shows anything.
fn chunk_of(delta: &ModelDelta, id: &str) -> Option<Message> {
    let (text, tool_call_chunk) = match delta {
        ModelDelta::Text(text) => (text.clone(), None),
        ModelDelta::ToolCall {
            index,
            id,
            name,
            arguments,
        } => (
            String::new(),
            Some(
                json!({"name": name, "args": arguments, "id": id, "index": index, "type": "tool_call_chunk"}),
            ),
        ),
        ModelDelta::CompleteToolCall(call) => (
            String::new(),
            Some(json!({
                "name": call.name,
                "args": Value::Object(call.args.clone()).to_string(),
                "id": call.id,
                "index": Value::Null,
                "type": "tool_call_chunk"
            })),
        ),
        ModelDelta::Metadata { .. } => return None,
    };
    let mut chunk = Message::new(MessageKind::AiChunk, text).with_id(id);
    chunk.tool_calls = Some(Vec::new());
    chunk.extra.insert(
        "tool_call_chunks".into(),
        Value::Array(tool_call_chunk.into_iter().collect()),
    );
    Some(chunk)
}
