//! A supervisor and a researcher in one program (Scripted models, offline): an errand server
//! hosts the researcher, and the supervisor reaches it over the in-process transport, with the
//! same requests and answers as over HTTP but no socket. Prints each step: tasks started, the
//! user answered while they run, the notices, the results.
//!
//! ```text
//! cargo run -p errand-examples --example in_process
//! ```
//!
//! The logic is in `examples/src/in_process.rs` and `examples/src/supervisor.rs`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    errand_examples::in_process::run().await?;
    Ok(())
}
