//! errand-runtime: the agent loop that supervisors and hosted subagents run on.
//!
//! Its place in the layers (see [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md)): it builds on [`errand_protocol`] only.
//!
//! - [`model`]: the [`model::ChatModel`] trait (messages, tools and settings in; an assistant
//!   message out, whole or streamed) and the Scripted model for tests and offline demos;
//!   [`providers`] speaks Anthropic Messages and OpenAI-compatible Chat Completions.
//! - [`tool`]: the [`tool::Tool`] trait every tool implements, [`tool::FunctionTool`] over
//!   typed arguments with schemars schemas, and the argument check every call passes first.
//! - [`builtin_tools`]: the tools that come with the runtime, made on that trait: the workspace
//!   file tools and `fetch_url`, and [`builtin_tools::by_name`] for config files.
//! - [`agent`]: the loop (model, tools in parallel, model... until an answer or the step limit,
//!   cancellable at every await), state channels with reducers beside the messages, and
//!   hosting: an [`agent::Agent`] is a [`Graph`].
//! - [`hooks`]: the [`hooks::Middleware`] trait, hooks before each model call, around each tool
//!   call and after the run; [`hooks::Summarization`] is one. (The `errand-middleware` crate,
//!   the async subagent tools, is another, built on this trait from above.)
//! - [`Graph`]: the interface a server hosts (input and thread values in, stream events out,
//!   new values back, cancellable).
//!
//! A graph of its own, for anything that is not an LLM agent:
//!
//! ```
//! use errand_runtime::{Error, EventSink, Graph, GraphOutput, GraphRun, async_trait};
//! use serde_json::{Value, json};
//!
//! /// Counts the runs on a thread.
//! struct Counter;
//!
//! #[async_trait]
//! impl Graph for Counter {
//!     async fn invoke(&self, run: GraphRun) -> Result<GraphOutput, Error> {
//!         let count = run.values.get("count").and_then(Value::as_u64).unwrap_or(0) + 1;
//!         Ok(GraphOutput::finished(json!({ "count": count })))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let run = GraphRun {
//!     run_id: uuid::Uuid::now_v7(),
//!     thread_id: uuid::Uuid::now_v7(),
//!     graph_id: "counter".into(),
//!     input: None,
//!     command: None,
//!     values: json!({ "count": 41 }),
//!     config: Default::default(),
//!     cancel: Default::default(),
//!     events: EventSink::discard(),
//! };
//! assert_eq!(Counter.invoke(run).await.unwrap().values["count"], 42);
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod agent;
#[cfg(any(feature = "files", feature = "fetch"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "files", feature = "fetch"))))]
pub mod builtin_tools;
mod error;
mod graph;
pub mod hooks;
mod messages;
pub mod model;
#[cfg(any(feature = "anthropic", feature = "openai"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "anthropic", feature = "openai"))))]
pub mod providers;
mod state;
pub mod tool;

pub use async_trait::async_trait;
pub use errand_protocol as protocol;
pub use error::Error;
pub use graph::{EventSink, Graph, GraphOutput, GraphRun};
pub use messages::{add_messages, messages_from_value};
