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
//! returns). A write takes tens of microseconds, and handing it to another thread and waking
//! the caller back (two futex wake-ups, two context switches) takes as long again: a lone
//! request (a client creating a thread, then a run) need not wait for that.

use super::checkpoint::Commits;
use super::codec::{Db, storage_error};
use crate::storage::{StorageError, StorageResult};
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, mpsc};
use tokio::sync::oneshot;

/// The most requests committed together.
const MAX_BATCH: usize = 256;

/// What a request does once the batch is committed (or has failed): answer its caller.
type Delivery = Box<dyn FnOnce(Result<(), &StorageError>) + Send>;

/// A queued request.
type Job = Box<dyn Request>;

/// A request to the writer.
trait Request: Send {
    /// Runs it; answers whether it succeeded, and how to answer its caller after the commit.
    fn run(self: Box<Self>, connection: &Connection) -> (bool, Delivery);

    /// Answers the caller with `error` without running.
    fn abandon(self: Box<Self>, error: StorageError);
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
                Err(error) => Err(error.clone()),
            };
            // The caller may have gone away; its change stands either way.
            let _ = answer.send(result);
        });
        (succeeded, deliver)
    }

    fn abandon(self: Box<Self>, error: StorageError) {
        let _ = self.answer.send(Err(error));
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
            .map_err(|error| StorageError::backend(format!("starting the writer: {error}")))?;
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
            Some(Ok(connection)) => {
                commit_batch(&connection, vec![job], &self.shared.commits);
                None
            }
            Some(Err(TryLockError::Poisoned(poisoned))) => {
                commit_batch(&poisoned.into_inner(), vec![job], &self.shared.commits);
                None
            }
            Some(Err(TryLockError::WouldBlock)) | None => Some(job),
        };
        if let Some(job) = job {
            self.shared.queued.fetch_add(1, Ordering::AcqRel);
            if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                job.abandon(StorageError::backend("the database writer has stopped"));
            }
        } else if let Ok(result) = answered.try_recv() {
            // Answered in place: no need to go through the scheduler.
            return result;
        }
        answered.await.map_err(|_| {
            StorageError::backend("the database writer dropped a request (it panicked)")
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
        let connection = shared.lock();
        // Counted down only under the lock: a caller that sees an empty queue and gets the
        // lock has nothing queued ahead of it.
        shared.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        commit_batch(&connection, batch, &shared.commits);
    }
}

/// Runs `sql`, one of the fixed statements that open and close transactions, from the
/// connection's statement cache: `execute_batch` would parse it again on every write.
fn control(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(drop)
}

/// Undoes what `connection` did since `BEGIN`; when even that fails, the connection is left to
/// the next `BEGIN`, which fails in turn and answers its requests with the error.
fn roll_back(connection: &Connection) {
    if !connection.is_autocommit() {
        let _ = control(connection, "ROLLBACK");
    }
}

/// Commits the open transaction; a commit that fails rolls everything back.
fn commit(connection: &Connection, commits: &Commits) -> StorageResult<()> {
    match control(connection, "COMMIT") {
        Ok(()) => {
            commits.add();
            Ok(())
        }
        Err(error) => {
            roll_back(connection);
            Err(storage_error(error))
        }
    }
}

fn commit_batch(connection: &Connection, mut batch: Vec<Job>, commits: &Commits) {
    // `BEGIN IMMEDIATE` takes the write lock at once, so no statement of the batch can fail
    // half-way for want of it.
    if let Err(error) = control(connection, "BEGIN IMMEDIATE").db() {
        // Nothing ran: answer every request with the error, through its own delivery.
        for job in batch {
            job.abandon(error.clone());
        }
        return;
    }
    if batch.len() == 1
        && let Some(job) = batch.pop()
    {
        // Alone in its transaction, a request needs no savepoint (whose undo journal copies
        // every page it touches): when it fails, the whole transaction is rolled back.
        match catch_unwind(AssertUnwindSafe(|| job.run(connection))) {
            Ok((true, deliver)) => match commit(connection, commits) {
                Ok(()) => deliver(Ok(())),
                Err(error) => deliver(Err(&error)),
            },
            Ok((false, deliver)) => {
                roll_back(connection);
                deliver(Ok(()));
            }
            Err(_) => roll_back(connection),
        }
        return;
    }
    let mut deliveries = Vec::with_capacity(batch.len());
    for job in batch {
        if let Err(error) = control(connection, "SAVEPOINT request") {
            job.abandon(storage_error(error));
            continue;
        }
        match catch_unwind(AssertUnwindSafe(|| job.run(connection))) {
            Ok((true, deliver)) => match control(connection, "RELEASE request") {
                Ok(()) => deliveries.push(deliver),
                Err(error) => {
                    undo_request(connection);
                    deliver(Err(&storage_error(error)));
                }
            },
            // A failed or panicking request is rolled back alone, to its savepoint.
            Ok((false, deliver)) => {
                undo_request(connection);
                deliveries.push(deliver);
            }
            Err(_) => undo_request(connection),
        }
    }
    match commit(connection, commits) {
        Ok(()) => deliveries.into_iter().for_each(|deliver| deliver(Ok(()))),
        Err(error) => deliveries
            .into_iter()
            .for_each(|deliver| deliver(Err(&error))),
    }
}

/// Undoes the request since its savepoint and drops the savepoint, keeping the transaction.
fn undo_request(connection: &Connection) {
    let _ = control(connection, "ROLLBACK TO request");
    let _ = control(connection, "RELEASE request");
}

#[cfg(test)]
mod tests {
    use super::Writer;
    use crate::storage::{StorageError, StorageResult};
    use rusqlite::Connection;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    /// What a queued request does after inserting its row.
    #[derive(Debug, Clone, Copy)]
    enum Then {
        Succeed,
        Fail,
        Panic,
    }

    fn insert(name: &'static str, then: Then) -> impl FnOnce(&Connection) -> StorageResult<()> {
        move |connection| {
            connection
                .execute("INSERT INTO items (name) VALUES (?1)", [name])
                .map_err(|error| StorageError::backend(error.to_string()))?;
            match then {
                Then::Succeed => Ok(()),
                Then::Fail => Err(StorageError::backend(format!("{name} failed"))),
                Then::Panic => panic!("{name} panicked"),
            }
        }
    }

    /// Requests queued while the connection is busy are committed together, each in its own
    /// savepoint: one that fails or panics after writing leaves nothing behind, and the others
    /// keep what they wrote and are answered once it is committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[expect(
        clippy::await_holding_lock,
        reason = "the test holds the connection on purpose while requests queue; they only \
                  try the lock"
    )]
    async fn a_failing_request_in_a_batch_is_undone_alone() {
        let connection = Connection::open_in_memory().expect("an in-memory database");
        connection
            .execute_batch("CREATE TABLE items (name TEXT NOT NULL)")
            .expect("the table");
        let writer = Arc::new(Writer::start(connection, Arc::default()).expect("a writer"));

        // Holding the connection makes every request queue for the writer thread, which takes
        // them all as one batch once it is released.
        let busy = writer.shared.lock();
        let plan = [
            ("first", Then::Succeed),
            ("failing", Then::Fail),
            ("second", Then::Succeed),
            ("panicking", Then::Panic),
            ("third", Then::Succeed),
        ];
        let mut answers = Vec::new();
        for (name, then) in plan {
            let sender = Arc::clone(&writer);
            answers.push(tokio::spawn(async move {
                sender.write(insert(name, then)).await
            }));
            // In order: each request is queued before the next is sent.
            let deadline = Instant::now() + Duration::from_secs(10);
            while writer.shared.queued.load(Ordering::Acquire) < answers.len() {
                assert!(Instant::now() < deadline, "{name} was never queued");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        drop(busy);

        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.expect("the task ends").is_ok());
        }
        assert_eq!(outcomes, [true, false, true, false, true]);
        let names: Vec<String> = writer
            .write(|connection| {
                let mut statement = connection
                    .prepare("SELECT name FROM items ORDER BY rowid")
                    .map_err(|error| StorageError::backend(error.to_string()))?;
                statement
                    .query_map([], |row| row.get(0))
                    .and_then(Iterator::collect)
                    .map_err(|error| StorageError::backend(error.to_string()))
            })
            .await
            .expect("the rows read");
        assert_eq!(names, ["first", "second", "third"]);
    }
}
