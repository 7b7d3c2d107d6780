//! `client.store()`: the long-term key-value store shared by every thread.

use crate::client::Call;
use crate::path::PathQuery;
use crate::retry::Safety;
use crate::{Client, ClientError};
use errand_protocol::{
    JsonObject, ListNamespacesResponse, SearchItemsResponse, StoreDeleteRequest, StoreItem,
    StoreListNamespacesRequest, StorePutRequest, StoreSearchRequest,
};
use http::Method;

/// The store calls of a [`Client`]; see [`Client::store`].
#[derive(Debug, Clone, Copy)]
pub struct Store<'a> {
    client: &'a Client,
}

/// Namespace labels travel dot-joined in a query, so they may not contain a `.` (the official
/// client checks the same).
fn check_labels(namespace: &[String]) -> Result<(), ClientError> {
    match namespace.iter().find(|label| label.contains('.')) {
        Some(label) => Err(ClientError::InvalidArgument(format!(
            "namespace label `{label}` contains a `.`"
        ))),
        None => Ok(()),
    }
}

impl<'a> Store<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Self { client }
    }

    /// `PUT /store/items`: stores `value` under `namespace` and `key`.
    pub async fn put(&self, request: &StorePutRequest) -> Result<(), ClientError> {
        check_labels(&request.namespace)?;
        let call = Call::with_json(Method::PUT, "/store/items", request, Safety::Idempotent)?;
        self.client.send(&call).await
    }

    /// `PUT /store/items` with just a namespace, a key and a value.
    pub async fn put_item(
        &self,
        namespace: &[&str],
        key: &str,
        value: JsonObject,
    ) -> Result<(), ClientError> {
        self.put(&StorePutRequest {
            namespace: namespace.iter().map(|label| (*label).to_owned()).collect(),
            key: key.to_owned(),
            value,
            index: None,
            ttl: None,
            extra: JsonObject::new(),
        })
        .await
    }

    /// `GET /store/items?namespace=a.b&key=k`: the item, or `None` when there is none.
    pub async fn get(
        &self,
        namespace: &[&str],
        key: &str,
    ) -> Result<Option<StoreItem>, ClientError> {
        let labels: Vec<String> = namespace.iter().map(|label| (*label).to_owned()).collect();
        check_labels(&labels)?;
        let path = PathQuery::new("/store/items")
            .pair("namespace", &labels.join("."))
            .pair("key", key)
            .finish();
        self.client.json(&Call::get(path)).await
    }

    /// `DELETE /store/items`.
    pub async fn delete(&self, namespace: &[&str], key: &str) -> Result<(), ClientError> {
        let body = StoreDeleteRequest {
            namespace: namespace.iter().map(|label| (*label).to_owned()).collect(),
            key: key.to_owned(),
            extra: JsonObject::new(),
        };
        let call = Call::with_json(Method::DELETE, "/store/items", &body, Safety::Idempotent)?;
        self.client.send(&call).await
    }

    /// `POST /store/items/search`.
    pub async fn search(&self, search: &StoreSearchRequest) -> Result<Vec<StoreItem>, ClientError> {
        let call = Call::with_json(
            Method::POST,
            "/store/items/search",
            search,
            Safety::Idempotent,
        )?;
        let found: SearchItemsResponse = self.client.json(&call).await?;
        Ok(found.items)
    }

    /// `POST /store/namespaces`.
    pub async fn list_namespaces(
        &self,
        request: &StoreListNamespacesRequest,
    ) -> Result<Vec<Vec<String>>, ClientError> {
        let call = Call::with_json(
            Method::POST,
            "/store/namespaces",
            request,
            Safety::Idempotent,
        )?;
        let found: ListNamespacesResponse = self.client.json(&call).await?;
        Ok(found.namespaces)
    }
}
