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

mod http;
mod phases;
mod server;
mod transports;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use server::{Server, Side, load_average, machine_busy_seconds};
use std::collections::BTreeMap;
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

/// Counts and durations of every phase.
#[derive(Debug)]
pub(crate) struct Plan {
    quick: bool,
    create_n: usize,
    create_cap: Duration,
    get_n: usize,
    get_cap: Duration,
    drain_cap: Duration,
    e2e_n: usize,
    e2e_cap: Duration,
    poll_every: Duration,
    workers: usize,
    window: Duration,
    cancel_n: usize,
    cancel_cap: Duration,
    cancel_poll: Duration,
    levels: Vec<Level>,
    creators: usize,
    fill_cap: Duration,
    settle: Duration,
    python_jobs: usize,
    python_jobs_in_flight: usize,
    errand_max_runs_in_flight: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        let pick = |full: u64, small: u64| Duration::from_secs(if quick { small } else { full });
        Self {
            quick,
            create_n: if quick { 50 } else { 500 },
            create_cap: pick(60, 5),
            get_n: if quick { 50 } else { 500 },
            get_cap: pick(30, 5),
            drain_cap: pick(120, 15),
            e2e_n: if quick { 10 } else { 50 },
            e2e_cap: pick(120, 10),
            poll_every: Duration::from_millis(1),
            workers: 32,
            window: pick(10, 3),
            cancel_n: if quick { 5 } else { 20 },
            cancel_cap: pick(120, 15),
            cancel_poll: Duration::from_millis(2),
            levels: if quick {
                vec![
                    Level::new(100, 0),
                    Level::new(1000, 0),
                    Level::new(100, 100),
                ]
            } else {
                vec![
                    Level::new(1000, 0),
                    Level::new(10_000, 0),
                    Level::new(500, 100),
                ]
            },
            creators: 32,
            fill_cap: pick(120, 15),
            settle: pick(2, 1),
            python_jobs: 10,
            python_jobs_in_flight: 10_000,
            errand_max_runs_in_flight: 20_000,
        }
    }

    fn json(&self) -> Value {
        let secs = Duration::as_secs_f64;
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        json!({
            "quick": self.quick,
            "1_create": {"iterations": self.create_n, "cap_s": secs(&self.create_cap)},
            "2_get": {"iterations": self.get_n, "cap_s": secs(&self.get_cap)},
            "3_end_to_end": {"iterations_each": self.e2e_n, "cap_s_each": secs(&self.e2e_cap),
                "poll_interval_ms": ms(&self.poll_every)},
            "4_throughput": {"workers": self.workers, "window_s": secs(&self.window)},
            "5_cancel": {"iterations": self.cancel_n, "cap_s": secs(&self.cancel_cap),
                "poll_interval_ms": ms(&self.cancel_poll), "run_input": "sleep=30"},
            "6_in_flight": {
                "levels": self.levels.iter().map(|level| json!({"runs": level.runs,
                    "input_kib": level.input_kib})).collect::<Vec<_>>(),
                "creators": self.creators,
                "create_and_start_cap_s_each": secs(&self.fill_cap),
                "run_input": "sleep=300, then input_kib KiB of text",
                "idle_settle_s": secs(&self.settle)},
            "python_n_jobs_per_worker": {"phases_1_5": self.python_jobs,
                "phase_6": self.python_jobs_in_flight},
            "errand_max_concurrent_runs": {"phases_1_5": "default",
                "phase_6": self.errand_max_runs_in_flight},
        })
    }
}

/// One level of phase 6: this many runs in flight, each with this much input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    pub(crate) runs: usize,
    pub(crate) input_kib: usize,
}

impl Level {
    const fn new(runs: usize, input_kib: usize) -> Self {
        Self { runs, input_kib }
    }

    /// The key of its figures: `inflight_1000`, or `inflight_500x100k` with input.
    pub(crate) fn key(&self) -> String {
        match self.input_kib {
            0 => format!("inflight_{}", self.runs),
            kib => format!("inflight_{}x{kib}k", self.runs),
        }
    }

    /// `1,000 runs`, or `500 runs of 100 KiB`.
    fn label(&self) -> String {
        match self.input_kib {
            0 => format!("{} runs", thousands(self.runs)),
            kib => format!("{} runs of {kib} KiB", thousands(self.runs)),
        }
    }

    /// The text of each run's message.
    pub(crate) fn content(&self) -> String {
        format!("sleep=300 {}", "x".repeat(self.input_kib * 1024))
    }
}

/// One figure's value for one server.
#[derive(Debug, Clone, Copy)]
struct Point {
    value: f64,
    n: usize,
}

/// Everything measured on one implementation.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    figures: BTreeMap<String, Point>,
    details: Map<String, Value>,
    errors: Vec<String>,
    notes: Vec<String>,
    /// CPU seconds used by the servers started for this implementation.
    server_cpu_s: f64,
}

impl Measured {
    /// Records figure `id` (see [`catalog`]) measured over `n` samples.
    pub(crate) fn figure(&mut self, id: &str, value: f64, n: usize) {
        self.figures.insert(id.to_owned(), Point { value, n });
    }

    /// Records a detail for the JSON output.
    pub(crate) fn detail(&mut self, key: &str, value: Value) {
        self.details.insert(key.to_owned(), value);
    }

    /// Records something that went wrong.
    pub(crate) fn error(&mut self, message: String) {
        eprintln!("  ! {message}");
        self.errors.push(message);
    }

    /// Records a remark for the reader.
    pub(crate) fn note(&mut self, message: String) {
        eprintln!("  note: {message}");
        self.notes.push(message);
    }

    /// Stops `server`, adding the CPU it used to [`Measured::server_cpu_s`]; says how it ended.
    fn stop(&mut self, server: &mut Server) -> String {
        if let Ok(stats) = server.stats() {
            self.server_cpu_s += stats.cpu_s;
        }
        server.stop()
    }

    /// Keeps the value of a phase, or records its error.
    fn check<T>(&mut self, label: &str, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.error(format!("{label}: {error:#}"));
                None
            }
        }
    }
}

/// What the table shows for one figure.
#[derive(Debug)]
struct FigureDef {
    id: String,
    label: String,
    unit: &'static str,
    higher_is_better: bool,
}

/// The figures, in table order.
fn catalog(plan: &Plan) -> Vec<FigureDef> {
    let def = |id: &str, label: String, unit, higher_is_better| FigureDef {
        id: id.to_owned(),
        label,
        unit,
        higher_is_better,
    };
    let mut list = vec![
        def(
            "create_p50",
            "1. create thread+run, p50".into(),
            "ms",
            false,
        ),
        def(
            "create_p99",
            "1. create thread+run, p99".into(),
            "ms",
            false,
        ),
        def("get_p50", "2. get run, p50".into(), "ms", false),
        def("get_p99", "2. get run, p99".into(), "ms", false),
        def(
            "e2e_poll_p50",
            "3. create→success, poll 1 ms, p50".into(),
            "ms",
            false,
        ),
        def(
            "e2e_poll_p99",
            "3. create→success, poll 1 ms, p99".into(),
            "ms",
            false,
        ),
        def(
            "e2e_join_p50",
            "3. create→success, join, p50".into(),
            "ms",
            false,
        ),
        def(
            "e2e_join_p99",
            "3. create→success, join, p99".into(),
            "ms",
            false,
        ),
        def(
            "throughput",
            format!("4. completed runs/s, {} workers", plan.workers),
            "runs/s",
            true,
        ),
        def(
            "throughput_cpu",
            "4. server CPU per run".into(),
            "ms",
            false,
        ),
        def(
            "throughput_3_replicas",
            format!(
                "4b. completed runs/s, {} workers over 3 replicas (PostgreSQL)",
                plan.workers
            ),
            "runs/s",
            true,
        ),
        def(
            "cancel_p50",
            "5. cancel→interrupted, p50".into(),
            "ms",
            false,
        ),
        def(
            "cancel_p99",
            "5. cancel→interrupted, p99".into(),
            "ms",
            false,
        ),
        def("rss_idle", "6. RSS idle".into(), "MiB", false),
    ];
    for level in &plan.levels {
        let n = level.label();
        let key = level.key();
        list.push(def(
            &format!("{key}_reached"),
            format!("6. runs in flight reached (of {n})"),
            "runs",
            true,
        ));
        list.push(def(
            &format!("{key}_rss"),
            format!("6. RSS, {n} in flight"),
            "MiB",
            false,
        ));
        list.push(def(
            &format!("{key}_kib_per_run"),
            format!("6. RSS per in-flight run ({n})"),
            "KiB",
            false,
        ));
        if level.input_kib > 0 {
            list.push(def(
                &format!("{key}_peak_rss"),
                format!("6. peak RSS, {n} ended at once"),
                "MiB",
                false,
            ));
        }
        list.push(def(
            &format!("{key}_create_rate"),
            format!("6. in-flight runs created/s ({n})"),
            "runs/s",
            true,
        ));
    }
    list
}

/// `10000` → `10,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How to start one implementation.
#[derive(Debug)]
enum Launch {
    /// The `errand` binary, on this storage.
    Errand(PathBuf, server::Storage),
    /// The peer: the workspace root (for its graph project) and its venv.
    Python(PathBuf, PathBuf),
}

impl Launch {
    fn side(&self) -> Side {
        match self {
            Launch::Errand(..) => Side::Errand,
            Launch::Python(..) => Side::Python,
        }
    }

    /// Starts a server; `in_flight` picks the settings of phase 6.
    fn start(&self, plan: &Plan, in_flight: bool) -> anyhow::Result<Server> {
        match self {
            Launch::Errand(binary, storage) => {
                let max = in_flight.then_some(plan.errand_max_runs_in_flight);
                Server::start_errand(binary, storage, max)
            }
            Launch::Python(root, venv) => {
                let jobs = if in_flight {
                    plan.python_jobs_in_flight
                } else {
                    plan.python_jobs
                };
                Server::start_python(root, venv, jobs)
            }
        }
    }
}

/// The outcome for one implementation.
#[derive(Debug)]
struct SideReport {
    side: Side,
    /// Why it was not measured.
    skipped: Option<String>,
    measured: Measured,
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
            reports = bench_all(&launches, &plan) => Ok(reports),
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
    print_table(&plan, &reports, elapsed, load_start);
    if let Some(path) = &options.json {
        let document = json_report(&plan, &reports, elapsed, load_start);
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
    eprintln!("running the bench client from a release build of xtask...");
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

/// `cargo build --release -p errand-cli`; returns the binary.
/// Benches this `errand` binary instead of building the workspace's: the same bench against
/// another commit's server, for a side-by-side comparison.
const BINARY_ENV: &str = "ERRAND_BENCH_BINARY";

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

async fn bench_all(launches: &[Launch], plan: &Plan) -> Vec<SideReport> {
    let mut reports = Vec::new();
    for launch in launches {
        let side = launch.side();
        eprintln!("== {}", side.name());
        let mut measured = Measured::default();
        measured.detail("load_average_start", json!(load_average()));
        let started = Instant::now();
        let busy0 = machine_busy_seconds();
        let client0 = server::cpu_seconds(std::process::id()).ok();
        let result = latency_session(launch, plan, &mut measured).await;
        measured.check("phases 1-5", result);
        for (index, &level) in plan.levels.iter().enumerate() {
            let result = memory_session(launch, plan, level, index == 0, &mut measured).await;
            measured.check(&format!("6. in flight {}", level.label()), result);
        }
        measured.detail("load_average_end", json!(load_average()));
        let wall = secs(started);
        measured.detail("session_s", json!(phases::round(wall)));
        // What else kept the cores busy meanwhile: machine CPU minus the bench's and servers'.
        let client = server::cpu_seconds(std::process::id())
            .ok()
            .zip(client0)
            .map(|(now, then)| now - then);
        if let (Some(busy0), Some(busy1), Some(client)) = (busy0, machine_busy_seconds(), client) {
            // `/proc/stat` is tick-sampled, the per-process times are not: the difference is
            // approximate (and can come out slightly negative on an otherwise idle machine).
            let servers = measured.server_cpu_s;
            let other = busy1 - busy0 - client - servers;
            measured.detail(
                "cpu_during_session",
                json!({
                    "wall_s": phases::round(wall),
                    "machine_busy_cores_avg": phases::round((busy1 - busy0) / wall),
                    "servers_cores_avg": phases::round(servers / wall),
                    "client_cores_avg": phases::round(client / wall),
                    "other_processes_cores_avg_approx": phases::round(other / wall),
                }),
            );
        }
        reports.push(SideReport {
            side,
            skipped: None,
            measured,
        });
    }
    reports
}

fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Logs the start of a phase.
fn step(side: Side, label: &str) -> Instant {
    eprintln!("[{}] {label}", side.name());
    Instant::now()
}

/// Phases 1–5 on one server, and its idle memory.
async fn latency_session(launch: &Launch, plan: &Plan, out: &mut Measured) -> anyhow::Result<()> {
    let side = launch.side();
    let t = step(side, "starting the server for phases 1-5");
    let mut server = launch.start(plan, false)?;
    let ready = server.wait_ready(READY_TIMEOUT).await?;
    out.detail("startup_s", json!(phases::round(ready.as_secs_f64())));
    let info = phases::info(server.addr()).await;
    if let Some(info) = out.check("GET /info", info) {
        out.detail("info", info);
    }
    tokio::time::sleep(plan.settle).await;
    let idle = server.stats()?;
    out.figure("rss_idle", idle.rss_mib, 1);
    out.detail(
        "idle",
        json!({"rss_mib": phases::round(idle.rss_mib), "vmhwm_mib": phases::round(idle.hwm_mib),
               "threads": idle.threads, "pid": server.pid(), "ready_after_s": secs(t)}),
    );
    let addr = server.addr();

    step(side, "1. create thread+run latency");
    let runs = phases::create_latency(addr, plan, out).await;
    if let Some(runs) = out.check("1. create", runs) {
        step(side, "2. get run latency");
        let result = phases::get_latency(addr, plan, &runs, out).await;
        out.check("2. get", result);
    }
    step(side, "3. create-to-finished latency");
    let result = phases::end_to_end(addr, plan, out).await;
    out.check("3. end to end", result);
    step(side, "4. throughput");
    let result = phases::throughput(&server, plan, out).await;
    out.check("4. throughput", result);
    if let Launch::Errand(binary, storage @ server::Storage::Postgres(_)) = launch {
        step(side, "4b. throughput over 3 replicas on one database");
        let result = three_replicas(&server, binary, storage, plan, out).await;
        out.check("4b. throughput over 3 replicas", result);
    }
    step(side, "5. cancel latency");
    let result = phases::cancel_latency(addr, plan, out).await;
    out.check("5. cancel", result);

    // Leave nothing running, whatever failed above.
    let mut conn = http::Conn::new(addr);
    let result = phases::cancel_leftovers(&mut conn).await;
    out.check("cancel all after phase 5", result);
    let end = server.stats()?;
    out.detail(
        "after_phases_1_5",
        json!({"rss_mib": phases::round(end.rss_mib), "vmhwm_mib": phases::round(end.hwm_mib),
               "threads": end.threads, "server_cpu_s": phases::round(end.cpu_s)}),
    );
    let how = out.stop(&mut server);
    out.detail("stop_after_phases_1_5", json!(how));
    Ok(())
}

/// Figure 4b: two more replicas on `server`'s database, and phase 4's loop spread over the
/// three.
async fn three_replicas(
    server: &Server,
    binary: &Path,
    storage: &server::Storage,
    plan: &Plan,
    out: &mut Measured,
) -> anyhow::Result<()> {
    let schema = server
        .database_schema()
        .context("the first replica has no schema")?;
    let mut others = Vec::new();
    for _ in 0..2 {
        let mut replica = Server::start_errand_in(binary, storage, schema)?;
        replica.wait_ready(READY_TIMEOUT).await?;
        others.push(replica);
    }
    let servers: Vec<&Server> = std::iter::once(server).chain(others.iter()).collect();
    let result = phases::throughput_over(&servers, plan, out, "throughput_3_replicas").await;
    for mut replica in others {
        let how = out.stop(&mut replica);
        out.detail("stop_replicas", json!(how));
    }
    result
}

/// One level of phase 6, on a fresh server.
async fn memory_session(
    launch: &Launch,
    plan: &Plan,
    level: Level,
    first: bool,
    out: &mut Measured,
) -> anyhow::Result<()> {
    let side = launch.side();
    step(side, &format!("6. memory with {} in flight", level.label()));
    let mut server = launch.start(plan, true)?;
    server.wait_ready(READY_TIMEOUT).await?;
    tokio::time::sleep(plan.settle).await;
    let idle = server.stats()?.rss_mib;
    if first {
        out.detail(
            "rss_idle_in_flight_settings_mib",
            json!(phases::round(idle)),
        );
    }
    let result = phases::in_flight(&server, level, idle, plan, out).await;
    let how = out.stop(&mut server);
    out.detail(&format!("stop_after_{}", level.key()), json!(how));
    if how.starts_with("SIGKILL") {
        out.note(format!(
            "{} after {} in flight: {how}",
            side.name(),
            level.label()
        ));
    }
    result
}

/// `python / errand`, when both are there.
fn ratio(errand: Option<Point>, python: Option<Point>) -> Option<f64> {
    let (e, p) = (errand?.value, python?.value);
    (e != 0.0).then_some(p / e)
}

fn point(reports: &[SideReport], side: Side, id: &str) -> Option<Point> {
    reports
        .iter()
        .find(|report| report.side == side)
        .and_then(|report| report.measured.figures.get(id).copied())
}

/// The version a server's `GET /info` gives (with langgraph's, for the Python server).
fn version(info: Option<&Value>) -> String {
    let field = |name: &str| info.and_then(|info| info.get(name)).and_then(Value::as_str);
    match (field("version"), field("langgraph_py_version")) {
        (Some(api), Some(langgraph)) => {
            format!("langgraph-api {api}, langgraph {langgraph}")
        }
        (Some(version), None) => format!("version {version}"),
        _ => "version ?".to_owned(),
    }
}

/// A figure with about 3 significant digits.
fn number(x: f64) -> String {
    let magnitude = x.abs();
    if magnitude >= 100.0 {
        format!("{x:.0}")
    } else if magnitude >= 10.0 {
        format!("{x:.1}")
    } else if magnitude >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn print_table(plan: &Plan, reports: &[SideReport], elapsed: Duration, load: Option<[f64; 3]>) {
    println!();
    println!(
        "errand vs Python LangGraph server{} — {:.0} s; load average at start {}",
        if plan.quick { " (--quick)" } else { "" },
        elapsed.as_secs_f64(),
        load.map_or_else(|| "?".to_owned(), |l| format!("{l:?}"))
    );
    for report in reports {
        let m = &report.measured;
        let line = match &report.skipped {
            Some(why) => format!("not measured: {why}"),
            None => {
                let cpu = |key: &str| {
                    m.details
                        .get("cpu_during_session")
                        .and_then(|cpu| cpu.get(key))
                        .and_then(Value::as_f64)
                        .map_or_else(|| "?".to_owned(), |x| format!("{x:.2}"))
                };
                format!(
                    "{}; load average {} → {}; cores busy on average: machine {}, servers {}, \
                     client {}",
                    version(m.details.get("info")),
                    m.details.get("load_average_start").unwrap_or(&Value::Null),
                    m.details.get("load_average_end").unwrap_or(&Value::Null),
                    cpu("machine_busy_cores_avg"),
                    cpu("servers_cores_avg"),
                    cpu("client_cores_avg"),
                )
            }
        };
        println!("  {}: {line}", report.side.name());
    }
    let rows: Vec<[String; 4]> = catalog(plan)
        .iter()
        .map(|def| {
            let errand = point(reports, Side::Errand, &def.id);
            let python = point(reports, Side::Python, &def.id);
            let show = |p: Option<Point>| p.map_or_else(|| "–".to_owned(), |p| number(p.value));
            let better = if def.higher_is_better { "↑" } else { "↓" };
            [
                format!("{} ({}) {better}", def.label, def.unit),
                show(errand),
                show(python),
                ratio(errand, python)
                    .map_or_else(|| "n/a".to_owned(), |r| format!("{}x", number(r))),
            ]
        })
        .collect();
    let header = [
        "figure (↓ lower is better, ↑ higher)".to_owned(),
        "errand".to_owned(),
        "python".to_owned(),
        "python/errand".to_owned(),
    ];
    let width = |i: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|row| row[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2), width(3)];
    let line = |row: &[String; 4]| {
        let pad = |text: &str, w: usize| " ".repeat(w.saturating_sub(text.chars().count()));
        println!(
            "| {}{} | {}{} | {}{} | {}{} |",
            row[0],
            pad(&row[0], widths[0]),
            pad(&row[1], widths[1]),
            row[1],
            pad(&row[2], widths[2]),
            row[2],
            pad(&row[3], widths[3]),
            row[3],
        );
    };
    println!();
    line(&header);
    println!(
        "|{}|{}:|{}:|{}:|",
        "-".repeat(widths[0] + 2),
        "-".repeat(widths[1] + 1),
        "-".repeat(widths[2] + 1),
        "-".repeat(widths[3] + 1)
    );
    for row in &rows {
        line(row);
    }
    for report in reports {
        for note in &report.measured.notes {
            println!("note ({}): {note}", report.side.name());
        }
        for error in &report.measured.errors {
            println!("ERROR ({}): {error}", report.side.name());
        }
    }
}

fn json_report(
    plan: &Plan,
    reports: &[SideReport],
    elapsed: Duration,
    load: Option<[f64; 3]>,
) -> Value {
    let figures: Vec<Value> = catalog(plan)
        .iter()
        .map(|def| {
            let errand = point(reports, Side::Errand, &def.id);
            let python = point(reports, Side::Python, &def.id);
            let side = |p: Option<Point>| {
                p.map_or(
                    Value::Null,
                    |p| json!({"value": phases::round(p.value), "n": p.n}),
                )
            };
            json!({
                "id": def.id,
                "label": def.label,
                "unit": def.unit,
                "better": if def.higher_is_better { "higher" } else { "lower" },
                "errand": side(errand),
                "python": side(python),
                "ratio_python_over_errand": ratio(errand, python).map(phases::round),
            })
        })
        .collect();
    let mut servers = Map::new();
    for report in reports {
        let m = &report.measured;
        let value = match &report.skipped {
            Some(why) => json!({"skipped": why}),
            None => json!({
                "errors": m.errors,
                "notes": m.notes,
                "details": m.details,
            }),
        };
        servers.insert(report.side.name().to_owned(), value);
    }
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "bench": "server",
        "finished_unix_s": unix,
        "elapsed_s": phases::round(elapsed.as_secs_f64()),
        "machine": {
            "cpus": std::thread::available_parallelism().map(usize::from).ok(),
            "load_average_start": load,
            "load_average_end": load_average(),
        },
        "client": "xtask bench (Rust, hyper HTTP/1.1 keep-alive, single-threaded tokio runtime)",
        "plan": plan.json(),
        "figures": figures,
        "servers": servers,
    })
}
