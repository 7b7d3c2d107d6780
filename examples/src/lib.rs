//! Runnable examples of errand; each file beside this one is a `cargo run --example`.
//!
//! - `read_stream`: decode a run's server-sent event stream (a capture file, or stdin) into
//!   typed events: `cargo run -p errand-examples --example read_stream -- FILE.sse`.
