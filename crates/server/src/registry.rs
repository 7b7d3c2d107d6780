//! The graphs a server hosts, and the default assistant of each.

use crate::error::ServerError;
use errand_protocol::{Assistant, Timestamp};
use errand_runtime::Graph;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// One hosted graph.
#[derive(Clone)]
pub(crate) struct HostedGraph {
    pub(crate) graph: Arc<dyn Graph>,
    pub(crate) assistant: Assistant,
}

/// The hosted graphs by name. Each has one assistant whose id is derived from the graph name
/// as the Python server derives it, so ids carry over between the two servers.
#[derive(Clone, Default)]
pub struct Graphs {
    by_name: BTreeMap<String, HostedGraph>,
}

impl std::fmt::Debug for Graphs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Graphs {
    /// No graphs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hosts `graph` under `name`, replacing a graph of the same name.
    pub fn insert(&mut self, name: impl Into<String>, graph: Arc<dyn Graph>) {
        let name = name.into();
        let description = graph.description().map(str::to_owned);
        let assistant = Assistant::for_graph(&name, description, Timestamp::now());
        self.by_name.insert(name, HostedGraph { graph, assistant });
    }

    /// The graph names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Every assistant.
    pub(crate) fn assistants(&self) -> impl Iterator<Item = &Assistant> {
        self.by_name.values().map(|hosted| &hosted.assistant)
    }

    /// The graph with this name.
    pub(crate) fn by_name(&self, name: &str) -> Option<&HostedGraph> {
        self.by_name.get(name)
    }

    /// The graph whose assistant has this id.
    pub(crate) fn by_assistant_id(&self, id: Uuid) -> Option<&HostedGraph> {
        self.by_name
            .values()
            .find(|hosted| hosted.assistant.assistant_id == id)
    }

    /// Resolves a run's `assistant_id`: an assistant UUID or a graph name. An unknown UUID is
    /// `Ok(None)` (the caller answers 404 as the Python server does); anything else unknown is
    /// the Python server's 422.
    pub(crate) fn resolve(&self, assistant_id: &str) -> Result<Option<&HostedGraph>, ServerError> {
        if let Some(hosted) = self.by_name(assistant_id) {
            return Ok(Some(hosted));
        }
        if let Ok(id) = Uuid::parse_str(assistant_id) {
            return Ok(self.by_assistant_id(id));
        }
        let graphs = self.names().collect::<Vec<_>>().join(", ");
        Err(ServerError::Unprocessable(format!(
            "Invalid assistant: '{assistant_id}'. Must be either:\n- A valid assistant UUID, or\n- One of the registered graphs: {graphs}"
        )))
    }
}
