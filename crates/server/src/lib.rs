//! errand-server: the Agent Protocol server that hosts subagents.
//!
//! Its place in the layers (see `DESIGN.md`): it serves [`errand_protocol`]'s types and hosts
//! graphs built on [`errand_runtime`]; it never knows about the supervisor's tools. Built so far:
//! the [`storage`] contract that keeps every accepted thread and run, and the [`graphs::Echo`]
//! graph used by tests, benchmarks and interop. Routes, the run executor and streaming come next.
//!
//! ```
//! use errand_server::protocol::{ErrorBody, Health};
//! let ok = serde_json::to_string(&Health::ok()).unwrap();
//! assert_eq!(ok, r#"{"ok":true}"#);
//! let missing = ErrorBody::new("Thread with ID 00000000-0000-0000-0000-000000000000 not found");
//! assert!(serde_json::to_string(&missing).unwrap().starts_with(r#"{"detail":"#));
//! ```

pub mod graphs;
pub mod storage;

pub use errand_protocol as protocol;
pub use errand_runtime as runtime;
