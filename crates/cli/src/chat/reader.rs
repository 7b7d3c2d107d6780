//! The line editor on a thread of its own: rustyline's `readline` blocks, so it runs here and
//! the chat's async loop asks for one line at a time (with the prompt it needs: the user's, or
//! an approval question) and gets each answer back as an event.

use super::Event;
use super::screen::Screen;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use std::path::PathBuf;
use std::sync::mpsc;
use tokio::sync::mpsc::UnboundedSender;

/// What one `readline` gave.
#[derive(Debug)]
pub(super) enum ReadResult {
    /// A line (without its newline).
    Line(String),
    /// Ctrl-C.
    Interrupted,
    /// Ctrl-D on an empty line, or the end of the input.
    Eof,
    /// The terminal failed.
    Failed(String),
}

/// One request for a line.
struct ReadRequest {
    prompt: String,
    /// Whether the line goes into the history (the user's words do, approvals don't).
    remember: bool,
}

/// The handle of the reading thread.
#[derive(Debug)]
pub(super) struct Reader {
    requests: mpsc::Sender<ReadRequest>,
}

impl Reader {
    /// Starts the thread; each line read is sent to `events`. `history`, when set, is loaded
    /// now and saved after each remembered line.
    pub(super) fn start(
        mut editor: DefaultEditor,
        history: Option<PathBuf>,
        screen: Screen,
        events: UnboundedSender<Event>,
    ) -> anyhow::Result<Self> {
        if let Some(path) = &history {
            // A first run has no history file yet; a broken one only costs the old lines.
            let _ = editor.load_history(path);
        }
        let (requests, incoming) = mpsc::channel::<ReadRequest>();
        std::thread::Builder::new()
            .name("errand-chat-reader".into())
            .spawn(move || {
                for request in incoming {
                    if let Some((columns, _)) = editor.dimensions() {
                        screen.set_columns(usize::from(columns));
                    }
                    let result = match editor.readline(&request.prompt) {
                        Ok(line) => {
                            if request.remember && !line.trim().is_empty() {
                                let _ = editor.add_history_entry(line.as_str());
                                if let Some(path) = &history {
                                    // Saved at once: the chat may end by a signal, and a
                                    // lost history is not worth a message in the chat.
                                    let _ = editor.save_history(path);
                                }
                            }
                            ReadResult::Line(line)
                        }
                        Err(ReadlineError::Interrupted) => ReadResult::Interrupted,
                        Err(ReadlineError::Eof) => ReadResult::Eof,
                        Err(error) => ReadResult::Failed(error.to_string()),
                    };
                    // First the screen learns that the prompt row is taken, then the loop
                    // hears of the line: what the loop prints about it comes below it.
                    screen.accepted();
                    if events.send(Event::Read(result)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self { requests })
    }

    /// Asks for one line with `prompt`.
    pub(super) fn read(&self, prompt: impl Into<String>, remember: bool) {
        // The thread ends only when the chat does, and then nobody waits for the line.
        let _ = self.requests.send(ReadRequest {
            prompt: prompt.into(),
            remember,
        });
    }
}
