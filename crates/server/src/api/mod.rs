//! The HTTP API: the LangGraph server routes, as the official clients call them.

mod answer;
mod assistants;
mod extract;
mod runs;
mod store;
mod stream;
mod system;
mod threads;

use crate::executor::Executor;
use crate::{ServerError, ServerResult};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;

/// The largest request body accepted, in bytes.
pub(crate) const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) executor: Executor,
    pub(crate) api_key: Option<Arc<str>>,
}

/// The router of every route, with auth, the body limit and `{"detail"}` errors for unknown
/// routes and methods.
pub(crate) fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/info", get(system::info))
        .route("/assistants/search", post(assistants::search))
        .route("/assistants/{assistant_id}", get(assistants::get))
        .route("/threads", post(threads::create))
        .route("/threads/search", post(threads::search))
        .route(
            "/threads/{thread_id}",
            get(threads::get)
                .patch(threads::patch)
                .delete(threads::delete),
        )
        .route(
            "/threads/{thread_id}/state",
            get(threads::get_state).post(threads::update_state),
        )
        .route("/threads/{thread_id}/history", post(threads::history))
        .route(
            "/threads/{thread_id}/runs",
            post(runs::create).get(runs::list),
        )
        .route(
            "/threads/{thread_id}/runs/stream",
            post(runs::create_stream),
        )
        .route("/threads/{thread_id}/runs/wait", post(runs::create_wait))
        .route(
            "/threads/{thread_id}/runs/{run_id}",
            get(runs::get).delete(runs::delete),
        )
        .route(
            "/threads/{thread_id}/runs/{run_id}/cancel",
            post(runs::cancel),
        )
        .route("/threads/{thread_id}/runs/{run_id}/join", get(runs::join))
        .route(
            "/threads/{thread_id}/runs/{run_id}/stream",
            get(runs::join_stream),
        )
        .route("/runs", post(runs::create_stateless))
        .route("/runs/stream", post(runs::create_stateless_stream))
        .route("/runs/wait", post(runs::create_stateless_wait))
        .route("/runs/cancel", post(runs::cancel_many))
        .route(
            "/store/items",
            get(store::get_item)
                .put(store::put_item)
                .delete(store::delete_item),
        )
        .route("/store/items/search", post(store::search_items))
        .route("/store/namespaces", post(store::list_namespaces))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    Router::new()
        .route("/ok", get(system::ok))
        .merge(api)
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// When the server has an API key, a request must carry it in `x-api-key` or as a bearer token.
async fn require_api_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> ServerResult<Response> {
    if let Some(expected) = &state.api_key {
        let given = headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .or_else(|| {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("Bearer "))
            });
        let accepted =
            given.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()));
        if !accepted {
            return Err(ServerError::Unauthorized(
                "Missing or invalid API key: send it in the x-api-key header or as a Bearer token"
                    .into(),
            ));
        }
    }
    Ok(next.run(request).await)
}

/// Compares two secrets in time that depends only on their lengths.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(0));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_secrets() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
