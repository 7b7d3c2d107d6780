//! The incremental decoder: bytes in, [`SseItem`]s out, within a bound on what it keeps.

use super::{SseFrame, SseItem, find_eol};

/// The UTF-8 byte order mark, skipped at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

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

    /// What the buffer of the unfinished line holds room for, so the tests can check that a
    /// dropped line gives its memory back.
    #[cfg(test)]
    pub(super) fn carry_capacity(&self) -> usize {
        self.carry.capacity()
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
