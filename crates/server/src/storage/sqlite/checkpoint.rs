//! The checkpointer: copies the WAL back into the database file off the write path.
//!
//! By default SQLite checkpoints in the connection that commits, once the WAL passes 1,000
//! pages: that commit also copies the pages into the database file and syncs both files, a few
//! milliseconds during which every queued write waits. Here a thread with its own connection
//! runs a `PASSIVE` checkpoint shortly after commits: it takes no write lock, so writes go on
//! meanwhile, and once it has copied everything, the writer's next transaction starts the WAL
//! over from its beginning. The writer keeps an automatic checkpoint of its own, set far
//! higher ([`WAL_BACKSTOP_PAGES`]), for a load so steady that a checkpoint never catches up.

use super::codec::Db;
use crate::storage::StorageResult;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How soon after a commit the checkpointer copies it: short enough that the WAL stays small
/// and mostly in the page cache, long enough that one checkpoint (and its two syncs) covers
/// many commits under load.
const INTERVAL: Duration = Duration::from_millis(20);

/// The WAL size, in pages, at which the writer checkpoints by itself.
pub(super) const WAL_BACKSTOP_PAGES: u32 = 16_384;

/// Counts committed write transactions; the checkpointer looks at it to know there is work.
#[derive(Debug, Default)]
pub(super) struct Commits(AtomicU64);

impl Commits {
    /// Notes one more commit.
    pub(super) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A handle to the checkpointer; its thread ends when the handle is dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    /// Never sent on: dropping it wakes the thread to stop.
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts the thread that checkpoints on `connection` whenever `commits` has moved.
    pub(super) fn start(connection: Connection, commits: Arc<Commits>) -> StorageResult<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("errand-sqlite-checkpoint".into())
            .spawn(move || run(&connection, &commits, &stopped))
            .map_err(|error| {
                crate::storage::StorageError::backend(format!("starting the checkpointer: {error}"))
            })?;
        Ok(Self { _stop: stop })
    }
}

fn run(connection: &Connection, commits: &Commits, stopped: &mpsc::Receiver<()>) {
    // From zero, not from the count at start: commits made before this thread first looks
    // (the storage is in use at once) are copied too.
    let mut seen = 0;
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = commits.count();
        if now == seen {
            continue;
        }
        seen = now;
        if let Err(error) = checkpoint(connection) {
            // The writer's own checkpoint still bounds the WAL; say so and try again later.
            tracing::warn!(%error, "checkpointing the database failed");
        }
    }
}

/// Copies what it can of the WAL into the database without waiting for any lock.
fn checkpoint(connection: &Connection) -> StorageResult<()> {
    connection
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .db()
}
