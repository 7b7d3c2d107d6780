//! Summarisation: when the conversation grows past a token budget, older messages become one
//! summary message, so a long-running agent keeps going within its model's context.

use super::Middleware;
use crate::Error;
use crate::model::{ChatModel, ModelRequest};
use crate::state::{AgentState, RunContext};
use async_trait::async_trait;
use errand_protocol::{Message, MessageKind};
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::Arc;

/// What the summary message starts with, as LangChain's summarisation writes it, so prompts
/// and tools written for it recognise it.
pub const SUMMARY_PREFIX: &str = "Here is a summary of the conversation to date:\n\n";

const DEFAULT_PROMPT: &str = "You compress an agent's conversation so that it can go on \
without the original messages. Write a concise summary of the conversation below: the user's \
goals and instructions, decisions made, facts learned from tools (with ids, names, paths and \
numbers exactly as written), work still open. Answer with the summary only.";

/// The summarisation middleware. State channels are never touched: only `messages` shrink.
///
/// ```
/// use errand_runtime::hooks::Summarization;
/// use errand_runtime::model::{ScriptedModel, Turn};
/// use std::sync::Arc;
/// let summarizer = Arc::new(ScriptedModel::new([Turn::text("The user wants a report.")]));
/// let middleware = Summarization::new(summarizer, 4_000).keep_last(6);
/// # let _ = middleware;
/// ```
#[derive(Debug)]
pub struct Summarization {
    model: Arc<dyn ChatModel>,
    max_tokens: usize,
    keep_last: usize,
    prompt: String,
}

impl Summarization {
    /// Summarises with `model` when the conversation passes about `max_tokens` tokens.
    pub fn new(model: Arc<dyn ChatModel>, max_tokens: usize) -> Self {
        Self {
            model,
            max_tokens,
            keep_last: 10,
            prompt: DEFAULT_PROMPT.into(),
        }
    }

    /// Keeps at least the latest `count` messages as they are (default 10).
    #[must_use]
    pub fn keep_last(mut self, count: usize) -> Self {
        self.keep_last = count;
        self
    }

    /// Replaces the instructions given to the summarising model.
    #[must_use]
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = prompt.into();
        self
    }

    /// Where the kept part starts: the latest `keep_last` messages, moved back so that no tool
    /// answer is kept without the AI message that asked for it.
    fn cut(&self, messages: &[Message]) -> usize {
        let mut cut = messages.len().saturating_sub(self.keep_last);
        while cut > 0 && messages[cut].kind == MessageKind::Tool {
            cut -= 1;
        }
        cut
    }
}

#[async_trait]
impl Middleware for Summarization {
    fn name(&self) -> &str {
        "summarization"
    }

    async fn before_model(&self, state: &mut AgentState, _run: &RunContext) -> Result<(), Error> {
        let tokens = approximate_tokens(&state.messages);
        if tokens <= self.max_tokens {
            return Ok(());
        }
        let cut = self.cut(&state.messages);
        if cut == 0 {
            return Ok(());
        }
        let mut request =
            ModelRequest::new(vec![Message::human(transcript(&state.messages[..cut]))]);
        request.system = Some(self.prompt.clone());
        let summary = self.model.complete(&request).await?;
        let mut message = Message::human(format!("{SUMMARY_PREFIX}{}", summary.text()))
            .with_id(format!("summary-{}", uuid::Uuid::new_v4()));
        message
            .additional_kwargs
            .insert("lc_source".into(), Value::from("summarization"));
        tracing::info!(
            summarised = cut,
            kept = state.messages.len() - cut,
            tokens_before = tokens,
            "conversation summarised"
        );
        state.messages.splice(..cut, [message]);
        Ok(())
    }
}

/// A rough token count (four characters a token, plus a little per message): enough to decide
/// when to summarise without a provider's tokenizer.
pub fn approximate_tokens(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|message| {
            let calls: usize = message
                .tool_calls()
                .iter()
                .map(|call| call.name.len() + Value::Object(call.args.clone()).to_string().len())
                .sum();
            (message.text().len() + calls) / 4 + 4
        })
        .sum()
}

fn transcript(messages: &[Message]) -> String {
    let mut text = String::new();
    for message in messages {
        let _ = write!(text, "[{}] {}", message.kind, message.text());
        for call in message.tool_calls() {
            let _ = write!(
                text,
                "\n(calls {} with {})",
                call.name,
                Value::Object(call.args.clone())
            );
        }
        text.push_str("\n\n");
    }
    text
}
