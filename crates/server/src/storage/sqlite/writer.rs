//! The writer thread: every change to the database goes through it, with group commit.
//!
//! Requests queue on a channel. The thread takes every request waiting, runs each in its own
//! savepoint inside one transaction, commits once, and only then answers them all: a request
//! that failed is rolled back alone, and none is answered before its change is committed. Under
//! load this turns many small transactions into a few larger ones, and it spares each request a
//! trip through tokio's blocking pool and a fight over a lock.

use super::codec::Db;
use crate::storage::{StorageError, StorageResult};
use rusqlite::{Connection, TransactionBehavior};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The most requests committed together.
const MAX_BATCH: usize = 256;

/// What a request does once the batch is committed (or has failed): answer its caller.
type Delivery = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// A queued request.
type Job = Box<dyn Request>;

/// A request to the writer.
trait Request: Send {
    /// Runs it; answers whether it succeeded, and how to answer its caller after the commit.
    fn run(self: Box<Self>, connection: &Connection) -> (bool, Delivery);

    /// Answers the caller with `error` without running.
    fn abandon(self: Box<Self>, error: &str);
}

/// Work and the channel its answer goes back on.
struct Pending<T, F> {
    work: F,
    answer: oneshot::Sender<StorageResult<T>>,
}

impl<T, F> Request for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
{
    fn run(self: Box<Self>, connection: &Connection) -> (bool, Delivery) {
        let Self { work, answer } = *self;
        let result = work(connection);
        let succeeded = result.is_ok();
        let deliver: Delivery = Box::new(move |commit| {
            let result = match commit {
                Ok(()) => result,
                Err(error) => Err(StorageError::Backend(format!("commit failed: {error}"))),
            };
            // The caller may have gone away; its change stands either way.
            let _ = answer.send(result);
        });
        (succeeded, deliver)
    }

    fn abandon(self: Box<Self>, error: &str) {
        let _ = self
            .answer
            .send(Err(StorageError::Backend(error.to_owned())));
    }
}

/// A handle to the writer thread; the thread ends when the last handle is dropped.
#[derive(Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread that owns `connection`.
    pub(super) fn start(connection: Connection) -> StorageResult<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("errand-sqlite-writer".into())
            .spawn(move || run(connection, &queue))
            .map_err(|error| StorageError::Backend(format!("starting the writer: {error}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` in the next batch's transaction and answers once it is committed.
    pub(super) async fn write<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel::<StorageResult<T>>();
        let job: Job = Box::new(Pending { work, answer });
        self.jobs
            .send(job)
            .map_err(|_| StorageError::Backend("the database writer has stopped".into()))?;
        answered.await.map_err(|_| {
            StorageError::Backend("the database writer dropped a request (it panicked)".into())
        })?
    }
}

fn run(mut connection: Connection, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut connection, batch);
    }
}

fn commit_batch(connection: &mut Connection, batch: Vec<Job>) {
    let mut transaction = match connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()
    {
        Ok(transaction) => transaction,
        Err(error) => {
            let text = error.to_string();
            // Nothing ran: answer every request with the error, through its own delivery.
            for job in batch {
                job.abandon(&text);
            }
            return;
        }
    };
    let mut deliveries = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = match transaction.savepoint().db() {
            Ok(savepoint) => savepoint,
            Err(error) => {
                job.abandon(&error.to_string());
                continue;
            }
        };
        match catch_unwind(AssertUnwindSafe(|| job.run(&savepoint))) {
            Ok((true, deliver)) => match savepoint.commit() {
                Ok(()) => deliveries.push(deliver),
                Err(error) => deliver(Err(&error.to_string())),
            },
            // A failed or panicking request is rolled back alone when its savepoint drops.
            Ok((false, deliver)) => {
                drop(savepoint);
                deliveries.push(deliver);
            }
            Err(_) => drop(savepoint),
        }
    }
    match transaction.commit() {
        Ok(()) => deliveries.into_iter().for_each(|deliver| deliver(Ok(()))),
        Err(error) => {
            let text = error.to_string();
            deliveries
                .into_iter()
                .for_each(|deliver| deliver(Err(&text)));
        }
    }
}
