//! Assistants: one per hosted graph.

use super::AppState;
use super::extract::Path;
use super::extract::{ApiJson, parse_id};
use crate::storage::rules::contains;
use crate::{ServerError, ServerResult};
use axum::Json;
use axum::extract::State;
use errand_protocol::{Assistant, AssistantSearchRequest};

pub(crate) async fn search(
    State(state): State<AppState>,
    ApiJson(search): ApiJson<AssistantSearchRequest>,
) -> ServerResult<Json<Vec<Assistant>>> {
    let name = search.name.as_deref().map(str::to_lowercase);
    let found = state
        .executor
        .graphs()
        .assistants()
        .filter(|a| {
            search
                .graph_id
                .as_ref()
                .is_none_or(|graph| &a.graph_id == graph)
        })
        .filter(|a| {
            name.as_ref().is_none_or(|wanted| {
                a.name
                    .as_deref()
                    .unwrap_or_default()
                    .to_lowercase()
                    .contains(wanted)
            })
        })
        .filter(|a| {
            search
                .metadata
                .as_ref()
                .is_none_or(|m| contains(Some(&a.metadata), m))
        })
        .skip(search.offset as usize)
        .take(search.limit as usize)
        .cloned()
        .collect();
    Ok(Json(found))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path(assistant_id): Path<String>,
) -> ServerResult<Json<Assistant>> {
    let id = parse_id(&assistant_id, "assistant")?;
    state
        .executor
        .graphs()
        .by_assistant_id(id)
        .map(|hosted| Json(hosted.assistant.clone()))
        .ok_or_else(ServerError::not_found)
}
