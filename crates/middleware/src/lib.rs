//! errand-middleware: background subagents for a supervisor agent.
//!
//! Its place in the layers (see [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md)): it builds on [`errand_client`] to reach subagents
//! and on [`errand_runtime`] to give the supervisor its tools; it never knows how a transport
//! works. [`AsyncSubAgentMiddleware`] gives a supervisor Deep Agents' five tools
//! (`start_async_task`, `check_async_task`, `update_async_task`, `cancel_async_task`,
//! `list_async_tasks`), the `async_tasks` task board that summarisation cannot drop, and a
//! watcher on every run it starts: each status change reaches the supervisor's next model call
//! as a notice, so the model never polls.
//!
//! ```
//! use errand_middleware::{AsyncSubAgent, AsyncSubAgentMiddleware};
//! use errand_runtime::agent::Agent;
//! use errand_runtime::model::{ScriptedModel, Turn};
//! use std::sync::Arc;
//!
//! let researcher = AsyncSubAgent::new("researcher", "Researches a topic.", "researcher")
//!     .url("http://127.0.0.1:2024");
//! let middleware = AsyncSubAgentMiddleware::builder([researcher]).build().unwrap();
//! let supervisor = Agent::builder(Arc::new(ScriptedModel::new([Turn::text("Hello!")])))
//!     .middleware(middleware)
//!     .build()
//!     .unwrap();
//! assert_eq!(supervisor.tools().len(), 5);
//! ```

mod approval;
mod error;
mod middleware;
mod notice;
mod observe;
mod settings;
mod shared;
mod spec;
mod task;
mod tools;
mod watch;

pub use approval::{Action, Approval, ApprovalRequest, Approver};
pub use error::Error;
pub use middleware::{AsyncSubAgentMiddleware, AsyncSubAgentMiddlewareBuilder};
pub use notice::{
    NOTICE_TEXT_LIMIT, NOTIFICATION_KEY, TaskEvent, is_notification, notice_field, notification,
};
pub use observe::{Observation, final_text, observe, page};
pub use settings::Settings;
pub use spec::{AsyncSubAgent, Mode, UpdateStrategy};
pub use task::{AsyncTask, TASKS_CHANNEL, TaskStatus, board, board_channel, find_task};
pub use tools::TOOL_NAMES;
pub use watch::{NoticeHook, Timing};

pub use errand_client as client;
pub use errand_protocol as protocol;
pub use errand_runtime as runtime;
