//! Latency of the two transports against the same errand server, in one run.
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
//!   (Code run by `block_on` on the main thread is outside the runtime's workers: every run
//!   the server starts from there must wake a worker thread, which on a small virtual machine
//!   costs tens of microseconds per create.)
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
//! cargo run --release -p errand-client --example bench_transports -- \
//!     [--storage both|memory|file] [--iterations 2000] [--warmup 200] [--repeat 1] \
//!     [--max-seconds 60] [--json FILE]
//! ```
//!
//! On a small virtual machine one run's p50 can move by a third from one process to the next;
//! `--repeat N` benches each storage N times, on a fresh server each time, and also judges the
//! targets on the median of the N p50s.
//!
//! The issue's targets: in-process at least 5x faster than loopback HTTP, and in-process create
//! p50 at most 50 µs.

use anyhow::{Context, bail};
use errand_client::Client;
use errand_client::protocol::{RunCreate, ThreadCreate, ThreadSearchRequest, ThreadStatus};
use errand_server::storage::SqliteStorage;
use errand_server::{Server, graphs::Echo};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Command-line settings.
#[derive(Debug, Clone)]
struct Options {
    storages: Vec<StorageKind>,
    iterations: usize,
    warmup: usize,
    /// Rounds per storage, each on a fresh server; the targets are also judged on the medians.
    repeat: usize,
    max_seconds: u64,
    json: Option<String>,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        storages: vec![StorageKind::Memory, StorageKind::File],
        iterations: 2000,
        warmup: 200,
        repeat: 1,
        max_seconds: 60,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--storage" => {
                options.storages = match value()?.as_str() {
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
            "--json" => options.json = Some(value()?),
            "-h" | "--help" => {
                println!(
                    "usage: bench_transports [--storage both|memory|file] [--iterations N] \
                     [--warmup N] [--repeat N] [--max-seconds S] [--json FILE]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`"),
        }
    }
    if options.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    if options.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    Ok(options)
}

// The allocator `errand serve` runs with, so that both servers here are the one users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where the benched server keeps its data.
#[derive(Debug, Clone, Copy)]
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

/// Latencies of one operation, in microseconds, sorted.
#[derive(Debug)]
struct Samples(Vec<f64>);

impl Samples {
    fn new(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self(samples)
    }

    fn percentile(&self, p: f64) -> f64 {
        let last = self.0.len().saturating_sub(1);
        let at = ((last as f64) * p).round() as usize;
        self.0.get(at.min(last)).copied().unwrap_or(f64::NAN)
    }

    fn p50(&self) -> f64 {
        self.percentile(0.50)
    }

    fn p99(&self) -> f64 {
        self.percentile(0.99)
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len().max(1) as f64
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "n": self.0.len(),
            "p50_us": round(self.p50()),
            "p99_us": round(self.p99()),
            "mean_us": round(self.mean()),
        })
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Runs `op` `options.warmup` times, then up to `options.iterations` times (or until
/// `--max-seconds` is spent), and answers what the latter answered.
async fn repeat<T, F, Fut>(options: &Options, mut op: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    for _ in 0..options.warmup {
        op().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(options.max_seconds);
    let mut answers = Vec::with_capacity(options.iterations);
    for _ in 0..options.iterations {
        answers.push(op().await?);
        if Instant::now() > deadline {
            break;
        }
    }
    Ok(answers)
}

/// Microseconds since `since`.
fn micros(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e6
}

/// The measurements of one transport.
#[derive(Debug)]
struct Report {
    /// Thread create then run create, each after the previous run ended.
    create: Samples,
    /// The thread create part of `create`.
    create_thread: Samples,
    /// The run create part of `create`.
    create_run: Samples,
    /// Thread create then run create, with no wait between iterations.
    back_to_back: Samples,
    /// A run get.
    get: Samples,
}

/// Times thread-then-run creates; with `wait_for_run`, each run is joined (untimed) before
/// the next create. Answers the whole creates, their two parts, and the last run.
async fn creates(
    client: &Client,
    options: &Options,
    wait_for_run: bool,
) -> anyhow::Result<(Samples, Samples, Samples, (Uuid, Uuid))> {
    let input = json!({"messages": [{"role": "user", "content": "hi"}]});
    let body = &RunCreate::new("echo", input);
    let empty = &ThreadCreate::default();
    let answers = repeat(options, || async move {
        let started = Instant::now();
        let thread = client.threads().create(empty).await?;
        let (thread_part, between) = (micros(started), Instant::now());
        let run = client.runs().create(thread.thread_id, body).await?;
        let (whole, run_part) = (micros(started), micros(between));
        if wait_for_run {
            client.runs().join(run.thread_id, run.run_id).await?;
        }
        Ok(TimedCreate {
            whole,
            thread: thread_part,
            run: run_part,
            ids: (run.thread_id, run.run_id),
        })
    })
    .await?;
    let last = answers
        .last()
        .map(|answer| answer.ids)
        .context("no run was created")?;
    let samples = |pick: fn(&TimedCreate) -> f64| Samples::new(answers.iter().map(pick).collect());
    Ok((
        samples(|answer| answer.whole),
        samples(|answer| answer.thread),
        samples(|answer| answer.run),
        last,
    ))
}

/// One timed thread-then-run create, in microseconds, and the run it made.
#[derive(Debug)]
struct TimedCreate {
    whole: f64,
    thread: f64,
    run: f64,
    ids: (Uuid, Uuid),
}

async fn bench(client: &Client, options: &Options) -> anyhow::Result<Report> {
    let (create, create_thread, create_run, _) = creates(client, options, true).await?;
    let (back_to_back, _, _, (thread_id, run_id)) = creates(client, options, false).await?;

    // Let the runs just created finish, so the reads below do not compete with them.
    client.runs().join(thread_id, run_id).await?;
    settle(client).await;

    let get = Samples::new(
        repeat(options, || async move {
            let started = Instant::now();
            client.runs().get(thread_id, run_id).await?;
            Ok(micros(started))
        })
        .await?,
    );
    Ok(Report {
        create,
        create_thread,
        create_run,
        back_to_back,
        get,
    })
}

/// Waits (at most 30 s) until no thread is busy on the server.
async fn settle(client: &Client) {
    let busy = ThreadSearchRequest {
        status: Some(ThreadStatus::Busy),
        limit: 1,
        ..ThreadSearchRequest::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match client.threads().search(&busy).await {
            Ok(threads) if threads.is_empty() => return,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn report_json(report: &Report) -> serde_json::Value {
    json!({
        "create": report.create.json(),
        "create_thread": report.create_thread.json(),
        "create_run": report.create_run.json(),
        "create_back_to_back": report.back_to_back.json(),
        "get": report.get.json(),
    })
}

fn print_row(transport: &str, op: &str, samples: &Samples) {
    println!(
        "{transport:<12} {op:<8} {:>7} {:>10.1} {:>10.1} {:>10.1}",
        samples.0.len(),
        samples.p50(),
        samples.p99(),
        samples.mean()
    );
}

/// The p50s the targets are judged on, from one comparison or the median of several.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    in_process_create: f64,
    http_create: f64,
    in_process_get: f64,
    http_get: f64,
}

impl Verdict {
    fn create_ratio(&self) -> f64 {
        self.http_create / self.in_process_create
    }

    fn get_ratio(&self) -> f64 {
        self.http_get / self.in_process_get
    }

    fn five_times_faster(&self) -> bool {
        self.create_ratio() >= 5.0 && self.get_ratio() >= 5.0
    }

    fn create_within_50us(&self) -> bool {
        self.in_process_create <= 50.0
    }

    /// The median of each p50 over `verdicts` (none when it is empty).
    fn median(verdicts: &[Verdict]) -> Option<Verdict> {
        let median = |pick: fn(&Verdict) -> f64| {
            let mut values: Vec<f64> = verdicts.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            let middle = values.len() / 2;
            // An even count has two middles: their mean.
            match values.len() % 2 {
                0 => Some((values.get(middle.checked_sub(1)?)? + values.get(middle)?) / 2.0),
                _ => values.get(middle).copied(),
            }
        };
        Some(Verdict {
            in_process_create: median(|verdict| verdict.in_process_create)?,
            http_create: median(|verdict| verdict.http_create)?,
            in_process_get: median(|verdict| verdict.in_process_get)?,
            http_get: median(|verdict| verdict.http_get)?,
        })
    }

    fn print(&self) {
        println!(
            "in-process is {:.1}x faster for create and {:.1}x faster for get (p50)",
            self.create_ratio(),
            self.get_ratio()
        );
        let verdict = |met: bool| if met { "met" } else { "NOT met" };
        println!(
            "targets: >= 5x faster: {}; in-process create p50 <= 50 µs: {}",
            verdict(self.five_times_faster()),
            verdict(self.create_within_50us()),
        );
    }

    /// `object` with the verdict's ratios and targets added.
    fn add_to(&self, mut object: serde_json::Value) -> serde_json::Value {
        if let Some(fields) = object.as_object_mut() {
            fields.insert(
                "speedup_p50".into(),
                json!({
                    "create": round(self.create_ratio()),
                    "get": round(self.get_ratio()),
                }),
            );
            fields.insert(
                "targets".into(),
                json!({
                    "in_process_5x_faster": self.five_times_faster(),
                    "in_process_create_p50_le_50us": self.create_within_50us(),
                }),
            );
        }
        object
    }
}

/// What one server gave through each transport.
#[derive(Debug)]
struct Comparison {
    storage: StorageKind,
    in_process: Report,
    http: Report,
}

impl Comparison {
    fn verdict(&self) -> Verdict {
        Verdict {
            in_process_create: self.in_process.create.p50(),
            http_create: self.http.create.p50(),
            in_process_get: self.in_process.get.p50(),
            http_get: self.http.get.p50(),
        }
    }

    fn print(&self) {
        println!(
            "\nstorage: {} ({})",
            self.storage.name(),
            self.storage.describe()
        );
        println!(
            "{:<12} {:<8} {:>7} {:>10} {:>10} {:>10}",
            "transport", "op", "n", "p50 µs", "p99 µs", "mean µs"
        );
        for (name, report) in [("in-process", &self.in_process), ("http", &self.http)] {
            print_row(name, "create", &report.create);
            print_row(name, " thread", &report.create_thread);
            print_row(name, " run", &report.create_run);
            print_row(name, "b2b", &report.back_to_back);
            print_row(name, "get", &report.get);
        }
        println!("b2b: creates back to back, bound by the server's throughput (see the docs)");
        self.verdict().print();
    }

    fn json(&self) -> serde_json::Value {
        self.verdict().add_to(json!({
            "storage": self.storage.name(),
            "in_process": report_json(&self.in_process),
            "http": report_json(&self.http),
        }))
    }
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
            in_process: bench(&in_process, options).await?,
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
                        bench(&http, &options).await
                    })
                });
            let _ = answer.send(result);
        })?;
    answered.await.context("the HTTP client's thread stopped")?
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    // On a worker of the runtime, as a supervisor's tool calls are (see the module docs).
    tokio::spawn(run(options)).await?
}

async fn run(options: Options) -> anyhow::Result<()> {
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
