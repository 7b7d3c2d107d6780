//! A supervisor agent (Scripted model, offline) that starts two research tasks on a remote
//! researcher over HTTP, answers its user while they run, and prints both results as their
//! completion notices arrive, with timings: the supervisor half of the two-process example.
//!
//! ```text
//! cargo run -p errand-examples --example researcher_server     # prints listening on http://...
//! cargo run -p errand-examples --example supervisor_http -- --url http://127.0.0.1:PORT
//! ```
//!
//! The logic is in `examples/src/supervisor_http.rs` and `examples/src/supervisor.rs`.

use clap::Parser;

/// Hands research to the `researcher` agent on an errand server.
#[derive(Debug, Parser)]
struct Args {
    /// The researcher's server, as `researcher_server` printed it.
    #[arg(long)]
    url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    errand_examples::supervisor_http::run(&args.url).await?;
    Ok(())
}
