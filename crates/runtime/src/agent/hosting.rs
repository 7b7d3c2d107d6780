//! Hosting: an [`Agent`] is a [`Graph`] a server runs. A run's input and command become
//! writes to the agent's state, and the state after the run becomes the thread's values.

use super::Agent;
use crate::Error;
use crate::graph::{Graph, GraphOutput, GraphRun};
use crate::messages::messages_from_value;
use crate::state::{AgentState, RunContext};
use async_trait::async_trait;
use errand_protocol::JsonObject;
use serde_json::Value;

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
