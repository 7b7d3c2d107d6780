//! The Python LangGraph server (the peer): the reference that the interop suite's assertions
//! were checked against and that `cargo xtask bench server` measures errand beside.
//!
//! It is installed by the project itself, into the venv [`VENV_DIR`] under `target/`, from the
//! pinned versions [`PINS`], the first time a command needs it (again only when the pins
//! change), and it serves the repository's own graph project, [`PROJECT_DIR`]. Every start
//! runs in a fresh copy of that folder, since the server writes its store (`.langgraph_api/`)
//! into its working folder and each start must begin empty.

use crate::venv::{self, Requirements};
use anyhow::Context;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The peer's venv, relative to the workspace root.
const VENV_DIR: &str = "target/peer-venv";
/// The graph project the peer serves (`echo_graph.py` and `langgraph.json`), relative to the
/// workspace root.
pub(crate) const PROJECT_DIR: &str = "tests/interop/peer";
/// The peer's packages, pinned: the README's figures and the wire fixtures of errand-protocol
/// were taken against exactly this server (langgraph-api 0.16.7 on its in-memory runtime), so
/// another version would compare errand with a different reference. The langgraph, langchain
/// and Deep Agents pins are also those of `tests/interop/requirements.txt`.
pub(crate) const PINS: [&str; 8] = [
    "langgraph-cli[inmem]==0.4.40",
    "langgraph-api==0.16.7",
    "langgraph-runtime-inmem==0.36.7",
    "langgraph-sdk==0.4.14",
    "langgraph==1.2.22",
    "langchain-core==1.7.2",
    "langchain==1.4.7",
    "deepagents==0.7.32",
];

/// The environment that keeps `langgraph dev` offline and quiet: no tracing, no analytics,
/// no version check, no API keys.
const LANGGRAPH_OFFLINE_ENV: [(&str, &str); 9] = [
    ("LANGSMITH_TRACING", "false"),
    ("LANGCHAIN_TRACING_V2", "false"),
    ("LANGCHAIN_TRACING", "false"),
    ("LANGGRAPH_CLI_NO_ANALYTICS", "1"),
    ("LANGGRAPH_NO_VERSION_CHECK", "true"),
    ("LANGSMITH_API_KEY", ""),
    ("LANGGRAPH_API_KEY", ""),
    ("LANGCHAIN_API_KEY", ""),
    ("LOG_LEVEL", "WARNING"),
];

/// Installs the peer when it is missing or its pins changed; returns its venv.
pub(crate) fn ensure_installed(root: &Path) -> anyhow::Result<PathBuf> {
    venv::ensure(root, VENV_DIR, Requirements::Pins(&PINS), "peer")
}

/// Copies the peer's project (its regular files; not `__pycache__` or a `.langgraph_api/`
/// left by a server run in place) into `to`.
pub(crate) fn copy_project(root: &Path, to: &Path) -> anyhow::Result<()> {
    let from = root.join(PROJECT_DIR);
    for entry in fs::read_dir(&from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            fs::copy(entry.path(), to.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `langgraph dev` of the venv `venv` on 127.0.0.1:`port`, in `project` (a copy made by
/// [`copy_project`]), offline and quiet, running up to `n_jobs` runs at once. Without
/// `--n-jobs-per-worker` above 1 the server runs one run at a time, and the multitask tests and
/// every concurrent figure would measure that limit instead of the server. `--no-reload` keeps
/// it a single process, so stopping that process stops the server.
pub(crate) fn langgraph_dev(venv: &Path, project: &Path, port: u16, n_jobs: usize) -> Command {
    let mut command = Command::new(venv.join("bin").join("langgraph"));
    command
        .args(["dev", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--no-browser", "--no-reload"])
        .args(["--n-jobs-per-worker", &n_jobs.to_string()])
        .args(["--server-log-level", "warning"])
        .current_dir(project)
        .envs(LANGGRAPH_OFFLINE_ENV);
    command
}
