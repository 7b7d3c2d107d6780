//! The long-term store.

use super::AppState;
use super::extract::{ApiJson, query_value};
use crate::{ServerError, ServerResult};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use errand_protocol::{
    ListNamespacesResponse, SearchItemsResponse, StoreDeleteRequest, StoreItem,
    StoreListNamespacesRequest, StorePutRequest, StoreSearchRequest, Timestamp,
};

fn check_namespace(namespace: &[String]) -> ServerResult<()> {
    if let Some(label) = namespace
        .iter()
        .find(|label| label.is_empty() || label.contains('.'))
    {
        return Err(ServerError::Unprocessable(format!(
            "namespace: the label `{label}` is empty or contains a `.`"
        )));
    }
    Ok(())
}

pub(crate) async fn put_item(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StorePutRequest>,
) -> ServerResult<StatusCode> {
    check_namespace(&body.namespace)?;
    state
        .executor
        .storage()
        .put_item(&body.namespace, &body.key, body.value, Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn get_item(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> ServerResult<Json<Option<StoreItem>>> {
    let key = query_value(&query, "key")
        .filter(|key| !key.is_empty())
        .ok_or_else(|| ServerError::BadRequest("Key is required".into()))?;
    let namespace: Vec<String> = query_value(&query, "namespace")
        .filter(|namespace| !namespace.is_empty())
        .map(|namespace| namespace.split('.').map(str::to_owned).collect())
        .unwrap_or_default();
    let item = state.executor.storage().get_item(&namespace, key).await?;
    Ok(Json(item))
}

pub(crate) async fn delete_item(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StoreDeleteRequest>,
) -> ServerResult<StatusCode> {
    state
        .executor
        .storage()
        .delete_item(&body.namespace, &body.key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn search_items(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StoreSearchRequest>,
) -> ServerResult<Json<SearchItemsResponse>> {
    if body.query.as_deref().is_some_and(|query| !query.is_empty()) {
        return Err(ServerError::Unprocessable(
            "query: this store has no search index; filter by namespace and values instead".into(),
        ));
    }
    let items = state.executor.storage().search_items(&body).await?;
    Ok(Json(SearchItemsResponse { items }))
}

pub(crate) async fn list_namespaces(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StoreListNamespacesRequest>,
) -> ServerResult<Json<ListNamespacesResponse>> {
    Ok(Json(state.executor.storage().list_namespaces(&body).await?))
}
