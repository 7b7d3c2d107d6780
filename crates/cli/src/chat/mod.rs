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

mod reader;
mod screen;
mod tasks;

use crate::agents;
use crate::config::Config;
use crate::supervisor::{self, Options, Supervisor};
use anyhow::Context;
use errand::client::Client;
use errand::middleware::{
    Action, Approval, ApprovalRequest, Approver, Settings, TaskEvent, TaskStatus, board,
};
use errand::server::graphs::Echo;
use reader::{ReadResult, Reader};
use rustyline::DefaultEditor;
use screen::Screen;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tasks::{Tasks, first_line, short};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The user's prompt.
const PROMPT: &str = "you> ";

/// What the built-in `echo` subagent is, as the supervisor's model reads it.
const ECHO_DESCRIPTION: &str = "A test subagent: it answers with the task's description. A \
description starting with `sleep=<seconds>` makes it wait that long first (e.g. `sleep=5 \
research tides`), and `fail=<text>` makes it fail.";

/// How long quitting waits for a cancelled turn to give the supervisor back.
const QUIT_WAIT: Duration = Duration::from_secs(5);

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

    let builtin_echo = config.agents.is_empty() && config.async_subagents.is_empty();
    let notices = events_tx.clone();
    let options = Options {
        model,
        settings: agents::settings(&model_config),
        extra_graphs: if builtin_echo {
            vec![("echo".into(), Arc::new(Echo), ECHO_DESCRIPTION.into())]
        } else {
            Vec::new()
        },
        db: args.db.clone(),
        middleware: Settings::default(),
        approver: (!args.yes).then(|| approver(events_tx.clone())),
        on_notice: Some(Arc::new(move |_thread: Uuid, event: &TaskEvent| {
            // The loop may be gone while a watcher ends: nobody is left to tell.
            let _ = notices.send(Event::Notice(event.clone()));
        })),
        summarize_after_tokens: 60_000,
    };
    let supervisor = Supervisor::start(&config, options).await?;

    let mut hello = format!("errand chat: supervisor model {}", model_config.name);
    if let Some(url) = &model_config.base_url {
        hello.push_str(&format!(" at {url}"));
    }
    let subagents: Vec<String> = supervisor
        .middleware
        .subagents()
        .iter()
        .map(|spec| match &spec.url {
            Some(url) => format!("{} ({url})", spec.name),
            None => format!("{} (in this process)", spec.name),
        })
        .collect();
    hello.push_str(&format!("\nsubagents: {}", subagents.join(", ")));
    if builtin_echo {
        hello.push_str(
            "\nno agents in the config, so the built-in `echo` subagent is hosted: it echoes a \
             task back, after `sleep=N` seconds if asked. Add [agents.NAME] or \
             [async_subagents.NAME] tables to errand.toml for real ones.",
        );
    }
    if args.yes {
        hello.push_str("\nstarts, updates and cancels are approved without asking (--yes)");
    }
    if let (Some(path), false) = (&args.config, config.skipped.is_empty()) {
        hello.push_str(&format!(
            "\n{}: skipped tables errand does not read: {}",
            path.display(),
            config.skipped.join(", ")
        ));
    }
    hello.push_str("\n/help for help, /tasks lists tasks, /quit or Ctrl-D leaves.");
    screen.say(hello);

    let live = supervisor.server.as_ref().and_then(|server| {
        let local: HashSet<String> = supervisor
            .middleware
            .subagents()
            .iter()
            .filter(|spec| spec.url.is_none())
            .map(|spec| spec.name.clone())
            .collect();
        Client::in_process(server.router())
            .ok()
            .map(|client| (client, local))
    });
    // The SIGINT handler goes in before the line editor first takes the terminal: the editor
    // saves the signal dispositions it finds and puts them back after each line, so a handler
    // installed later would be undone and the next Ctrl-C during a turn would end the chat.
    spawn_interrupts(events_tx.clone())?;
    let history = (!args.no_history).then(|| args.history.clone().unwrap_or_else(history_file));
    let reader = Reader::start(editor, history, screen.clone(), events_tx.clone())
        .context("starting the line editor")?;

    let chat = Chat {
        supervisor: Some(supervisor),
        turn: None,
        queue: VecDeque::new(),
        approvals: VecDeque::new(),
        reading: None,
        tasks: Tasks::default(),
        screen,
        reader,
        events: events_tx,
        live,
    };
    chat.run(events).await
}

/// The approver: sends each request to the chat's loop and waits for the user's answer.
fn approver(events: mpsc::UnboundedSender<Event>) -> Approver {
    Arc::new(move |request: ApprovalRequest| {
        let events = events.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            if events.send(Event::Approval(request, reply)).is_err() {
                return Approval::Reject(Some("the chat is closing".into()));
            }
            answer
                .await
                .unwrap_or_else(|_| Approval::Reject(Some("the user did not answer".into())))
        })
    })
}

/// Forwards SIGINT to the loop instead of ending the process: while the line editor reads,
/// the terminal is raw and Ctrl-C is a key; while a turn runs it is a signal, and cancels it.
fn spawn_interrupts(events: mpsc::UnboundedSender<Event>) -> anyhow::Result<()> {
    // Registered here, not in the task: the handler is in place when this returns.
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("handling Ctrl-C")?;
    tokio::spawn(async move {
        while interrupts.recv().await.is_some() {
            if events.send(Event::Interrupt).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Where the history is kept: the user's data folder, else the working folder.
fn history_file() -> PathBuf {
    let data = supervisor::env("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| supervisor::env("HOME").map(|home| PathBuf::from(home).join(".local/share")));
    match data {
        Some(data) if std::fs::create_dir_all(data.join("errand")).is_ok() => {
            data.join("errand").join("history")
        }
        _ => PathBuf::from(".errand_history"),
    }
}

/// Something the supervisor is to take a turn on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    /// The user's words.
    User(String),
    /// Notices wait: a turn without user input, so the supervisor reacts to them.
    Wake,
}

/// A turn in progress.
struct Turn {
    handle: JoinHandle<(Supervisor, anyhow::Result<String>)>,
    cancel: CancellationToken,
    /// Whether the user is waiting on it (a wake-up turn runs while the prompt stays up).
    user: bool,
}

/// What the line editor is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Prompt,
    Approval,
}

/// An approval waiting for the user.
struct PendingApproval {
    request: ApprovalRequest,
    reply: oneshot::Sender<Approval>,
}

/// What woke the loop.
enum Step {
    Event(Option<Event>),
    /// Boxed: a supervisor is large, and the other steps are small.
    TurnEnded(Box<Result<(Supervisor, anyhow::Result<String>), JoinError>>),
    Tick,
}

/// The chat's state, owned by its loop.
struct Chat {
    /// The supervisor, when no turn holds it.
    supervisor: Option<Supervisor>,
    turn: Option<Turn>,
    /// What waits for the supervisor to be free.
    queue: VecDeque<Input>,
    /// Approvals waiting for an answer, the first one asked now.
    approvals: VecDeque<PendingApproval>,
    /// The line editor's current read, if any.
    reading: Option<Reading>,
    tasks: Tasks,
    screen: Screen,
    reader: Reader,
    events: mpsc::UnboundedSender<Event>,
    /// A client of the in-process server and the subagents it hosts, to read live statuses.
    live: Option<(Client, HashSet<String>)>,
}

impl Chat {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.next_turn();
            self.ensure_reading();
            let step = {
                let turn = self.turn.as_mut().map(|turn| &mut turn.handle);
                tokio::select! {
                    event = events.recv() => Step::Event(event),
                    ended = async {
                        match turn {
                            Some(handle) => handle.await,
                            None => std::future::pending().await,
                        }
                    } => Step::TurnEnded(Box::new(ended)),
                    _ = tick.tick() => Step::Tick,
                }
            };
            let go_on = match step {
                Step::Event(None) => false,
                Step::Event(Some(event)) => self.on_event(event)?,
                Step::TurnEnded(ended) => {
                    self.turn_ended(*ended)?;
                    true
                }
                Step::Tick => {
                    self.refresh();
                    true
                }
            };
            if !go_on {
                break;
            }
        }
        self.quit().await;
        Ok(())
    }

    /// Starts the next queued turn when the supervisor is free.
    fn next_turn(&mut self) {
        while self.turn.is_none() {
            let Some(input) = self.queue.pop_front() else {
                return;
            };
            let Some(mut supervisor) = self.supervisor.take() else {
                self.queue.push_front(input);
                return;
            };
            if input == Input::Wake && supervisor.pending_notices() == 0 {
                // An earlier turn read the notices already and reacted to them.
                self.supervisor = Some(supervisor);
                continue;
            }
            let cancel = CancellationToken::new();
            let token = cancel.clone();
            let user = matches!(input, Input::User(_));
            let handle = tokio::spawn(async move {
                let text = match &input {
                    Input::User(text) => Some(text.as_str()),
                    Input::Wake => None,
                };
                let result = supervisor.turn_until(text, token).await;
                (supervisor, result)
            });
            self.turn = Some(Turn {
                handle,
                cancel,
                user,
            });
        }
    }

    /// Asks the line editor for a line when none is being read and one is wanted: an
    /// approval's answer, or the user's next words unless a turn of theirs is running (then the
    /// terminal stays theirs to read the answer, and Ctrl-C cancels the turn).
    fn ensure_reading(&mut self) {
        if self.reading.is_some() {
            return;
        }
        self.approvals.retain(|pending| !pending.reply.is_closed());
        if let Some(pending) = self.approvals.front() {
            self.reader.read(approval_prompt(&pending.request), false);
            self.reading = Some(Reading::Approval);
        } else if !self.turn.as_ref().is_some_and(|turn| turn.user) {
            self.reader.read(PROMPT, true);
            self.reading = Some(Reading::Prompt);
        }
    }

    /// Handles one event; false to leave.
    fn on_event(&mut self, event: Event) -> anyhow::Result<bool> {
        match event {
            Event::Read(result) => {
                let reading = self.reading.take();
                return self.on_read(reading, result);
            }
            Event::Notice(event) => {
                self.tasks.notice(&event);
                self.refresh();
                self.screen.say(notice_line(&event));
                if !self.queue.contains(&Input::Wake) {
                    self.queue.push_back(Input::Wake);
                }
            }
            Event::Live {
                task_id,
                run_id,
                status,
            } => self.tasks.observe(task_id, run_id, status),
            Event::Approval(request, reply) => {
                let mut question = format!("approval needed: {}", describe(&request));
                if self.reading == Some(Reading::Prompt) {
                    // The prompt is up already (a turn the user is not waiting on): the next
                    // line they enter answers.
                    question.push_str("\nanswer y or n (n <reason> to say why) at the prompt");
                }
                self.screen.say(question);
                self.approvals.push_back(PendingApproval { request, reply });
            }
            Event::Interrupt => match &self.turn {
                Some(turn) => {
                    turn.cancel.cancel();
                    self.screen.say("(cancelling the supervisor's turn)");
                }
                None => return Ok(false),
            },
        }
        Ok(true)
    }

    /// Handles a line, Ctrl-C or Ctrl-D from the editor; false to leave.
    fn on_read(&mut self, reading: Option<Reading>, result: ReadResult) -> anyhow::Result<bool> {
        self.approvals.retain(|pending| !pending.reply.is_closed());
        let answering = reading == Some(Reading::Approval) || !self.approvals.is_empty();
        match result {
            ReadResult::Failed(error) => anyhow::bail!("reading the terminal: {error}"),
            ReadResult::Eof => {
                self.answer(Approval::Reject(Some("the user left the chat".into())));
                return Ok(false);
            }
            ReadResult::Interrupted if answering => {
                self.answer(Approval::Reject(Some("the user declined (Ctrl-C)".into())));
            }
            ReadResult::Interrupted => match &self.turn {
                Some(turn) => {
                    turn.cancel.cancel();
                    self.screen.say("(cancelling the supervisor's turn)");
                }
                None => self.screen.say("(/quit or Ctrl-D to leave)"),
            },
            ReadResult::Line(line) if answering => match parse_approval(&line) {
                Some(approval) => self.answer(approval),
                None => {
                    // Words for the supervisor typed as the question came up: kept for it.
                    self.queue.push_back(Input::User(line.trim().to_owned()));
                    self.screen.say(
                        "(kept as a message for the supervisor; the approval still waits: y or n)",
                    );
                }
            },
            ReadResult::Line(line) => return Ok(self.on_line(line.trim())),
        }
        Ok(true)
    }

    /// The user's words or a command; false to leave.
    fn on_line(&mut self, line: &str) -> bool {
        match line {
            "" => {}
            "/quit" | "/exit" | "/q" => return false,
            "/help" | "/?" => self.screen.say(AFTER_HELP),
            "/tasks" => self.screen.say(self.tasks.table(chrono::Utc::now())),
            command if command.starts_with('/') => self.screen.say(format!(
                "unknown command {command}: /tasks, /help, /quit (a line starting with // is sent as /...)"
            )),
            words => {
                let words = words.strip_prefix('/').unwrap_or(words);
                if self.turn.is_some() {
                    self.screen
                        .say("(the supervisor is busy; it reads this next)");
                }
                self.queue.push_back(Input::User(words.to_owned()));
            }
        }
        true
    }

    /// Sends the answer to the approval asked first.
    fn answer(&mut self, approval: Approval) {
        if let Some(pending) = self.approvals.pop_front() {
            // The turn that asked may have been cancelled meanwhile.
            let _ = pending.reply.send(approval);
        }
    }

    /// A turn ended: prints its answer and takes the supervisor back.
    fn turn_ended(
        &mut self,
        ended: Result<(Supervisor, anyhow::Result<String>), JoinError>,
    ) -> anyhow::Result<()> {
        let turn = self.turn.take();
        let (supervisor, result) =
            ended.map_err(|error| anyhow::anyhow!("the supervisor's turn failed: {error}"))?;
        self.tasks.set_board(board(&supervisor.state.channels));
        if supervisor.pending_notices() > 0 && !self.queue.contains(&Input::Wake) {
            self.queue.push_back(Input::Wake);
        }
        self.supervisor = Some(supervisor);
        // Questions from the turn that nobody answered have lost their asker.
        self.approvals.retain(|pending| !pending.reply.is_closed());
        self.refresh();
        let cancelled = turn.is_some_and(|turn| turn.cancel.is_cancelled());
        match result {
            Ok(answer) if answer.trim().is_empty() => self.screen.say("supervisor: (no answer)"),
            Ok(answer) => self.screen.say(format!("supervisor: {}", answer.trim())),
            Err(_) if cancelled => self.screen.say("(turn cancelled)"),
            Err(error) => self.screen.say(format!("error: {error:#}")),
        }
        Ok(())
    }

    /// Redraws the status line, and reads the live status of local tasks for the next one.
    fn refresh(&self) {
        if !self.screen.is_live() {
            return;
        }
        self.screen
            .status(self.tasks.status_line(chrono::Utc::now()));
        let Some((client, local)) = &self.live else {
            return;
        };
        for task in self.tasks.unfinished() {
            let (thread_id, run_id) = (task.thread_id, task.run_id);
            if !local.contains(&task.agent_name) {
                continue;
            }
            let client = client.clone();
            let events = self.events.clone();
            let task_id = task.task_id;
            tokio::spawn(async move {
                if let Ok(run) = client.runs().get(thread_id, run_id).await {
                    let _ = events.send(Event::Live {
                        task_id,
                        run_id,
                        status: TaskStatus::observe(run.status, None),
                    });
                }
            });
        }
    }

    /// Leaves: cancels a running turn, and stops the watchers and the local server.
    async fn quit(mut self) {
        self.approvals.clear();
        let unfinished = self.tasks.unfinished().count();
        if let Some(turn) = self.turn.take() {
            turn.cancel.cancel();
            if let Ok(Ok((supervisor, _))) = tokio::time::timeout(QUIT_WAIT, turn.handle).await {
                self.supervisor = Some(supervisor);
            }
        }
        self.screen.status(None);
        if unfinished > 0 {
            self.screen.say(format!(
                "{unfinished} task(s) still running; those hosted by this chat stop with it"
            ));
        }
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.stop().await;
        }
        self.screen.say("bye");
        // Let the printing thread write the last lines before the process ends.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What an approval request is about, in a sentence.
fn describe(request: &ApprovalRequest) -> String {
    let mut text = format!("{} of `{}` task", request.action, request.agent_name);
    if let Some(task) = &request.task_id {
        text.push_str(&format!(" {}", short(task)));
    }
    if let Some(words) = &request.text {
        let label = match request.action {
            Action::Update => "new instructions",
            _ => "description",
        };
        text.push_str(&format!("\n  {label}: {}", words.trim()));
    }
    text
}

/// The question the approval prompt asks.
fn approval_prompt(request: &ApprovalRequest) -> String {
    let mut prompt = format!(
        "approve {} of `{}` task",
        request.action, request.agent_name
    );
    if let Some(words) = request.text.as_deref().map(first_line) {
        let words: String = if words.chars().count() > 60 {
            words.chars().take(57).chain("...".chars()).collect()
        } else {
            words
        };
        prompt.push_str(&format!(": {words}"));
    } else if let Some(task) = &request.task_id {
        prompt.push_str(&format!(" {}", short(task)));
    }
    prompt.push_str("? [y/N] ");
    prompt
}

/// Reads an answer to an approval: y/yes approves; n/no or nothing refuses, with the words
/// after it as the reason. `None` when it is neither.
fn parse_approval(line: &str) -> Option<Approval> {
    let line = line.trim();
    let (word, rest) = line
        .split_once(|c: char| c.is_whitespace() || c == ',' || c == ':')
        .unwrap_or((line, ""));
    let reason = rest.trim_start_matches([',', ':']).trim().to_owned();
    match word.to_ascii_lowercase().as_str() {
        "y" | "yes" if reason.is_empty() => Some(Approval::Approve),
        "" | "n" | "no" => Some(Approval::Reject((!reason.is_empty()).then_some(reason))),
        _ => None,
    }
}

/// One line about a task's new status, for the notice printed as it arrives.
fn notice_line(event: &TaskEvent) -> String {
    let mut line = format!(
        "[task {} {}] {}",
        short(&event.task_id.to_string()),
        event.agent_name,
        event.status
    );
    let detail = match event.status {
        TaskStatus::Success => event.result.as_deref(),
        TaskStatus::Error | TaskStatus::Timeout => event.error.as_deref(),
        _ => None,
    };
    if let Some(detail) = detail.map(first_line).filter(|d| !d.is_empty()) {
        line.push_str(&format!(": {detail}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_answers_are_read_leniently() {
        assert_eq!(parse_approval("y"), Some(Approval::Approve));
        assert_eq!(parse_approval(" YES "), Some(Approval::Approve));
        assert_eq!(parse_approval(""), Some(Approval::Reject(None)));
        assert_eq!(parse_approval("n"), Some(Approval::Reject(None)));
        assert_eq!(
            parse_approval("no, too expensive"),
            Some(Approval::Reject(Some("too expensive".into())))
        );
        assert_eq!(
            parse_approval("n: not now"),
            Some(Approval::Reject(Some("not now".into())))
        );
        assert_eq!(parse_approval("what is 6 times 7?"), None);
        assert_eq!(parse_approval("yes please do"), None);
    }

    #[test]
    fn prompts_and_notices_are_one_short_line() {
        let request = ApprovalRequest {
            action: Action::Start,
            agent_name: "researcher".into(),
            task_id: None,
            text: Some(format!("{}\nsecond line", "x".repeat(100))),
        };
        let prompt = approval_prompt(&request);
        assert!(prompt.starts_with("approve start of `researcher` task: xxx"));
        assert!(prompt.ends_with("...? [y/N] "));
        assert!(!prompt.contains('\n'));

        let event = TaskEvent {
            task_id: Uuid::from_u128(0x0195f3c2_aaaa_7000_8000_000000000001),
            agent_name: "echo".into(),
            run_id: Uuid::from_u128(1),
            status: TaskStatus::Success,
            result: Some("\nfirst\nsecond".into()),
            error: None,
            interrupts: Vec::new(),
        };
        assert_eq!(notice_line(&event), "[task 00000001 echo] success: first");
    }
}
