//! Bodies that are not about one resource: errors, health and server info.

use crate::JsonObject;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The body of an error answer: `{"detail": "..."}`.
///
/// errand always writes `detail`. The Python server answers a few errors with `{"error": ...}`
/// instead, so reading keeps whatever keys came, and [`ErrorBody::message`] looks where the
/// official client looks.
///
/// ```
/// use errand_protocol::ErrorBody;
/// let ours: ErrorBody = serde_json::from_str(r#"{"detail": "Thread not found"}"#).unwrap();
/// let theirs: ErrorBody = serde_json::from_str(r#"{"error": "Key is required"}"#).unwrap();
/// assert_eq!(ours.message(), Some("Thread not found"));
/// assert_eq!(theirs.message(), Some("Key is required"));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Other keys (`error`, `message`), kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl ErrorBody {
    /// An error body with this text.
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
            extra: JsonObject::new(),
        }
    }

    /// The text to show: `detail`, else `message`, `error`, or `error.message`, as the official
    /// Python client reads it.
    pub fn message(&self) -> Option<&str> {
        if let Some(detail) = &self.detail {
            return Some(detail);
        }
        let text = |key: &str| self.extra.get(key).and_then(|value| value.as_str());
        text("message").or_else(|| text("error")).or_else(|| {
            self.extra
                .get("error")
                .and_then(|error| error.get("message"))
                .and_then(|message| message.as_str())
        })
    }
}

/// The answer to `GET /ok`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Always true when the server answers.
    pub ok: bool,
    /// Other keys (`services`), kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Health {
    /// `{"ok": true}`.
    pub fn ok() -> Self {
        Self {
            ok: true,
            extra: JsonObject::new(),
        }
    }
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
