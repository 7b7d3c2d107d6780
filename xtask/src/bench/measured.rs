//! What a bench run collects about one implementation: its figures, the details for the JSON
//! output, and what went wrong.

use super::server::{Server, Side};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One figure's value for one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub(crate) value: f64,
    pub(crate) n: usize,
}

/// Everything measured on one implementation.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub(crate) figures: BTreeMap<String, Point>,
    pub(crate) details: Map<String, Value>,
    pub(crate) errors: Vec<String>,
    pub(crate) notes: Vec<String>,
    /// CPU seconds used by the servers started for this implementation.
    pub(crate) server_cpu_s: f64,
}

impl Measured {
    /// Records figure `id` (see [`catalog`](super::report::catalog)) measured over `n` samples.
    pub(crate) fn figure(&mut self, id: &str, value: f64, n: usize) {
        self.figures.insert(id.to_owned(), Point { value, n });
    }

    /// Records a detail for the JSON output.
    pub(crate) fn detail(&mut self, key: &str, value: Value) {
        self.details.insert(key.to_owned(), value);
    }

    /// Records something that went wrong.
    pub(crate) fn error(&mut self, message: String) {
        eprintln!("  ! {message}");
        self.errors.push(message);
    }

    /// Records a remark for the reader.
    pub(crate) fn note(&mut self, message: String) {
        eprintln!("  note: {message}");
        self.notes.push(message);
    }

    /// Stops `server`, adding the CPU it used to [`Measured::server_cpu_s`]; says how it ended.
    pub(crate) fn stop(&mut self, server: &mut Server) -> String {
        if let Ok(stats) = server.stats() {
            self.server_cpu_s += stats.cpu_s;
        }
        server.stop()
    }

    /// Keeps the value of a phase, or records its error.
    pub(crate) fn check<T>(&mut self, label: &str, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.error(format!("{label}: {error:#}"));
                None
            }
        }
    }
}

/// The outcome for one implementation.
#[derive(Debug)]
pub(crate) struct SideReport {
    pub(crate) side: Side,
    /// Why it was not measured.
    pub(crate) skipped: Option<String>,
    pub(crate) measured: Measured,
}
