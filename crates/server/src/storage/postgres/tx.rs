//! One transaction on a pooled connection ([`Tx`]): its statements pipelined, `BEGIN` sent
//! with the first and `COMMIT` with the last, its signals held until it has committed, and
//! [`transact!`] to run a call's transaction again after a transient failure.

use super::PostgresStorage;
use super::codec::{Pg, storage_error, transient};
use super::signals::Channel;
use crate::storage::{StorageError, StorageResult};
use deadpool_postgres::Object;
use errand_protocol::backoff::Backoff;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

/// How many times a transaction that failed transiently is tried again.
pub(super) const RETRIES: u32 = 3;

/// A pool's failure as a storage error.
pub(super) fn pool_error(error: deadpool_postgres::PoolError) -> StorageError {
    StorageError::backend_from(format!("postgres: no connection: {error}"), error)
}

/// How long to wait before try `n` (from 1) of a transaction: short, since a serialization
/// failure or a dropped connection clears in milliseconds, and jittered, so that the replicas
/// that collided do not collide again.
pub(super) fn backoff(n: u32) -> Duration {
    const BACKOFF: Backoff =
        Backoff::new(Duration::from_millis(10), Duration::from_millis(80)).jitter(0.5, 1.0);
    BACKOFF.delay(n)
}

/// One transaction on a pooled connection. `BEGIN` is sent with its first statement
/// ([`Tx::begin_with`]); a transaction that never began is a lone statement, committed by
/// itself. A transaction dropped half-way (its caller went away) takes its connection out of
/// the pool and closes it, which rolls it back.
pub(super) struct Tx<'a> {
    client: Option<Object>,
    channel: &'a Channel,
    /// `BEGIN` was sent.
    begun: AtomicBool,
    /// `COMMIT` (or `ROLLBACK`) was sent.
    ended: AtomicBool,
    /// `COMMIT` was sent and its answer lost: it may have committed, so it is not tried again.
    doubtful: AtomicBool,
    /// Signals to send once the transaction has committed.
    announced: std::sync::Mutex<Vec<String>>,
}

impl Tx<'_> {
    /// The connection.
    fn client(&self) -> StorageResult<&tokio_postgres::Client> {
        self.client
            .as_deref()
            .map(|wrapper| &**wrapper)
            .ok_or_else(|| StorageError::backend("postgres: the connection is gone"))
    }

    /// `sql`, prepared once per connection.
    pub(super) async fn prepare(&self, sql: &str) -> StorageResult<Statement> {
        match &self.client {
            Some(client) => client.prepare_cached(sql).await.pg(),
            None => Err(StorageError::backend("postgres: the connection is gone")),
        }
    }

    /// Where this storage's signals go.
    pub(super) fn channel(&self) -> &Channel {
        self.channel
    }

    /// A query on the connection. Its request is sent when the future is first polled, so
    /// queries joined together ([`futures::join!`]) are sent together; `params` are copied, so
    /// a temporary list of them need not outlive the future.
    pub(super) fn query<'a>(
        &'a self,
        statement: &'a Statement,
        params: &[&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = StorageResult<Vec<tokio_postgres::Row>>> + Send + 'a {
        let params = params.to_vec();
        let client = self.client();
        async move { client?.query(statement, &params).await.pg() }
    }

    /// A statement's row count; sent as [`Tx::query`] is.
    pub(super) fn execute<'a>(
        &'a self,
        statement: &'a Statement,
        params: &[&'a (dyn ToSql + Sync)],
    ) -> impl Future<Output = StorageResult<u64>> + Send + 'a {
        let params = params.to_vec();
        let client = self.client();
        async move { client?.execute(statement, &params).await.pg() }
    }

    /// Begins the transaction with `first` as its first statement, sent with `BEGIN`.
    /// `first` must send its request when first polled (a query on a prepared statement).
    pub(super) async fn begin_with<T>(
        &self,
        first: impl Future<Output = StorageResult<T>>,
    ) -> StorageResult<T> {
        let client = self.client()?;
        self.begun.store(true, Ordering::Relaxed);
        let (begun, result) = futures::join!(client.batch_execute("BEGIN"), first);
        begun.pg()?;
        result
    }

    /// Ends the transaction with `last`, sent with `COMMIT`: if `last` fails, the commit rolls
    /// back instead. `last` must send all its requests when first polled.
    pub(super) async fn commit_with<T>(
        &self,
        last: impl Future<Output = StorageResult<T>>,
    ) -> StorageResult<T> {
        let client = self.client()?;
        if !self.begun.load(Ordering::Relaxed) {
            return last.await;
        }
        self.ended.store(true, Ordering::Relaxed);
        let (result, committed) = futures::join!(last, client.batch_execute("COMMIT"));
        let value = result?;
        if let Err(error) = committed {
            self.doubtful.store(true, Ordering::Relaxed);
            return Err(storage_error(error));
        }
        Ok(value)
    }

    /// Runs `work` as a whole transaction in one round trip: `BEGIN`, its statements, and
    /// `COMMIT` (a rollback if any of them failed) are sent together. `work` must send all its
    /// requests when first polled.
    pub(super) async fn atomically<T>(
        &self,
        work: impl Future<Output = StorageResult<T>>,
    ) -> StorageResult<T> {
        let client = self.client()?;
        self.begun.store(true, Ordering::Relaxed);
        self.ended.store(true, Ordering::Relaxed);
        let (begun, result, committed) = futures::join!(
            client.batch_execute("BEGIN"),
            work,
            client.batch_execute("COMMIT")
        );
        begun.pg()?;
        let value = result?;
        if let Err(error) = committed {
            self.doubtful.store(true, Ordering::Relaxed);
            return Err(storage_error(error));
        }
        Ok(value)
    }

    /// Sends `payloads` on this storage's channel once the transaction has committed (none if
    /// it does not).
    pub(super) async fn notify(&self, payloads: &[String]) -> StorageResult<()> {
        self.announced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(payloads);
        Ok(())
    }

    /// The signals of a transaction that committed, for [`signals::Announcer`].
    pub(super) fn take_announced(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .announced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Commits what is left open after `result`, or rolls it back on an error.
    pub(super) async fn finish<T>(&mut self, result: StorageResult<T>) -> StorageResult<T> {
        if !self.begun.load(Ordering::Relaxed) || self.ended.load(Ordering::Relaxed) {
            return result;
        }
        self.ended.store(true, Ordering::Relaxed);
        let client = self.client()?;
        match result {
            Ok(value) => match client.batch_execute("COMMIT").await {
                Ok(()) => Ok(value),
                Err(error) => {
                    self.doubtful.store(true, Ordering::Relaxed);
                    Err(storage_error(error))
                }
            },
            Err(error) => {
                if client.batch_execute("ROLLBACK").await.is_err() {
                    self.discard();
                }
                Err(error)
            }
        }
    }

    /// True when the transaction may run again after a transient failure.
    pub(super) fn may_retry(&self) -> bool {
        !self.doubtful.load(Ordering::Relaxed)
    }

    /// Closes the connection instead of giving it back to the pool.
    fn discard(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        let open = self.begun.load(Ordering::Relaxed) && !self.ended.load(Ordering::Relaxed);
        let broken = self
            .client
            .as_ref()
            .is_some_and(|client| client.is_closed());
        if open || broken {
            self.discard();
        }
    }
}

impl PostgresStorage {
    /// A connection from the pool, for one transaction; a failure to connect is tried again.
    pub(super) async fn session(&self) -> StorageResult<Tx<'_>> {
        let mut tries = 0;
        loop {
            match self.inner.pool.get().await {
                Ok(client) => {
                    return Ok(Tx {
                        client: Some(client),
                        channel: &self.inner.channel,
                        begun: AtomicBool::new(false),
                        ended: AtomicBool::new(false),
                        doubtful: AtomicBool::new(false),
                        announced: std::sync::Mutex::new(Vec::new()),
                    });
                }
                Err(error) => {
                    let error = pool_error(error);
                    if tries >= RETRIES || !transient(&error) {
                        return Err(error);
                    }
                    tries += 1;
                    tokio::time::sleep(backoff(tries)).await;
                }
            }
        }
    }
}

/// Runs `$body` (an expression using the transaction `$tx`) in a transaction of `$storage`,
/// again from the start after a transient failure.
macro_rules! transact {
    ($storage:expr, |$tx:ident| $body:expr) => {{
        let mut tries = 0;
        loop {
            let mut $tx = $storage.session().await?;
            let result = $body.await;
            let result = $tx.finish(result).await;
            if result.is_ok() {
                $storage.inner.announcer.send($tx.take_announced());
            }
            match result {
                Err(error)
                    if tries < $crate::storage::postgres::tx::RETRIES
                        && $tx.may_retry()
                        && $crate::storage::postgres::codec::transient(&error) =>
                {
                    tries += 1;
                    tracing::debug!(%error, tries, "postgres: trying the transaction again");
                    drop($tx);
                    tokio::time::sleep($crate::storage::postgres::tx::backoff(tries)).await;
                }
                result => break result,
            }
        }
    }};
}
pub(super) use transact;
