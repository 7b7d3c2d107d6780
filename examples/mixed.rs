//! One supervisor with two subagents (Scripted models, offline): a researcher in this program,
//! reached in-process, and one on another server, reached over HTTP. Without `--url` the
//! example starts that "remote" server itself on 127.0.0.1, so it needs nothing else running.
//!
//! ```text
//! cargo run -p errand-examples --example mixed
//! cargo run -p errand-examples --example mixed -- --url http://127.0.0.1:PORT   # a researcher_server
//! ```
//!
//! The logic is in `examples/src/mixed.rs` and `examples/src/supervisor.rs`.

use clap::Parser;

/// Hands research to a local and a remote researcher.
#[derive(Debug, Parser)]
struct Args {
    /// A running `researcher_server` to use as the remote subagent.
    #[arg(long)]
    url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    errand_examples::mixed::run(args.url.as_deref()).await?;
    Ok(())
}
