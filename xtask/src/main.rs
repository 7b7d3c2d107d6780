//! `cargo xtask`: the project's chores, in Rust so they run wherever cargo does. How the code
//! they build, test and measure is laid out: [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md).
//!
//! - `cargo xtask codegen` writes `spec/openapi.json` and `spec/schemas/*.json` from the wire
//!   types of `errand-protocol`;
//! - `cargo xtask codegen --check` fails when a checked-in file is stale (CI runs it);
//! - `cargo xtask interop` runs the Python interop suite (the official `langgraph-sdk`) against
//!   `errand serve`, or against the Python server with `--python`;
//! - `cargo xtask schemathesis` fuzzes `errand serve` against `spec/openapi.json` (see
//!   `schemathesis.rs`);
//! - `cargo xtask bench server` measures errand and the Python LangGraph server side by side
//!   (see `bench/mod.rs`); `cargo xtask bench transports` the latency of errand-client's
//!   in-process and HTTP transports against one server (see `bench/transports/mod.rs`).

mod bench;
mod codegen;
mod interop;
mod local;
mod openapi;
mod peer;
mod schemathesis;
mod venv;

use anyhow::{Context, bail};
use std::path::PathBuf;

// The allocator `errand serve` runs with, so that the server `bench transports` runs in this
// process is the one users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: cargo xtask codegen [--check] | interop [--url URL | --python] \
     [-- PYTEST_ARGS...] | schemathesis [--url URL] [-- ARGS...] | bench server|transports [...]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["codegen"] => codegen::run(&workspace_root()?, codegen::Mode::Write),
        ["codegen", "--check"] => codegen::run(&workspace_root()?, codegen::Mode::Check),
        ["bench", "transports", rest @ ..] => bench::run_transports(&workspace_root()?, rest),
        ["bench", rest @ ..] => bench::run(&workspace_root()?, rest),
        ["interop", rest @ ..] => interop::run(&workspace_root()?, rest),
        ["schemathesis", rest @ ..] => schemathesis::run(&workspace_root()?, rest),
        ["help" | "--help" | "-h"] | [] => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown arguments {other:?}\n{USAGE}"),
    }
}

/// The workspace root: the parent of this crate's folder.
fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .context("xtask has no parent folder")
}
