//! errand: background subagents for LLM agents.
//!
//! A supervisor agent hands long work to other agents behind the Agent Protocol (the LangGraph
//! server API), gets a task id back at once, and stays free to talk to its user, start more tasks,
//! steer or cancel a running one, and list every task it started. This crate gathers the layers
//! behind feature flags, so one dependency brings what a program needs (how the layers fit:
//! [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md)):
//!
//! | feature      | module                  | what it is                                     | default |
//! |--------------|-------------------------|------------------------------------------------|---------|
//! | (always)     | [`protocol`]            | wire types, SSE framing                        | yes     |
//! | `client`     | `client`                | typed client, HTTP and in-process              | yes     |
//! | `runtime`    | `runtime`               | agent loop, models, tools, middleware hooks    | yes     |
//! | `middleware` | `middleware`            | the supervisor's five async subagent tools     | yes     |
//! | `server`     | `server`                | the Agent Protocol server                      | yes     |
//!
//! ```
//! use errand::protocol::{RunCreate, StreamMode, StreamModes};
//! let mut body = RunCreate::new("researcher", serde_json::json!({"messages": []}));
//! body.stream_mode = Some(StreamModes::from(vec![StreamMode::Values, StreamMode::Updates]));
//! assert_eq!(body.stream_modes().len(), 2);
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use errand_client as client;
#[cfg(feature = "middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "middleware")))]
pub use errand_middleware as middleware;
pub use errand_protocol as protocol;
#[cfg(feature = "runtime")]
#[cfg_attr(docsrs, doc(cfg(feature = "runtime")))]
pub use errand_runtime as runtime;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use errand_server as server;

/// The README's Rust code, compiled by `cargo test --doc` so the quickstart cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
