//! Hosted agents from `[agents.NAME]` tables.

use crate::config::{AgentConfig, Config, ModelConfig};
use anyhow::Context;
use errand::runtime::agent::Agent;
use errand::runtime::hooks::Summarization;
use errand::runtime::model::{ChatModel, ModelSettings};
use errand::runtime::{builtin_tools, providers};
use std::sync::Arc;

/// A model from its config.
pub(crate) fn model(config: &ModelConfig) -> anyhow::Result<Arc<dyn ChatModel>> {
    Ok(providers::from_spec_with_overrides(
        &config.name,
        config.api_key.as_deref(),
        config.base_url.as_deref(),
    )?)
}

/// Settings for every call of a model from its config.
pub(crate) fn settings(config: &ModelConfig) -> ModelSettings {
    ModelSettings {
        max_tokens: config.max_tokens,
        temperature: config.temperature,
        stop: Vec::new(),
    }
}

/// Every agent of the config, built and checked: a missing key, tool or folder is an error
/// that names the agent.
pub(crate) fn build_all(config: &Config) -> anyhow::Result<Vec<(String, Agent)>> {
    config
        .agents
        .iter()
        .map(|(name, agent)| {
            build(config, name, agent)
                .with_context(|| format!("agent `{name}` ([agents.{name}])"))
                .map(|built| (name.clone(), built))
        })
        .collect()
}

fn build(config: &Config, name: &str, agent: &AgentConfig) -> anyhow::Result<Agent> {
    let model_config = agent
        .model
        .as_ref()
        .or(config.model.as_ref())
        .context("no model: set `model` in the agent's table or a [model] table")?;
    let model = model(model_config)?;
    let workspace = agent.workspace.as_deref().map(|path| config.resolve(path));
    let mut builder = Agent::builder(Arc::clone(&model))
        .name(name)
        .settings(settings(model_config));
    for tool in &agent.tools {
        builder = builder.tools(builtin_tools::by_name(tool, workspace.as_deref())?);
    }
    if let Some(description) = &agent.description {
        builder = builder.description(description);
    }
    if let Some(prompt) = &agent.system_prompt {
        builder = builder.system_prompt(prompt);
    }
    if let Some(steps) = agent.max_steps {
        builder = builder.max_steps(steps);
    }
    if let Some(budget) = agent.summarize_after_tokens {
        builder = builder.middleware(Summarization::new(model, budget));
    }
    Ok(builder.build()?)
}
