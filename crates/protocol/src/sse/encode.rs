//! Building frames and writing them, and comments, in the server's exact framing (see the
//! [module docs](crate::sse)).

use super::{SseFrame, find_eol};
use std::fmt::Write as _;

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
    /// since SSE cannot carry them (see the [module docs](crate::sse)).
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
/// per line, so the decoder yields one [`SseItem::Comment`](super::SseItem::Comment) per line.
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
