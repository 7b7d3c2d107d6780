//! `errand chat`: the supervisor in the terminal.
//!
//! The user talks to a supervisor model that hands long work to background subagents. While
//! tasks run, a status line above the prompt shows each one; when one ends, a notice is printed
//! at once and, as soon as the supervisor is free, it gets a turn of its own to react, so the
//! user never has to ask. Start, update and cancel ask the user first unless `--yes`.
//!
//! Three threads of control meet in one async loop ([`Chat::run`]):
//! - the line editor (rustyline, blocking) on its own thread, asked for one line at a time
//!   ([`reader`]);
//! - the printing thread, which draws messages and the status line above the prompt without
//!   breaking the line being typed ([`screen`]);
//! - the supervisor's turns, each a tokio task that owns the supervisor while it runs: the
//!   supervisor is one conversation, so turns never overlap, and what comes in meanwhile (the
//!   user's words, notices) waits in a queue.
//!
//! An approval is asked from inside a turn (the tool awaits the approver), so the approver
//! sends the question to the loop, which reads the answer with the line editor and sends it
//! back.
//!
//! [`run`] sets the chat up in steps ([`setup`]): the config and the model, the screen, the
//! supervisor, the greeting, the Ctrl-C handler and the line editor; then the loop
//! ([`event_loop`]) runs until the user leaves. What the chat writes about approvals and tasks
//! is in [`text`].

mod event_loop;
mod reader;
mod screen;
mod setup;
mod tasks;
mod text;

use crate::agents;
use crate::config::Config;
use crate::supervisor::{self, Supervisor};
use anyhow::Context;
use errand::middleware::{Approval, ApprovalRequest, TaskEvent, TaskStatus};
use event_loop::Chat;
use reader::{ReadResult, Reader};
use rustyline::DefaultEditor;
use screen::Screen;
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

const AFTER_HELP: &str = "\
In the chat:
  Type a request and press Enter. The supervisor answers, and hands long work to background
  subagents: it gets a task id at once and keeps talking with you while the task runs.

  While tasks run, a status line above the prompt shows each one: agent, task id, status and
  time running. When a task ends, a notice is printed at once, and the supervisor reacts to it
  by itself as soon as it is free: you don't need to ask.

  Unless --yes, starting, updating or cancelling a task asks first:
    approve start of `researcher` task: <description>? [y/N]
  Answer y to go ahead, or n (optionally followed by a reason the supervisor will read).

  /tasks        list every task with its status
  /help         show this help
  /quit, Ctrl-D leave (tasks hosted by this chat stop with it)
  Ctrl-C        cancel the supervisor's turn in progress; at an empty prompt, does nothing

The model: ERRAND_MODEL, else the config's [model], else ANTHROPIC_API_KEY or OPENAI_API_KEY
from the environment (OPENAI_BASE_URL for a local OpenAI-compatible server). The chat says which
model it uses when it starts, and what to set when there is none.

Subagents: the config's [async_subagents.NAME] tables (Deep Agents CLI keys: description,
graph_id, url, headers); without a url they run in this process, on the config's [agents.NAME]
or the built-in `echo` graph. With no config, or one without agents, the chat hosts the
built-in `echo` subagent so you can try it: ask it to research something and say it should
start with `sleep=5`.

Lines you type are kept in $XDG_DATA_HOME/errand/history (~/.local/share/errand/history), or in
.errand_history when there is no home directory; --history picks the file, --no-history keeps
none.";

/// Flags of `errand chat`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ChatArgs {
    // The help names TOML tables in brackets; clap prints the comment as written, so the
    // brackets stay, and are not links.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The config file (errand.toml): [model], [agents.NAME], [async_subagents.NAME]. Without
    /// one, the model comes from the environment and the built-in `echo` subagent is hosted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The SQLite file of the in-process server that runs the local subagents (made if missing).
    #[arg(long, default_value = "errand.db")]
    db: PathBuf,
    /// Approve every start, update and cancel without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Keep no history of the lines typed.
    #[arg(long, conflicts_with = "history")]
    no_history: bool,
    /// The history file.
    #[arg(long, env = "ERRAND_HISTORY")]
    history: Option<PathBuf>,
}

/// What reaches the chat's loop.
#[derive(Debug)]
enum Event {
    /// The line editor's answer.
    Read(ReadResult),
    /// A task changed status.
    Notice(TaskEvent),
    /// A live read of a local task's run.
    Live {
        task_id: Uuid,
        run_id: Uuid,
        status: TaskStatus,
    },
    /// The supervisor asks before it acts.
    Approval(ApprovalRequest, oneshot::Sender<Approval>),
    /// SIGINT, while the line editor is not reading (it reads Ctrl-C as a key).
    Interrupt,
}

/// Runs `errand chat`.
pub(crate) async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let model_config = supervisor::model_config(&config)?;
    let model = agents::model(&model_config)
        .with_context(|| format!("the supervisor's model `{}`", model_config.name))?;

    let mut editor = DefaultEditor::new().context("starting the line editor")?;
    // Not a terminal (input piped in): plain lines out, no status line.
    let screen = Screen::start(editor.create_external_printer().ok());
    let (events_tx, events) = mpsc::unbounded_channel();

    let builtin_echo = setup::hosts_echo(&config);
    let options = setup::supervisor_options(&args, &model_config, model, builtin_echo, &events_tx);
    let supervisor = Supervisor::start(&config, options).await?;
    screen.say(setup::greeting(
        &args,
        &config,
        &model_config,
        &supervisor,
        builtin_echo,
    ));

    let live = setup::live_reads(&supervisor);
    // The SIGINT handler goes in before the line editor first takes the terminal: the editor
    // saves the signal dispositions it finds and puts them back after each line, so a handler
    // installed later would be undone and the next Ctrl-C during a turn would end the chat.
    setup::spawn_interrupts(events_tx.clone())?;
    let reader = Reader::start(
        editor,
        setup::history(&args),
        screen.clone(),
        events_tx.clone(),
    )
    .context("starting the line editor")?;
    Chat::new(supervisor, screen, reader, events_tx, live)
        .run(events)
        .await
}
