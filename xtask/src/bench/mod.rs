//! `cargo xtask bench server`: errand and the real Python LangGraph server, measured side by side
//! in one run by the same Rust client, with the ratio python/errand of every figure.
//!
//! ```text
//! cargo xtask bench server [--quick] [--no-peer | --only errand|python] [--json FILE]
//! ```
//!
//! # What runs
//!
//! - **errand**: built with `cargo build --release -p errand-cli`, started as
//!   `errand serve --host 127.0.0.1 --port P --db <fresh temp file>` (`ERRAND_LOG=warn`).
//! - **python** (the peer, see `peer.rs`): `langgraph dev --no-browser --no-reload
//!   --n-jobs-per-worker N --server-log-level warning` from the venv `target/peer-venv`
//!   (installed on first use from pinned versions), offline, run in a temporary copy of the
//!   repository's graph project `tests/interop/peer/` (the same `echo` graph as errand's: a
//!   last message `sleep=<seconds> ...` sleeps first, cancellably). When the peer cannot be
//!   installed, the bench says why and measures errand alone (ratios `n/a`); `--no-peer` or
//!   `--only errand` skip it on purpose, `--only python` skips errand.
//!
//! Every server gets a free port on 127.0.0.1 and its own temporary folder; it is stopped
//! (SIGTERM, SIGKILL after 10 s) and its folder removed when the bench is done with it, also
//! on error or Ctrl-C. Phases 1–5 run on one server per implementation (python with
//! `--n-jobs-per-worker 10`); every level of phase 6 gets a fresh server (python with
//! `--n-jobs-per-worker 10000`, errand with `--max-concurrent-runs 20000`).
//!
//! # The client
//!
//! An HTTP/1.1 keep-alive client on hyper (`http.rs`), one connection per concurrent worker,
//! reused; the same code drives both servers with the requests the official Python client
//! (`langgraph-sdk`) sends: `POST /threads` `{}`, `POST /threads/{tid}/runs` with
//! `{"assistant_id":"echo","input":{"messages":[{"role":"user","content":...}]},
//! "stream_mode":["values"],"stream_subgraphs":false,"stream_resumable":false}`,
//! `GET /threads/{tid}/runs/{rid}`, `GET .../join`, `POST .../cancel?wait=0&action=interrupt`,
//! `POST /runs/cancel?action=interrupt` `{"status":"all"}`. It runs on a single-threaded tokio
//! runtime, so the client uses at most one of the machine's cores, and `cargo xtask bench` runs
//! it from a release build of xtask (`cargo run --release -p xtask`), not the debug build that
//! `cargo xtask` makes.
//!
//! # The figures (full run; `--quick` shrinks counts and durations)
//!
//! 1. thread+run create latency: 500 sequential `POST /threads` + `POST runs` (the pair is timed);
//!    p50, p99.
//! 2. run get latency: once the runs of 1 have finished, 500 sequential `GET run`; p50, p99.
//! 3. create-to-finished of a zero-sleep run, 50 sequential: from sending `POST /threads` until
//!    `GET run` (polled every 1 ms) says `success`; and 50 more until `GET .../join` returns;
//!    p50, p99.
//! 4. completed runs per second: 32 workers for 10 s, each looping create thread+run then `join`;
//!    the joins returned within the window, divided by the window; plus server CPU per run.
//! 5. cancel latency: a run with input `sleep=30`, once `running`, is cancelled (`wait=0`); time
//!    from the cancel request until `GET run` (polled every 2 ms) shows it `interrupted`; 20 runs.
//! 6. server memory (VmRSS of `/proc/PID/status`): idle (the server of 1–5, 2 s after start), and
//!    with 1,000 and 10,000 runs in flight, and 500 runs of 100 KiB of input each: runs with
//!    input `sleep=300` (plus the input) created by 32 concurrent creators (at most 120 s; a
//!    server too slow reports the number it reached), then the newest run of each creator is
//!    polled until `running` (oldest-first dispatch: then all are; a spread sample of 64
//!    statuses is kept as evidence), RSS is read, and everything is cancelled with
//!    `POST /runs/cancel`. Also KiB of RSS per in-flight run (over that server's idle RSS), and
//!    for the runs with input the peak RSS (VmHWM) once they all ended at once.
//!
//! Every loop is bounded by count and by time. Latencies are nearest-rank percentiles in ms.
//! The table shows errand, python and python/errand (each row says whether lower or higher is
//! better); `--json FILE` also writes the details (all percentiles, statuses seen, server and
//! client CPU, load average, server versions, iteration counts). Client and servers share the
//! machine: for each server's session the load average before and after, and the average cores
//! busy on the whole machine, in its servers and in the client, are printed, so that other work
//! running at the same time can be told from the figures.
//!
//! # The modules
//!
//! [`plan`] holds the counts and durations, [`session`] runs one implementation's servers
//! through [`phases`] (the measurements, over the client of [`http`]) into a [`measured`]
//! record, [`server`] starts, stops and reads the servers, and [`report`] prints the table
//! and writes the JSON. [`transports`] is the separate `bench transports`.

mod http;
mod measured;
mod phases;
mod plan;
mod report;
mod server;
mod session;
mod transports;

use anyhow::{Context, bail};
use measured::{Measured, SideReport};
use plan::Plan;
use server::{Side, load_average};
use session::Launch;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: cargo xtask bench server [--quick] [--no-peer | --only errand|python] [--storage sqlite|postgres] [--json FILE]
       cargo xtask bench transports [--storage both|memory|file] [--json FILE] [...]";
/// Set in the environment of the release build of xtask that [`run_in_release`] starts.
const RELEASE_MARK: &str = "ERRAND_BENCH_RELEASE_CLIENT";
/// How long a server may take to answer `GET /ok` after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The parsed command line.
#[derive(Debug)]
struct Options {
    quick: bool,
    errand: bool,
    python: bool,
    storage: server::Storage,
    json: Option<PathBuf>,
}

fn parse_args(args: &[&str]) -> anyhow::Result<Option<Options>> {
    let rest = match args {
        ["server", rest @ ..] => rest,
        [] | ["help" | "--help" | "-h", ..] => return Ok(None),
        other => bail!("unknown arguments {other:?}\n{USAGE}"),
    };
    let mut options = Options {
        quick: false,
        errand: true,
        python: true,
        storage: server::Storage::Sqlite,
        json: None,
    };
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--quick" => options.quick = true,
            "--no-peer" => options.python = false,
            "--only" => match rest.next() {
                Some(&"errand") => options.python = false,
                Some(&"python") => options.errand = false,
                other => bail!("--only takes `errand` or `python`, not {other:?}\n{USAGE}"),
            },
            "--storage" => match rest.next() {
                Some(&"sqlite") => options.storage = server::Storage::Sqlite,
                Some(&"postgres") => options.storage = server::Storage::postgres_from_env(),
                other => bail!("--storage takes `sqlite` or `postgres`, not {other:?}\n{USAGE}"),
            },
            "--json" => {
                let file = rest.next().context("--json needs a file")?;
                options.json = Some(PathBuf::from(file));
            }
            "help" | "--help" | "-h" => return Ok(None),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if !options.errand && !options.python {
        bail!("nothing to measure\n{USAGE}");
    }
    Ok(Some(options))
}

/// Runs `cargo xtask bench transports` (see `transports/mod.rs`); `args` are the arguments
/// after `transports`.
pub(crate) fn run_transports(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let Some(options) = transports::parse_args(args)? else {
        println!("{}", transports::USAGE);
        return Ok(());
    };
    if cfg!(debug_assertions) && std::env::var_os(RELEASE_MARK).is_none() {
        let command: Vec<&str> = std::iter::once("transports")
            .chain(args.iter().copied())
            .collect();
        return run_in_release(root, &command);
    }
    transports::run(options)
}

/// Runs the bench; `args` are the arguments after `bench`.
pub(crate) fn run(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let Some(options) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    if cfg!(debug_assertions) && std::env::var_os(RELEASE_MARK).is_none() {
        return run_in_release(root, args);
    }
    let plan = Plan::new(options.quick);
    let mut launches = Vec::new();
    let mut skipped = Vec::new();
    if options.errand {
        launches.push(Launch::Errand(build_errand(root)?, options.storage.clone()));
    } else {
        skipped.push((Side::Errand, "not asked for (--only python)".to_owned()));
    }
    if options.python {
        match crate::peer::ensure_installed(root) {
            Ok(venv) => launches.push(Launch::Python(root.to_owned(), venv)),
            Err(error) => {
                let why = format!("the Python LangGraph server could not be installed: {error:#}");
                println!("note: {why}; benching errand alone (ratios n/a)");
                skipped.push((Side::Python, why));
            }
        }
    } else {
        skipped.push((
            Side::Python,
            "skipped (--no-peer / --only errand)".to_owned(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let started = Instant::now();
    let load_start = load_average();
    let mut reports = runtime.block_on(async {
        tokio::select! {
            reports = session::bench_all(&launches, &plan) => Ok(reports),
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    })?;
    for (side, why) in skipped {
        reports.push(SideReport {
            side,
            skipped: Some(why),
            measured: Measured::default(),
        });
    }
    reports.sort_by_key(|report| report.side != Side::Errand);
    let elapsed = started.elapsed();
    report::print_table(&plan, &reports, elapsed, load_start);
    if let Some(path) = &options.json {
        let document = report::json_report(&plan, &reports, elapsed, load_start);
        std::fs::write(path, serde_json::to_string_pretty(&document)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `cargo xtask bench ARGS` from a release build of xtask: `cargo xtask` builds it
/// unoptimized, and an unoptimized client's own CPU per request would be part of every
/// latency, most of all the fast server's (client and servers share the machine's cores).
fn run_in_release(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("running the bench from a release build of xtask...");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // `--manifest-path` rather than a working folder, so a relative `--json FILE` stays
    // relative to where the command was typed.
    let status = Command::new(cargo)
        .args(["run", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(["-p", "xtask", "--bin", "xtask", "--", "bench"])
        .args(args)
        .env(RELEASE_MARK, "1")
        .status()
        .context("running cargo run --release -p xtask")?;
    if !status.success() {
        bail!("the bench failed ({status})");
    }
    Ok(())
}

/// Benches this `errand` binary instead of building the workspace's: the same bench against
/// another commit's server, for a side-by-side comparison.
const BINARY_ENV: &str = "ERRAND_BENCH_BINARY";

/// `cargo build --release -p errand-cli`; returns the binary.
fn build_errand(root: &Path) -> anyhow::Result<PathBuf> {
    if let Some(binary) = std::env::var_os(BINARY_ENV) {
        let binary = PathBuf::from(binary);
        if !binary.is_file() {
            bail!("{BINARY_ENV}={} is not a file", binary.display());
        }
        eprintln!("benching {} ({BINARY_ENV})", binary.display());
        return Ok(binary);
    }
    eprintln!("building errand (cargo build --release -p errand-cli)...");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "errand-cli"])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p errand-cli failed ({status})");
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    let binary = target.join("release").join("errand");
    if !binary.is_file() {
        bail!("{} is missing after the build", binary.display());
    }
    Ok(binary)
}
