//! The sessions of one implementation: phases 1–5 on one server, then each level of phase 6 on a
//! fresh server, with the machine's load and CPU around them.

use super::measured::{Measured, SideReport};
use super::plan::{Level, Plan};
use super::server::{self, Server, Side, load_average, machine_busy_seconds};
use super::{READY_TIMEOUT, http, phases};
use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How to start one implementation.
#[derive(Debug)]
pub(crate) enum Launch {
    /// The `errand` binary, on this storage.
    Errand(PathBuf, server::Storage),
    /// The peer: the workspace root (for its graph project) and its venv.
    Python(PathBuf, PathBuf),
}

impl Launch {
    pub(crate) fn side(&self) -> Side {
        match self {
            Launch::Errand(..) => Side::Errand,
            Launch::Python(..) => Side::Python,
        }
    }

    /// Starts a server; `in_flight` picks the settings of phase 6.
    pub(crate) fn start(&self, plan: &Plan, in_flight: bool) -> anyhow::Result<Server> {
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

pub(crate) async fn bench_all(launches: &[Launch], plan: &Plan) -> Vec<SideReport> {
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
