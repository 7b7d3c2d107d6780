//! errand-client: one typed client for errand and any LangGraph server, over HTTP or
//! in-process.
//!
//! Its place in the layers (see [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md)): it speaks [`errand_protocol`]'s types and nothing
//! above them. A URL gives HTTP; no URL gives an in-process call into a server in the same
//! program (what ASGI is to Python), with the same requests and the same answers.
//!
//! - [`Client`]: the calls of the LangGraph server API, grouped as the official client groups
//!   them: [`threads()`](Client::threads), [`runs()`](Client::runs),
//!   [`assistants()`](Client::assistants), [`store()`](Client::store).
//! - [`transport`]: the object-safe [`Transport`](transport::Transport) trait and its two
//!   implementations, HTTP (reqwest + rustls) and in-process (any `tower::Service`).
//! - [`RunStream`]: a run's events as typed [`StreamEvent`](errand_protocol::StreamEvent)s; a
//!   dropped stream is resumed with `Last-Event-ID`, a bounded number of times.
//! - [`ClientError`]: one error enum; answers keep the server's `detail`, status and request id.
//! - [`ClientCache`]: clients shared by (server, headers).
//!
//! # Features
//!
//! | feature | default | gives |
//! |---|---|---|
//! | `http` | yes | [`HttpTransport`](transport::HttpTransport), [`ClientBuilder::url`], [`Client::http`]: reqwest with rustls (`https://`), HTTP/1.1 keep-alive and HTTP/2 |
//! | `in-process` | yes | [`InProcessTransport`](transport::InProcessTransport), [`ClientBuilder::in_process`], [`Client::in_process`]: any `tower::Service`, e.g. errand-server's `Router` |
//!
//! # Headers, timeouts, retries
//!
//! - Every request carries `User-Agent: errand-client/<version>`, and `x-api-key` when there
//!   is a key: given with [`ClientBuilder::api_key`] (`None` sends none), else read from
//!   `LANGGRAPH_API_KEY`, `LANGSMITH_API_KEY` or `LANGCHAIN_API_KEY`, as the official client
//!   does. Custom headers may not set `x-api-key`.
//! - Timeouts ([`Timeouts`]) default to the official client's: connect 5 s, read 300 s (for the
//!   answer to start, then between two pieces of it; servers send keep-alives meanwhile).
//! - A call whose connection could not be made is repeated, whatever it is. Calls that are
//!   safe to repeat (GET, DELETE, PUT, searches, state and history reads, thread create with an
//!   id) are also repeated on 502/503/504, a dropped connection or a timeout. Run create,
//!   stream and wait, thread create without an id, state updates and cancels are never sent
//!   twice. Backoff is capped exponential with jitter ([`RetryPolicy`]).
//!
//! # Example
//!
//! In-process against an errand server in the same program; swap `Client::in_process(router)`
//! for `Client::http("http://127.0.0.1:8123")` to reach one over HTTP.
//!
//! ```
//! use errand_client::Client;
//! use errand_client::protocol::{RunCreate, RunResult, StreamPart, ThreadCreate};
//! use errand_server::{Server, graphs::Echo, storage::SqliteStorage};
//! use futures::StreamExt;
//! use serde_json::json;
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .graph("echo", Echo)
//!     .storage(Arc::new(SqliteStorage::in_memory()?))
//!     .start()
//!     .await?;
//! let client = Client::in_process(server.router())?;
//!
//! let thread = client.threads().create(&ThreadCreate::default()).await?;
//! let input = json!({"messages": [{"role": "user", "content": "hi"}]});
//! let run = client.runs().create(thread.thread_id, &RunCreate::new("echo", input)).await?;
//! let RunResult::Values(values) = client.runs().join(thread.thread_id, run.run_id).await? else {
//!     panic!("the run failed");
//! };
//! assert_eq!(values["messages"][1]["content"], "echo: hi");
//!
//! let input = json!({"messages": [{"role": "user", "content": "again"}]});
//! let mut events = client.runs().stream(thread.thread_id, &RunCreate::new("echo", input)).await?;
//! let mut last = None;
//! while let Some(event) = events.next().await {
//!     if let StreamPart::Values(values) = event?.part {
//!         last = Some(values);
//!     }
//! }
//! assert_eq!(last.unwrap()["messages"][3]["content"], "echo: again");
//! server.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod assistants;
mod cache;
mod client;
mod config;
mod error;
mod path;
mod retry;
mod runs;
mod store;
mod stream;
mod threads;
pub mod transport;

pub use assistants::Assistants;
pub use cache::{CacheKey, ClientCache};
pub use client::{Client, ClientBuilder};
pub use config::{API_KEY_ENV_VARS, API_KEY_HEADER, RetryPolicy, Timeouts, USER_AGENT_VALUE};
pub use errand_protocol as protocol;
pub use error::{ApiError, BoxError, ClientError};
pub use path::RunRef;
pub use runs::{CancelOptions, JoinStreamOptions, ListRuns, Runs};
pub use store::Store;
pub use stream::RunStream;
pub use threads::Threads;
