//! Decodes a run's server-sent event stream into typed events and prints one line per event.
//!
//! ```text
//! cargo run -p errand-examples --example read_stream -- crates/protocol/tests/fixtures/sse/values.sse
//! curl -sN -X POST .../threads/$TID/runs/stream -d '...' | cargo run -p errand-examples --example read_stream
//! ```
//!
//! The logic is in `examples/src/read_stream.rs`.

use anyhow::Context;
use std::io::Read;

fn main() -> anyhow::Result<()> {
    let input: Box<dyn Read> = match std::env::args().nth(1) {
        Some(path) => {
            Box::new(std::fs::File::open(&path).with_context(|| format!("opening {path}"))?)
        }
        None => Box::new(std::io::stdin()),
    };
    errand_examples::read_stream::run(input, &mut std::io::stdout().lock())
}
