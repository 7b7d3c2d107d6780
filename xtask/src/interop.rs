//! `cargo xtask interop`: the black-box interop suite of `tests/interop/` (pytest driving a server
//! only through the official `langgraph-sdk` Python client) against a LangGraph-compatible server.
//!
//! - `cargo xtask interop` builds `errand` (`cargo build -p errand-cli`) and runs the suite against
//!   `errand serve` on a free local port, with a fresh database file;
//! - `cargo xtask interop --python` runs it against the real Python LangGraph server (the peer,
//!   see `peer.rs`: installed into `target/peer-venv` on first use), hosting
//!   `tests/interop/peer/`, and then errand-client's own interop test
//!   (`crates/client/tests/python_peer.rs`) against it;
//! - `cargo xtask interop --url URL` runs it against a server that is already running;
//! - arguments after `--` go to pytest (`cargo xtask interop --python -- -k cancel -x`).
//!
//! The suite's own virtualenv is `target/interop-venv`; it is created when missing and
//! `tests/interop/requirements.txt` is installed again whenever that file changes. A server this
//! command starts is always stopped before it returns.

use crate::local::free_port;
use crate::peer;
use crate::venv::{self, Requirements};
use anyhow::{Context, bail};
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: cargo xtask interop [--url URL | --python | --postgres] [-- PYTEST_ARGS...]";
/// How long a server may take to answer `GET /ok`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped server may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The suite and its requirements, relative to the workspace root.
const SUITE_DIR: &str = "tests/interop";
const REQUIREMENTS: &str = "tests/interop/requirements.txt";
/// The suite's virtualenv, relative to the workspace root.
const VENV_DIR: &str = "target/interop-venv";
/// Runs the peer may run at once: the multitask tests need a second run while a first runs.
const PEER_JOBS: usize = 10;

/// Which server the suite runs against.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// A server that is already running at this base URL.
    Url(String),
    /// The Python LangGraph server (`langgraph dev`), started here.
    Python,
    /// `errand serve`, built and started here.
    Errand,
    /// `errand serve` on PostgreSQL (`ERRAND_TEST_DATABASE_URL`, else the local server's
    /// `test` database), in a schema of its own.
    ErrandPostgres,
}

/// The parsed command line.
#[derive(Debug)]
struct Options {
    target: Target,
    pytest_args: Vec<String>,
}

/// Runs the interop suite; `args` are the arguments after `interop`.
pub(crate) fn run(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let Some(options) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let python = ensure_venv(root)?;
    let mut server = match &options.target {
        Target::Url(url) => Server::external(url),
        Target::Python => Server::start_python(root)?,
        Target::Errand => Server::start_errand(root, &[])?,
        Target::ErrandPostgres => {
            let url = std::env::var("ERRAND_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let schema = format!("errand_interop_{}", uuid::Uuid::new_v4().simple());
            Server::start_errand(
                root,
                &["--database-url", &url, "--database-schema", &schema],
            )?
        }
    };
    let outcome = server
        .wait_ready()
        .and_then(|()| run_pytest(root, &python, &server.url, &options.pytest_args))
        .and_then(|()| match options.target {
            // The Rust client against the real Python server, too.
            Target::Python => run_rust_client_peer_test(root, &server.url),
            Target::Url(_) | Target::Errand | Target::ErrandPostgres => Ok(()),
        });
    server.stop(outcome.is_ok());
    outcome
}

/// Runs errand-client's interop test against the Python server at `url`.
fn run_rust_client_peer_test(root: &Path, url: &str) -> anyhow::Result<()> {
    println!("interop: errand-client against {url}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "-q", "-p", "errand-client", "--test", "python_peer"])
        .env("ERRAND_PEER_URL", url)
        .current_dir(root)
        .status()
        .context("running errand-client's python_peer test")?;
    if !status.success() {
        bail!("errand-client's interop test against the Python server failed ({status})");
    }
    Ok(())
}

/// The options of `args`, or `None` when help was asked for.
fn parse_args(args: &[&str]) -> anyhow::Result<Option<Options>> {
    let (ours, pytest_args) = match args.iter().position(|a| *a == "--") {
        Some(split) => (&args[..split], &args[split + 1..]),
        None => (args, &[][..]),
    };
    let target = match ours {
        [] => Target::Errand,
        ["--python"] => Target::Python,
        ["--postgres"] => Target::ErrandPostgres,
        ["--url", url] => Target::Url(url.trim_end_matches('/').to_owned()),
        ["help" | "--help" | "-h"] => return Ok(None),
        other => bail!("unknown arguments {other:?}\n{USAGE}"),
    };
    Ok(Some(Options {
        target,
        pytest_args: pytest_args.iter().map(|a| (*a).to_owned()).collect(),
    }))
}

/// Makes `target/interop-venv` and installs the requirements when they changed; returns its python.
pub(crate) fn ensure_venv(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = venv::ensure(root, VENV_DIR, Requirements::File(REQUIREMENTS), "interop")?;
    Ok(venv::python_in(&venv))
}

/// Runs pytest on the suite against `url`; a failure or an empty run (exit code 5) is an error.
fn run_pytest(root: &Path, python: &Path, url: &str, extra: &[String]) -> anyhow::Result<()> {
    println!("interop: running the suite against {url}");
    let status = Command::new(python)
        .args(["-m", "pytest", SUITE_DIR, "-q"])
        .args(extra)
        .current_dir(root)
        .env("ERRAND_INTEROP_URL", url)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .context("running pytest")?;
    match status.code() {
        Some(0) => Ok(()),
        Some(5) => bail!("the interop suite ran no tests (pytest exit code 5)"),
        Some(code) => bail!("the interop suite failed (pytest exit code {code})"),
        None => bail!("pytest was killed by a signal"),
    }
}

/// The server under test, and the process and scratch folder to clean up when this command
/// started it.
#[derive(Debug)]
pub(crate) struct Server {
    url: String,
    child: Option<Child>,
    scratch: Option<PathBuf>,
}

impl Server {
    pub(crate) fn external(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            child: None,
            scratch: None,
        }
    }

    /// Installs the peer when needed and starts `langgraph dev`, serving a copy of
    /// `tests/interop/peer/`.
    fn start_python(root: &Path) -> anyhow::Result<Self> {
        let venv = peer::ensure_installed(root)?;
        let port = free_port()?;
        let scratch = scratch_dir("peer", port)?;
        peer::copy_project(root, &scratch)?;
        let command = peer::langgraph_dev(&venv, &scratch, port, PEER_JOBS);
        Self::spawn(command, port, scratch, "langgraph dev")
    }

    /// The server's base URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Builds the `errand` binary and starts `errand serve` with a fresh database file, and
    /// `serve_args` after the others.
    pub(crate) fn start_errand(root: &Path, serve_args: &[&str]) -> anyhow::Result<Self> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "errand-cli"])
            .current_dir(root)
            .status()
            .context("running cargo build -p errand-cli")?;
        check(status, "cargo build -p errand-cli")?;
        let target_dir =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        let errand = target_dir.join("debug").join("errand");
        let port = free_port()?;
        let scratch = scratch_dir("errand", port)?;
        let mut command = Command::new(&errand);
        command
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--db")
            .arg(scratch.join("interop.db"))
            .args(serve_args)
            .current_dir(&scratch);
        Self::spawn(command, port, scratch, "errand serve")
    }

    /// Spawns `command`, its output going to `server.log` in `scratch`. The server stays in this
    /// process group, so a Ctrl-C stops it too.
    fn spawn(
        mut command: Command,
        port: u16,
        scratch: PathBuf,
        name: &str,
    ) -> anyhow::Result<Self> {
        let log_path = scratch.join("server.log");
        let log = fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        println!(
            "interop: started {name} (pid {}) on port {port}, log {}",
            child.id(),
            log_path.display()
        );
        Ok(Self {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            scratch: Some(scratch),
        })
    }

    /// Waits until the server answers `GET /ok` with `{"ok": true}`, or fails after
    /// [`READY_TIMEOUT`] or when the server it started exits.
    pub(crate) fn wait_ready(&mut self) -> anyhow::Result<()> {
        let url = self.url.clone();
        let Some((address, path)) = split_http_url(&url) else {
            println!("interop: {url} is not plain http; the suite waits for it");
            return Ok(());
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                bail!(
                    "the server exited before it was ready ({status}){}",
                    self.log_hint()
                );
            }
            match get_ok(address, &format!("{path}/ok")) {
                Ok(true) => return Ok(()),
                Ok(false) => last = String::from("an answer other than {\"ok\": true}"),
                Err(error) => last = format!("{error:#}"),
            }
            sleep(Duration::from_millis(200));
        }
        bail!(
            "{}/ok was not ready within {} s: {last}{}",
            self.url,
            READY_TIMEOUT.as_secs(),
            self.log_hint()
        )
    }

    /// The exit status of the server this command started, if it has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    fn log_hint(&self) -> String {
        self.scratch
            .as_ref()
            .map(|dir| format!("; see {}", dir.join("server.log").display()))
            .unwrap_or_default()
    }

    /// Stops the server this command started (SIGTERM, SIGKILL after [`STOP_TIMEOUT`]) and
    /// removes its scratch folder, which is kept (for the log) on failure. Both servers are a
    /// single process (`langgraph dev --no-reload` starts no workers).
    pub(crate) fn stop(mut self, success: bool) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                terminate(&child);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                sleep(Duration::from_millis(100));
            }
            if matches!(child.try_wait(), Ok(None))
                && let Err(error) = child.kill()
            {
                eprintln!("interop: could not kill the server: {error}");
            }
            if let Err(error) = child.wait() {
                eprintln!("interop: could not wait for the server: {error}");
            }
            println!("interop: stopped the server");
        }
        if let Some(dir) = self.scratch.take() {
            if success {
                if let Err(error) = fs::remove_dir_all(&dir) {
                    eprintln!("interop: could not remove {}: {error}", dir.display());
                }
            } else {
                println!("interop: kept {} (server log)", dir.display());
            }
        }
    }
}

/// Asks a child to exit with SIGTERM (std only has SIGKILL, `Child::kill`), through kill(1).
/// A failure is fine: `stop` falls back to `Child::kill`.
fn terminate(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !sent.is_ok_and(|status| status.success()) {
        eprintln!("interop: could not send SIGTERM to the server; killing it");
    }
}

fn check(status: ExitStatus, what: &str) -> anyhow::Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("`{what}` failed ({status})")
    }
}

/// A new empty folder under the system temp folder.
pub(crate) fn scratch_dir(kind: &str, port: u16) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "errand-interop-{kind}-{}-{port}",
        std::process::id()
    ));
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `http://host:port/base` -> (`host:port`, `/base` without a trailing slash); `None` if the
/// URL is not plain http.
fn split_http_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("http://")?;
    let (address, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    Some((address, path.trim_end_matches('/')))
}

/// One `GET path` over HTTP/1.1 on a fresh connection: is the answer 200 with `{"ok": true}`?
fn get_ok(address: &str, path: &str) -> anyhow::Result<bool> {
    let address_with_port = if address.contains(':') {
        address.to_owned()
    } else {
        format!("{address}:80")
    };
    let socket = address_with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {address}"))?
        .next()
        .with_context(|| format!("{address} resolves to nothing"))?;
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&socket, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let Some((head, body)) = answer.split_once("\r\n\r\n") else {
        return Ok(false);
    };
    let status_ok = head
        .lines()
        .next()
        .is_some_and(|line| line.split_whitespace().nth(1) == Some("200"));
    // The JSON object of the body (with a chunked body, between the chunk sizes).
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(start), Some(end)) if start < end => &body[start..=end],
        _ => return Ok(false),
    };
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    Ok(status_ok && value["ok"] == serde_json::Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_targets() {
        let parse = |args: &[&str]| {
            parse_args(args).map(|o| o.map(|o| (o.target, o.pytest_args)).expect("not help"))
        };
        assert_eq!(parse(&[]).unwrap(), (Target::Errand, vec![]));
        assert_eq!(parse(&["--python"]).unwrap(), (Target::Python, vec![]));
        assert_eq!(
            parse(&["--postgres"]).unwrap(),
            (Target::ErrandPostgres, vec![])
        );
        assert_eq!(
            parse(&["--url", "http://h:1/", "--", "-k", "cancel"]).unwrap(),
            (
                Target::Url("http://h:1".into()),
                vec!["-k".into(), "cancel".into()]
            )
        );
        assert!(parse_args(&["--bogus"]).is_err());
        assert!(parse_args(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn splits_http_urls() {
        assert_eq!(
            split_http_url("http://127.0.0.1:8123"),
            Some(("127.0.0.1:8123", ""))
        );
        assert_eq!(split_http_url("http://h:1/api/"), Some(("h:1", "/api")));
        assert_eq!(split_http_url("https://h"), None);
    }
}
