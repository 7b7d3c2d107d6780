//! The wire types of the Agent Protocol as errand speaks it: the LangGraph server API that the
//! official `langgraph-sdk` clients and Deep Agents send.
//!
//! This crate is the stable floor the others stand on, in the way `axum-core` is for axum: plain
//! data with serde and schemars, no IO and no async runtime; every other crate builds on it
//! (the layers: [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md)). It has
//!
//! - the resources: [`Thread`], [`ThreadState`], [`Run`], [`Assistant`], [`StoreItem`], and the
//!   statuses [`ThreadStatus`] and [`RunStatus`];
//! - the request bodies, with every key the official Python client sends: [`RunCreate`],
//!   [`ThreadCreate`], [`ThreadSearchRequest`], [`AssistantSearchRequest`], ...;
//! - chat [`Message`]s in LangChain's wire form, read from the role form too;
//! - the run stream: [`sse`] framing and the typed [`StreamEvent`]s;
//! - the error body [`ErrorBody`] (`{"detail": "..."}`);
//! - [`backoff`]: how long a caller of the wire waits before trying again, the one rule the
//!   client, the runtime's providers and the server's storage share;
//! - for a client and a server in one program, the typed answer beside the JSON
//!   ([`InProcessCall`], [`InProcessAnswer`]).
//!
//! Objects keep the keys they do not know in an `extra` map, and [`Nullable`] fields tell an
//! absent key from a `null` one, so a value read from the Python server and written back is the
//! same JSON.
//!
//! ```
//! use errand_protocol::{Run, RunStatus, StreamEvent, StreamPart, sse::SseDecoder};
//!
//! let run: Run = serde_json::from_str(r#"{
//!     "run_id": "01a209c7-cbca-76b1-913f-0b56bf572810",
//!     "thread_id": "01a209c7-cb3d-703a-a572-3d1cdf842b43",
//!     "assistant_id": "046b5dc7-2108-582c-9c6c-31d556d138f0",
//!     "created_at": "2026-11-23T19:00:18.506821+00:00",
//!     "updated_at": "2026-11-23T19:00:19.460478+00:00",
//!     "status": "success", "metadata": {}, "kwargs": {},
//!     "multitask_strategy": "enqueue", "langsmith_session_name": null
//! }"#).unwrap();
//! assert!(run.status.is_terminal());
//! assert!(run.extra.contains_key("langsmith_session_name"));
//!
//! let mut decoder = SseDecoder::new();
//! let mut events = Vec::new();
//! for chunk in [&b"event: values\r\ndata: {\"messages\""[..], &b":[]}\r\n\r\n"[..]] {
//!     for item in decoder.push(chunk) {
//!         if let errand_protocol::sse::SseItem::Frame(frame) = item {
//!             events.push(StreamEvent::from_frame(&frame).unwrap());
//!         }
//!     }
//! }
//! assert!(matches!(&events[0].part, StreamPart::Values(v) if v["messages"].is_array()));
//! ```

mod api;
mod assistant;
pub mod backoff;
mod error;
mod in_process;
mod limits;
mod message;
mod nullable;
mod run;
pub mod sse;
mod store;
mod stream;
mod thread;
mod time;

pub use api::{ErrorBody, Health, ServerInfo};
pub use assistant::{
    ASSISTANT_NAMESPACE, Assistant, AssistantSearchRequest, assistant_id_for_graph,
};
pub use error::ProtocolError;
pub use in_process::{InProcessAnswer, InProcessCall};
pub use limits::{MAX_AFTER_SECONDS, MAX_BODY_BYTES, MAX_BODY_NESTING};
pub use message::{ContentBlock, JsonObject, Message, MessageContent, MessageKind, ToolCall};
pub use nullable::Nullable;
pub use run::{
    AllNodes, CancelAction, CancelStatusFilter, Command, Durability, IfNotExists, InterruptNodes,
    MultitaskStrategy, OnCompletion, OnDisconnect, Run, RunCancelManyRequest, RunConfig, RunCreate,
    RunError, RunKwargs, RunResult, RunStatus, StreamMode, StreamModes,
};
pub use store::{
    ListNamespacesResponse, SearchItemsResponse, StoreDeleteRequest, StoreItem,
    StoreListNamespacesRequest, StorePutRequest, StoreSearchRequest,
};
pub use stream::{MessageChunk, RunMetadata, StreamEvent, StreamPart};
pub use thread::{
    Checkpoint, HistoryRequest, IfExists, Interrupt, SortOrder, Thread, ThreadCreate, ThreadPatch,
    ThreadPruneRequest, ThreadPruneResponse, ThreadSearchRequest, ThreadState, ThreadStateUpdate,
    ThreadStateUpdateResponse, ThreadStatus, ThreadTask, ThreadTtl, TtlStrategy,
};
pub use time::Timestamp;
