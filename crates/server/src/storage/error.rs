//! What can go wrong in storage: the one error type every backend answers with.

use std::sync::Arc;
use uuid::Uuid;

/// What can go wrong in storage. The messages are the ones clients see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The thread does not exist.
    #[error("Thread with ID {0} not found")]
    ThreadNotFound(Uuid),
    /// A thread with this id exists and `if_exists` was `raise`.
    #[error("Thread with ID {0} already exists")]
    ThreadExists(Uuid),
    /// The thread has a pending or running run and the strategy was `reject`.
    #[error(
        "Thread is already running a task. Wait for it to finish or choose a different multitask strategy."
    )]
    ThreadBusy,
    /// The database failed.
    #[error("storage failed: {0}")]
    Backend(#[source] BackendError),
    /// The disk, or the database's size limit, is full: nothing more can be written until
    /// space returns. Reads still work.
    #[error("storage is full: {0}")]
    Full(String),
    /// A write of one attempt of a run that no longer holds it: its lease expired and the run
    /// went back to the queue (and maybe to another replica), or it was ended meanwhile. The
    /// attempt's work is dropped; whatever holds the run now carries on.
    #[error("run {run_id}: attempt {attempt} no longer holds it")]
    Fenced {
        /// The run.
        run_id: Uuid,
        /// The attempt that wrote.
        attempt: u32,
    },
}

impl StorageError {
    /// A failure of the database, said in `message`.
    pub fn backend(message: impl Into<String>) -> Self {
        Self::Backend(BackendError {
            message: message.into(),
            source: None,
        })
    }

    /// A failure of the database, said in `message`, caused by `source` (kept, for
    /// [`std::error::Error::source`] and for telling transient failures from lasting ones).
    pub fn backend_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend(BackendError {
            message: message.into(),
            source: Some(Arc::new(source)),
        })
    }
}

/// What failed in the database, and the error of the database's own beneath it.
#[derive(Debug, Clone)]
pub struct BackendError {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// What failed, in words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {
    // The database's error itself, not the `Arc` it is shared in, so that it downcasts.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// A result of a storage call.
pub type StorageResult<T> = Result<T, StorageError>;
