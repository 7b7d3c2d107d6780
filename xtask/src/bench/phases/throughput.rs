//! Figure 4: completed runs per second under concurrent workers, on one server or spread over
//! replicas.

use super::{RunRef, Stats, count, create_thread_run, round, run_status};
use crate::bench::http::Conn;
use crate::bench::measured::Measured;
use crate::bench::plan::Plan;
use crate::bench::server::{Server, cpu_seconds};
use anyhow::Context;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

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
