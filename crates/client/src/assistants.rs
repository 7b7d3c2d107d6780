//! `client.assistants()`: the graphs a server hosts.

use crate::client::Call;
use crate::path::encode;
use crate::retry::Safety;
use crate::{Client, ClientError};
use errand_protocol::{Assistant, AssistantSearchRequest};
use http::Method;

/// The assistant calls of a [`Client`]; see [`Client::assistants`].
#[derive(Debug, Clone, Copy)]
pub struct Assistants<'a> {
    client: &'a Client,
}

impl<'a> Assistants<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `POST /assistants/search`.
    pub async fn search(
        &self,
        search: &AssistantSearchRequest,
    ) -> Result<Vec<Assistant>, ClientError> {
        let call = Call::with_json(
            Method::POST,
            "/assistants/search",
            search,
            Safety::Idempotent,
        )?;
        self.client.json(&call).await
    }

    /// `GET /assistants/{assistant_id}`. Servers want the assistant's UUID here (a graph's
    /// default assistant is [`assistant_id_for_graph`](errand_protocol::assistant_id_for_graph)).
    pub async fn get(&self, assistant_id: &str) -> Result<Assistant, ClientError> {
        self.client
            .json(&Call::get(format!("/assistants/{}", encode(assistant_id))))
            .await
    }
}
