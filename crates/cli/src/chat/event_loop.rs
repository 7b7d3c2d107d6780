//! The chat's loop ([`Chat::run`]): it waits for the next event (a line read, a notice, an
//! approval asked, Ctrl-C), a turn's end or the clock, and answers each; it starts the
//! supervisor's turns one at a time from a queue, and asks the line editor for a line when one
//! is wanted.

use super::reader::{ReadResult, Reader};
use super::screen::Screen;
use super::tasks::Tasks;
use super::text::{approval_prompt, describe, notice_line, parse_approval};
use super::{AFTER_HELP, Event};
use crate::supervisor::Supervisor;
use errand::client::Client;
use errand::middleware::{Approval, ApprovalRequest, TaskStatus, board};
use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

/// The user's prompt.
const PROMPT: &str = "you> ";

/// How long quitting waits for a cancelled turn to give the supervisor back.
const QUIT_WAIT: Duration = Duration::from_secs(5);

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
pub(super) struct Chat {
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
    /// A chat with `supervisor` free, nothing queued, and no line being read yet; `live` reads
    /// the status of local tasks (see [`Chat::refresh`]).
    pub(super) fn new(
        supervisor: Supervisor,
        screen: Screen,
        reader: Reader,
        events: mpsc::UnboundedSender<Event>,
        live: Option<(Client, HashSet<String>)>,
    ) -> Self {
        Self {
            supervisor: Some(supervisor),
            turn: None,
            queue: VecDeque::new(),
            approvals: VecDeque::new(),
            reading: None,
            tasks: Tasks::default(),
            screen,
            reader,
            events,
            live,
        }
    }

    /// Runs the loop until the user leaves (or the events end), then quits.
    pub(super) async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) -> anyhow::Result<()> {
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
