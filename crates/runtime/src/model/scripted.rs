//! The Scripted model: fixed turns instead of a provider, for tests and the offline demo.

use super::{ChatModel, ModelDelta, ModelRequest, ModelStream, deltas_of};
use crate::Error;
use async_trait::async_trait;
use errand_protocol::{JsonObject, Message, ToolCall};
use futures::stream::{self, StreamExt};
use serde_json::Value;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// One answer of a [`ScriptedModel`].
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// Answer this assistant message.
    Answer(Box<Message>),
    /// Fail the call with this error.
    Fail(Error),
    /// Wait this long (cancellably), then take the inner turn.
    Delayed(Duration, Box<Turn>),
}

impl Turn {
    /// A text answer without tool calls.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Answer(Box::new(Message::ai(text)))
    }

    /// An answer that calls one tool with `args` (a JSON object).
    pub fn tool_call(name: impl Into<String>, args: Value) -> Self {
        Self::tool_calls([(name.into(), args)])
    }

    /// An answer that calls several tools at once.
    pub fn tool_calls<N: Into<String>>(calls: impl IntoIterator<Item = (N, Value)>) -> Self {
        let calls = calls
            .into_iter()
            .map(|(name, args)| {
                let args = match args {
                    Value::Object(args) => args,
                    _ => JsonObject::new(),
                };
                ToolCall::new(
                    format!("call_{}", uuid::Uuid::new_v4().simple()),
                    name,
                    args,
                )
            })
            .collect();
        Self::Answer(Box::new(Message::ai_with_tool_calls("", calls)))
    }

    /// A call that fails with `error`.
    pub fn fail(error: Error) -> Self {
        Self::Fail(error)
    }

    /// The same turn, after a pause: a slow model, for progress displays and cancel tests.
    #[must_use]
    pub fn after(self, delay: Duration) -> Self {
        Self::Delayed(delay, Box::new(self))
    }
}

type Responder = dyn Fn(&ModelRequest) -> Turn + Send + Sync;

enum Script {
    Turns(Vec<Turn>),
    Responder(Box<Responder>),
}

/// A [`ChatModel`] that answers from a script and records every request it was given.
///
/// ```
/// use errand_runtime::model::{ChatModel, ModelRequest, ScriptedModel, Turn};
/// use errand_protocol::Message;
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let model = ScriptedModel::new([Turn::tool_call("ls", serde_json::json!({"path": "/"})), Turn::text("done")]);
/// let first = model.complete(&ModelRequest::new(vec![Message::human("list")])).await.unwrap();
/// assert_eq!(first.tool_calls()[0].name, "ls");
/// let second = model.complete(&ModelRequest::new(vec![])).await.unwrap();
/// assert_eq!(second.text(), "done");
/// assert_eq!(model.requests()[0].messages[0].text(), "list");
/// assert!(model.complete(&ModelRequest::new(vec![])).await.is_err());
/// # });
/// ```
#[derive(Clone)]
pub struct ScriptedModel {
    name: String,
    script: Arc<Script>,
    next: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<ModelRequest>>>,
}

impl ScriptedModel {
    /// A model that answers `turns` in order, then fails with [`Error::ScriptExhausted`].
    pub fn new(turns: impl IntoIterator<Item = Turn>) -> Self {
        Self::with_script(Script::Turns(turns.into_iter().collect()))
    }

    /// A model that answers each request with what `respond` makes of it: a script that
    /// reacts to what it is asked, for agents that must answer any task.
    pub fn responder(respond: impl Fn(&ModelRequest) -> Turn + Send + Sync + 'static) -> Self {
        Self::with_script(Script::Responder(Box::new(respond)))
    }

    fn with_script(script: Script) -> Self {
        Self {
            name: "scripted".into(),
            script: Arc::new(script),
            next: Arc::default(),
            requests: Arc::default(),
        }
    }

    /// Names the model (as `model_name` and in `response_metadata`).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Every request made so far, oldest first.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn answer(&self, request: &ModelRequest) -> Result<Message, Error> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.clone());
        let turn = self.next.fetch_add(1, Ordering::SeqCst);
        let mut next = match &*self.script {
            Script::Turns(turns) => turns.get(turn).cloned().ok_or(Error::ScriptExhausted {
                turn: turn + 1,
                len: turns.len(),
            })?,
            Script::Responder(respond) => respond(request),
        };
        loop {
            match next {
                Turn::Answer(mut message) => {
                    message
                        .response_metadata
                        .insert("model_name".into(), Value::from(self.name.clone()));
                    return Ok(*message);
                }
                Turn::Fail(error) => return Err(error),
                Turn::Delayed(delay, turn) => {
                    tokio::time::sleep(delay).await;
                    next = *turn;
                }
            }
        }
    }
}

#[async_trait]
impl ChatModel for ScriptedModel {
    fn provider(&self) -> &str {
        "scripted"
    }

    fn model_name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: &ModelRequest) -> Result<Message, Error> {
        self.answer(request).await
    }

    /// Streams text a word at a time, so streaming consumers see more than one delta.
    async fn stream(&self, request: &ModelRequest) -> Result<ModelStream, Error> {
        let message = self.answer(request).await?;
        let deltas = deltas_of(message)
            .into_iter()
            .flat_map(|delta| match delta {
                ModelDelta::Text(text) => text
                    .split_inclusive(' ')
                    .map(|word| ModelDelta::Text(word.to_owned()))
                    .collect::<Vec<_>>(),
                other => vec![other],
            });
        Ok(stream::iter(deltas.map(Ok).collect::<Vec<_>>()).boxed())
    }
}

impl fmt::Debug for ScriptedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptedModel")
            .field("name", &self.name)
            .field("asked", &self.next.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}
