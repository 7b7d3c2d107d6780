//! Figure 6: the memory of a server holding many runs in flight.

use super::{
    RunRef, Stats, TERMINAL, cancel_all, count, create_thread_run, round, run_status, wait_status,
};
use crate::bench::http::Conn;
use crate::bench::measured::Measured;
use crate::bench::plan::{Level, Plan};
use crate::bench::server::Server;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Figure 6 at one level: `level.runs` runs sleeping 300 s (with `level.input_kib` of input)
/// created by `plan.creators` concurrent creators (bounded by `plan.fill_cap`), wait until the
/// newest are `running`, read the server's memory, then cancel them all. `idle_mib` is the RSS of this fresh server before.
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
