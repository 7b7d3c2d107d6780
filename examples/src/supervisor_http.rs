//! The supervisor of the two-process example: its subagent is on another server, reached over
//! HTTP at a URL (start one with the `researcher_server` example).

use crate::Transcript;
use crate::researcher::GRAPH;
use crate::supervisor::{Assignment, Outcome, Supervisor, converse};
use errand::middleware::AsyncSubAgent;

/// Hands two research tasks to the researcher at `url`, talks to its user meanwhile, and
/// reports both results as their notices arrive.
pub async fn run(url: &str) -> anyhow::Result<Outcome> {
    let transcript = Transcript::new();
    transcript.say(format!("supervisor: subagent `researcher` is at {url}"));
    // `graph_id` names the graph on that server; `url` makes the middleware use HTTP.
    let researcher = AsyncSubAgent::new(
        "researcher",
        "Researches a topic and reports findings.",
        GRAPH,
    )
    .url(url);
    let supervisor = Supervisor::new(
        vec![researcher],
        None,
        vec![
            Assignment::new("researcher", "async runtimes in Rust"),
            Assignment::new("researcher", "SQLite write-ahead logging, in depth"),
        ],
        &transcript,
    )?;
    converse(supervisor, &transcript).await
}
