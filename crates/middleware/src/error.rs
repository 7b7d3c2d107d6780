//! The middleware's one error type: what is wrong with a set of subagent specs.
//!
//! Failures while a tool runs never surface as errors: they go back to the model as text, so
//! the supervisor can tell its user and carry on.

/// A set of async subagents that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No subagent was given.
    #[error("At least one async subagent must be specified")]
    NoSubagents,
    /// Two or more subagents share a name.
    #[error("Duplicate async subagent names: {}", .0.join(", "))]
    DuplicateNames(Vec<String>),
    /// A subagent's spec has a bad value.
    #[error("AsyncSubAgent '{name}' {problem}")]
    InvalidSpec {
        /// The subagent.
        name: String,
        /// What is wrong, e.g. "has invalid update_strategy 'x'; expected 'interrupt' or 'enqueue'".
        problem: String,
    },
    /// A subagent has no `url` and the middleware was given no in-process server.
    #[error(
        "AsyncSubAgent '{0}' has no url and no in-process server was given; set its url or build the middleware with a local client"
    )]
    NoLocalServer(String),
}
