//! Assistants: a hosted graph with its configuration.

use crate::thread::{SortOrder, default_page_limit};
use crate::{JsonObject, Nullable, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The namespace LangGraph derives default assistant ids in: `uuid5(namespace, graph_id)`.
pub const ASSISTANT_NAMESPACE: Uuid = Uuid::from_u128(0x6ba7b821_9dad_11d1_80b4_00c04fd430c8);

/// The id of the default assistant of a graph, as the Python server derives it, so a client
/// that kept an assistant id from one server finds the same assistant on the other.
///
/// ```
/// use errand_protocol::assistant_id_for_graph;
/// assert_eq!(assistant_id_for_graph("agent").to_string(), "fe096781-5601-53d2-b2f6-0d3403f7e9ca");
/// ```
pub fn assistant_id_for_graph(graph_id: &str) -> Uuid {
    Uuid::new_v5(&ASSISTANT_NAMESPACE, graph_id.as_bytes())
}

/// A graph the server hosts, with its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Assistant {
    /// The assistant id.
    pub assistant_id: Uuid,
    /// The graph it runs.
    pub graph_id: String,
    /// Its run configuration.
    #[serde(default)]
    pub config: JsonObject,
    /// Its static context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<JsonObject>,
    /// Its metadata; `{"created_by": "system"}` for a graph's default assistant.
    #[serde(default)]
    pub metadata: JsonObject,
    /// Its name; the graph id for a default assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Its version, counting from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// What it does.
    #[serde(default, skip_serializing_if = "Nullable::is_absent")]
    pub description: Nullable<String>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Assistant {
    /// The default assistant of a hosted graph, as the Python server makes it at start-up.
    pub fn for_graph(graph_id: &str, description: Option<String>, at: Timestamp) -> Self {
        let mut metadata = JsonObject::new();
        metadata.insert("created_by".into(), Value::String("system".into()));
        Self {
            assistant_id: assistant_id_for_graph(graph_id),
            graph_id: graph_id.to_owned(),
            config: JsonObject::new(),
            context: Some(JsonObject::new()),
            metadata,
            name: Some(graph_id.to_owned()),
            created_at: at,
            updated_at: at,
            version: Some(1),
            description: description.into(),
            extra: JsonObject::new(),
        }
    }
}

/// The body of `POST /assistants/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AssistantSearchRequest {
    /// Metadata that must match exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
    /// Only assistants of this graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_id: Option<String>,
    /// Only assistants whose name contains this, case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// At most this many (1 to 1000).
    #[serde(default = "default_page_limit")]
    pub limit: u32,
    /// Skip this many.
    #[serde(default)]
    pub offset: u32,
    /// The field to sort by: `assistant_id`, `created_at`, `updated_at`, `name`, `graph_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<String>,
    /// The sort order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_order: Option<SortOrder>,
    /// Only these fields of each assistant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    /// Other keys, kept as given.
    #[serde(flatten)]
    pub extra: JsonObject,
}

impl Default for AssistantSearchRequest {
    fn default() -> Self {
        Self {
            metadata: None,
            graph_id: None,
            name: None,
            limit: default_page_limit(),
            offset: 0,
            sort_by: None,
            sort_order: None,
            select: None,
            extra: JsonObject::new(),
        }
    }
}
