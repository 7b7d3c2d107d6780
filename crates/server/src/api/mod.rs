//! The HTTP API: the LangGraph server routes, as the official clients call them.

mod answer;
mod assistants;
mod auth;
mod catch_panic;
mod extract;
mod guard;
mod keep_alive;
mod runs;
mod store;
mod stream;
mod system;
mod threads;

use crate::executor::Executor;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use guard::GuardLayer;
use std::sync::Arc;
use tower::ServiceBuilder;

/// The largest request body accepted, in bytes.
pub(crate) const BODY_LIMIT: usize = errand_protocol::MAX_BODY_BYTES;

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) executor: Executor,
    pub(crate) api_key: Option<Arc<str>>,
}

/// The router of every route, with `{"detail"}` errors for unknown routes and methods, the
/// body limit, and [`guard`] around every route and both fallbacks.
pub(crate) fn router(state: AppState) -> Router {
    let api_key = state.api_key.clone();
    Router::new()
        .route("/ok", get(system::ok))
        .route("/info", get(system::info))
        .route("/assistants/search", post(assistants::search))
        .route("/assistants/{assistant_id}", get(assistants::get))
        .route("/threads", post(threads::create))
        .route("/threads/search", post(threads::search))
        .route("/threads/prune", post(threads::prune))
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
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        // Last: a layer covers only the routes and fallbacks added before it. One layer for
        // both, as each layer costs every request a boxed call.
        .layer(
            ServiceBuilder::new()
                .layer(GuardLayer::new(api_key))
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .with_state(state)
}
