//! What the interop and bench commands share about running servers on this machine.

use anyhow::Context;
use std::net::TcpListener;

/// The environment that keeps `langgraph dev` offline and quiet: no tracing, no analytics,
/// no version check, no API keys.
pub(crate) const LANGGRAPH_OFFLINE_ENV: [(&str, &str); 9] = [
    ("LANGSMITH_TRACING", "false"),
    ("LANGCHAIN_TRACING_V2", "false"),
    ("LANGCHAIN_TRACING", "false"),
    ("LANGGRAPH_CLI_NO_ANALYTICS", "1"),
    ("LANGGRAPH_NO_VERSION_CHECK", "true"),
    ("LANGSMITH_API_KEY", ""),
    ("LANGGRAPH_API_KEY", ""),
    ("LANGCHAIN_API_KEY", ""),
    ("LOG_LEVEL", "WARNING"),
];

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
