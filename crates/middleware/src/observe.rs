//! Reading a task's live status from its server.

use crate::task::TaskStatus;
use errand_client::{Client, ClientError};
use errand_protocol::{Interrupt, RunResult, RunStatus};
use serde_json::Value;
use uuid::Uuid;

/// What a task's server says about one of its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The run's own status.
    pub run_status: RunStatus,
    /// The task's status: the run's and the thread's together.
    pub status: TaskStatus,
    /// The final answer's text, for a finished or waiting task.
    pub result: Option<String>,
    /// The run's error, for a failed task.
    pub error: Option<String>,
    /// What a waiting task asks a human.
    pub interrupts: Vec<Interrupt>,
}

/// Reads the run, and the thread when the run finished (for its result, and whether it stopped
/// at an interrupt), and the error when it failed.
pub async fn observe(
    client: &Client,
    thread_id: Uuid,
    run_id: Uuid,
) -> Result<Observation, ClientError> {
    let run = client.runs().get(thread_id, run_id).await?;
    let mut observation = Observation {
        run_status: run.status,
        status: TaskStatus::observe(run.status, None),
        result: None,
        error: None,
        interrupts: Vec::new(),
    };
    match run.status {
        RunStatus::Success => {
            let thread = client.threads().get(thread_id).await?;
            observation.status = TaskStatus::observe(run.status, Some(thread.status));
            // The run's own final values: by the time a run is read, a follow-up queued behind
            // it may have written the thread's, and its answer is not this run's result.
            observation.result = match client.runs().join(thread_id, run_id).await {
                Ok(RunResult::Values(values)) => Some(final_text(&values)),
                _ => thread.values.as_option().map(final_text),
            };
            observation.interrupts = thread
                .interrupts
                .unwrap_or_default()
                .into_values()
                .flatten()
                .collect();
        }
        RunStatus::Error => {
            observation.error = Some(match client.runs().join(thread_id, run_id).await {
                Ok(RunResult::Error(error)) if !error.message.is_empty() => {
                    format!("{}: {}", error.error, error.message)
                }
                Ok(RunResult::Error(error)) => error.error,
                _ => "The async subagent encountered an error.".into(),
            });
        }
        RunStatus::Timeout => {
            observation.error =
                Some("The subagent's server stopped the run at its time limit.".into());
        }
        _ => {}
    }
    Ok(observation)
}

/// The text of the last message in a thread's values: its string content, or its text blocks
/// joined. Reasoning, tool calls and other blocks are left out.
pub fn final_text(values: &Value) -> String {
    let Some(last) = values
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| messages.last())
    else {
        return "(completed with no output messages)".into();
    };
    match last.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|block| match block {
                Value::String(text) => Some(text.as_str()),
                Value::Object(block)
                    if block.get("type").and_then(Value::as_str) == Some("text") =>
                {
                    block.get("text").and_then(Value::as_str)
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// One page of a long result: up to `limit` characters from character `offset`, with a marker
/// saying how much is left and how to read on.
pub fn page(text: &str, offset: usize, limit: usize) -> String {
    let total = text.chars().count();
    if offset >= total && total > 0 {
        return format!("(the result has {total} characters; offset {offset} is past its end)");
    }
    let shown: String = text.chars().skip(offset).take(limit).collect();
    let end = offset + shown.chars().count();
    if end < total {
        format!(
            "{shown}\n\n[... {} more characters not shown; call check_async_task with offset={end} to read on]",
            total - end
        )
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_result_is_text_only() {
        let values = json!({"messages": [
            {"type": "human", "content": "go"},
            {"type": "ai", "content": [
                {"type": "reasoning", "reasoning": "secret thoughts"},
                {"type": "text", "text": "First part."},
                {"type": "tool_use", "id": "x", "name": "ls", "input": {}},
                {"type": "text", "text": "Second part."}
            ]}
        ]});
        assert_eq!(final_text(&values), "First part.\nSecond part.");
        assert_eq!(
            final_text(&json!({"messages": []})),
            "(completed with no output messages)"
        );
        assert_eq!(
            final_text(&json!({"messages": [{"type": "ai", "content": "plain"}]})),
            "plain"
        );
    }

    #[test]
    fn long_results_come_in_pages() {
        let text = "abcdefghij";
        let first = page(text, 0, 4);
        assert!(first.starts_with(
            "abcd\n\n[... 6 more characters not shown; call check_async_task with offset=4"
        ));
        assert_eq!(page(text, 8, 4), "ij");
        assert_eq!(page(text, 0, 100), text);
        assert!(page(text, 50, 4).contains("past its end"));
    }
}
