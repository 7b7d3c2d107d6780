//! The measured phases. Each takes a server's address, drives it with [`Conn`]s exactly the
//! same way whichever server it is, and fills a [`Measured`] with figures and details.

use super::http::Conn;
use super::measured::Measured;
use super::plan::{Level, Plan};
use super::server::{Server, cpu_seconds};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

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

/// Figure 1: sequential `POST /threads` + `POST runs`; returns the runs made.
pub(crate) async fn create_latency(
    addr: SocketAddr,
    plan: &Plan,
    out: &mut Measured,
) -> anyhow::Result<Vec<RunRef>> {
    let mut conn = Conn::open(addr).await?;
    let (mut pair, mut threads, mut runs) = (Vec::new(), Vec::new(), Vec::new());
    let mut made = Vec::new();
    let start = Instant::now();
    for _ in 0..plan.create_n {
        if start.elapsed() > plan.create_cap {
            break;
        }
        let t0 = Instant::now();
        let thread_id = conn
            .post("/threads", &json!({}))
            .await?
            .field("thread_id")?;
        let t1 = Instant::now();
        let run_id = conn
            .post(&format!("/threads/{thread_id}/runs"), &run_body("hi"))
            .await?
            .field("run_id")?;
        let t2 = Instant::now();
        threads.push(t1 - t0);
        runs.push(t2 - t1);
        pair.push(t2 - t0);
        made.push(RunRef { thread_id, run_id });
    }
    let details = json!({
        "thread+run": record_latency(out, "create", &pair),
        "threads.create": Stats::of(&threads).map(Stats::json),
        "runs.create": Stats::of(&runs).map(Stats::json),
        "elapsed_s": round(start.elapsed().as_secs_f64()),
    });
    out.detail("1_create", details);
    Ok(made)
}

/// Figure 2: sequential `GET run` over the runs of figure 1, once they have all finished.
pub(crate) async fn get_latency(
    addr: SocketAddr,
    plan: &Plan,
    runs: &[RunRef],
    out: &mut Measured,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(addr).await?;
    let last = runs.last().context("no runs to read")?;
    // Oldest-first dispatch: once the newest run is done, all are (checked below by status).
    let drain = Instant::now();
    wait_status(
        &mut conn,
        last,
        &TERMINAL,
        Duration::from_millis(100),
        plan.drain_cap,
    )
    .await?;
    let drain_s = drain.elapsed().as_secs_f64();
    let mut samples = Vec::new();
    let mut statuses = BTreeMap::new();
    let start = Instant::now();
    for i in 0..plan.get_n {
        if start.elapsed() > plan.get_cap {
            break;
        }
        let run = &runs[i % runs.len()];
        let t0 = Instant::now();
        let reply = conn.get(&run.path()).await?;
        samples.push(t0.elapsed());
        count(&mut statuses, &reply.field("status")?);
    }
    let details = json!({
        "runs.get": record_latency(out, "get", &samples),
        "wait_for_figure_1_runs_to_finish_s": round(drain_s),
        "statuses_seen": statuses,
    });
    out.detail("2_get", details);
    Ok(())
}

/// Figure 3: create a zero-sleep run and time until it is seen `success`, by polling `GET run`
/// every `plan.poll_every`, then by `GET .../join`.
pub(crate) async fn end_to_end(
    addr: SocketAddr,
    plan: &Plan,
    out: &mut Measured,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(addr).await?;
    let mut polled = Vec::new();
    let mut polls = 0usize;
    let start = Instant::now();
    for _ in 0..plan.e2e_n {
        if start.elapsed() > plan.e2e_cap {
            break;
        }
        let t0 = Instant::now();
        let run = create_thread_run(&mut conn, "hi").await?;
        loop {
            polls += 1;
            let status = run_status(&mut conn, &run).await?;
            if status == "success" {
                break;
            }
            if TERMINAL.contains(&status.as_str()) {
                bail!("run {} ended `{status}`", run.run_id);
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("run {} not done after 30 s", run.run_id);
            }
            tokio::time::sleep(plan.poll_every).await;
        }
        polled.push(t0.elapsed());
    }
    let mut joined = Vec::new();
    let mut statuses = BTreeMap::new();
    let start = Instant::now();
    for _ in 0..plan.e2e_n {
        if start.elapsed() > plan.e2e_cap {
            break;
        }
        let t0 = Instant::now();
        let run = create_thread_run(&mut conn, "hi").await?;
        conn.get(&format!("{}/join", run.path()))
            .await?
            .ensure_success()?;
        joined.push(t0.elapsed());
        // Checked after the clock stopped.
        count(&mut statuses, &run_status(&mut conn, &run).await?);
    }
    let details = json!({
        "create_then_poll_get_until_success": record_latency(out, "e2e_poll", &polled),
        "poll_interval_ms": plan.poll_every.as_secs_f64() * 1e3,
        "gets_per_run": round(polls as f64 / polled.len().max(1) as f64),
        "create_then_join": record_latency(out, "e2e_join", &joined),
        "statuses_after_join": statuses,
    });
    out.detail("3_end_to_end", details);
    Ok(())
}

/// What one throughput worker saw.
#[derive(Debug, Default)]
struct WorkerTally {
    completed: usize,
    errors: usize,
    first_error: Option<String>,
    latencies: Vec<Duration>,
    last: Option<RunRef>,
}

/// Figure 4: `plan.workers` workers, each on its own connection, loop create thread+run then
/// `join` for `plan.window`; counts the joins that returned within the window.
pub(crate) async fn throughput(
    server: &Server,
    plan: &Plan,
    out: &mut Measured,
) -> anyhow::Result<()> {
    throughput_over(&[server], plan, out, "throughput").await
}

/// Phase 4's loop with its workers spread round-robin over `servers` (replicas of one
/// database), recorded as figure `id` (its CPU per run as `{id}_cpu`, its details as
/// `4_{id}`).
pub(crate) async fn throughput_over(
    servers: &[&Server],
    plan: &Plan,
    out: &mut Measured,
    id: &str,
) -> anyhow::Result<()> {
    let addr = servers.first().context("no server")?.addr();
    let mut conns = Vec::new();
    for worker in 0..plan.workers {
        conns.push(Conn::open(servers[worker % servers.len()].addr()).await?);
    }
    let server_cpu = || -> anyhow::Result<f64> {
        servers
            .iter()
            .map(|server| server.stats().map(|stats| stats.cpu_s))
            .sum()
    };
    let cpu0 = server_cpu()?;
    let client0 = cpu_seconds(std::process::id())?;
    let start = Instant::now();
    let deadline = start + plan.window;
    let mut set = JoinSet::new();
    for mut conn in conns {
        set.spawn(async move {
            let mut tally = WorkerTally::default();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let result = async {
                    let run = create_thread_run(&mut conn, "hi").await?;
                    conn.get(&format!("{}/join", run.path()))
                        .await?
                        .ensure_success()?;
                    anyhow::Ok(run)
                }
                .await;
                match result {
                    Ok(run) => {
                        if Instant::now() <= deadline {
                            tally.completed += 1;
                            tally.latencies.push(t0.elapsed());
                        }
                        tally.last = Some(run);
                    }
                    Err(error) => {
                        tally.errors += 1;
                        tally
                            .first_error
                            .get_or_insert_with(|| format!("{error:#}"));
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            tally
        });
    }
    let window_s = plan.window.as_secs_f64();
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
    let cpu1 = server_cpu()?;
    let mut tallies = Vec::new();
    while let Some(tally) = set.join_next().await {
        tallies.push(tally?);
    }
    let cpu_window = cpu1 - cpu0;
    let client_cpu = cpu_seconds(std::process::id())? - client0;
    let completed: usize = tallies.iter().map(|t| t.completed).sum();
    let errors: usize = tallies.iter().map(|t| t.errors).sum();
    let first_error = tallies.iter().find_map(|t| t.first_error.clone());
    let latencies: Vec<Duration> = tallies.iter().flat_map(|t| t.latencies.clone()).collect();
    let mut conn = Conn::open(addr).await?;
    let mut last_statuses = BTreeMap::new();
    for run in tallies.iter().filter_map(|t| t.last.as_ref()) {
        count(&mut last_statuses, &run_status(&mut conn, run).await?);
    }
    out.figure(id, completed as f64 / window_s, completed);
    if completed > 0 {
        out.figure(
            &format!("{id}_cpu"),
            cpu_window * 1e3 / completed as f64,
            completed,
        );
    }
    if errors > 0 {
        out.error(format!(
            "4. {id}: {errors} failed iterations; first: {}",
            first_error.as_deref().unwrap_or("?")
        ));
    }
    let details = json!({
        "workers": plan.workers,
        "servers": servers.len(),
        "window_s": window_s,
        "completed_in_window": completed,
        "failed_iterations": errors,
        "first_error": first_error,
        "create+join_latency": Stats::of(&latencies).map(Stats::json),
        "server_cpu_s_in_window": round(cpu_window),
        "client_cpu_s": round(client_cpu),
        "last_run_of_each_worker_status": last_statuses,
    });
    out.detail(&format!("4_{id}"), details);
    Ok(())
}

/// Figure 5: a run sleeping 30 s, once `running`, is cancelled (`wait=0&action=interrupt`); time
/// from the cancel request until `GET run` (every `plan.cancel_poll`) shows `interrupted`.
pub(crate) async fn cancel_latency(
    addr: SocketAddr,
    plan: &Plan,
    out: &mut Measured,
) -> anyhow::Result<()> {
    let mut conn = Conn::open(addr).await?;
    let (mut observed, mut calls, mut start_waits) = (Vec::new(), Vec::new(), Vec::new());
    let mut statuses = BTreeMap::new();
    let start = Instant::now();
    for _ in 0..plan.cancel_n {
        if start.elapsed() > plan.cancel_cap {
            break;
        }
        let run = create_thread_run(&mut conn, "sleep=30").await?;
        let t_wait = Instant::now();
        wait_status(
            &mut conn,
            &run,
            &["running"],
            Duration::from_millis(10),
            Duration::from_secs(15),
        )
        .await?;
        start_waits.push(t_wait.elapsed());
        let t0 = Instant::now();
        conn.post_empty(&format!("{}/cancel?wait=0&action=interrupt", run.path()))
            .await?
            .ensure_success()?;
        calls.push(t0.elapsed());
        let mut status;
        loop {
            status = run_status(&mut conn, &run).await?;
            if status != "running" && status != "pending" {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("run {} still `{status}` 10 s after cancel", run.run_id);
            }
            tokio::time::sleep(plan.cancel_poll).await;
        }
        observed.push(t0.elapsed());
        count(&mut statuses, &status);
    }
    if statuses.keys().any(|status| status != "interrupted") {
        out.error(format!(
            "5. cancel: runs did not all end `interrupted`: {statuses:?}"
        ));
    }
    let details = json!({
        "cancel_then_get_shows_interrupted": record_latency(out, "cancel", &observed),
        "cancel_call_wait0": Stats::of(&calls).map(Stats::json),
        "create_until_running": Stats::of(&start_waits).map(Stats::json),
        "poll_interval_ms": plan.cancel_poll.as_secs_f64() * 1e3,
        "final_statuses": statuses,
    });
    out.detail("5_cancel", details);
    Ok(())
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

/// Figure 6 at one level: `level.runs` runs sleeping 300 s (with `level.input_kib` of input) created by `plan.creators` concurrent
/// creators (bounded by `plan.fill_cap`), wait until the newest are `running`, read the server's
/// memory, then cancel them all. `idle_mib` is the RSS of this fresh server before.
pub(crate) async fn in_flight(
    server: &Server,
    level: Level,
    idle_mib: f64,
    plan: &Plan,
    out: &mut Measured,
) -> anyhow::Result<()> {
    let addr = server.addr();
    let issued = Arc::new(AtomicUsize::new(0));
    let content: Arc<str> = level.content().into();
    let start = Instant::now();
    let deadline = start + plan.fill_cap;
    let mut set = JoinSet::new();
    for _ in 0..plan.creators {
        let issued = Arc::clone(&issued);
        let content = Arc::clone(&content);
        set.spawn(async move {
            let mut made: Vec<(Instant, RunRef)> = Vec::new();
            let mut errors = Vec::new();
            let mut conn = Conn::new(addr);
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < level.runs {
                match create_thread_run(&mut conn, &content).await {
                    Ok(run) => made.push((Instant::now(), run)),
                    Err(error) => {
                        errors.push(format!("{error:#}"));
                        if errors.len() > 20 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (made, errors)
        });
    }
    let mut made = Vec::new();
    let mut errors = Vec::new();
    while let Some(result) = set.join_next().await {
        let (runs, errs) = result?;
        made.extend(runs);
        errors.extend(errs);
    }
    let create_s = start.elapsed().as_secs_f64();
    made.sort_by_key(|(at, _)| *at);
    let runs: Vec<RunRef> = made.into_iter().map(|(_, run)| run).collect();
    let reached = runs.len();
    let mut conn = Conn::open(addr).await?;
    // Wait until the newest runs (the last one of each creator) have left `pending`.
    let newest = &runs[reached.saturating_sub(plan.creators)..];
    let wait_start = Instant::now();
    let mut all_started = true;
    for run in newest.iter().rev() {
        let left = plan.fill_cap.saturating_sub(wait_start.elapsed());
        if wait_status(
            &mut conn,
            run,
            &["running", "success", "error", "timeout", "interrupted"],
            Duration::from_millis(250),
            left,
        )
        .await
        .is_err()
        {
            all_started = false;
            break;
        }
    }
    let until_running_s = start.elapsed().as_secs_f64();
    let loaded = server.stats()?;
    // A spread sample of all the runs: they should all be `running`.
    let mut sample = BTreeMap::new();
    let step = (reached / 64).max(1);
    for run in runs.iter().step_by(step) {
        count(&mut sample, &run_status(&mut conn, run).await?);
    }
    // Latency of a status read while they are all in flight.
    let mut probes = Vec::new();
    let probe_n = reached.min(50);
    for i in 0..probe_n {
        let t0 = Instant::now();
        run_status(&mut conn, &runs[i * reached / probe_n]).await?;
        probes.push(t0.elapsed());
    }
    let cancel_call = cancel_all(&mut conn).await?;
    let t_cancel = Instant::now();
    let mut drained = true;
    for run in newest.iter().rev() {
        let left = plan.fill_cap.saturating_sub(t_cancel.elapsed());
        if wait_status(&mut conn, run, &TERMINAL, Duration::from_millis(50), left)
            .await
            .is_err()
        {
            drained = false;
            break;
        }
    }
    let drain_s = cancel_call.as_secs_f64() + t_cancel.elapsed().as_secs_f64();
    let after = server.stats()?;
    let key = level.key();
    if reached > 0 {
        out.figure(&format!("{key}_rss"), loaded.rss_mib, reached);
        out.figure(
            &format!("{key}_kib_per_run"),
            (loaded.rss_mib - idle_mib) * 1024.0 / reached as f64,
            reached,
        );
    }
    out.figure(&format!("{key}_reached"), reached as f64, reached);
    out.figure(
        &format!("{key}_create_rate"),
        reached as f64 / create_s,
        reached,
    );
    if level.input_kib > 0 {
        out.figure(&format!("{key}_peak_rss"), after.hwm_mib, reached);
    }
    if reached < level.runs {
        out.note(format!(
            "6. {} reached {reached} of {} runs in flight within {:?} ({} creation errors)",
            server.side().name(),
            level.runs,
            plan.fill_cap,
            errors.len()
        ));
    }
    if !errors.is_empty() {
        out.error(format!(
            "6. {key}: {} creation errors; first: {}",
            errors.len(),
            errors[0]
        ));
    }
    if !all_started {
        out.error(format!(
            "6. {key}: the newest runs were not all running within {:?}",
            plan.fill_cap
        ));
    }
    if !drained {
        out.error(format!(
            "6. {key}: runs still in flight {:?} after cancelling all",
            plan.fill_cap
        ));
    }
    let details = json!({
        "level": level.runs,
        "input_kib": level.input_kib,
        "reached": reached,
        "creation_errors": errors.len(),
        "first_creation_error": errors.first(),
        "create_s": round(create_s),
        "created_per_s": round(reached as f64 / create_s),
        "all_newest_started": all_started,
        "until_newest_running_s": round(until_running_s),
        "rss_idle_mib": round(idle_mib),
        "rss_in_flight_mib": round(loaded.rss_mib),
        "vmhwm_in_flight_mib": round(loaded.hwm_mib),
        "threads_in_flight": loaded.threads,
        "sample_statuses_in_flight": sample,
        "runs.get_in_flight": Stats::of(&probes).map(Stats::json),
        "cancel_all_call_s": round(cancel_call.as_secs_f64()),
        "cancel_all_until_newest_terminal_s": round(drain_s),
        "rss_after_cancel_mib": round(after.rss_mib),
        "vmhwm_after_cancel_mib": round(after.hwm_mib),
        "server_cpu_s_total": round(after.cpu_s),
    });
    out.detail(&format!("6_{key}"), details);
    Ok(())
}
