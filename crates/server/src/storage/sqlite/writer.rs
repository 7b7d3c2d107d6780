//! The writer: every change to the database goes through one connection, with group commit.
//!
//! Requests queue on a channel. A thread takes every request waiting, runs each in its own
//! savepoint inside one transaction, commits once, and only then answers them all: a request
//! that failed is rolled back alone, and none is answered before its change is committed. Under
//! load this turns many small transactions into a few larger ones, and it spares each request a
//! trip through tokio's blocking pool and a fight over a lock.
//!
//! When nothing is queued and the connection is free, a request does not queue at all: the
//! caller runs it in place, in the same way (a transaction of its own, committed before it
//! returns). A write takes tens of microseconds; handing it to another thread and waking the
//! caller back costs as much again (two futex wake-ups, two context switches), which is what a
//! lone request (a client creating a thread, then a run) mostly waited for.

use super::checkpoint::Commits;
use super::codec::Db;
use crate::storage::{StorageError, StorageResult};
use rusqlite::{Connection, TransactionBehavior};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, mpsc};
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

/// What the callers and the writer thread share.
#[derive(Debug)]
struct Shared {
    /// The one connection that writes; held while a transaction is open.
    connection: Mutex<Connection>,
    /// Requests sent to the thread and not yet taken by it.
    queued: AtomicUsize,
    /// Counted up after each commit, for the checkpointer.
    commits: Arc<Commits>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held rolled its transaction back when it unwound.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle to the writer; its thread ends when the last handle is dropped.
#[derive(Debug)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Starts the thread that writes queued requests on `connection`, counting its commits in
    /// `commits`.
    pub(super) fn start(connection: Connection, commits: Arc<Commits>) -> StorageResult<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let shared = Arc::new(Shared {
            connection: Mutex::new(connection),
            queued: AtomicUsize::new(0),
            commits,
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("errand-sqlite-writer".into())
            .spawn(move || run(&thread_shared, &queue))
            .map_err(|error| StorageError::Backend(format!("starting the writer: {error}")))?;
        Ok(Self { jobs, shared })
    }

    /// Runs `work` in a write transaction and answers once it is committed: right here when
    /// the writer is idle, else in the next batch of the writer thread.
    pub(super) async fn write<T, F>(&self, work: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StorageResult<T> + Send + 'static,
    {
        let (answer, mut answered) = oneshot::channel::<StorageResult<T>>();
        let job: Job = Box::new(Pending { work, answer });
        // In place only when nothing waits in the queue, so a request never overtakes one that
        // was queued before it and not yet taken.
        let idle = self.shared.queued.load(Ordering::Acquire) == 0;
        let job = match idle.then(|| self.shared.connection.try_lock()) {
            Some(Ok(mut connection)) => {
                commit_batch(&mut connection, vec![job], &self.shared.commits);
                None
            }
            Some(Err(TryLockError::Poisoned(poisoned))) => {
                commit_batch(&mut poisoned.into_inner(), vec![job], &self.shared.commits);
                None
            }
            Some(Err(TryLockError::WouldBlock)) | None => Some(job),
        };
        if let Some(job) = job {
            self.shared.queued.fetch_add(1, Ordering::AcqRel);
            if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                job.abandon("the database writer has stopped");
            }
        } else if let Ok(result) = answered.try_recv() {
            // Answered in place: no need to go through the scheduler.
            return result;
        }
        answered.await.map_err(|_| {
            StorageError::Backend("the database writer dropped a request (it panicked)".into())
        })?
    }
}

fn run(shared: &Shared, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut connection = shared.lock();
        // Counted down only under the lock: a caller that sees an empty queue and gets the
        // lock has nothing queued ahead of it.
        shared.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        commit_batch(&mut connection, batch, &shared.commits);
    }
}

fn commit_batch(connection: &mut Connection, mut batch: Vec<Job>, commits: &Commits) {
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
    if batch.len() == 1
        && let Some(job) = batch.pop()
    {
        // Alone in its transaction, a request needs no savepoint (whose undo journal copies
        // every page it touches): when it fails, the whole transaction is rolled back.
        match catch_unwind(AssertUnwindSafe(|| job.run(&transaction))) {
            Ok((true, deliver)) => match transaction.commit() {
                Ok(()) => {
                    commits.add();
                    deliver(Ok(()));
                }
                Err(error) => deliver(Err(&error.to_string())),
            },
            Ok((false, deliver)) => {
                drop(transaction);
                deliver(Ok(()));
            }
            Err(_) => drop(transaction),
        }
        return;
    }
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
        Ok(()) => {
            commits.add();
            deliveries.into_iter().for_each(|deliver| deliver(Ok(())));
        }
        Err(error) => {
            let text = error.to_string();
            deliveries
                .into_iter()
                .for_each(|deliver| deliver(Err(&text)));
        }
    }
}
