//! errand-server: the Agent Protocol server that hosts subagents.
//!
//! Its place in the layers (see `DESIGN.md`): it serves [`errand_protocol`]'s types and hosts
//! graphs built on [`errand_runtime`]; it never knows about the supervisor's tools. It will carry
//! the routes, the durable run queue and workers, streaming with replay, and storage. Until then it
//! re-exports the layers it stands on.
//!
//! ```
//! use errand_server::protocol::{ErrorBody, Health};
//! let ok = serde_json::to_string(&Health { ok: true }).unwrap();
//! assert_eq!(ok, r#"{"ok":true}"#);
//! let missing = ErrorBody::new("Thread with ID 00000000-0000-0000-0000-000000000000 not found");
//! assert!(serde_json::to_string(&missing).unwrap().starts_with(r#"{"detail":"#));
//! ```

pub use errand_protocol as protocol;
pub use errand_runtime as runtime;
