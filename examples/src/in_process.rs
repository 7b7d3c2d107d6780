//! The supervisor and its researcher in one program: the server runs here, and the supervisor
//! reaches it over the in-process transport (the server's router called directly, no socket).

use crate::Transcript;
use crate::researcher::{GRAPH, researcher_server};
use crate::supervisor::{Assignment, Outcome, Supervisor, converse};
use anyhow::Context;
use errand::client::Client;
use errand::middleware::AsyncSubAgent;
use std::time::Duration;

/// Starts an in-process server hosting the researcher (its SQLite file in a temporary folder),
/// then hands it two research tasks as [`supervisor_http`](crate::supervisor_http) does.
pub async fn run() -> anyhow::Result<Outcome> {
    let transcript = Transcript::new();
    let folder = tempfile::tempdir().context("making a temporary folder")?;
    let db = folder.path().join("errand.db");
    let server = researcher_server("in-process", &db, &transcript).await?;
    transcript.say(format!(
        "server: hosting `researcher` in-process, SQLite at {}",
        db.display()
    ));
    // No `url`: the middleware sends this subagent's requests to its local client.
    let researcher = AsyncSubAgent::new(
        "researcher",
        "Researches a topic and reports findings.",
        GRAPH,
    );
    let supervisor = Supervisor::new(
        vec![researcher],
        Some(Client::in_process(server.router())?),
        vec![
            Assignment::new("researcher", "async runtimes in Rust"),
            Assignment::new("researcher", "SQLite write-ahead logging, in depth"),
        ],
        &transcript,
    )?;
    let outcome = converse(supervisor, &transcript).await;
    server.shutdown(Duration::from_secs(2)).await;
    outcome
}
