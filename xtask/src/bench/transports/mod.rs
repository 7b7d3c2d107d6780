//! `cargo xtask bench transports`: the latency of errand-client's two transports against the
//! same errand server, in one run.
//!
//! Starts an errand server in this process (the `echo` graph), also serves it on
//! 127.0.0.1:0, and measures, through the in-process transport and through loopback HTTP with
//! keep-alive:
//!
//! - `create`: a thread create followed by a run create (sequential), as the supervisor's
//!   `start_async_task` does (also shown split into its two calls). Each run is then executed
//!   by the server in the background, as it would be; the bench waits for it to end (untimed,
//!   with a join) before the next create, so that a create is timed against a server that is
//!   not still busy with the bench's own previous runs.
//! - `b2b`: the same creates back to back, with no wait between them. The echo graph ends a run in
//!   microseconds, so the server executes one run per create while the next creates arrive:
//!   on two cores this loop is bound by the server's throughput (every create, run and write
//!   of the whole server shares the cores and the one SQLite writer), and its p50 says more
//!   about that than about the call. Shown for information; the targets are judged on
//!   `create`.
//! - `get`: a run get.
//!
//! Where each client runs:
//!
//! - in-process: in a task on the server's runtime, as an embedded supervisor's tools run.
//!   Code run by `block_on` on the main thread is outside the runtime's workers, so every run
//!   the server started from there would first have to wake a worker thread, a cost no
//!   embedded supervisor pays.
//! - HTTP: on a runtime of its own, on a thread of its own, as a client in another process
//!   calls a server. Sharing the server's runtime would let one worker thread carry a call
//!   through both ends of the socket, which no client of a real server gets.
//!
//! It does so twice, on two servers that differ only in their storage:
//!
//! - `memory`: SQLite in memory. Storage costs little here, so the figures are mostly the
//!   transports' own: what the client adds to a call.
//! - `file`: a SQLite file, as `errand serve` keeps. Each create is then a durable commit (a
//!   thread's and a run's pages written to the WAL), the same under either transport.
//!
//! It prints p50 and p99 of each, and how many times faster in-process is.
//!
//! ```text
//! cargo xtask bench transports [--storage both|memory|file] [--iterations 2000] [--warmup 200]
//!     [--repeat 1] [--max-seconds 60] [--json FILE]
//! ```
//!
//! Like `bench server`, it runs from a release build of xtask. The p50 of one process can differ
//! from the next one's on a small shared machine, so `--repeat N` benches each storage N times,
//! on a fresh server each time, and also judges the targets on the median of the N p50s.
//!
//! The targets: in-process at least 5x faster than loopback HTTP, and in-process create p50 at
//! most 50 µs.

mod measure;
mod report;

use anyhow::{Context, bail};
use errand_client::Client;
use errand_server::storage::SqliteStorage;
use errand_server::{Server, graphs::Echo};
use measure::Report;
use report::{Comparison, Verdict};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(crate) const USAGE: &str = "usage: cargo xtask bench transports [--storage both|memory|file] \
     [--iterations N] [--warmup N] [--repeat N] [--max-seconds S] [--json FILE]";

/// Command-line settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    storages: Vec<StorageKind>,
    iterations: usize,
    warmup: usize,
    /// Rounds per storage, each on a fresh server; the targets are also judged on the medians.
    repeat: usize,
    max_seconds: u64,
    json: Option<String>,
}

/// The options of `args` (those after `transports`), or `None` when help was asked for.
pub(crate) fn parse_args(args: &[&str]) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        storages: vec![StorageKind::Memory, StorageKind::File],
        iterations: 2000,
        warmup: 200,
        repeat: 1,
        max_seconds: 60,
        json: None,
    };
    let mut args = args.iter();
    while let Some(&arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg {
            "--storage" => {
                options.storages = match *value()? {
                    "both" => vec![StorageKind::Memory, StorageKind::File],
                    "memory" => vec![StorageKind::Memory],
                    "file" => vec![StorageKind::File],
                    other => bail!("--storage takes both, memory or file, not `{other}`"),
                }
            }
            "--iterations" => options.iterations = value()?.parse()?,
            "--warmup" => options.warmup = value()?.parse()?,
            "--repeat" => options.repeat = value()?.parse()?,
            "--max-seconds" => options.max_seconds = value()?.parse()?,
            "--json" => options.json = Some((*value()?).to_owned()),
            "help" | "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if options.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    if options.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    Ok(Some(options))
}

/// Where the benched server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageKind {
    Memory,
    File,
}

impl StorageKind {
    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::File => "file",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Memory => "SQLite in memory: mostly the transports' own cost",
            Self::File => "a SQLite file, as `errand serve` keeps: each create a durable commit",
        }
    }
}

/// Runs the bench on a multi-threaded runtime, from one of its workers, as a supervisor's tool
/// calls are (see the module docs).
pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async { tokio::spawn(bench_storages(options)).await? })
}

async fn bench_storages(options: Options) -> anyhow::Result<()> {
    println!(
        "errand-client transports: {} iterations after {} warm-up, the echo graph, {} round(s) \
         per storage",
        options.iterations, options.warmup, options.repeat
    );
    let mut comparisons = Vec::new();
    let mut summaries = Vec::new();
    for storage in &options.storages {
        let mut verdicts = Vec::new();
        for round in 1..=options.repeat {
            if options.repeat > 1 {
                println!("\nround {round} of {}", options.repeat);
            }
            let comparison = compare(*storage, &options).await?;
            comparison.print();
            verdicts.push(comparison.verdict());
            comparisons.push(comparison);
        }
        if options.repeat > 1
            && let Some(median) = Verdict::median(&verdicts)
        {
            println!(
                "\nstorage {}, median over {} rounds: in-process create {:.1} µs, get {:.1} µs; \
                 HTTP create {:.1} µs, get {:.1} µs",
                storage.name(),
                options.repeat,
                median.in_process_create,
                median.in_process_get,
                median.http_create,
                median.http_get,
            );
            median.print();
            let summary = json!({ "storage": storage.name(), "rounds": options.repeat });
            summaries.push(median.add_to(summary));
        }
    }
    if let Some(path) = &options.json {
        let report = json!({
            "iterations": options.iterations,
            "warmup": options.warmup,
            "repeat": options.repeat,
            "servers": comparisons.iter().map(Comparison::json).collect::<Vec<_>>(),
            "medians": summaries,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {path}"))?;
        println!("wrote {path}");
    }
    Ok(())
}

/// Starts a server on `storage`, benches it through both transports, and stops it.
async fn compare(storage: StorageKind, options: &Options) -> anyhow::Result<Comparison> {
    let folder = std::env::temp_dir().join(format!(
        "errand-bench-transports-{}-{}",
        std::process::id(),
        storage.name()
    ));
    let store = match storage {
        StorageKind::Memory => SqliteStorage::in_memory()?,
        StorageKind::File => {
            std::fs::create_dir_all(&folder)?;
            SqliteStorage::open(folder.join("errand.db"))?
        }
    };
    let server = Server::builder()
        .graph("echo", Echo)
        .storage(Arc::new(store))
        .start()
        .await?;
    let served = server.serve_local().await?;

    let in_process = Client::builder()
        .in_process(server.router())
        .api_key(None)
        .build()?;
    let measured = async {
        Ok::<_, anyhow::Error>(Comparison {
            storage,
            in_process: measure::bench(&in_process, options).await?,
            http: bench_http(served.url(), options.clone()).await?,
        })
    }
    .await;

    drop(served);
    server.shutdown(Duration::from_secs(10)).await;
    let _ = std::fs::remove_dir_all(&folder);
    measured
}

/// Benches the server at `url` over HTTP from a runtime of its own, on a thread of its own, as
/// a client in another process calls it (see the module docs).
async fn bench_http(url: String, options: Options) -> anyhow::Result<Report> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("http-client".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| {
                    runtime.block_on(async {
                        let http = Client::builder().url(url).api_key(None).build()?;
                        measure::bench(&http, &options).await
                    })
                });
            let _ = answer.send(result);
        })?;
    answered.await.context("the HTTP client's thread stopped")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_options() {
        let options = parse_args(&["--storage", "memory", "--iterations", "20", "--json", "f"])
            .unwrap()
            .expect("not help");
        assert_eq!(options.storages, vec![StorageKind::Memory]);
        assert_eq!((options.iterations, options.warmup), (20, 200));
        assert_eq!(options.json.as_deref(), Some("f"));
        assert!(parse_args(&["--help"]).unwrap().is_none());
        assert!(parse_args(&["--iterations", "0"]).is_err());
        assert!(parse_args(&["--storage"]).is_err());
        assert!(parse_args(&["--bogus"]).is_err());
    }
}
