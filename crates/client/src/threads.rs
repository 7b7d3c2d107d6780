//! `client.threads()`: create, read, update, delete and search threads; their state and history.

use crate::client::Call;
use crate::retry::Safety;
use crate::{Client, ClientError};
use errand_protocol::{
    HistoryRequest, Thread, ThreadCreate, ThreadPatch, ThreadSearchRequest, ThreadState,
    ThreadStateUpdate, ThreadStateUpdateResponse,
};
use http::Method;
use uuid::Uuid;

/// The thread calls of a [`Client`]; see [`Client::threads`].
#[derive(Debug, Clone, Copy)]
pub struct Threads<'a> {
    client: &'a Client,
}

impl<'a> Threads<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `POST /threads`. Repeated on a failed connection only when the body names the thread
    /// (a second try cannot make a second thread).
    pub async fn create(&self, body: &ThreadCreate) -> Result<Thread, ClientError> {
        let safety = if body.thread_id.is_some() {
            Safety::Idempotent
        } else {
            Safety::Unsafe
        };
        let call = Call::with_json(Method::POST, "/threads", body, safety)?;
        self.client.json(&call).await
    }

    /// `GET /threads/{thread_id}`.
    pub async fn get(&self, thread_id: Uuid) -> Result<Thread, ClientError> {
        self.client
            .json(&Call::get(format!("/threads/{thread_id}")))
            .await
    }

    /// `PATCH /threads/{thread_id}`: merges metadata.
    pub async fn update(
        &self,
        thread_id: Uuid,
        patch: &ThreadPatch,
    ) -> Result<Thread, ClientError> {
        let call = Call::with_json(
            Method::PATCH,
            format!("/threads/{thread_id}"),
            patch,
            Safety::Unsafe,
        )?;
        self.client.json(&call).await
    }

    /// `DELETE /threads/{thread_id}`: stops its runs and deletes it.
    pub async fn delete(&self, thread_id: Uuid) -> Result<(), ClientError> {
        self.client
            .send(&Call::delete(format!("/threads/{thread_id}")))
            .await
    }

    /// `POST /threads/search`.
    pub async fn search(&self, search: &ThreadSearchRequest) -> Result<Vec<Thread>, ClientError> {
        let call = Call::with_json(Method::POST, "/threads/search", search, Safety::Idempotent)?;
        self.client.json(&call).await
    }

    /// `GET /threads/{thread_id}/state`: the latest state.
    pub async fn get_state(&self, thread_id: Uuid) -> Result<ThreadState, ClientError> {
        self.client
            .json(&Call::get(format!("/threads/{thread_id}/state")))
            .await
    }

    /// `POST /threads/{thread_id}/state`: writes values as if a node had.
    pub async fn update_state(
        &self,
        thread_id: Uuid,
        update: &ThreadStateUpdate,
    ) -> Result<ThreadStateUpdateResponse, ClientError> {
        let call = Call::with_json(
            Method::POST,
            format!("/threads/{thread_id}/state"),
            update,
            Safety::Unsafe,
        )?;
        self.client.json(&call).await
    }

    /// `POST /threads/{thread_id}/history`: past states, newest first.
    pub async fn get_history(
        &self,
        thread_id: Uuid,
        request: &HistoryRequest,
    ) -> Result<Vec<ThreadState>, ClientError> {
        let call = Call::with_json(
            Method::POST,
            format!("/threads/{thread_id}/history"),
            request,
            Safety::Idempotent,
        )?;
        self.client.json(&call).await
    }
}
