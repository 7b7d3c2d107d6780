//! Paths and queries: percent-encoding, and reading run locations from response headers.

use std::fmt::Write as _;
use uuid::Uuid;

/// Percent-encodes everything but RFC 3986 unreserved characters (`safe=""`, as the official
/// client encodes path parameters).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A path with a query string being built.
#[derive(Debug)]
pub(crate) struct PathQuery {
    text: String,
    has_query: bool,
}

impl PathQuery {
    pub(crate) fn new(path: impl Into<String>) -> Self {
        Self {
            text: path.into(),
            has_query: false,
        }
    }

    /// Appends `key=value`, the value percent-encoded.
    pub(crate) fn pair(mut self, key: &str, value: &str) -> Self {
        self.text.push(if self.has_query { '&' } else { '?' });
        self.has_query = true;
        self.text.push_str(key);
        self.text.push('=');
        self.text.push_str(&encode(value));
        self
    }

    /// Appends `key=value` when there is a value.
    pub(crate) fn maybe(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.pair(key, value),
            None => self,
        }
    }

    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// A run and its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunRef {
    /// The thread the run is on (a temporary one for stateless runs).
    pub thread_id: Uuid,
    /// The run.
    pub run_id: Uuid,
}

impl RunRef {
    /// The run's path: `/threads/{thread_id}/runs/{run_id}`.
    pub fn path(&self) -> String {
        format!("/threads/{}/runs/{}", self.thread_id, self.run_id)
    }

    /// Reads a `Location` or `Content-Location` value: an absolute URL or a path containing
    /// `/threads/{thread_id}/runs/{run_id}` (plus `/stream` or `/join`), as the official client
    /// does. A path without a thread (`/runs/{run_id}`) is not enough to reach the run again.
    pub fn from_location(location: &str) -> Option<Self> {
        let path = location.split(['?', '#']).next().unwrap_or_default();
        let at = path.rfind("/threads/")?;
        let mut segments = path[at + "/threads/".len()..].split('/');
        let thread_id = Uuid::parse_str(segments.next()?).ok()?;
        if segments.next()? != "runs" {
            return None;
        }
        let run_id = Uuid::parse_str(segments.next()?).ok()?;
        Some(Self { thread_id, run_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_official_client() {
        assert_eq!(encode("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(encode("a b/c?d&é"), "a%20b%2Fc%3Fd%26%C3%A9");
        let path = PathQuery::new("/store/items")
            .pair("namespace", "a.b")
            .maybe("x", None)
            .pair("key", "k&1")
            .finish();
        assert_eq!(path, "/store/items?namespace=a.b&key=k%261");
    }

    #[test]
    fn reads_locations() {
        let thread = Uuid::now_v7();
        let run = Uuid::now_v7();
        let expected = Some(RunRef {
            thread_id: thread,
            run_id: run,
        });
        for location in [
            format!("/threads/{thread}/runs/{run}"),
            format!("/threads/{thread}/runs/{run}/stream"),
            format!("/threads/{thread}/runs/{run}/join?x=1"),
            format!("https://host/prefix/threads/{thread}/runs/{run}/stream"),
        ] {
            assert_eq!(RunRef::from_location(&location), expected, "{location}");
        }
        assert_eq!(RunRef::from_location(&format!("/runs/{run}")), None);
        assert_eq!(RunRef::from_location("/threads/x/runs/y"), None);
        assert_eq!(
            expected.map(|r| r.path()),
            Some(format!("/threads/{thread}/runs/{run}"))
        );
    }
}
