//! The long-term key-value store shared by every thread.

use crate::{JsonObject, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// One stored item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoreItem {
    /// Its namespace, a path of labels.
    pub namespace: Vec<String>,
    /// Its key within the namespace.
    pub key: String,
    /// The stored document.
    pub value: JsonObject,
    /// When it was first put.
    pub created_at: Timestamp,
    /// When it was last put.
    pub updated_at: Timestamp,
    /// Other keys (`score` in search results), kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The body of `PUT /store/items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StorePutRequest {
    /// The namespace: labels that are not empty and hold no `.` (a get joins them with `.`).
    #[schemars(inner(pattern(r"^[^.]+$")))]
    pub namespace: Vec<String>,
    /// The key.
    pub key: String,
    /// The document to store.
    pub value: JsonObject,
    /// Fields to index for search, or `false` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Value>,
    /// Minutes to keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Number>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The body of `DELETE /store/items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoreDeleteRequest {
    /// The namespace.
    #[serde(default)]
    pub namespace: Vec<String>,
    /// The key.
    pub key: String,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

/// The body of `POST /store/items/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoreSearchRequest {
    /// Only items under this namespace prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_prefix: Option<Vec<String>>,
    /// Values that must match exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<JsonObject>,
    /// At most this many.
    #[serde(default = "default_search_limit")]
    pub limit: u32,
    /// Skip this many.
    #[serde(default)]
    pub offset: u32,
    /// A natural-language query, for stores with an index (errand's has none: it refuses one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Whether reading refreshes the items' time-to-live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_ttl: Option<bool>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

fn default_search_limit() -> u32 {
    10
}

/// The answer to `POST /store/items/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchItemsResponse {
    /// The items found.
    pub items: Vec<StoreItem>,
}

/// The body of `POST /store/namespaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoreListNamespacesRequest {
    /// Only namespaces that start with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Vec<String>>,
    /// Only namespaces that end with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<Vec<String>>,
    /// Cut namespaces to this many labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// At most this many.
    #[serde(default = "default_namespace_limit")]
    pub limit: u32,
    /// Skip this many.
    #[serde(default)]
    pub offset: u32,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

fn default_namespace_limit() -> u32 {
    100
}

/// The answer to `POST /store/namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListNamespacesResponse {
    /// The namespaces found.
    pub namespaces: Vec<Vec<String>>,
}
