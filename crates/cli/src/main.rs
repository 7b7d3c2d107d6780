//! The `errand` command.
//!
//! `errand serve` runs the Agent Protocol server on a SQLite file. The `chat`, `tasks` and `demo`
//! commands come with the later layers.

mod serve;

use clap::{Parser, Subcommand};

// mimalloc returns freed memory to the system and fragments less than glibc's allocator across
// tokio's threads: a server holding thousands of runs in flight stays smaller.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// errand: background subagents for LLM agents.
#[derive(Debug, Parser)]
#[command(name = "errand", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Agent Protocol (LangGraph server API) for the hosted graphs.
    Serve(serve::ServeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
    }
}
