//! `cargo xtask schemathesis`: the API fuzzer against `errand serve`, checking that the server
//! answers what `spec/openapi.json` says it does.
//!
//! - `cargo xtask schemathesis` builds `errand`, starts `errand serve` on a free local port with
//!   a fresh database file, and runs schemathesis (pinned in `tests/interop/requirements.txt`,
//!   installed in the interop virtualenv) against it; then does it again with the server
//!   holding an API key and schemathesis sending it (`--no-api-key` or `--api-key` runs only
//!   one of the two);
//! - `cargo xtask schemathesis --url URL` runs once against a server that is already running;
//! - arguments after `--` go to `schemathesis run` (`-- --include-path-regex /runs`).
//!
//! The checks are those for server errors, status codes, content types and response schemas;
//! a connection that drops or times out is reported by schemathesis as an error. Either fails
//! the command. A run is bounded: a fixed seed, a number of examples per operation, and a time
//! budget, after which schemathesis stops by itself; one that outlives its budget by
//! [`OVERRUN`] is killed. `tests/schemathesis/` has the hooks (generated delays are kept short,
//! so that no answer waits years for its run) and the config (graph names for `assistant_id`).

use crate::interop::{Server, ensure_venv, scratch_dir};
use anyhow::{Context, bail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo xtask schemathesis [--no-api-key | --api-key | --url URL] \
                     [-- SCHEMATHESIS_ARGS...]";
const SPEC: &str = "spec/openapi.json";
const HOOKS: &str = "tests/schemathesis/hooks.py";
const CONFIG: &str = "tests/schemathesis/schemathesis.toml";
/// What schemathesis checks in every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance";
/// The seed of the generated cases, so that a run can be repeated.
const SEED: &str = "20261204";
/// Test cases per operation and phase.
const MAX_EXAMPLES: &str = "25";
/// How long one request may wait for an answer, in seconds; a stream is read for this long.
/// It is shorter than the few seconds between the keep-alives of a waiting `join` or `wait`,
/// which would otherwise keep a request for a run that never ends open for ever: the echo
/// graph's runs end in milliseconds, so an answer this late is a fault.
const REQUEST_TIMEOUT: &str = "4";
/// How long a killed-off run may go on past its budget.
const OVERRUN: Duration = Duration::from_secs(120);
/// The API key of the second pass.
const API_KEY: &str = "schemathesis-key";

/// One run of schemathesis against a server of its own.
#[derive(Debug)]
struct Pass {
    name: &'static str,
    /// The server's API key, which schemathesis then sends.
    api_key: Option<&'static str>,
    /// The time budget.
    budget: Duration,
}

/// The server without a key gets most of the time; with a key, a shorter pass checks that
/// the key lets every call through and that nothing else changes.
const PASSES: [Pass; 2] = [
    Pass {
        name: "without an API key",
        api_key: None,
        budget: Duration::from_secs(150),
    },
    Pass {
        name: "with an API key",
        api_key: Some(API_KEY),
        budget: Duration::from_secs(60),
    },
];

/// Runs the fuzzer; `args` are the arguments after `schemathesis`.
pub(crate) fn run(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let (ours, extra) = match args.iter().position(|a| *a == "--") {
        Some(split) => (&args[..split], &args[split + 1..]),
        None => (args, &[][..]),
    };
    let passes: Vec<&Pass> = match ours {
        [] => PASSES.iter().collect(),
        ["--no-api-key"] => PASSES.iter().filter(|p| p.api_key.is_none()).collect(),
        ["--api-key"] => PASSES.iter().filter(|p| p.api_key.is_some()).collect(),
        ["--url", url] => {
            let python = ensure_venv(root)?;
            let pass = &PASSES[0];
            return fuzz(
                root,
                &schemathesis_in(&python),
                url.trim_end_matches('/'),
                pass,
                extra,
            );
        }
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            return Ok(());
        }
        other => bail!("unknown arguments {other:?}\n{USAGE}"),
    };
    let python = ensure_venv(root)?;
    let schemathesis = schemathesis_in(&python);
    // Every pass runs, so that one report shows what each finds.
    let mut failed = Vec::new();
    for pass in passes {
        println!("schemathesis: {}", pass.name);
        let mut server = match pass.api_key {
            Some(key) => Server::start_errand(root, &["--api-key", key])?,
            None => Server::start_errand(root, &[])?,
        };
        let outcome = server
            .wait_ready()
            .and_then(|()| fuzz(root, &schemathesis, server.url(), pass, extra));
        server.stop(outcome.is_ok());
        if let Err(error) = outcome {
            eprintln!("schemathesis: {error:#}");
            failed.push(pass.name);
        }
    }
    if !failed.is_empty() {
        bail!("schemathesis failed {}", failed.join(" and "));
    }
    Ok(())
}

/// The schemathesis command of the virtualenv whose python is `python`.
fn schemathesis_in(python: &Path) -> PathBuf {
    python.with_file_name("schemathesis")
}

/// Runs schemathesis against `url` in a scratch folder (it writes its caches into the folder
/// it runs in); the folder is kept when the run fails.
fn fuzz(
    root: &Path,
    schemathesis: &Path,
    url: &str,
    pass: &Pass,
    extra: &[&str],
) -> anyhow::Result<()> {
    let scratch = scratch_dir("schemathesis", 0)?;
    let mut command = Command::new(schemathesis);
    command
        .arg("--config-file")
        .arg(root.join(CONFIG))
        .arg("run")
        .arg(root.join(SPEC))
        .args(["--url", url, "--checks", CHECKS])
        .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES])
        .args(["--max-time", &pass.budget.as_secs().to_string()])
        .args(["--request-timeout", REQUEST_TIMEOUT])
        .args([
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
        ]);
    if let Some(key) = pass.api_key {
        command.args(["--header", &format!("x-api-key: {key}")]);
    }
    command
        .args(extra)
        .current_dir(&scratch)
        .env("SCHEMATHESIS_HOOKS", root.join(HOOKS))
        .env(
            "ERRAND_MAX_AFTER_SECONDS",
            errand_protocol::MAX_AFTER_SECONDS.to_string(),
        )
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let child = command.spawn().context("starting schemathesis")?;
    let status = wait_bounded(child, pass.budget + OVERRUN)?;
    if status.success() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
        return Ok(());
    }
    println!("schemathesis: kept {}", scratch.display());
    match status.code() {
        Some(1) => bail!("schemathesis found failures or errors ({})", pass.name),
        _ => bail!("schemathesis could not run ({status})"),
    }
}

/// Waits for `child`, killing it once `limit` has passed.
fn wait_bounded(mut child: Child, limit: Duration) -> anyhow::Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().context("waiting for schemathesis")? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            if let Err(error) = child.kill() {
                eprintln!("schemathesis: could not kill it: {error}");
            }
            let _ = child.wait();
            bail!(
                "schemathesis was still running {} s after its budget; killed it",
                OVERRUN.as_secs()
            );
        }
        sleep(Duration::from_millis(200));
    }
}
