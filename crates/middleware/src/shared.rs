//! What the middleware and its tools share: the subagents, their clients, the settings, the
//! approver and the watcher.
//!
//! It sits below both [`crate::middleware`] and [`crate::tools`], so the middleware reaches the
//! tools and both reach this, never the other way round.

use crate::approval::{Approval, ApprovalRequest, Approver};
use crate::settings::Settings;
use crate::spec::AsyncSubAgent;
use crate::task::AsyncTask;
use crate::watch::{WatchRequest, Watcher};
use errand_client::{Client, ClientCache};
use uuid::Uuid;

/// The state behind one middleware and its five tools.
pub(crate) struct Shared {
    pub(crate) specs: Vec<AsyncSubAgent>,
    pub(crate) clients: ClientCache,
    pub(crate) settings: Settings,
    pub(crate) approver: Option<Approver>,
    pub(crate) watcher: Watcher,
}

impl Shared {
    /// The subagent named `name`.
    pub(crate) fn spec(&self, name: &str) -> Option<&AsyncSubAgent> {
        self.specs.iter().find(|spec| spec.name == name)
    }

    /// The subagents' names, for messages: `` `a`, `b` ``.
    pub(crate) fn names(&self) -> String {
        self.specs
            .iter()
            .map(|spec| format!("`{}`", spec.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The client that reaches `spec`'s server.
    pub(crate) fn client(
        &self,
        spec: &AsyncSubAgent,
    ) -> Result<Client, errand_client::ClientError> {
        self.clients
            .get(spec.url.as_deref(), &spec.resolved_headers())
    }

    /// Asks the approver, if any; `Some(reason)` when refused.
    pub(crate) async fn refused(&self, request: ApprovalRequest) -> Option<String> {
        let approver = self.approver.as_ref()?;
        match approver(request).await {
            Approval::Approve => None,
            Approval::Reject(reason) => Some(reason.unwrap_or_default()),
        }
    }

    /// Watches the task's current run for the supervisor thread `parent`.
    pub(crate) fn watch(
        &self,
        parent: Uuid,
        task: &AsyncTask,
        spec: &AsyncSubAgent,
        client: Client,
    ) {
        let deadline = task.deadline.map(|at| {
            let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
            tokio::time::Instant::now() + left
        });
        self.watcher.watch(WatchRequest {
            parent,
            task: task.clone(),
            client,
            deadline,
            notify: spec.notify_parent,
        });
    }
}
