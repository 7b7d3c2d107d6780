//! errand-middleware: background subagents for a supervisor agent.
//!
//! Its place in the layers (see `DESIGN.md`): it builds on [`errand_client`] to reach subagents
//! and on [`errand_runtime`] to give the supervisor its tools; it never knows how a transport works.
//! It will carry the five tools (`start_async_task`, `check_async_task`, `update_async_task`,
//! `cancel_async_task`, `list_async_tasks`) and the `async_tasks` task board. Until then it
//! re-exports the layers it stands on.
//!
//! ```
//! use errand_middleware::protocol::RunStatus;
//! assert!(RunStatus::Interrupted.is_terminal());
//! ```

pub use errand_client as client;
pub use errand_protocol as protocol;
pub use errand_runtime as runtime;
