//! Server-sent events (SSE) framing, both directions, with no IO.
//!
//! # Wire format
//!
//! errand frames every event exactly like the Python LangGraph server
//! (langgraph-api): one `name: value` line per field, each ended by CRLF,
//! in the order `event`, `data`, `id`, `retry`, then an empty line:
//!
//! ```text
//! event: metadata\r\n
//! data: {"run_id":"01a2...","attempt":1}\r\n
//! id: 1795460430449-0\r\n
//! \r\n
//! ```
//!
//! The `id:` line is only present when the run is resumable. Data that
//! spans several lines is written as one `data:` line per line. Heartbeats
//! are SSE comments ([`HEARTBEAT`], `: heartbeat\r\n\r\n`).
//!
//! The decoder ([`SseDecoder`]) follows the WHATWG "event stream
//! interpretation" rules and the official Python client: `\r\n`, `\n` and
//! `\r` all end a line (also when a `\r\n` pair is split between two
//! chunks), a leading UTF-8 BOM is skipped, invalid UTF-8 is replaced by
//! U+FFFD, one space after the colon is stripped, `data:` lines are joined
//! with `\n`, a line without a colon is a field with an empty value,
//! unknown fields are ignored, an `id` containing NUL is ignored, and
//! `retry` must be all ASCII digits. An event is dispatched on an empty
//! line if it has an event name or at least one `data:` line.
//!
//! The decoder keeps at most [`SseDecoder::max_event_size`] bytes of a line
//! or of a pending event ([`DEFAULT_MAX_EVENT_SIZE`] unless set): a larger
//! one is dropped whole and counted, and the stream goes on, so a peer that
//! never ends a line or an event cannot exhaust the reader's memory.
//!
//! # Round trips
//!
//! [`SseFrame::encode`] never fails, and `decode(encode(frame))` yields
//! `frame` again whenever the frame is representable:
//!
//! * the event name is `None` or non-empty, and the frame has an event
//!   name or data (otherwise nothing is dispatched; see below);
//! * the event name and id contain no CR or LF, and the id no NUL: SSE has
//!   no escaping, so the encoder replaces each of these characters by a
//!   space (a frame that already obeys this is written unchanged);
//! * the data contains no CR: SSE cannot carry one, so `\r\n` and lone
//!   `\r` in data come back as `\n`.
//!
//! `data: None` writes no `data:` line and decodes as `None`;
//! `data: Some("")` writes one empty `data: ` line and decodes as
//! `Some("")`. An event name of `Some("")` writes no `event:` line (the
//! spec gives an empty name no meaning) and decodes as `None`. A frame
//! with neither an event name nor data is only an `id:`/`retry:` update:
//! the decoder applies it to [`SseDecoder::last_event_id`] and
//! [`SseDecoder::retry`] and dispatches nothing.
//!
//! # Example
//!
//! ```
//! use errand_protocol::sse::{SseDecoder, SseFrame, SseItem};
//!
//! let frame = SseFrame::new("metadata", r#"{"run_id":"01a2","attempt":1}"#)
//!     .with_id("1795460430449-0");
//! let wire = frame.encode();
//! assert_eq!(
//!     wire,
//!     "event: metadata\r\ndata: {\"run_id\":\"01a2\",\"attempt\":1}\r\nid: 1795460430449-0\r\n\r\n"
//! );
//!
//! // Split the bytes anywhere, here in the middle of the final CRLF pair.
//! let (head, tail) = wire.as_bytes().split_at(wire.len() - 3);
//! let mut decoder = SseDecoder::new();
//! assert!(decoder.push(head).is_empty());
//! assert_eq!(decoder.push(tail), vec![SseItem::Frame(frame)]);
//! assert_eq!(decoder.last_event_id(), Some("1795460430449-0"));
//! assert!(decoder.finish().is_empty());
//! ```

mod decoder;
mod encode;
#[cfg(test)]
mod tests;

pub use decoder::{DEFAULT_MAX_EVENT_SIZE, SseDecoder};
pub use encode::encode_comment;

/// A heartbeat comment, as the server sends it every few seconds.
pub const HEARTBEAT: &str = ": heartbeat\r\n\r\n";

/// One dispatched event.
///
/// On the decoding side, `id` and `retry` are the values given in this
/// event's own lines (not inherited from earlier events); the persistent
/// values are [`SseDecoder::last_event_id`] and [`SseDecoder::retry`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseFrame {
    /// The event name (`event:` line); `None` means the default, "message".
    pub event: Option<String>,
    /// The data, its `data:` lines joined with `\n`; `None` if there was no
    /// `data:` line at all.
    pub data: Option<String>,
    /// The event id (`id:` line), sent back as `Last-Event-ID` to resume.
    pub id: Option<String>,
    /// The reconnection time in milliseconds (`retry:` line).
    pub retry: Option<u64>,
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event.
    Frame(SseFrame),
    /// A comment line: the text after `:`, with one leading space stripped.
    /// Heartbeats are comments.
    Comment(String),
}

/// The position of the first CR or LF in `hay`.
///
/// Scans eight bytes at a time (SWAR), since data lines can be long.
fn find_eol(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const CR: u64 = LO * b'\r' as u64;
    const LF: u64 = LO * b'\n' as u64;
    /// High bit set in each byte of `x` that is zero. Borrows can only set
    /// bits above a zero byte, so the lowest set bit is always exact.
    const fn zero_bytes(x: u64) -> u64 {
        x.wrapping_sub(LO) & !x & HI
    }
    let (blocks, tail) = hay.as_chunks::<8>();
    for (index, block) in blocks.iter().enumerate() {
        let word = u64::from_le_bytes(*block);
        let hits = zero_bytes(word ^ CR) | zero_bytes(word ^ LF);
        if hits != 0 {
            return Some(index * 8 + (hits.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|at| blocks.len() * 8 + at)
}
