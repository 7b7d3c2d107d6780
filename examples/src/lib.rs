//! Runnable examples of errand; each `.rs` file in `examples/` is a `cargo run --example`. The
//! layers they use: [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md).
//!
//! Every example runs offline on Scripted models and ends by itself within a few seconds.
//! Their logic lives in this library, one module per example, so the examples' `main`s and the
//! tests in `examples/tests/` run the same code.
//!
//! | example | module | shows |
//! |---|---|---|
//! | `researcher_server` | [`researcher`] | an errand server hosting a `researcher` agent over HTTP |
//! | `supervisor_http` | [`supervisor_http`] | a supervisor handing two tasks to that server |
//! | `in_process` | [`in_process`] | the same in one program, over the in-process transport |
//! | `mixed` | [`mixed`] | one supervisor, a local subagent and a remote one |
//! | `read_stream` | [`read_stream`] | decoding a run's server-sent event stream into typed events |
//!
//! ```text
//! cargo run -p errand-examples --example researcher_server            # prints its URL
//! cargo run -p errand-examples --example supervisor_http -- --url http://127.0.0.1:PORT
//! cargo run -p errand-examples --example in_process
//! cargo run -p errand-examples --example mixed
//! cargo run -p errand-examples --example read_stream -- crates/protocol/tests/fixtures/sse/values.sse
//! ```
//!
//! [`supervisor`] holds what the three supervisors share: the Scripted supervisor, the user's
//! side of the conversation, and the [`supervisor::Outcome`] the tests check.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

pub mod in_process;
pub mod mixed;
pub mod read_stream;
pub mod researcher;
pub mod supervisor;
pub mod supervisor_http;

/// A line printer that also keeps what it printed, each line stamped with the time since the
/// start.
#[derive(Debug, Clone)]
pub struct Transcript {
    start: Instant,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Transcript {
    /// Starts the clock.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            lines: Arc::default(),
        }
    }

    /// Prints one line.
    pub fn say(&self, what: impl fmt::Display) {
        let line = format!("[{:>5.1}s] {what}", self.start.elapsed().as_secs_f64());
        println!("{line}");
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    /// Everything printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Default for Transcript {
    fn default() -> Self {
        Self::new()
    }
}
