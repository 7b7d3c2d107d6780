//! Everything `errand chat` prints, from one thread: messages above the prompt, and the status
//! line that stays just above it and is rewritten in place.
//!
//! Printing goes through rustyline's `ExternalPrinter` when the terminal is a tty: while a line
//! is being typed, rustyline clears its prompt, prints the message, and redraws the prompt with
//! the half-typed line, so nothing the user types is broken. The status line is rewritten in
//! place by starting the next print with "cursor up one row, clear it": that is only done while
//! the row above the prompt is known to be the status line, and the reader thread says when a
//! finished line (the user's) took that place.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Up one row, to its start, and clear it: the status line printed last.
const OVER_STATUS: &str = "\x1b[1A\r\x1b[2K";

/// How long a status line that became empty stays up, in case a message comes to take its
/// row (a notice usually does): rewriting it as an empty row would leave a blank line.
const CLEAR_GRACE: Duration = Duration::from_millis(150);

/// What the printing thread is asked to do.
enum Paint {
    /// A message, printed above the prompt (and above the status line).
    Say(String),
    /// The status line's new text; `None` removes it.
    Status(Option<String>),
    /// A line was entered: the row above the prompt is the user's line now, not the status.
    Accepted,
}

/// The chat's output. Cheap to clone; every clone prints through the same thread, in order.
#[derive(Debug, Clone)]
pub(super) struct Screen {
    /// The printing thread; `None` if it could not be started, and then messages are written
    /// to stdout from the caller's thread.
    paint: Option<mpsc::Sender<Paint>>,
    /// Whether it is a terminal: the status line is only drawn on one.
    live: bool,
    /// The terminal's width, kept up to date by the reader; the status line is cut to it so
    /// that it never wraps (a wrapped line could not be rewritten in place).
    columns: Arc<AtomicUsize>,
}

impl Screen {
    /// Starts the printing thread. Without a printer (not a terminal) messages go to stdout
    /// as plain lines and there is no status line.
    pub(super) fn start<P>(printer: Option<P>) -> Self
    where
        P: rustyline::ExternalPrinter + Send + 'static,
    {
        let (paint, requests) = mpsc::channel();
        let live = printer.is_some();
        let columns = Arc::new(AtomicUsize::new(80));
        let width = Arc::clone(&columns);
        let started = std::thread::Builder::new()
            .name("errand-chat-screen".into())
            .spawn(move || paint_loop(printer, &requests, &width));
        Self {
            paint: started.ok().map(|_| paint),
            live,
            columns,
        }
    }

    /// Prints `text` above the prompt.
    pub(super) fn say(&self, text: impl Into<String>) {
        let text = text.into();
        match &self.paint {
            // The thread ends only with the process, so a send does not fail.
            Some(paint) => drop(paint.send(Paint::Say(text))),
            None => write_plain(&text),
        }
    }

    /// Sets the status line (on a terminal only).
    pub(super) fn status(&self, text: Option<String>) {
        if let Some(paint) = self.paint.as_ref().filter(|_| self.live) {
            drop(paint.send(Paint::Status(text)));
        }
    }

    /// Says that the user's line now sits above the prompt.
    pub(super) fn accepted(&self) {
        if let Some(paint) = &self.paint {
            drop(paint.send(Paint::Accepted));
        }
    }

    /// Records the terminal's width.
    pub(super) fn set_columns(&self, columns: usize) {
        self.columns.store(columns.max(20), Ordering::Relaxed);
    }

    /// Whether the status line is drawn.
    pub(super) fn is_live(&self) -> bool {
        self.live && self.paint.is_some()
    }
}

fn paint_loop<P: rustyline::ExternalPrinter>(
    mut printer: Option<P>,
    requests: &mpsc::Receiver<Paint>,
    columns: &AtomicUsize,
) {
    // Whether the row just above the prompt is the status line we printed last.
    let mut shown = false;
    let mut status: Option<String> = None;
    // The status became empty and its row waits to be cleared (see `CLEAR_GRACE`).
    let mut clearing = false;
    let mut emit = |text: String| match printer.as_mut() {
        Some(printer) => {
            if printer.print(text.clone()).is_err() {
                write_plain(&text);
            }
        }
        None => write_plain(&text),
    };
    loop {
        let request = if clearing {
            match requests.recv_timeout(CLEAR_GRACE) {
                Ok(request) => request,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    clearing = false;
                    if shown {
                        shown = false;
                        emit(format!("{OVER_STATUS}\n"));
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match requests.recv() {
                Ok(request) => request,
                Err(_) => return,
            }
        };
        let width = columns.load(Ordering::Relaxed).saturating_sub(1);
        match request {
            Paint::Say(text) => {
                let mut out = String::from(if shown { OVER_STATUS } else { "" });
                out.push_str(text.trim_end_matches('\n'));
                out.push('\n');
                if let Some(line) = &status {
                    out.push_str(&cut(line, width));
                    out.push('\n');
                }
                shown = status.is_some();
                clearing = false;
                emit(out);
            }
            Paint::Status(next) => {
                if next == status {
                    continue;
                }
                status = next;
                match &status {
                    Some(line) => {
                        let over = if shown { OVER_STATUS } else { "" };
                        emit(format!("{over}{}\n", cut(line, width)));
                        shown = true;
                        clearing = false;
                    }
                    None => clearing = shown,
                }
            }
            Paint::Accepted => shown = false,
        }
    }
}

/// `line` cut to `width` characters, with an ellipsis when cut.
fn cut(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(width.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

fn write_plain(text: &str) {
    let mut out = std::io::stdout().lock();
    // stdout gone (a closed pipe) leaves nothing to report to.
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A printer that keeps what it was given.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl rustyline::ExternalPrinter for Recorder {
        fn print(&mut self, msg: String) -> rustyline::Result<()> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(msg);
            Ok(())
        }
    }

    impl Recorder {
        /// The prints so far, once `done` holds for them (a bounded wait: the printing
        /// thread runs on its own).
        fn wait_until(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
            for _ in 0..500 {
                let printed = self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if done(&printed) {
                    return printed;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("the screen never printed what was expected");
        }

        fn wait_for(&self, count: usize) -> Vec<String> {
            self.wait_until(|printed| printed.len() >= count)
        }
    }

    #[test]
    fn the_status_line_is_rewritten_in_place_and_stays_under_messages() {
        let recorder = Recorder::default();
        let screen = Screen::start(Some(recorder.clone()));
        screen.set_columns(200);
        screen.status(Some("[tasks] echo 1s".into()));
        screen.status(Some("[tasks] echo 2s".into()));
        // The same status again prints nothing.
        screen.status(Some("[tasks] echo 2s".into()));
        screen.say("supervisor: hi");
        screen.accepted();
        screen.status(Some("[tasks] echo 3s".into()));
        let printed = recorder.wait_for(4);
        assert_eq!(
            printed[..4],
            [
                "[tasks] echo 1s\n",
                "\x1b[1A\r\x1b[2K[tasks] echo 2s\n",
                "\x1b[1A\r\x1b[2Ksupervisor: hi\n[tasks] echo 2s\n",
                // After the user's line, the status starts a row of its own.
                "[tasks] echo 3s\n",
            ]
        );
        // An emptied status gives its row to the message that follows (or, if none comes
        // soon, is cleared first): either way no status is printed under the message.
        screen.status(None);
        screen.say("[task 1 echo] success");
        let printed = recorder.wait_until(|printed| printed.iter().any(|p| p.contains("success")));
        assert!(
            printed[4..]
                .last()
                .is_some_and(|last| last.ends_with("[task 1 echo] success\n")),
            "{printed:?}"
        );
        // Emptied with nothing to follow: the row is cleared after a moment.
        let before = printed.len();
        screen.status(Some("[tasks] echo 4s".into()));
        screen.status(None);
        let printed = recorder.wait_for(before + 2);
        assert_eq!(
            printed[before..],
            ["[tasks] echo 4s\n", "\x1b[1A\r\x1b[2K\n"]
        );
    }

    #[test]
    fn a_status_line_is_cut_to_the_terminal() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("a longer status line", 10), "a longe...");
        assert_eq!(cut("ééééé", 5), "ééééé");
    }
}
