//! What the transports bench prints and writes: the table of each server, and the verdict on
//! the targets.

use super::StorageKind;
use super::measure::{Report, Samples, round};
use serde_json::json;

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
        samples.len(),
        samples.p50(),
        samples.p99(),
        samples.mean()
    );
}

/// The p50s the targets are judged on, from one comparison or the median of several.
#[derive(Debug, Clone, Copy)]
pub(super) struct Verdict {
    pub(super) in_process_create: f64,
    pub(super) http_create: f64,
    pub(super) in_process_get: f64,
    pub(super) http_get: f64,
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
    pub(super) fn median(verdicts: &[Verdict]) -> Option<Verdict> {
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

    pub(super) fn print(&self) {
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
    pub(super) fn add_to(&self, mut object: serde_json::Value) -> serde_json::Value {
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
pub(super) struct Comparison {
    pub(super) storage: StorageKind,
    pub(super) in_process: Report,
    pub(super) http: Report,
}

impl Comparison {
    pub(super) fn verdict(&self) -> Verdict {
        Verdict {
            in_process_create: self.in_process.create.p50(),
            http_create: self.http.create.p50(),
            in_process_get: self.in_process.get.p50(),
            http_get: self.http.get.p50(),
        }
    }

    pub(super) fn print(&self) {
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

    pub(super) fn json(&self) -> serde_json::Value {
        self.verdict().add_to(json!({
            "storage": self.storage.name(),
            "in_process": report_json(&self.in_process),
            "http": report_json(&self.http),
        }))
    }
}
