//! `errand tasks list | check ID | cancel ID`: the tasks on a server, seen from outside any
//! supervisor. A task is a thread that a supervisor's `start_async_task` made (its metadata
//! names the subagent); its status is its latest run's together with the thread's.

use anyhow::Context;
use errand::client::{CancelOptions, Client, ListRuns};
use errand::middleware::{TaskStatus, observe, page};
use errand::protocol::{Thread, ThreadSearchRequest};
use uuid::Uuid;

/// How much of a result `check` prints before saying how to read on.
const PAGE_CHARS: usize = 4_000;

/// Flags of `errand tasks`.
#[derive(Debug, clap::Args)]
pub(crate) struct TasksArgs {
    /// The server the tasks run on.
    #[arg(long, env = "ERRAND_URL", default_value = "http://127.0.0.1:2024")]
    url: String,
    #[command(subcommand)]
    command: TasksCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TasksCommand {
    /// List the tasks on the server, newest first.
    List {
        /// Only tasks with this status.
        #[arg(long)]
        status: Option<StatusFlag>,
        /// At most this many threads are looked at.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show a task's status, and its result or error.
    Check {
        /// The task id (its thread id).
        task_id: Uuid,
        /// Start the result at this character.
        #[arg(long, default_value_t = 0)]
        offset: usize,
    },
    /// Cancel a task's unfinished runs, then show what really happened.
    Cancel {
        /// The task id (its thread id).
        task_id: Uuid,
    },
}

/// A task status as a flag value: clap reads it, lists the names in `--help` and names them
/// when a value is not one of them. The names are [`TaskStatus::ALL`]'s wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatusFlag(TaskStatus);

impl StatusFlag {
    /// One flag value per status, in [`TaskStatus::ALL`]'s order.
    const ALL: [Self; TaskStatus::ALL.len()] = {
        let mut flags = [Self(TaskStatus::Pending); TaskStatus::ALL.len()];
        let mut at = 0;
        while at < flags.len() {
            flags[at] = Self(TaskStatus::ALL[at]);
            at += 1;
        }
        flags
    };
}

impl clap::ValueEnum for StatusFlag {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let value = clap::builder::PossibleValue::new(self.0.as_str());
        Some(match self.0 {
            // Deep Agents' older name, which `TaskStatus` reads as `cancelled` too.
            TaskStatus::Cancelled => value.alias("interrupted"),
            _ => value,
        })
    }
}

pub(crate) async fn run(args: TasksArgs) -> anyhow::Result<()> {
    let client = Client::http(&args.url).with_context(|| format!("the server at {}", args.url))?;
    match args.command {
        TasksCommand::List { status, limit } => {
            list(&client, status.map(|flag| flag.0), limit).await
        }
        TasksCommand::Check { task_id, offset } => check(&client, task_id, offset).await,
        TasksCommand::Cancel { task_id } => cancel(&client, task_id).await,
    }
}

/// The subagent a thread was started for, if a supervisor started it.
fn agent_of(thread: &Thread) -> Option<&str> {
    thread
        .metadata
        .get("subagent_name")
        .and_then(|name| name.as_str())
}

/// A task's status from its latest run and its thread.
async fn status_of(client: &Client, thread: &Thread) -> anyhow::Result<Option<(Uuid, TaskStatus)>> {
    let latest = ListRuns {
        limit: 1,
        ..ListRuns::default()
    };
    let runs = client.runs().list(thread.thread_id, latest).await?;
    Ok(runs.first().map(|run| {
        (
            run.run_id,
            TaskStatus::observe(run.status, Some(thread.status)),
        )
    }))
}

async fn list(client: &Client, wanted: Option<TaskStatus>, limit: u32) -> anyhow::Result<()> {
    let search = ThreadSearchRequest {
        limit,
        ..ThreadSearchRequest::default()
    };
    let threads = client.threads().search(&search).await?;
    let mut shown = 0;
    for thread in threads.iter().filter(|thread| agent_of(thread).is_some()) {
        let Some((_, status)) = status_of(client, thread).await? else {
            continue;
        };
        if wanted.is_some_and(|wanted| wanted != status) {
            continue;
        }
        if shown == 0 {
            println!(
                "{:<36}  {:<14}  {:<9}  created",
                "task_id", "agent", "status"
            );
        }
        shown += 1;
        println!(
            "{}  {:<14}  {:<9}  {}",
            thread.thread_id,
            agent_of(thread).unwrap_or_default(),
            status,
            thread.created_at
        );
    }
    if shown == 0 {
        println!(
            "No tasks on this server{}.",
            wanted
                .map(|s| format!(" with status {s}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

async fn thread(client: &Client, task_id: Uuid) -> anyhow::Result<Thread> {
    client
        .threads()
        .get(task_id)
        .await
        .with_context(|| format!("task {task_id}"))
}

async fn check(client: &Client, task_id: Uuid, offset: usize) -> anyhow::Result<()> {
    let thread = thread(client, task_id).await?;
    let Some((run_id, _)) = status_of(client, &thread).await? else {
        println!("Task {task_id} has no runs yet.");
        return Ok(());
    };
    let observation = observe(client, task_id, run_id).await?;
    println!("task:   {task_id}");
    println!(
        "agent:  {}",
        agent_of(&thread).unwrap_or("(not started by a supervisor)")
    );
    println!("status: {}", observation.status);
    if let Some(error) = &observation.error {
        println!("error:  {error}");
    }
    if !observation.interrupts.is_empty() {
        println!(
            "waiting for a human: {}",
            serde_json::to_string(&observation.interrupts)?
        );
    }
    if observation.status == TaskStatus::Success
        && let Some(result) = &observation.result
    {
        println!();
        println!(
            "{}",
            page(result, offset, PAGE_CHARS)
                .replace("check_async_task", "errand tasks check --offset")
        );
    }
    Ok(())
}

async fn cancel(client: &Client, task_id: Uuid) -> anyhow::Result<()> {
    let thread = thread(client, task_id).await?;
    let runs = client
        .runs()
        .list(
            task_id,
            ListRuns {
                limit: 100,
                ..ListRuns::default()
            },
        )
        .await?;
    let unfinished: Vec<_> = runs
        .iter()
        .filter(|run| !run.status.is_terminal())
        .collect();
    if unfinished.is_empty() {
        let status = status_of(client, &thread)
            .await?
            .map(|(_, status)| status.to_string());
        println!(
            "Task {task_id} has no unfinished runs; nothing was cancelled (status: {}).",
            status.unwrap_or_else(|| "no runs".into())
        );
        return Ok(());
    }
    let wait = CancelOptions {
        wait: true,
        ..CancelOptions::default()
    };
    for run in &unfinished {
        client.runs().cancel(task_id, run.run_id, wait).await?;
    }
    let thread = client.threads().get(task_id).await?;
    let status = status_of(client, &thread).await?.map(|(_, status)| status);
    println!(
        "Cancelled {} run(s) of task {task_id}; its status is now {}.",
        unfinished.len(),
        status.map_or_else(|| "unknown".into(), |s| s.to_string())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Command {
        #[command(flatten)]
        tasks: TasksArgs,
    }

    fn status_of_flag(value: &str) -> Result<Option<TaskStatus>, clap::Error> {
        let parsed = Command::try_parse_from(["errand", "list", "--status", value])?;
        match parsed.tasks.command {
            TasksCommand::List { status, .. } => Ok(status.map(|flag| flag.0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_status_flag_takes_every_status_by_its_wire_name() {
        for status in TaskStatus::ALL {
            assert_eq!(status_of_flag(status.as_str()).ok(), Some(Some(status)));
        }
        assert_eq!(
            status_of_flag("interrupted").ok(),
            Some(Some(TaskStatus::Cancelled))
        );
    }

    #[test]
    fn a_bad_status_is_refused_with_the_names_it_could_be() {
        let error = status_of_flag("bogus").expect_err("not a status");
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
        let text = error.to_string();
        assert!(text.contains("bogus"), "{text}");
        assert!(
            text.contains("pending, running, waiting, success, error, timeout, cancelled"),
            "{text}"
        );
    }
}
