//! The bench's output: the table of figures side by side with their ratio, and the JSON report.

use super::measured::{Point, SideReport};
use super::phases;
use super::plan::Plan;
use super::server::{Side, load_average};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// What the table shows for one figure.
#[derive(Debug)]
pub(crate) struct FigureDef {
    id: String,
    label: String,
    unit: &'static str,
    higher_is_better: bool,
}

/// The figures, in table order.
pub(crate) fn catalog(plan: &Plan) -> Vec<FigureDef> {
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

pub(crate) fn print_table(
    plan: &Plan,
    reports: &[SideReport],
    elapsed: Duration,
    load: Option<[f64; 3]>,
) {
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

pub(crate) fn json_report(
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
