//! Watching started runs until they end, so the supervisor learns of each end without polling.
//!
//! Every run a tool starts gets a watcher task: it follows the run's stream (the client resumes
//! it with `Last-Event-ID` after a drop), reads the final status when the stream ends, and falls
//! back to reading the status with backoff while the stream cannot be opened. Each status change
//! becomes one [`TaskEvent`], queued for the supervisor thread that started the task and handed
//! to the application's hook, exactly once per (task, run, status).

use crate::notice::TaskEvent;
use crate::observe::{Observation, observe};
use crate::task::{AsyncTask, TaskStatus};
use errand_client::{CancelOptions, Client, JoinStreamOptions};
use errand_protocol::{RunStatus, StreamMode};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Called with the supervisor thread and the event, as soon as a task's status changes.
pub type NoticeHook = Arc<dyn Fn(Uuid, &TaskEvent) + Send + Sync>;

/// How long a watcher waits between status reads while its stream cannot be followed.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One run being watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    task_id: Uuid,
    run_id: Uuid,
}

struct Active {
    stop: CancellationToken,
    client: Client,
    thread_id: Uuid,
    run_id: Uuid,
}

#[derive(Default)]
struct Shared {
    queues: HashMap<Uuid, Vec<TaskEvent>>,
    seen: HashSet<(Uuid, Uuid, TaskStatus)>,
    active: HashMap<Key, Active>,
}

/// The watchers of one middleware.
#[derive(Clone)]
pub(crate) struct Watcher {
    shared: Arc<Mutex<Shared>>,
    hook: Option<NoticeHook>,
    timing: Timing,
    stop_all: CancellationToken,
}

/// How watchers pace themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often a watcher reads the status while the run's stream stays open.
    pub check_every: Duration,
    /// How long one status read may take.
    pub read_timeout: Duration,
    /// After this long without an answer from its server, a task ends in `error`, saying so.
    pub unreachable_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            check_every: Duration::from_secs(30),
            read_timeout: Duration::from_secs(10),
            unreachable_after: Duration::from_secs(120),
        }
    }
}

/// What a watch is told about the run it follows.
pub(crate) struct WatchRequest {
    pub(crate) parent: Uuid,
    pub(crate) task: AsyncTask,
    pub(crate) client: Client,
    pub(crate) deadline: Option<Instant>,
    pub(crate) notify: bool,
}

impl Watcher {
    pub(crate) fn new(hook: Option<NoticeHook>, timing: Timing) -> Self {
        Self {
            shared: Arc::default(),
            hook,
            timing,
            stop_all: CancellationToken::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts watching the task's current run, unless it is watched already. Must be called
    /// inside a tokio runtime.
    pub(crate) fn watch(&self, request: WatchRequest) {
        let (thread_id, run_id) = (request.task.thread_id, request.task.run_id);
        let key = Key {
            task_id: request.task.task_id,
            run_id,
        };
        let stop = self.stop_all.child_token();
        {
            let mut shared = self.lock();
            if shared.active.contains_key(&key) {
                return;
            }
            shared.active.insert(
                key,
                Active {
                    stop: stop.clone(),
                    client: request.client.clone(),
                    thread_id,
                    run_id,
                },
            );
        }
        let watcher = self.clone();
        tokio::spawn(async move {
            let follow = Follow {
                client: &request.client,
                thread_id,
                run_id,
                stop: &stop,
                deadline: request.deadline,
                timing: watcher.timing,
            };
            let outcome = follow.run().await;
            let still_ours = watcher.lock().active.remove(&key).is_some();
            if let Some(observation) = outcome
                && still_ours
                && request.notify
            {
                watcher.deliver(request.parent, &request.task, observation);
            }
        });
    }

    /// Stops watching a run without an event: the supervisor's own tools replaced or cancelled it.
    pub(crate) fn unwatch(&self, task_id: Uuid, run_id: Uuid) {
        if let Some(active) = self.lock().active.remove(&Key { task_id, run_id }) {
            active.stop.cancel();
        }
    }

    /// True while the run is watched.
    pub(crate) fn is_watching(&self, task_id: Uuid, run_id: Uuid) -> bool {
        self.lock().active.contains_key(&Key { task_id, run_id })
    }

    /// The events not yet delivered to the supervisor thread `parent`.
    pub(crate) fn take(&self, parent: Uuid) -> Vec<TaskEvent> {
        self.lock().queues.remove(&parent).unwrap_or_default()
    }

    /// How many events wait for the supervisor thread `parent`.
    pub(crate) fn pending(&self, parent: Uuid) -> usize {
        self.lock().queues.get(&parent).map_or(0, Vec::len)
    }

    /// Records that the supervisor already saw `status` for this run (a check or list read
    /// it), so no notice repeats it.
    pub(crate) fn mark_seen(&self, task_id: Uuid, run_id: Uuid, status: TaskStatus) {
        self.lock().seen.insert((task_id, run_id, status));
    }

    fn deliver(&self, parent: Uuid, task: &AsyncTask, observation: Observation) {
        let event = TaskEvent {
            task_id: task.task_id,
            agent_name: task.agent_name.clone(),
            run_id: task.run_id,
            status: observation.status,
            result: observation.result,
            error: observation.error,
            interrupts: observation.interrupts,
        };
        {
            let mut shared = self.lock();
            let key = (event.task_id, event.run_id, event.status);
            if !shared.seen.insert(key) {
                return;
            }
            shared.queues.entry(parent).or_default().push(event.clone());
        }
        tracing::info!(task = %event.task_id, status = %event.status, "async task changed");
        if let Some(hook) = &self.hook {
            hook(parent, &event);
        }
    }

    /// Stops every watcher; with `cancel_runs`, also cancels the runs they watched.
    pub(crate) async fn shutdown(&self, cancel_runs: bool) {
        let active: Vec<Active> = self
            .lock()
            .active
            .drain()
            .map(|(_, active)| active)
            .collect();
        self.stop_all.cancel();
        if !cancel_runs {
            return;
        }
        let cancels = active.iter().map(|active| async move {
            let runs = active.client.runs();
            let cancel = runs.cancel(active.thread_id, active.run_id, CancelOptions::default());
            if let Err(error) = tokio::time::timeout(Duration::from_secs(5), cancel).await {
                tracing::warn!(run = %active.run_id, %error, "could not cancel a task's run on exit");
            }
        });
        futures::future::join_all(cancels).await;
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.lock();
        f.debug_struct("Watcher")
            .field("watching", &shared.active.len())
            .field(
                "queued",
                &shared.queues.values().map(Vec::len).sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

/// Following one run to its end.
struct Follow<'a> {
    client: &'a Client,
    thread_id: Uuid,
    run_id: Uuid,
    stop: &'a CancellationToken,
    deadline: Option<Instant>,
    timing: Timing,
}

enum Interruption {
    Stopped,
    Deadline,
}

enum Step {
    Done(Option<Observation>),
    Going,
}

impl Follow<'_> {
    /// The run's end as an observation, or `None` when the watch was stopped.
    async fn run(&self) -> Option<Observation> {
        let mut last_answer = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let stream = self.stream_to_end();
            tokio::pin!(stream);
            // While the stream is open, read the status now and then: a server that stops
            // answering must not leave the task hanging on a silent connection.
            let streamed = loop {
                match self
                    .guard(tokio::time::timeout(self.timing.check_every, &mut stream))
                    .await
                {
                    Err(interruption) => return self.interrupted(interruption).await,
                    Ok(Ok(streamed)) => break streamed,
                    Ok(Err(_still_open)) => {
                        if let Step::Done(end) = self.check(&mut last_answer).await {
                            return end;
                        }
                    }
                }
            };
            if let Step::Done(end) = self.check(&mut last_answer).await {
                return end;
            }
            if streamed {
                backoff = FIRST_BACKOFF;
            }
            if let Err(interruption) = self.guard(tokio::time::sleep(backoff)).await {
                return self.interrupted(interruption).await;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Reads the run's status once.
    async fn check(&self, last_answer: &mut Instant) -> Step {
        let read = tokio::time::timeout(
            self.timing.read_timeout,
            observe(self.client, self.thread_id, self.run_id),
        );
        match self.guard(read).await {
            Err(interruption) => Step::Done(self.interrupted(interruption).await),
            Ok(Ok(Ok(observation))) => {
                *last_answer = Instant::now();
                match ended(observation) {
                    Some(end) => Step::Done(Some(end)),
                    None => Step::Going,
                }
            }
            Ok(Ok(Err(error))) => self.unanswered(last_answer, &error.to_string()),
            Ok(Err(_elapsed)) => self.unanswered(
                last_answer,
                &format!("no answer within {} s", self.timing.read_timeout.as_secs()),
            ),
        }
    }

    fn unanswered(&self, last_answer: &Instant, error: &str) -> Step {
        tracing::debug!(run = %self.run_id, error, "task status unreadable; retrying");
        if last_answer.elapsed() >= self.timing.unreachable_after {
            Step::Done(Some(unreachable(error, self.timing.unreachable_after)))
        } else {
            Step::Going
        }
    }

    /// Follows the run's stream to its end: true if it ended normally.
    async fn stream_to_end(&self) -> bool {
        // `custom` carries nothing for most graphs: the stream costs one request and ends when
        // the run does, without shipping every state on the way.
        let options = JoinStreamOptions {
            stream_mode: vec![StreamMode::Custom],
            ..JoinStreamOptions::default()
        };
        let mut stream = match self
            .client
            .runs()
            .join_stream(self.thread_id, self.run_id, options)
            .await
        {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(run = %self.run_id, %error, "could not follow a task's run");
                return false;
            }
        };
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                tracing::debug!(run = %self.run_id, %error, "a task's stream broke");
                return false;
            }
        }
        true
    }

    /// Runs `work` unless the watch is stopped or the deadline passes first.
    async fn guard<T>(&self, work: impl Future<Output = T>) -> Result<T, Interruption> {
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = self.stop.cancelled() => Err(Interruption::Stopped),
            () = deadline => Err(Interruption::Deadline),
            value = work => Ok(value),
        }
    }

    async fn interrupted(&self, interruption: Interruption) -> Option<Observation> {
        match interruption {
            Interruption::Stopped => None,
            Interruption::Deadline => {
                let runs = self.client.runs();
                let cancel = runs.cancel(self.thread_id, self.run_id, CancelOptions::default());
                if let Err(error) = tokio::time::timeout(Duration::from_secs(10), cancel).await {
                    tracing::warn!(run = %self.run_id, %error, "could not cancel a task past its deadline");
                }
                Some(Observation {
                    run_status: RunStatus::Interrupted,
                    status: TaskStatus::Timeout,
                    result: None,
                    error: Some("The task passed its deadline and was cancelled.".into()),
                    interrupts: Vec::new(),
                })
            }
        }
    }
}

/// The observation if the run has ended (or waits for a human), as the watcher reports it: a
/// finished run counts as finished even when a newer run already keeps its thread busy.
fn ended(mut observation: Observation) -> Option<Observation> {
    if observation.run_status == RunStatus::Success && observation.status == TaskStatus::Running {
        observation.status = TaskStatus::Success;
    }
    (!matches!(
        observation.status,
        TaskStatus::Pending | TaskStatus::Running
    ))
    .then_some(observation)
}

fn unreachable(error: &str, after: Duration) -> Observation {
    Observation {
        run_status: RunStatus::Error,
        status: TaskStatus::Error,
        result: None,
        error: Some(format!(
            "The subagent's server has not answered for {} s, so the task's status is unknown; last error: {error}",
            after.as_secs()
        )),
        interrupts: Vec::new(),
    }
}
