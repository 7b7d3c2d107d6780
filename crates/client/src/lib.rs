//! errand-client: one typed client for errand and any LangGraph server.
//!
//! Its place in the layers (see `DESIGN.md`): it speaks [`errand_protocol`]'s types and nothing
//! above them. It will carry a `Transport` trait with an HTTP implementation and an in-process one
//! over any `tower::Service`, and the typed calls `threads()`, `runs()`, `assistants()` and
//! `store()`. Until then it re-exports the wire types it will send.
//!
//! ```
//! use errand_client::protocol::RunCreate;
//! let body = RunCreate::new("echo", serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}));
//! assert_eq!(serde_json::to_value(&body).unwrap()["assistant_id"], "echo");
//! ```

pub use errand_protocol as protocol;
