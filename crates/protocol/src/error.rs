//! The one error type of this crate.

/// What can go wrong when turning wire data into errand's types.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A JSON document did not match the type it was read as.
    #[error("invalid JSON for {what}: {source}")]
    Json {
        /// The type or field that was being read.
        what: &'static str,
        /// The underlying serde error, which names the path and position.
        #[source]
        source: serde_json::Error,
    },
    /// A stream event carried a payload that does not fit its event name.
    #[error("stream event `{event}` has an unexpected payload: {reason}")]
    InvalidStreamEvent {
        /// The SSE event name.
        event: String,
        /// What was wrong with it.
        reason: String,
    },
    /// An SSE event (or one of its lines) was larger than the decoder keeps, and was dropped.
    #[error("a stream event was larger than {limit} bytes and was dropped")]
    EventTooLarge {
        /// The decoder's limit, [`SseDecoder::max_event_size`](crate::sse::SseDecoder::max_event_size).
        limit: usize,
    },
    /// A value that must be one of a fixed set was something else.
    #[error("unknown {what}: `{value}` (expected one of: {expected})")]
    UnknownVariant {
        /// Which kind of value, e.g. "stream mode".
        what: &'static str,
        /// The value that was given.
        value: String,
        /// The accepted values, comma separated.
        expected: &'static str,
    },
}
