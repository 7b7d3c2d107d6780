//! `AsyncSubAgent`: which subagents a supervisor may start, and how to reach them.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How a follow-up from `update_async_task` reaches a task that is still running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateStrategy {
    /// Stop the current run and start the follow-up at once.
    #[default]
    Interrupt,
    /// Queue the follow-up behind the current run.
    Enqueue,
}

/// What a new task is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only the task's description.
    #[default]
    Isolated,
    /// The supervisor's conversation so far, then the description.
    Fork,
}

/// One subagent a supervisor can hand tasks to, with Deep Agents' fields.
///
/// In `errand.toml` it is an `[async_subagents.NAME]` table with the keys of the Deep Agents
/// CLI (`description`, `graph_id`, `url`, `[async_subagents.NAME.headers]`) plus the newer
/// ones, so an existing config reads as is.
///
/// ```
/// use errand_middleware::AsyncSubAgent;
/// let researcher = AsyncSubAgent::new("researcher", "Researches a topic.", "researcher")
///     .url("http://127.0.0.1:2024")
///     .header("Authorization", "Bearer local");
/// assert_eq!(researcher.graph_id, "researcher");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncSubAgent {
    /// Its name: the `subagent_type` the model passes. In a config file, the table's key.
    #[serde(default)]
    pub name: String,
    /// What it does, shown to the model in the start tool's description.
    pub description: String,
    /// The graph (or assistant id) on the server, sent as `assistant_id`.
    pub graph_id: String,
    /// The server's URL; none means the in-process server the middleware was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Extra headers on every request to it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How follow-ups reach a running task.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,
    /// Whether its status changes are delivered to the supervisor as notices. Set it to false
    /// when the application delivers results itself, e.g. through `webhook`.
    #[serde(default = "default_true")]
    pub notify_parent: bool,
    /// A URL the server calls when a run of this subagent ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// Whether a new task gets only its description or the supervisor's conversation too.
    #[serde(default)]
    pub mode: Mode,
    /// Cancel a task still unfinished this many seconds after it started; its status becomes
    /// `timeout`. None: the middleware's default deadline, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_secs: Option<u64>,
}

fn default_true() -> bool {
    true
}

impl AsyncSubAgent {
    /// A subagent named `name`, doing `description`, served as `graph_id` in-process.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        graph_id: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            graph_id: graph_id.into(),
            url: None,
            headers: BTreeMap::new(),
            update_strategy: UpdateStrategy::default(),
            notify_parent: true,
            webhook: None,
            mode: Mode::default(),
            deadline_secs: None,
        }
    }

    /// Reaches it over HTTP at `url`.
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sends `name: value` with every request to it.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets how follow-ups reach a running task.
    #[must_use]
    pub fn update_strategy(mut self, strategy: UpdateStrategy) -> Self {
        self.update_strategy = strategy;
        self
    }

    /// Sets whether new tasks get the supervisor's conversation.
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets whether status changes come back as notices.
    #[must_use]
    pub fn notify_parent(mut self, notify: bool) -> Self {
        self.notify_parent = notify;
        self
    }

    /// Cancels its tasks that run longer than `deadline`.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline_secs = Some(deadline.as_secs().max(1));
        self
    }

    /// The headers sent to it: its own, plus `x-auth-scheme: langsmith` unless it sets one,
    /// as Deep Agents sends them (servers that do not use it ignore it).
    pub fn resolved_headers(&self) -> Vec<(String, String)> {
        let mut headers: Vec<_> = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("x-auth-scheme"))
        {
            headers.push(("x-auth-scheme".into(), "langsmith".into()));
        }
        headers
    }

    fn check(&self) -> Result<(), Error> {
        let invalid = |problem: String| Error::InvalidSpec {
            name: self.name.clone(),
            problem,
        };
        if self.name.trim().is_empty() {
            return Err(Error::InvalidSpec {
                name: String::new(),
                problem: "has an empty name".into(),
            });
        }
        if self.description.trim().is_empty() {
            return Err(invalid("has an empty description".into()));
        }
        if self.graph_id.trim().is_empty() {
            return Err(invalid("has an empty graph_id".into()));
        }
        if let Some(url) = &self.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(format!(
                "has invalid url '{url}'; expected an http:// or https:// URL"
            )));
        }
        if self.deadline_secs == Some(0) {
            return Err(invalid("has deadline_secs 0; expected at least 1".into()));
        }
        Ok(())
    }
}

/// Checks a set of subagents: at least one, unique names, sound values.
pub(crate) fn validate(specs: &[AsyncSubAgent]) -> Result<(), Error> {
    if specs.is_empty() {
        return Err(Error::NoSubagents);
    }
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<_> = specs
        .iter()
        .filter(|spec| !seen.insert(spec.name.as_str()))
        .map(|spec| spec.name.clone())
        .collect();
    if !duplicates.is_empty() {
        return Err(Error::DuplicateNames(duplicates.into_iter().collect()));
    }
    specs.iter().try_for_each(AsyncSubAgent::check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_duplicate_and_bad_specs() {
        assert_eq!(validate(&[]), Err(Error::NoSubagents));
        let a = AsyncSubAgent::new("a", "does a", "graph");
        let error = validate(&[
            a.clone(),
            a.clone(),
            AsyncSubAgent::new("b", "b", "g"),
            AsyncSubAgent::new("b", "b", "g"),
        ])
        .unwrap_err();
        assert_eq!(error.to_string(), "Duplicate async subagent names: a, b");
        assert!(
            validate(&[a.clone().url("ftp://x")])
                .unwrap_err()
                .to_string()
                .contains("invalid url")
        );
        assert!(validate(&[AsyncSubAgent::new("c", " ", "g")]).is_err());
        assert!(validate(&[AsyncSubAgent::new("c", "c", "")]).is_err());
        assert!(validate(&[a]).is_ok());
    }

    #[test]
    fn reads_a_deep_agents_config_table_and_refuses_bad_values() {
        let spec: AsyncSubAgent = serde_json::from_value(serde_json::json!({
            "description": "Research agent", "graph_id": "agent",
            "url": "https://my-deployment.example", "headers": {"Authorization": "Bearer x"}
        }))
        .unwrap();
        assert_eq!(spec.update_strategy, UpdateStrategy::Interrupt);
        assert!(spec.notify_parent);
        assert_eq!(spec.mode, Mode::Isolated);
        let bad = serde_json::from_value::<AsyncSubAgent>(serde_json::json!({
            "description": "d", "graph_id": "g", "update_strategy": "sometimes"
        }))
        .unwrap_err();
        assert!(bad.to_string().contains("sometimes"), "{bad}");
    }

    #[test]
    fn adds_the_auth_scheme_header_unless_set() {
        let plain = AsyncSubAgent::new("a", "a", "g").header("X-Team", "blue");
        assert!(
            plain
                .resolved_headers()
                .contains(&("x-auth-scheme".into(), "langsmith".into()))
        );
        let custom = AsyncSubAgent::new("a", "a", "g").header("X-Auth-Scheme", "custom");
        assert_eq!(
            custom.resolved_headers(),
            [("X-Auth-Scheme".to_owned(), "custom".to_owned())]
        );
    }
}
