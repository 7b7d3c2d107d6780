//! Health, server info, and the answers for unknown routes.

use crate::ServerError;
use axum::Json;
use errand_protocol::Health;
use serde_json::{Value, json};

pub(crate) async fn ok() -> Json<Health> {
    Json(Health::ok())
}

pub(crate) async fn info() -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "server": "errand",
        "flags": { "assistants": true, "crons": false },
        "host": { "kind": "self-hosted" }
    }))
}

pub(crate) async fn not_found() -> ServerError {
    ServerError::not_found()
}

pub(crate) async fn method_not_allowed() -> ServerError {
    ServerError::MethodNotAllowed
}
