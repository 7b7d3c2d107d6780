//! The middleware's limits and knobs.

use crate::watch::Timing;
use std::time::Duration;

/// Limits and settings of an [`crate::AsyncSubAgentMiddleware`]; every field has a default.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The most unfinished tasks at once; one more start is refused with a message saying why.
    /// None: no cap.
    pub max_running_tasks: Option<usize>,
    /// Tasks still unfinished this long after they started are cancelled and end as `timeout`,
    /// unless their subagent sets its own deadline. None: no deadline.
    pub default_deadline: Option<Duration>,
    /// How many finished tasks the board keeps (the newest); unfinished ones are always kept.
    pub keep_finished_tasks: usize,
    /// The most characters of a result `check_async_task` shows at once; the rest is read with
    /// `offset`.
    pub max_result_chars: usize,
    /// Whether [`crate::AsyncSubAgentMiddleware::shutdown`] cancels the runs still going.
    pub cancel_on_exit: bool,
    /// Text added to the supervisor's system prompt, followed by the list of subagents. None
    /// (the default, as in Deep Agents): the tool descriptions teach the model on their own.
    pub system_prompt: Option<String>,
    /// How the watchers pace themselves.
    pub timing: Timing,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_running_tasks: None,
            default_deadline: None,
            keep_finished_tasks: 100,
            max_result_chars: 20_000,
            cancel_on_exit: false,
            system_prompt: None,
            timing: Timing::default(),
        }
    }
}
