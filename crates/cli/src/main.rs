//! The `errand` command.
//!
//! - `errand serve`: the Agent Protocol server on a SQLite file, hosting the config's agents.
//! - `errand chat`: a supervisor in the terminal that hands work to background subagents.
//! - `errand tasks`: list, check or cancel the tasks on a server.
//! - `errand demo`: the whole story offline, in one process.
//!
//! All read one config file, `errand.toml` (see `config.rs`). The command sits on top of every
//! layer, through the `errand` facade: [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md).

mod agents;
mod chat;
mod config;
mod demo;
mod serve;
mod supervisor;
mod tasks;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// Talk with a supervisor that hands long work to background subagents.
    Chat(chat::ChatArgs),
    /// Run the offline demo: a supervisor and its research subagents in one process.
    Demo(demo::DemoArgs),
    /// List, check or cancel the tasks on a server.
    Tasks(tasks::TasksArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Chat(args) => chat::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Tasks(args) => tasks::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole chain, without a backtrace: what went wrong and where, for a user.
            eprintln!("errand: {error:#}");
            ExitCode::FAILURE
        }
    }
}
