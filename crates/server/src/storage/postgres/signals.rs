//! Signals between replicas: `pg_notify` inside the writing transaction (delivered at its
//! commit), and one connection per storage that `LISTEN`s and feeds a broadcast channel.
//!
//! The channel's name includes the schema, so storages in different schemas of one database
//! (tests side by side) never hear each other. A payload is compact text: the sending storage's
//! tag (so a storage ignores its own signals, which its process already acts on), `:`, then
//! `q` (a run queued), `c<run id>:<action>` (a cancel requested), `e<run id>` (events stored)
//! or `x<run id>` (a run ended).

use super::codec::Pg;
use super::quote_ident;
use crate::storage::{Signal, StorageResult};
use errand_protocol::CancelAction;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

/// The longest wait between attempts to listen again after the connection dropped.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where a storage's signals go, and how it recognises its own.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    /// The `LISTEN`/`NOTIFY` channel.
    pub(super) name: String,
    /// This storage's mark on the signals it sends.
    tag: String,
}

impl Channel {
    /// The channel of `schema`, with a fresh tag.
    pub(super) fn new(schema: Option<&str>) -> Self {
        let mut name = match schema {
            Some(schema) => format!("errand_{schema}"),
            None => "errand".to_owned(),
        };
        // PostgreSQL refuses channel names of 64 bytes or more; schema names are ASCII.
        name.truncate(63);
        let mut tag = Uuid::new_v4().simple().to_string();
        tag.truncate(8);
        Self { name, tag }
    }

    /// The payload of `signal`.
    pub(super) fn payload(&self, signal: Signal) -> String {
        let tag = &self.tag;
        match signal {
            Signal::RunQueued => format!("{tag}:q"),
            Signal::CancelRequested { run_id, action } => {
                format!("{tag}:c{}:{}", run_id.simple(), action.as_str())
            }
            Signal::Events { run_id } => format!("{tag}:e{}", run_id.simple()),
            Signal::RunEnded { run_id } => format!("{tag}:x{}", run_id.simple()),
        }
    }

    /// The start of the payload of a cancel of `run_id`, which the database completes with the
    /// action it stored.
    pub(super) fn cancel_prefix(&self, run_id: Uuid) -> String {
        format!("{}:c{}:", self.tag, run_id.simple())
    }

    /// The signal in a payload another storage sent; `None` for this storage's own, or for
    /// text it cannot read.
    fn decode(&self, payload: &str) -> Option<Signal> {
        let (tag, body) = payload.split_once(':')?;
        if tag == self.tag {
            return None;
        }
        let kind = body.get(..1)?;
        let rest = body.get(1..)?;
        match kind {
            "q" => Some(Signal::RunQueued),
            "c" => {
                let (run_id, action) = rest.split_once(':')?;
                Some(Signal::CancelRequested {
                    run_id: Uuid::parse_str(run_id).ok()?,
                    action: CancelAction::from_name(action)?,
                })
            }
            "e" => Some(Signal::Events {
                run_id: Uuid::parse_str(rest).ok()?,
            }),
            "x" => Some(Signal::RunEnded {
                run_id: Uuid::parse_str(rest).ok()?,
            }),
            _ => None,
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A listening connection: its client (which keeps it open) and the task reading it.
struct Listening {
    _client: tokio_postgres::Client,
    reader: AbortOnDrop,
}

/// Opens a connection and listens on `channel`, forwarding what arrives to `sender`.
async fn open(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    channel: &Channel,
    sender: &broadcast::Sender<Signal>,
) -> StorageResult<Listening> {
    let (client, mut connection) = config.connect(tls.clone()).await.pg()?;
    let (reader_channel, sender) = (channel.clone(), sender.clone());
    let reader = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    if let Some(signal) = reader_channel.decode(note.payload()) {
                        // No receiver is not a failure: nobody is waiting yet.
                        let _ = sender.send(signal);
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "postgres: the connection listening for signals failed");
                    break;
                }
            }
        }
    });
    let reader = AbortOnDrop(reader);
    client
        .batch_execute(&format!("LISTEN {}", quote_ident(&channel.name)))
        .await
        .pg()?;
    Ok(Listening {
        _client: client,
        reader,
    })
}

/// Listens on `channel` (answering once listening), and keeps listening: when the connection
/// drops it connects again, backing off, and then sends [`Signal::RunQueued`], since signals
/// sent meanwhile were lost and the queue is worth a look.
pub(super) async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    channel: Channel,
    sender: broadcast::Sender<Signal>,
) -> StorageResult<tokio::task::JoinHandle<()>> {
    let first = open(&config, &tls, &channel, &sender).await?;
    Ok(tokio::spawn(async move {
        let mut listening = first;
        loop {
            // The reader ends when the connection does.
            let _ = (&mut listening.reader.0).await;
            let mut wait = Duration::from_millis(50);
            listening = loop {
                tokio::time::sleep(wait).await;
                match open(&config, &tls, &channel, &sender).await {
                    Ok(listening) => break listening,
                    Err(error) => {
                        tracing::warn!(%error, "postgres: cannot listen for signals yet");
                        wait = (wait * 2).min(MAX_BACKOFF);
                    }
                }
            };
            tracing::info!("postgres: listening for signals again");
            let _ = sender.send(Signal::RunQueued);
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_survives_its_payload_and_its_sender_does_not_hear_it() {
        let (ours, theirs) = (Channel::new(Some("s")), Channel::new(Some("s")));
        let run_id = Uuid::new_v4();
        let signals = [
            Signal::RunQueued,
            Signal::CancelRequested {
                run_id,
                action: CancelAction::Rollback,
            },
            Signal::Events { run_id },
            Signal::RunEnded { run_id },
        ];
        for signal in signals {
            let payload = theirs.payload(signal);
            assert_eq!(ours.decode(&payload), Some(signal));
            assert_eq!(theirs.decode(&payload), None);
        }
        assert_eq!(ours.decode("garbage"), None);
        assert_eq!(ours.name, "errand_s");
    }
}

/// How long the announcer gathers signals before it sends them: a transaction of their own
/// per batch, rather than a `NOTIFY` in every writing transaction (see the module docs of
/// `postgres`).
const ANNOUNCE_EVERY: Duration = Duration::from_millis(5);

/// Sends the signals of committed transactions, gathered for [`ANNOUNCE_EVERY`] at a time, on
/// a pooled connection. Stops when the storage goes.
#[derive(Debug)]
pub(super) struct Announcer {
    queue: tokio::sync::mpsc::UnboundedSender<Vec<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Announcer {
    pub(super) fn start(pool: deadpool_postgres::Pool, channel: String) -> Self {
        let (queue, mut gathered) = tokio::sync::mpsc::unbounded_channel::<Vec<String>>();
        let task = tokio::spawn(async move {
            while let Some(first) = gathered.recv().await {
                let mut payloads = first;
                tokio::time::sleep(ANNOUNCE_EVERY).await;
                while let Ok(more) = gathered.try_recv() {
                    payloads.extend(more);
                }
                payloads.sort_unstable();
                payloads.dedup();
                if payloads.is_empty() {
                    continue;
                }
                if let Err(error) = send(&pool, &channel, &payloads).await {
                    // Lost, as with a dropped connection: replicas find the work by polling.
                    tracing::warn!(%error, signals = payloads.len(), "postgres: sending signals failed");
                }
            }
        });
        Self { queue, task }
    }

    /// Queues the signals of a transaction that committed.
    pub(super) fn send(&self, payloads: Vec<String>) {
        if !payloads.is_empty() {
            // Only fails once the task has stopped, with the storage.
            let _ = self.queue.send(payloads);
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn send(
    pool: &deadpool_postgres::Pool,
    channel: &str,
    payloads: &[String],
) -> StorageResult<()> {
    let client = pool.get().await.map_err(super::pool_error)?;
    let statement = client.prepare_cached(super::NOTIFY).await.pg()?;
    let payloads = payloads.to_vec();
    client
        .execute(&statement, &[&channel, &payloads])
        .await
        .pg()
        .map(drop)
}
