//! Figures 1, 2, 3 and 5: the latency of one call, or of a run from create to end, one at a
//! time.

use super::{
    RunRef, Stats, TERMINAL, count, create_thread_run, record_latency, round, run_body, run_status,
    wait_status,
};
use crate::bench::http::Conn;
use crate::bench::measured::Measured;
use crate::bench::plan::Plan;
use anyhow::{Context, bail};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
