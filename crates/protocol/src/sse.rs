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

use std::fmt::Write as _;

/// A heartbeat comment, as the server sends it every few seconds.
pub const HEARTBEAT: &str = ": heartbeat\r\n\r\n";

/// The UTF-8 byte order mark, skipped at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

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

impl SseFrame {
    /// A frame with an event name and data, and no id or retry.
    pub fn new(event: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            event: Some(event.into()),
            data: Some(data.into()),
            id: None,
            retry: None,
        }
    }

    /// Sets the event id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the reconnection time in milliseconds.
    #[must_use]
    pub fn with_retry(mut self, retry_ms: u64) -> Self {
        self.retry = Some(retry_ms);
        self
    }

    /// Appends the frame in the server's exact framing: `event:`, then one
    /// `data:` line per line of data (split on `\n`, `\r\n` or `\r`), then
    /// `id:`, then `retry:`, each line `name: value\r\n`, then `\r\n`.
    ///
    /// Absent fields (and an empty event name) are left out. CR and LF in
    /// the event name and id, and NUL in the id, are written as spaces,
    /// since SSE cannot carry them (see the [module docs](self)).
    pub fn encode_into(&self, out: &mut String) {
        let data_len = self.data.as_ref().map_or(0, String::len);
        out.reserve(data_len + 32);
        if let Some(event) = self.event.as_deref().filter(|e| !e.is_empty()) {
            out.push_str("event: ");
            push_sanitized(out, event, false);
            out.push_str("\r\n");
        }
        if let Some(data) = &self.data {
            push_lines(out, "data: ", data);
        }
        if let Some(id) = &self.id {
            out.push_str("id: ");
            push_sanitized(out, id, true);
            out.push_str("\r\n");
        }
        if let Some(retry) = self.retry {
            // Writing to a String cannot fail.
            let _ = write!(out, "retry: {retry}\r\n");
        }
        out.push_str("\r\n");
    }

    /// The frame in the server's exact framing; see [`SseFrame::encode_into`].
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }
}

/// Appends `text` with CR and LF (and NUL if `nul_too`) replaced by spaces.
fn push_sanitized(out: &mut String, text: &str, nul_too: bool) {
    let bad = |c: char| c == '\r' || c == '\n' || (nul_too && c == '\0');
    if text.contains(bad) {
        out.extend(text.chars().map(|c| if bad(c) { ' ' } else { c }));
    } else {
        out.push_str(text);
    }
}

/// Appends a comment: `: text\r\n\r\n`.
///
/// A text with line breaks (`\n`, `\r\n` or `\r`) becomes one `: ` line
/// per line, so the decoder yields one [`SseItem::Comment`] per line.
pub fn encode_comment(text: &str, out: &mut String) {
    out.reserve(text.len() + 6);
    push_lines(out, ": ", text);
    out.push_str("\r\n");
}

/// Appends one `prefix` line, ended by CRLF, per line of `text` (split on `\n`, `\r\n` or
/// `\r`), so that line breaks inside a value never end the frame early.
fn push_lines(out: &mut String, prefix: &str, text: &str) {
    let mut rest = text;
    loop {
        out.push_str(prefix);
        let Some(at) = find_eol(rest.as_bytes()) else {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        };
        out.push_str(&rest[..at]);
        out.push_str("\r\n");
        let eol_len = if rest.as_bytes()[at..].starts_with(b"\r\n") {
            2
        } else {
            1
        };
        rest = &rest[at + eol_len..];
    }
}

/// The default of [`SseDecoder::max_event_size`]: 64 MiB.
///
/// Large enough for any event errand sends (a `values` event carries a thread's whole state,
/// and a request body may be 16 MiB), small enough that a stream that never ends its line or
/// its event cannot take the memory of the process that reads it.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 64 * 1024 * 1024;

/// Incremental SSE decoder: bytes in, [`SseItem`]s out.
///
/// A stream split into chunks at any byte (including in the middle of a
/// CRLF pair or of a multi-byte UTF-8 character) decodes exactly as the
/// unsplit stream. A line is handled as soon as its line break arrives;
/// only the unfinished line is kept between calls.
///
/// What it keeps is bounded by [`max_event_size`](Self::max_event_size):
/// a line longer than that, or an event whose name, data and id together
/// would be larger, is dropped whole, up to the empty line that ends it
/// (its id is not committed, nothing of it is dispatched, and the rest of
/// its lines, comments too, are skipped; a comment before the point where
/// it went over was already yielded), and counted in
/// [`oversized_events`](Self::oversized_events).
/// The stream goes on with the next event. So a decoder holds at most about
/// twice the limit (the unfinished line and the pending event), however
/// much a peer sends without a line break or an empty line.
///
/// After [`finish`](Self::finish) the decoder is ready for a new stream
/// (e.g. after reconnecting) and keeps [`last_event_id`](Self::last_event_id)
/// and [`retry`](Self::retry).
#[derive(Debug)]
pub struct SseDecoder {
    /// The unfinished line carried over from earlier chunks.
    carry: Vec<u8>,
    /// The previous chunk ended with CR: a LF starting the next one belongs
    /// to the same line break.
    skip_lf: bool,
    /// The first line of the stream has been handled (BOM check done).
    started: bool,
    /// Event name buffer of the pending event (empty: none).
    event: String,
    /// Data buffer of the pending event, lines joined with `\n`.
    data: String,
    /// Whether the pending event had a `data:` line.
    has_data: bool,
    /// The pending event's own `id:`.
    id: Option<String>,
    /// The pending event's own `retry:`.
    event_retry: Option<u64>,
    /// The last event id committed by a completed event (empty: none).
    last_id: String,
    /// The last valid `retry:` value seen.
    retry: Option<u64>,
    /// The most bytes a line, or the pending event's fields, may hold.
    max_event_size: usize,
    /// The unfinished line went over the limit: the rest of it, up to its
    /// line break, is skipped rather than kept.
    skipping_line: bool,
    /// The pending event went over the limit: its lines are skipped up to
    /// the empty line that ends it.
    dropping_event: bool,
    /// Events dropped for their size.
    oversized: u64,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_max_event_size(DEFAULT_MAX_EVENT_SIZE)
    }
}

impl SseDecoder {
    /// A decoder at the start of a stream, with the default event size
    /// limit ([`DEFAULT_MAX_EVENT_SIZE`]).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that drops lines and events over `max_event_size` bytes
    /// (see [`SseDecoder`]).
    #[must_use]
    pub fn with_max_event_size(max_event_size: usize) -> Self {
        Self {
            carry: Vec::new(),
            skip_lf: false,
            started: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
            event_retry: None,
            last_id: String::new(),
            retry: None,
            max_event_size,
            skipping_line: false,
            dropping_event: false,
            oversized: 0,
        }
    }

    /// The most bytes one line, or the name, data and id of one event
    /// together, may take; larger ones are dropped.
    #[must_use]
    pub fn max_event_size(&self) -> usize {
        self.max_event_size
    }

    /// How many events were dropped for being over
    /// [`max_event_size`](Self::max_event_size) since the decoder was made
    /// (a block of lines up to an empty line counts once, even if it held
    /// only an overlong comment).
    #[must_use]
    pub fn oversized_events(&self) -> u64 {
        self.oversized
    }

    /// Decodes a whole stream at once: [`push`](Self::push) then
    /// [`finish`](Self::finish) on a fresh decoder.
    #[must_use]
    pub fn decode_all(input: &[u8]) -> Vec<SseItem> {
        let mut decoder = Self::new();
        let mut out = decoder.push(input);
        decoder.finish_into(&mut out);
        out
    }

    /// Feeds the next chunk of the stream and returns the items it completes.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseItem> {
        let mut out = Vec::new();
        self.push_into(chunk, &mut out);
        out
    }

    /// Feeds the next chunk of the stream and appends the items it
    /// completes to `out`.
    pub fn push_into(&mut self, mut chunk: &[u8], out: &mut Vec<SseItem>) {
        if self.skip_lf {
            let Some(&first) = chunk.first() else {
                return;
            };
            self.skip_lf = false;
            if first == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while let Some(at) = find_eol(chunk) {
            let line = &chunk[..at];
            if self.skipping_line {
                // The end of a line already dropped for its length.
                self.skipping_line = false;
            } else if self.carry.len() + line.len() > self.max_event_size {
                self.carry = Vec::new();
                self.drop_event();
            } else if self.carry.is_empty() {
                self.process_line(line, out);
            } else {
                self.carry.extend_from_slice(line);
                let mut carried = std::mem::take(&mut self.carry);
                self.process_line(&carried, out);
                carried.clear();
                self.carry = carried;
            }
            let eol = chunk[at];
            chunk = &chunk[at + 1..];
            if eol == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        if self.skipping_line {
            return;
        }
        if self.carry.len() + chunk.len() > self.max_event_size {
            // Keeping the line until its break arrives could take any
            // amount of memory: drop it now and skip the rest as it comes.
            self.carry = Vec::new();
            self.skipping_line = true;
            self.drop_event();
        } else {
            self.carry.extend_from_slice(chunk);
        }
    }

    /// Ends the stream and returns the items that completes.
    ///
    /// A final line without a line break is processed; an event that was
    /// not ended by an empty line is discarded (as the spec requires), but
    /// a final comment line is still yielded. An `id:` of a discarded event
    /// does not become the [`last_event_id`](Self::last_event_id), so
    /// resuming from it cannot skip that event.
    pub fn finish(&mut self) -> Vec<SseItem> {
        let mut out = Vec::new();
        self.finish_into(&mut out);
        out
    }

    /// Like [`finish`](Self::finish), appending to `out`.
    pub fn finish_into(&mut self, out: &mut Vec<SseItem>) {
        if !self.carry.is_empty() {
            let carried = std::mem::take(&mut self.carry);
            // Only a lone BOM can turn into an empty line here; with
            // nothing pending, that dispatches nothing.
            self.process_line(&carried, out);
        }
        self.skip_lf = false;
        self.started = false;
        self.skipping_line = false;
        self.dropping_event = false;
        self.clear_pending();
    }

    /// The id of the last completed event (including events with only an
    /// `id:` line), to send back as `Last-Event-ID`; `None` if no id was
    /// seen yet or the last one was empty (which resets it, per spec).
    #[must_use]
    pub fn last_event_id(&self) -> Option<&str> {
        (!self.last_id.is_empty()).then_some(self.last_id.as_str())
    }

    /// The last valid reconnection time seen in a `retry:` line, in
    /// milliseconds.
    #[must_use]
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Handles one complete line (without its line break).
    fn process_line(&mut self, mut line: &[u8], out: &mut Vec<SseItem>) {
        if !self.started {
            self.started = true;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        let Some(&first) = line.first() else {
            if self.dropping_event {
                self.dropping_event = false;
            } else {
                self.dispatch(out);
            }
            return;
        };
        if self.dropping_event {
            return;
        }
        if first == b':' {
            let text = strip_one_space(&line[1..]);
            out.push(SseItem::Comment(String::from_utf8_lossy(text).into_owned()));
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => (&line[..colon], strip_one_space(&line[colon + 1..])),
            None => (line, &[][..]),
        };
        // The pending event's size without the field this line replaces or
        // adds to; the check comes before the value is stored, so nothing
        // over the limit is ever held.
        let id_len = self.id.as_ref().map_or(0, String::len);
        let others = match name {
            b"event" => self.data.len() + id_len,
            b"data" => self.event.len() + self.data.len() + id_len + usize::from(self.has_data),
            b"id" => self.event.len() + self.data.len(),
            _ => 0,
        };
        let fits = |text: &str| others + text.len() <= self.max_event_size;
        match name {
            b"event" => {
                let text = String::from_utf8_lossy(value);
                if !fits(&text) {
                    return self.drop_event();
                }
                self.event.clear();
                self.event.push_str(&text);
            }
            b"data" => {
                let text = String::from_utf8_lossy(value);
                if !fits(&text) {
                    return self.drop_event();
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                self.data.push_str(&text);
            }
            b"id" if !value.contains(&0) => {
                let text = String::from_utf8_lossy(value);
                if !fits(&text) {
                    return self.drop_event();
                }
                self.id = Some(text.into_owned());
            }
            b"retry" => {
                if let Some(ms) = parse_retry(value) {
                    self.retry = Some(ms);
                    self.event_retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    /// Forgets the pending event and skips its lines up to the empty line
    /// that ends it; counts it once.
    fn drop_event(&mut self) {
        // A BOM is only looked for on the very first line.
        self.started = true;
        if !self.dropping_event {
            self.dropping_event = true;
            self.oversized += 1;
        }
        self.clear_pending();
        // Give the memory back: the buffers may have grown close to the limit.
        self.event = String::new();
        self.data = String::new();
    }

    /// Forgets the fields of the pending event.
    fn clear_pending(&mut self) {
        self.event.clear();
        self.data.clear();
        self.has_data = false;
        self.id = None;
        self.event_retry = None;
    }

    /// Handles an empty line: commits the id and dispatches the pending
    /// event if it has an event name or data.
    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        let id = self.id.take();
        if let Some(id) = &id {
            self.last_id.clone_from(id);
        }
        let retry = self.event_retry.take();
        if self.event.is_empty() && !self.has_data {
            return;
        }
        let event = (!self.event.is_empty()).then(|| std::mem::take(&mut self.event));
        let data = self.has_data.then(|| std::mem::take(&mut self.data));
        self.has_data = false;
        out.push(SseItem::Frame(SseFrame {
            event,
            data,
            id,
            retry,
        }));
    }
}

/// `bytes` without one leading space, if any.
fn strip_one_space(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b" ").unwrap_or(bytes)
}

/// A `retry:` value: ASCII digits only, at least one; `None` otherwise and
/// on overflow (the field is then ignored).
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |ms, &digit| {
        if !digit.is_ascii_digit() {
            return None;
        }
        ms.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(event: Option<&str>, data: Option<&str>, id: Option<&str>) -> SseItem {
        SseItem::Frame(SseFrame {
            event: event.map(str::to_owned),
            data: data.map(str::to_owned),
            id: id.map(str::to_owned),
            retry: None,
        })
    }

    fn comment(text: &str) -> SseItem {
        SseItem::Comment(text.to_owned())
    }

    fn decode(input: &[u8]) -> Vec<SseItem> {
        SseDecoder::decode_all(input)
    }

    /// Decodes `input` one byte per chunk, with empty chunks in between.
    fn decode_bytewise(input: &[u8]) -> Vec<SseItem> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for byte in input {
            decoder.push_into(std::slice::from_ref(byte), &mut out);
            decoder.push_into(&[], &mut out);
        }
        decoder.finish_into(&mut out);
        out
    }

    #[test]
    fn encodes_exact_server_framing() {
        let f = SseFrame::new("metadata", r#"{"run_id":"01a2","attempt":1}"#)
            .with_id("1795460430449-0");
        assert_eq!(
            f.encode(),
            "event: metadata\r\ndata: {\"run_id\":\"01a2\",\"attempt\":1}\r\nid: 1795460430449-0\r\n\r\n"
        );
        let f = SseFrame::new("values", "{}");
        assert_eq!(f.encode(), "event: values\r\ndata: {}\r\n\r\n");
        let f = SseFrame::new("a", "x").with_id("7").with_retry(1500);
        assert_eq!(
            f.encode(),
            "event: a\r\ndata: x\r\nid: 7\r\nretry: 1500\r\n\r\n"
        );
    }

    #[test]
    fn encode_into_appends() {
        let mut out = String::from(HEARTBEAT);
        SseFrame::new("end", "null").encode_into(&mut out);
        assert_eq!(out, ": heartbeat\r\n\r\nevent: end\r\ndata: null\r\n\r\n");
    }

    #[test]
    fn encodes_multiline_data_one_line_each() {
        let f = SseFrame::new("m", "a\nb\r\nc\rd\n");
        assert_eq!(
            f.encode(),
            "event: m\r\ndata: a\r\ndata: b\r\ndata: c\r\ndata: d\r\ndata: \r\n\r\n"
        );
        assert_eq!(
            decode(f.encode().as_bytes()),
            vec![frame(Some("m"), Some("a\nb\nc\nd\n"), None)]
        );
    }

    #[test]
    fn empty_data_and_no_data_are_distinct() {
        let empty = SseFrame::new("e", "");
        assert_eq!(empty.encode(), "event: e\r\ndata: \r\n\r\n");
        assert_eq!(
            decode(empty.encode().as_bytes()),
            vec![SseItem::Frame(empty)]
        );

        let none = SseFrame {
            event: Some("e".into()),
            ..SseFrame::default()
        };
        assert_eq!(none.encode(), "event: e\r\n\r\n");
        assert_eq!(decode(none.encode().as_bytes()), vec![SseItem::Frame(none)]);

        let data_only = SseFrame {
            data: Some(String::new()),
            ..SseFrame::default()
        };
        assert_eq!(data_only.encode(), "data: \r\n\r\n");
        assert_eq!(
            decode(data_only.encode().as_bytes()),
            vec![SseItem::Frame(data_only)]
        );
        // `data:` without the space is the same.
        assert_eq!(decode(b"data:\n\n"), vec![frame(None, Some(""), None)]);
        assert_eq!(decode(b"data\n\n"), vec![frame(None, Some(""), None)]);
    }

    #[test]
    fn line_breaks_in_event_and_id_become_spaces() {
        let f = SseFrame::new("a\r\nb\nc\r", "x").with_id("1\n2\0");
        assert_eq!(f.encode(), "event: a  b c \r\ndata: x\r\nid: 1 2 \r\n\r\n");
        assert_eq!(
            decode(f.encode().as_bytes()),
            vec![frame(Some("a  b c "), Some("x"), Some("1 2 "))]
        );
    }

    #[test]
    fn empty_event_name_is_left_out() {
        let f = SseFrame::new("", "x");
        assert_eq!(f.encode(), "data: x\r\n\r\n");
        assert_eq!(
            decode(f.encode().as_bytes()),
            vec![frame(None, Some("x"), None)]
        );
        // An `event:` line with an empty value resets the name.
        assert_eq!(
            decode(b"event: a\nevent:\ndata: x\n\n"),
            vec![frame(None, Some("x"), None)]
        );
        assert_eq!(decode(b"event:\n\n"), vec![]);
    }

    #[test]
    fn leading_spaces_beyond_one_are_kept() {
        let f = SseFrame::new(" ev ", "  two").with_id(" i");
        assert_eq!(decode(f.encode().as_bytes()), vec![SseItem::Frame(f)]);
        assert_eq!(decode(b"data:x\n\n"), vec![frame(None, Some("x"), None)]);
        assert_eq!(
            decode(b"data:  x \n\n"),
            vec![frame(None, Some(" x "), None)]
        );
        // Only the first colon separates name and value.
        assert_eq!(
            decode(b"data: a:b\n\n"),
            vec![frame(None, Some("a:b"), None)]
        );
    }

    #[test]
    fn comments_and_heartbeats() {
        assert_eq!(decode(HEARTBEAT.as_bytes()), vec![comment("heartbeat")]);
        let mut out = String::new();
        encode_comment("hello", &mut out);
        assert_eq!(out, ": hello\r\n\r\n");
        encode_comment("a\nb", &mut out);
        assert_eq!(out, ": hello\r\n\r\n: a\r\n: b\r\n\r\n");
        assert_eq!(
            decode(out.as_bytes()),
            vec![comment("hello"), comment("a"), comment("b")]
        );
        assert_eq!(
            decode(b":\n:x\n:  y\n"),
            vec![comment(""), comment("x"), comment(" y")]
        );
        // A comment inside an event does not end it.
        assert_eq!(
            decode(b"event: e\n: hb\ndata: d\n\n"),
            vec![comment("hb"), frame(Some("e"), Some("d"), None)]
        );
    }

    #[test]
    fn lf_cr_and_crlf_line_endings() {
        let expected = vec![
            frame(Some("a"), Some("1\n2"), Some("x")),
            comment("c"),
            frame(None, Some("3"), None),
        ];
        for eol in ["\n", "\r", "\r\n"] {
            let text = [
                "event: a", "data: 1", "data: 2", "id: x", "", ": c", "data: 3", "",
            ]
            .map(|line| format!("{line}{eol}"))
            .concat();
            assert_eq!(decode(text.as_bytes()), expected, "eol {eol:?}");
            assert_eq!(decode_bytewise(text.as_bytes()), expected, "eol {eol:?}");
        }
        // Mixed in one stream.
        assert_eq!(
            decode(b"event: a\rdata: 1\r\ndata: 2\nid: x\r\r\n: c\ndata: 3\r\n\r"),
            expected
        );
    }

    #[test]
    fn multiple_data_lines_are_joined() {
        assert_eq!(
            decode(b"data: a\ndata:\ndata: b\n\n"),
            vec![frame(None, Some("a\n\nb"), None)]
        );
    }

    #[test]
    fn cr_lf_split_between_chunks_is_one_line_break() {
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.push(b"event: a\r"), vec![]);
        assert_eq!(decoder.push(b"\ndata: 1\r"), vec![]);
        // The LF here completes the CRLF pair, it is not an empty line.
        assert_eq!(decoder.push(b"\n"), vec![]);
        assert_eq!(decoder.push(b""), vec![]);
        assert_eq!(
            decoder.push(b"data: 2\r\n\r"),
            vec![frame(Some("a"), Some("1\n2"), None)]
        );
        assert_eq!(decoder.push(b""), vec![]);
        assert_eq!(decoder.push(b"\n"), vec![]);
        assert_eq!(
            decoder.push(b"data: 3\n\n"),
            vec![frame(None, Some("3"), None)]
        );
        assert_eq!(decoder.finish(), vec![]);
    }

    /// Decodes `input` whole and one byte at a time with `max` as the limit,
    /// checks both agree, and answers the items and the count of drops.
    fn decode_limited(input: &[u8], max: usize) -> (Vec<SseItem>, u64, Option<String>) {
        let mut whole = SseDecoder::with_max_event_size(max);
        let mut items = whole.push(input);
        whole.finish_into(&mut items);
        let mut bytewise = SseDecoder::with_max_event_size(max);
        let mut one_by_one = Vec::new();
        for byte in input {
            bytewise.push_into(std::slice::from_ref(byte), &mut one_by_one);
        }
        bytewise.finish_into(&mut one_by_one);
        assert_eq!(items, one_by_one, "whole and bytewise differ");
        assert_eq!(whole.oversized_events(), bytewise.oversized_events());
        assert_eq!(whole.last_event_id(), bytewise.last_event_id());
        let last_id = whole.last_event_id().map(str::to_owned);
        (items, whole.oversized_events(), last_id)
    }

    #[test]
    fn the_default_limit_applies_to_new_decoders() {
        assert_eq!(SseDecoder::new().max_event_size(), DEFAULT_MAX_EVENT_SIZE);
        assert_eq!(
            SseDecoder::default().max_event_size(),
            DEFAULT_MAX_EVENT_SIZE
        );
        assert_eq!(SseDecoder::new().oversized_events(), 0);
    }

    #[test]
    fn a_line_over_the_limit_drops_its_event_and_only_it() {
        // `data: 0123456789` is 16 bytes: at a limit of 16 it is kept.
        let (items, dropped, _) = decode_limited(b"data: 0123456789\n\n", 16);
        assert_eq!(items, vec![frame(None, Some("0123456789"), None)]);
        assert_eq!(dropped, 0);
        // One byte more and the whole event goes, with its id and the lines
        // after the long one; a comment before it was already yielded. The
        // events around it are untouched.
        let input =
            b"data: a\nid: 1\n\nevent: e\n: c\ndata: 0123456789X\n: d\nid: 2\n\ndata: b\n\n";
        let (items, dropped, last_id) = decode_limited(input, 16);
        assert_eq!(
            items,
            vec![
                frame(None, Some("a"), Some("1")),
                comment("c"),
                frame(None, Some("b"), None)
            ]
        );
        assert_eq!(dropped, 1);
        assert_eq!(last_id.as_deref(), Some("1"));
        // A long comment on its own is dropped too, and counted.
        let (items, dropped, _) = decode_limited(b": 0123456789abcdefg\ndata: x\n\n", 16);
        assert_eq!(items, vec![]);
        assert_eq!(dropped, 1);
    }

    #[test]
    fn an_event_over_the_limit_in_short_lines_is_dropped() {
        // Name, data and id together: 1 + 10 + 1 = 12 bytes fit in 16.
        let input = b"event: e\ndata: 0123456789\nid: 9\n\n";
        let (items, dropped, _) = decode_limited(input, 16);
        assert_eq!(items, vec![frame(Some("e"), Some("0123456789"), Some("9"))]);
        assert_eq!(dropped, 0);
        // A second data line makes 1 + 10 + 1 + 10 = 22: each line fits, the
        // event does not.
        let input = b"event: e\ndata: 0123456789\ndata: 0123456789\nid: 9\n\ndata: b\n\n";
        let (items, dropped, last_id) = decode_limited(input, 16);
        assert_eq!(items, vec![frame(None, Some("b"), None)]);
        assert_eq!(dropped, 1);
        assert_eq!(last_id, None);
        // Many data lines, each short, never ended by an empty line.
        let endless = b"data: 0123456789\n".repeat(100);
        let (items, dropped, _) = decode_limited(&endless, 64);
        assert_eq!(items, vec![]);
        assert_eq!(dropped, 1);
    }

    #[test]
    fn a_line_dropped_mid_chunk_skips_to_its_line_break() {
        let mut decoder = SseDecoder::with_max_event_size(8);
        assert_eq!(decoder.push(b"data: 0123"), vec![]);
        // Over the limit before its line break: dropped, the rest is skipped.
        assert_eq!(decoder.push(b"456789"), vec![]);
        assert_eq!(decoder.push(b"data: not a field\r"), vec![]);
        // The LF of the CRLF pair, then the empty line that ends the event.
        assert_eq!(decoder.push(b"\n\r\n"), vec![]);
        assert_eq!(
            decoder.push(b"data: ok\n\n"),
            vec![frame(None, Some("ok"), None)]
        );
        assert_eq!(decoder.oversized_events(), 1);
        assert!(
            decoder.carry.capacity() <= 8,
            "{}",
            decoder.carry.capacity()
        );
    }

    #[test]
    fn cr_cr_is_two_line_breaks() {
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.push(b"data: 1\r"), vec![]);
        assert_eq!(decoder.push(b"\r"), vec![frame(None, Some("1"), None)]);
    }

    #[test]
    fn bom_is_skipped_once() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFdata: x\n\n"),
            vec![frame(None, Some("x"), None)]
        );
        assert_eq!(
            decode_bytewise(b"\xEF\xBB\xBFdata: x\n\n"),
            vec![frame(None, Some("x"), None)]
        );
        assert_eq!(decode(b"\xEF\xBB\xBF\n: c\n"), vec![comment("c")]);
        // A second BOM is part of the field name, an unknown field.
        assert_eq!(decode(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"), vec![]);
        // Not at the start of the stream: not skipped.
        assert_eq!(decode(b"\n\xEF\xBB\xBFdata: x\n\n"), vec![]);
        // A lone BOM is nothing.
        assert_eq!(decode(b"\xEF\xBB\xBF"), vec![]);
    }

    #[test]
    fn id_updates_without_dispatch() {
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.last_event_id(), None);
        assert_eq!(decoder.push(b"id: 5\n\n"), vec![]);
        assert_eq!(decoder.last_event_id(), Some("5"));
        // An event without an id keeps the last id but has none itself.
        assert_eq!(
            decoder.push(b"data: x\n\n"),
            vec![frame(None, Some("x"), None)]
        );
        assert_eq!(decoder.last_event_id(), Some("5"));
        assert_eq!(
            decoder.push(b"data: y\nid: 6\n\n"),
            vec![frame(None, Some("y"), Some("6"))]
        );
        assert_eq!(decoder.last_event_id(), Some("6"));
        // The id is only committed by the empty line.
        assert_eq!(decoder.push(b"id: 7\n"), vec![]);
        assert_eq!(decoder.last_event_id(), Some("6"));
        assert_eq!(decoder.push(b"\n"), vec![]);
        assert_eq!(decoder.last_event_id(), Some("7"));
        // An id with NUL is ignored.
        assert_eq!(
            decoder.push(b"data: z\nid: 8\0\n\n"),
            vec![frame(None, Some("z"), None)]
        );
        assert_eq!(decoder.last_event_id(), Some("7"));
        // An empty id resets it.
        assert_eq!(
            decoder.push(b"data: w\nid\n\n"),
            vec![frame(None, Some("w"), Some(""))]
        );
        assert_eq!(decoder.last_event_id(), None);
    }

    #[test]
    fn retry_must_be_digits() {
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.push(b"retry: 1000\n\n"), vec![]);
        assert_eq!(decoder.retry(), Some(1000));
        for bad in [
            &b"retry: 10a\n"[..],
            b"retry: -5\n",
            b"retry: +5\n",
            b"retry:\n",
            b"retry:  5\n",
            b"retry: 99999999999999999999999\n",
        ] {
            assert_eq!(decoder.push(bad), vec![]);
            assert_eq!(decoder.retry(), Some(1000), "{bad:?}");
        }
        assert_eq!(
            decoder.push(b"\ndata: x\nretry: 20\n\n"),
            vec![SseItem::Frame(SseFrame {
                data: Some("x".into()),
                retry: Some(20),
                ..SseFrame::default()
            })]
        );
        assert_eq!(decoder.retry(), Some(20));
    }

    #[test]
    fn unknown_fields_ignored() {
        assert_eq!(
            decode(b"foo: bar\nevent: e\nEvent: f\ndata : x\nDATA: y\ndata: z\n\n"),
            vec![frame(Some("e"), Some("z"), None)]
        );
        assert_eq!(decode(b"foo: bar\n\n"), vec![]);
    }

    #[test]
    fn line_without_colon_is_field_with_empty_value() {
        assert_eq!(
            decode(b"data\ndata\n\n"),
            vec![frame(None, Some("\n"), None)]
        );
        assert_eq!(
            decode(b"event\ndata: x\n\n"),
            vec![frame(None, Some("x"), None)]
        );
        assert_eq!(
            decode(b"id\ndata: x\n\n"),
            vec![frame(None, Some("x"), Some(""))]
        );
    }

    #[test]
    fn event_without_data_is_dispatched() {
        assert_eq!(decode(b"event: e\n\n"), vec![frame(Some("e"), None, None)]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(
            decode(b"event: a\xFFb\ndata: \xE2\x82\ndata: ok\xC3\n: \xF0\x9F\n\n"),
            vec![
                comment("\u{FFFD}"),
                frame(Some("a\u{FFFD}b"), Some("\u{FFFD}\nok\u{FFFD}"), None),
            ]
        );
        // A multi-byte character split between chunks is not replaced.
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.push(b"data: \xE2\x82"), vec![]);
        assert_eq!(
            decoder.push(b"\xAC\n\n"),
            vec![frame(None, Some("\u{20AC}"), None)]
        );
    }

    #[test]
    fn finish_discards_incomplete_event_but_yields_comment() {
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.push(b"event: e\ndata: x\nid: 9\n"), vec![]);
        assert_eq!(decoder.finish(), vec![]);
        assert_eq!(decoder.last_event_id(), None);

        let mut decoder = SseDecoder::new();
        assert_eq!(
            decoder.push(b"data: x\n\n: bye"),
            vec![frame(None, Some("x"), None)]
        );
        assert_eq!(decoder.finish(), vec![comment("bye")]);

        // A final line without a line break is still processed.
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.push(b"retry: 5"), vec![]);
        assert_eq!(decoder.finish(), vec![]);
        assert_eq!(decoder.retry(), Some(5));

        // A trailing CR ends the line; finish adds nothing.
        let mut decoder = SseDecoder::new();
        assert_eq!(
            decoder.push(b"data: x\r\r"),
            vec![frame(None, Some("x"), None)]
        );
        assert_eq!(decoder.finish(), vec![]);
    }

    #[test]
    fn finish_resets_for_a_new_stream() {
        let mut decoder = SseDecoder::new();
        assert_eq!(
            decoder.push(b"id: 3\n\nretry: 7\n\ndata: partial\r"),
            vec![]
        );
        assert_eq!(decoder.finish(), vec![]);
        assert_eq!(decoder.last_event_id(), Some("3"));
        assert_eq!(decoder.retry(), Some(7));
        // The pending CR is forgotten: this LF is an empty line, and the
        // partial event is gone. A BOM is skipped again.
        assert_eq!(decoder.push(b"\n\xEF\xBB\xBFdata: y\n\n"), vec![]);
        assert_eq!(decoder.finish(), vec![]);
        assert_eq!(
            decoder.push(b"\xEF\xBB\xBFdata: y\n\n"),
            vec![frame(None, Some("y"), None)]
        );
    }

    #[test]
    fn find_eol_matches_naive_scan() {
        let naive = |hay: &[u8]| hay.iter().position(|&b| b == b'\r' || b == b'\n');
        let mut hay = vec![b'a'; 40];
        assert_eq!(find_eol(&hay), None);
        for at in 0..hay.len() {
            for eol in [b'\r', b'\n'] {
                hay[at] = eol;
                assert_eq!(find_eol(&hay), naive(&hay));
                assert_eq!(find_eol(&hay[at.min(3)..]), naive(&hay[at.min(3)..]));
                hay[at] = b'a';
            }
        }
        // Bytes that could trip the bit tricks: borrows, high bits, near values.
        let tricky: Vec<u8> = (0..=255u8).cycle().take(600).collect();
        for start in 0..16 {
            assert_eq!(find_eol(&tricky[start..]), naive(&tricky[start..]));
        }
        let noisy = [0x00, 0x01, 0x0B, 0x0C, 0x0E, 0x8A, 0x8D, 0xFF, 0x0D, 0x0A];
        for start in 0..noisy.len() {
            assert_eq!(find_eol(&noisy[start..]), naive(&noisy[start..]));
        }
        assert_eq!(
            find_eol(&[0x00, 0x0B, 0x0C, 0x8D, 0xFF, 0x0E, 0x09, 0x01, 0x0A]),
            Some(8)
        );
    }
}
