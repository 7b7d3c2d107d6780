//! Bodies that are not about one resource: errors, health and server info.

use crate::JsonObject;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The body of every error answer: `{"detail": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub detail: String,
}

impl ErrorBody {
    /// An error body with this text.
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
        }
    }
}

/// The answer to `GET /ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Always true when the server answers.
    pub ok: bool,
}

/// The answer to `GET /info`: versions and the features the server has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerInfo {
    /// Which features are on (`assistants`, `crons`, ...).
    #[serde(default)]
    pub flags: JsonObject,
    /// Everything else (`version`, `langgraph_py_version`, `host`, ...), kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}
