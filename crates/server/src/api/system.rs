//! Health, server info, and the answers for unknown routes.

use crate::ServerError;
use axum::Json;
use errand_protocol::Health;
use serde::Serialize;

/// The answer to `GET /info`: this server, and the features it has as the Python server's
/// clients look for them.
#[derive(Debug, Serialize)]
pub(crate) struct Info {
    version: &'static str,
    server: &'static str,
    flags: Flags,
    host: Host,
}

/// Which features of the Python server's this one has.
#[derive(Debug, Serialize)]
struct Flags {
    assistants: bool,
    crons: bool,
}

/// Where the server runs.
#[derive(Debug, Serialize)]
struct Host {
    kind: &'static str,
}

pub(crate) async fn ok() -> Json<Health> {
    Json(Health::ok())
}

pub(crate) async fn info() -> Json<Info> {
    Json(Info {
        version: env!("CARGO_PKG_VERSION"),
        server: "errand",
        flags: Flags {
            assistants: true,
            crons: false,
        },
        host: Host {
            kind: "self-hosted",
        },
    })
}

pub(crate) async fn not_found() -> ServerError {
    ServerError::not_found()
}

pub(crate) async fn method_not_allowed() -> ServerError {
    ServerError::MethodNotAllowed
}
