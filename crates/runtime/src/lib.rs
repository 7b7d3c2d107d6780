//! errand-runtime: the agent loop that supervisors and hosted subagents run on.
//!
//! Its place in the layers (see `DESIGN.md`): it builds on [`errand_protocol`] only. It will carry
//! the `ChatModel` trait and its providers, the `Tool` trait, middleware hooks, state channels and
//! summarisation. Until then it re-exports the message types the loop works on.
//!
//! ```
//! use errand_runtime::protocol::{Message, MessageKind};
//! let question = Message::human("What changed in the release?");
//! assert_eq!(question.kind, MessageKind::Human);
//! ```

pub use errand_protocol as protocol;
