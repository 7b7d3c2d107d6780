//! The subagent: a `researcher` agent on a Scripted model, and a server that hosts it.
//!
//! The researcher looks its topic up with a small tool (`lookup_notes`), takes a moment to
//! "think", and answers `Findings on <topic> ...`. [`ResearcherServer`] serves it over HTTP
//! on an errand server backed by a SQLite file, as `errand serve` would.

use crate::Transcript;
use anyhow::Context;
use errand::protocol::MessageKind;
use errand::runtime::agent::Agent;
use errand::runtime::model::{ModelRequest, ScriptedModel, Turn};
use errand::runtime::tool::FunctionTool;
use errand::server::Server;
use errand::server::storage::SqliteStorage;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The graph name the researcher is hosted under: the `graph_id` supervisors ask for.
pub const GRAPH: &str = "researcher";

/// How long the researcher "thinks" before it answers; a topic asked `in depth` takes twice as
/// long, so two tasks finish at different times.
pub const THINKING: Duration = Duration::from_millis(1_200);

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct LookupNotes {
    /// The topic to look up.
    topic: String,
}

/// The researcher's one tool: canned notes for a topic. Each call is printed.
fn lookup_notes(origin: String, transcript: Transcript) -> FunctionTool<LookupNotes> {
    FunctionTool::new(
        "lookup_notes",
        "Looks a topic up in the team's research notes.",
        move |args: LookupNotes, _context| {
            transcript.say(format!(
                "researcher ({origin}): calls lookup_notes for \"{}\"",
                args.topic
            ));
            async move {
                let topic = args.topic.to_lowercase();
                let notes = if topic.contains("sqlite") {
                    "WAL mode lets readers run beside one writer; a commit is durable once its WAL \
                     frame is synced."
                } else if topic.contains("async") {
                    "tokio is the common runtime: a work-stealing scheduler, timers and I/O drivers."
                } else {
                    "Nothing in the notes yet; general knowledge applies."
                };
                Ok(notes.into())
            }
        },
    )
}

/// The researcher agent. `origin` says where it runs (it appears in its answers, so a
/// supervisor with several researchers can tell them apart). Its tool calls are printed to
/// `transcript`.
pub fn researcher(origin: &str, transcript: &Transcript) -> anyhow::Result<Agent> {
    let origin = origin.to_owned();
    let answering = origin.clone();
    // The Scripted model reacts to what it is asked: the task first gets a tool call, the
    // tool's answer gets the findings.
    let model = ScriptedModel::responder(move |request: &ModelRequest| {
        let topic = request.last_human_text();
        match request.messages.last() {
            Some(last) if last.kind == MessageKind::Tool => {
                let thinking = if topic.contains("in depth") {
                    THINKING * 2
                } else {
                    THINKING
                };
                Turn::text(format!(
                    "Findings on {topic} (researched {answering}): {}",
                    last.text()
                ))
                .after(thinking)
            }
            _ => Turn::tool_call("lookup_notes", json!({ "topic": topic }))
                .after(Duration::from_millis(100)),
        }
    });
    Ok(Agent::builder(Arc::new(model))
        .name(GRAPH)
        .description("Researches a topic and reports its findings.")
        .tool(lookup_notes(origin, transcript.clone()))
        .max_steps(4)
        .build()?)
}

/// An errand server hosting [`researcher`] under [`GRAPH`], storing threads and runs in a SQLite
/// file at `db`.
pub async fn researcher_server(
    origin: &str,
    db: &Path,
    transcript: &Transcript,
) -> anyhow::Result<Server> {
    let storage = SqliteStorage::open(db)
        .with_context(|| format!("opening the database {}", db.display()))?;
    Server::builder()
        .graph(GRAPH, researcher(origin, transcript)?)
        .storage(Arc::new(storage))
        .start()
        .await
        .context("starting the researcher's server")
}

/// The researcher's server, serving HTTP in a background task until [`stop`](Self::stop).
#[derive(Debug)]
pub struct ResearcherServer {
    /// Where it listens, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    stop: oneshot::Sender<()>,
    serving: JoinHandle<std::io::Result<()>>,
    /// The folder of the database, when the server made one; removed when dropped.
    _folder: Option<tempfile::TempDir>,
}

impl ResearcherServer {
    /// Listens on `address` (port 0 picks a free one) and serves the researcher there. The
    /// database is `db`, or a file in a new temporary folder.
    pub async fn start(
        address: SocketAddr,
        db: Option<&Path>,
        transcript: &Transcript,
    ) -> anyhow::Result<Self> {
        let (folder, db) = match db {
            Some(db) => (None, db.to_owned()),
            None => {
                let folder = tempfile::tempdir().context("making a temporary folder")?;
                let db = folder.path().join("researcher.db");
                (Some(folder), db)
            }
        };
        let server = researcher_server("on the remote server", &db, transcript).await?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(listener, async move {
            // Stop when told to, or when the handle is dropped.
            let _ = stopped.await;
        }));
        Ok(Self {
            url,
            stop,
            serving,
            _folder: folder,
        })
    }

    /// Stops serving and waits until the server has stopped.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.serving
            .await
            .context("the server's task failed")?
            .context("serving HTTP")
    }
}
