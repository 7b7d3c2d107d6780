//! The bounds on what a client may send that errand must be able to give back.
//!
//! A value errand accepts is stored and later answered inside larger objects: a run's `input`
//! sits in `kwargs` inside the run, a thread's values inside its state and its history. Each
//! of those wrappers adds levels of nesting, and every JSON reader has a limit (serde_json's
//! default is 128, which errand's own client and storage use). So the limits apply to the
//! value as it will be kept, with room for the wrappers, not only to the body as parsed.

/// The most levels of nesting a request body may have, counting the body itself as the
/// first. It leaves 28 of serde_json's default 128 for the objects that errand's answers and
/// rows wrap a client's value in (a run's metadata, for one, sits two levels deeper in the
/// run's `kwargs.config` than in the body), so that whatever is accepted is read back.
pub const MAX_BODY_NESTING: usize = 100;

/// The largest request body errand reads, in bytes (16 MiB); a longer one answers 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The longest delay a run may ask for with `after_seconds`: ten years of 365 days. A longer
/// one would move the run's `created_at` towards the end of the calendar that timestamps can
/// be written in.
pub const MAX_AFTER_SECONDS: u64 = 10 * 365 * 24 * 60 * 60;
