//! One supervisor, two subagents: a researcher in this program (in-process transport) and one
//! on another server (HTTP). The supervisor treats them the same; only the spec's `url`
//! differs.

use crate::Transcript;
use crate::researcher::{GRAPH, ResearcherServer, researcher_server};
use crate::supervisor::{Assignment, Outcome, Supervisor, converse};
use anyhow::Context;
use errand::client::Client;
use errand::middleware::AsyncSubAgent;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Hands one task to a local researcher and one to a remote one. The remote one is at `url`,
/// or, without one, on a server this function starts on 127.0.0.1 (a free port) and stops at
/// the end, so the example needs nothing else running.
pub async fn run(url: Option<&str>) -> anyhow::Result<Outcome> {
    let transcript = Transcript::new();
    let folder = tempfile::tempdir().context("making a temporary folder")?;
    let local_server =
        researcher_server("in-process", &folder.path().join("local.db"), &transcript).await?;
    transcript.say("server: hosting `researcher` in-process");
    let (remote_url, remote_server) = match url {
        Some(url) => (url.to_owned(), None),
        None => {
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
            let server = ResearcherServer::start(address, None, &transcript).await?;
            (server.url.clone(), Some(server))
        }
    };
    transcript.say(format!(
        "server: the remote `researcher` is at {remote_url}"
    ));

    let subagents = vec![
        AsyncSubAgent::new("local_researcher", "Researches in this program.", GRAPH),
        AsyncSubAgent::new(
            "remote_researcher",
            "Researches on the remote server.",
            GRAPH,
        )
        .url(&remote_url),
    ];
    let supervisor = Supervisor::new(
        subagents,
        Some(Client::in_process(local_server.router())?),
        vec![
            Assignment::new("local_researcher", "async runtimes in Rust"),
            Assignment::new("remote_researcher", "SQLite write-ahead logging, in depth"),
        ],
        &transcript,
    )?;
    let outcome = converse(supervisor, &transcript).await;
    local_server.shutdown(Duration::from_secs(2)).await;
    if let Some(server) = remote_server {
        server.stop().await?;
    }
    outcome
}
