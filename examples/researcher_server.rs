//! An errand server hosting a `researcher` agent (Scripted model, offline) over HTTP: the
//! subagent half of the two-process example. It prints `listening on http://...`, as
//! `errand serve` does, and serves until Ctrl-C.
//!
//! ```text
//! cargo run -p errand-examples --example researcher_server               # a free port
//! cargo run -p errand-examples --example researcher_server -- --port 2024 --db researcher.db
//! ```
//!
//! Then, in another terminal, `cargo run -p errand-examples --example supervisor_http -- --url
//! http://127.0.0.1:PORT`. The agent and server are in `examples/src/researcher.rs`.

use clap::Parser;
use errand_examples::Transcript;
use errand_examples::researcher::ResearcherServer;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Serves the `researcher` agent over HTTP.
#[derive(Debug, Parser)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// The port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The SQLite database file; by default one in a temporary folder.
    #[arg(long)]
    db: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Prints what the researcher does, with the time since the start.
    let transcript = Transcript::new();
    let address = SocketAddr::new(args.host, args.port);
    let server = ResearcherServer::start(address, args.db.as_deref(), &transcript).await?;
    // Printed plainly, so a script (or the supervisor's user) can read the port.
    println!("listening on {}", server.url);
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    server.stop().await
}
