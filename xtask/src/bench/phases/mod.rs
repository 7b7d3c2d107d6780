//! The measured phases, and what they share. Each takes a server's address, drives it with
//! [`Conn`]s exactly the same way whichever server it is, and fills a [`Measured`] with
//! figures and details.

use super::http::Conn;
use super::measured::Measured;
use anyhow::bail;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod in_flight;
mod latency;
mod throughput;

pub(crate) use in_flight::in_flight;
pub(crate) use latency::{cancel_latency, create_latency, end_to_end, get_latency};
pub(crate) use throughput::{throughput, throughput_over};

/// The graph both servers host.
const GRAPH: &str = "echo";
/// Run statuses after which a run does not change any more.
const TERMINAL: [&str; 4] = ["success", "error", "timeout", "interrupted"];

/// A thread and one of its runs.
#[derive(Debug, Clone)]
pub(crate) struct RunRef {
    thread_id: String,
    run_id: String,
}

impl RunRef {
    fn path(&self) -> String {
        format!("/threads/{}/runs/{}", self.thread_id, self.run_id)
    }
}

/// The body `langgraph_sdk` sends for `runs.create(thread_id, "echo", input=...)`.
fn run_body(content: &str) -> Value {
    json!({
        "assistant_id": GRAPH,
        "input": {"messages": [{"role": "user", "content": content}]},
        "stream_mode": ["values"],
        "stream_subgraphs": false,
        "stream_resumable": false,
    })
}

/// `POST /threads` then `POST /threads/{tid}/runs`.
async fn create_thread_run(conn: &mut Conn, content: &str) -> anyhow::Result<RunRef> {
    let thread_id = conn
        .post("/threads", &json!({}))
        .await?
        .field("thread_id")?;
    let run_id = conn
        .post(&format!("/threads/{thread_id}/runs"), &run_body(content))
        .await?
        .field("run_id")?;
    Ok(RunRef { thread_id, run_id })
}

/// `GET /threads/{tid}/runs/{rid}` → `status`.
async fn run_status(conn: &mut Conn, run: &RunRef) -> anyhow::Result<String> {
    conn.get(&run.path()).await?.field("status")
}

/// Polls `run` every `every` until its status is one of `wanted`, within `cap`.
async fn wait_status(
    conn: &mut Conn,
    run: &RunRef,
    wanted: &[&str],
    every: Duration,
    cap: Duration,
) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        let status = run_status(conn, run).await?;
        if wanted.contains(&status.as_str()) {
            return Ok(status);
        }
        if start.elapsed() > cap {
            bail!("run {} still `{status}` after {cap:?}", run.run_id);
        }
        tokio::time::sleep(every).await;
    }
}

/// Latency percentiles of a sample, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stats {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Stats {
    /// Nearest-rank percentiles of `samples`; `None` when empty.
    pub(crate) fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let rank = |p: f64| {
            let k = (p / 100.0 * n as f64).ceil() as usize;
            ms[k.clamp(1, n) - 1]
        };
        Some(Self {
            n,
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: ms[n - 1],
            mean: ms.iter().sum::<f64>() / n as f64,
        })
    }

    fn json(self) -> Value {
        json!({
            "n": self.n, "p50_ms": round(self.p50), "p90_ms": round(self.p90),
            "p99_ms": round(self.p99), "max_ms": round(self.max), "mean_ms": round(self.mean),
        })
    }
}

/// Rounds to 3 decimals for the JSON output.
pub(crate) fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Records p50 and p99 of `samples` as figures `{id}_p50`, `{id}_p99`, and all stats as a detail.
fn record_latency(out: &mut Measured, id: &str, samples: &[Duration]) -> Value {
    match Stats::of(samples) {
        Some(stats) => {
            out.figure(&format!("{id}_p50"), stats.p50, stats.n);
            out.figure(&format!("{id}_p99"), stats.p99, stats.n);
            stats.json()
        }
        None => Value::Null,
    }
}

fn count(map: &mut BTreeMap<String, usize>, key: &str) {
    *map.entry(key.to_owned()).or_default() += 1;
}

/// Cancels every pending or running run (`POST /runs/cancel` `{"status":"all"}`).
pub(crate) async fn cancel_all(conn: &mut Conn) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    conn.post("/runs/cancel?action=interrupt", &json!({"status": "all"}))
        .await?
        .ensure_success()?;
    Ok(t0.elapsed())
}

/// Cancels whatever is left pending or running; the Python server answers 404 when nothing is.
pub(crate) async fn cancel_leftovers(conn: &mut Conn) -> anyhow::Result<()> {
    let reply = conn
        .post("/runs/cancel?action=interrupt", &json!({"status": "all"}))
        .await?;
    if reply.status == hyper::StatusCode::NOT_FOUND {
        return Ok(());
    }
    reply.ensure_success()
}

/// `GET /info`.
pub(crate) async fn info(addr: SocketAddr) -> anyhow::Result<Value> {
    Conn::open(addr).await?.get("/info").await?.json()
}
