//! What an agent's loop, its tools and its hooks share: the state of one agent on one thread
//! (the conversation, and channels beside it that keep their own values) and the context of
//! one run.
//!
//! It sits below [`crate::agent`], [`crate::tool`] and [`crate::hooks`], which all read these
//! types, so that each of them imports it and none imports another back. Users reach the types
//! as `errand_runtime::agent::{AgentState, Channel, RunContext}`.

use crate::Error;
use crate::graph::EventSink;
use crate::messages::{add_messages, messages_from_value};
use errand_protocol::{JsonObject, Message};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The state of one agent on one thread.
///
/// `messages` is the conversation; `channels` hold everything else (a task board, a todo list),
/// each key merged by its [`Channel`]'s reducer. On the wire the state is one object: `messages`
/// beside the channels' keys, which is what clients read as the thread's `values`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentState {
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// The other channels, by name.
    pub channels: JsonObject,
}

impl AgentState {
    /// A state with these messages and no channels.
    pub fn with_messages(messages: Vec<Message>) -> Self {
        Self {
            messages,
            channels: JsonObject::new(),
        }
    }

    /// Reads a thread's values: `messages` in any wire form, every other key a channel.
    pub fn from_values(values: &Value) -> Result<Self, Error> {
        let messages = messages_from_value(values)
            .map_err(|error| Error::failed("InvalidUpdateError", error.to_string()))?;
        let mut channels = values.as_object().cloned().unwrap_or_default();
        channels.remove("messages");
        Ok(Self { messages, channels })
    }

    /// The state as a thread's values.
    pub fn to_values(&self) -> Value {
        let mut values = self.channels.clone();
        values.insert(
            "messages".into(),
            serde_json::to_value(&self.messages).unwrap_or(Value::Null),
        );
        Value::Object(values)
    }
}

type ReduceFn = dyn Fn(Option<&Value>, Value) -> Value + Send + Sync;

/// A state channel: a name and the reducer that merges a write into its value.
#[derive(Clone)]
pub struct Channel {
    name: String,
    reduce: Arc<ReduceFn>,
}

impl Channel {
    /// A channel whose writes replace its value (LangGraph's `LastValue`).
    pub fn last_value(name: impl Into<String>) -> Self {
        Self::with_reducer(name, |_, new| new)
    }

    /// A channel whose writes are merged into its value by `reduce(old, write)`.
    pub fn with_reducer(
        name: impl Into<String>,
        reduce: impl Fn(Option<&Value>, Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            reduce: Arc::new(reduce),
        }
    }

    /// A channel holding an object whose writes are merged key by key: a key written replaces
    /// that key, a key written as `null` is removed, other keys stay. What a board of records
    /// keyed by id needs.
    pub fn merge_by_key(name: impl Into<String>) -> Self {
        Self::with_reducer(name, |old, write| {
            let mut merged = old.and_then(Value::as_object).cloned().unwrap_or_default();
            if let Value::Object(write) = write {
                for (key, value) in write {
                    if value.is_null() {
                        merged.remove(&key);
                    } else {
                        merged.insert(key, value);
                    }
                }
            }
            Value::Object(merged)
        })
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value after `write` is merged into `old`.
    pub fn reduce(&self, old: Option<&Value>, write: Value) -> Value {
        (self.reduce)(old, write)
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The channels an agent knows, and how it applies writes to a state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Channels(Vec<Channel>);

impl Channels {
    pub(crate) fn add(&mut self, channel: Channel) -> Result<(), Error> {
        if channel.name == "messages" || self.0.iter().any(|c| c.name == channel.name) {
            return Err(Error::Config(format!(
                "two state channels are named `{}`",
                channel.name
            )));
        }
        self.0.push(channel);
        Ok(())
    }

    /// Applies `update` to `state`: `messages` through `add_messages`, a known channel through
    /// its reducer, any other key by replacing it.
    pub(crate) fn apply(&self, state: &mut AgentState, update: JsonObject) -> Result<(), Error> {
        for (key, write) in update {
            if key == "messages" {
                let messages = messages_from_value(&Value::Object(
                    [("messages".to_owned(), write)].into_iter().collect(),
                ))
                .map_err(|error| Error::failed("InvalidUpdateError", error.to_string()))?;
                add_messages(&mut state.messages, messages);
                continue;
            }
            let merged = match self.0.iter().find(|c| c.name == key) {
                Some(channel) => channel.reduce(state.channels.get(&key), write),
                None => write,
            };
            state.channels.insert(key, merged);
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip_and_channels_merge() {
        let values = json!({"messages": [{"role": "user", "content": "hi"}], "todo": [1]});
        let mut state = AgentState::from_values(&values).unwrap();
        assert_eq!(state.messages.len(), 1);
        let mut channels = Channels::default();
        channels.add(Channel::merge_by_key("board")).unwrap();
        assert!(channels.add(Channel::last_value("board")).is_err());
        assert!(channels.add(Channel::last_value("messages")).is_err());
        let write = |update: Value| update.as_object().unwrap().clone();
        channels
            .apply(&mut state, write(json!({"board": {"a": 1, "b": 2}})))
            .unwrap();
        channels
            .apply(
                &mut state,
                write(json!({"board": {"b": null, "c": 3}, "todo": [2]})),
            )
            .unwrap();
        channels
            .apply(
                &mut state,
                write(json!({"messages": [{"role": "assistant", "content": "yo"}]})),
            )
            .unwrap();
        let values = state.to_values();
        assert_eq!(values["board"], json!({"a": 1, "c": 3}));
        assert_eq!(values["todo"], json!([2]));
        assert_eq!(values["messages"][1]["type"], "ai");
        assert_eq!(AgentState::from_values(&values).unwrap(), state);
    }
}
