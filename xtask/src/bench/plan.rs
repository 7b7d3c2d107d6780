//! What a bench run does: the counts, durations and server settings of every phase.

use serde_json::{Value, json};
use std::time::Duration;

/// Counts and durations of every phase.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    pub(crate) create_n: usize,
    pub(crate) create_cap: Duration,
    pub(crate) get_n: usize,
    pub(crate) get_cap: Duration,
    pub(crate) drain_cap: Duration,
    pub(crate) e2e_n: usize,
    pub(crate) e2e_cap: Duration,
    pub(crate) poll_every: Duration,
    pub(crate) workers: usize,
    pub(crate) window: Duration,
    pub(crate) cancel_n: usize,
    pub(crate) cancel_cap: Duration,
    pub(crate) cancel_poll: Duration,
    pub(crate) levels: Vec<Level>,
    pub(crate) creators: usize,
    pub(crate) fill_cap: Duration,
    pub(crate) settle: Duration,
    pub(crate) python_jobs: usize,
    pub(crate) python_jobs_in_flight: usize,
    pub(crate) errand_max_runs_in_flight: usize,
}

impl Plan {
    pub(crate) fn new(quick: bool) -> Self {
        let pick = |full: u64, small: u64| Duration::from_secs(if quick { small } else { full });
        Self {
            quick,
            create_n: if quick { 50 } else { 500 },
            create_cap: pick(60, 5),
            get_n: if quick { 50 } else { 500 },
            get_cap: pick(30, 5),
            drain_cap: pick(120, 15),
            e2e_n: if quick { 10 } else { 50 },
            e2e_cap: pick(120, 10),
            poll_every: Duration::from_millis(1),
            workers: 32,
            window: pick(10, 3),
            cancel_n: if quick { 5 } else { 20 },
            cancel_cap: pick(120, 15),
            cancel_poll: Duration::from_millis(2),
            levels: if quick {
                vec![
                    Level::new(100, 0),
                    Level::new(1000, 0),
                    Level::new(100, 100),
                ]
            } else {
                vec![
                    Level::new(1000, 0),
                    Level::new(10_000, 0),
                    Level::new(500, 100),
                ]
            },
            creators: 32,
            fill_cap: pick(120, 15),
            settle: pick(2, 1),
            python_jobs: 10,
            python_jobs_in_flight: 10_000,
            errand_max_runs_in_flight: 20_000,
        }
    }

    pub(crate) fn json(&self) -> Value {
        let secs = Duration::as_secs_f64;
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        json!({
            "quick": self.quick,
            "1_create": {"iterations": self.create_n, "cap_s": secs(&self.create_cap)},
            "2_get": {"iterations": self.get_n, "cap_s": secs(&self.get_cap)},
            "3_end_to_end": {"iterations_each": self.e2e_n, "cap_s_each": secs(&self.e2e_cap),
                "poll_interval_ms": ms(&self.poll_every)},
            "4_throughput": {"workers": self.workers, "window_s": secs(&self.window)},
            "5_cancel": {"iterations": self.cancel_n, "cap_s": secs(&self.cancel_cap),
                "poll_interval_ms": ms(&self.cancel_poll), "run_input": "sleep=30"},
            "6_in_flight": {
                "levels": self.levels.iter().map(|level| json!({"runs": level.runs,
                    "input_kib": level.input_kib})).collect::<Vec<_>>(),
                "creators": self.creators,
                "create_and_start_cap_s_each": secs(&self.fill_cap),
                "run_input": "sleep=300, then input_kib KiB of text",
                "idle_settle_s": secs(&self.settle)},
            "python_n_jobs_per_worker": {"phases_1_5": self.python_jobs,
                "phase_6": self.python_jobs_in_flight},
            "errand_max_concurrent_runs": {"phases_1_5": "default",
                "phase_6": self.errand_max_runs_in_flight},
        })
    }
}

/// One level of phase 6: this many runs in flight, each with this much input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    pub(crate) runs: usize,
    pub(crate) input_kib: usize,
}

impl Level {
    const fn new(runs: usize, input_kib: usize) -> Self {
        Self { runs, input_kib }
    }

    /// The key of its figures: `inflight_1000`, or `inflight_500x100k` with input.
    pub(crate) fn key(&self) -> String {
        match self.input_kib {
            0 => format!("inflight_{}", self.runs),
            kib => format!("inflight_{}x{kib}k", self.runs),
        }
    }

    /// `1,000 runs`, or `500 runs of 100 KiB`.
    pub(crate) fn label(&self) -> String {
        match self.input_kib {
            0 => format!("{} runs", thousands(self.runs)),
            kib => format!("{} runs of {kib} KiB", thousands(self.runs)),
        }
    }

    /// The text of each run's message.
    pub(crate) fn content(&self) -> String {
        format!("sleep=300 {}", "x".repeat(self.input_kib * 1024))
    }
}

/// `10000` → `10,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
