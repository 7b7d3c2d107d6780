//! The timed calls of the transports bench, through whichever transport a [`Client`] has.

use super::Options;
use anyhow::Context;
use errand_client::Client;
use errand_client::protocol::{RunCreate, ThreadCreate, ThreadSearchRequest, ThreadStatus};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Latencies of one operation, in microseconds, sorted.
#[derive(Debug)]
pub(super) struct Samples(Vec<f64>);

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

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn p50(&self) -> f64 {
        self.percentile(0.50)
    }

    pub(super) fn p99(&self) -> f64 {
        self.percentile(0.99)
    }

    pub(super) fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len().max(1) as f64
    }

    pub(super) fn json(&self) -> serde_json::Value {
        json!({
            "n": self.0.len(),
            "p50_us": round(self.p50()),
            "p99_us": round(self.p99()),
            "mean_us": round(self.mean()),
        })
    }
}

/// Rounds to one decimal for the JSON output.
pub(super) fn round(value: f64) -> f64 {
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
pub(super) struct Report {
    /// Thread create then run create, each after the previous run ended.
    pub(super) create: Samples,
    /// The thread create part of `create`.
    pub(super) create_thread: Samples,
    /// The run create part of `create`.
    pub(super) create_run: Samples,
    /// Thread create then run create, with no wait between iterations.
    pub(super) back_to_back: Samples,
    /// A run get.
    pub(super) get: Samples,
}

/// What [`creates`] measured: the whole creates, their two parts, and the last run made.
#[derive(Debug)]
struct Creates {
    whole: Samples,
    thread: Samples,
    run: Samples,
    last: (Uuid, Uuid),
}

/// Times thread-then-run creates; with `wait_for_run`, each run is joined (untimed) before
/// the next create.
async fn creates(
    client: &Client,
    options: &Options,
    wait_for_run: bool,
) -> anyhow::Result<Creates> {
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
    Ok(Creates {
        whole: samples(|answer| answer.whole),
        thread: samples(|answer| answer.thread),
        run: samples(|answer| answer.run),
        last,
    })
}

/// One timed thread-then-run create, in microseconds, and the run it made.
#[derive(Debug)]
struct TimedCreate {
    whole: f64,
    thread: f64,
    run: f64,
    ids: (Uuid, Uuid),
}

/// Every measurement of one transport, through `client`.
pub(super) async fn bench(client: &Client, options: &Options) -> anyhow::Result<Report> {
    let waited = creates(client, options, true).await?;
    let back_to_back = creates(client, options, false).await?;
    let (thread_id, run_id) = back_to_back.last;

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
        create: waited.whole,
        create_thread: waited.thread,
        create_run: waited.run,
        back_to_back: back_to_back.whole,
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
