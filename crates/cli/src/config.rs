//! `errand.toml`: the one config file of the `errand` command.
//!
//! ```toml
//! [model]                                  # the default model (the supervisor's, and agents')
//! name = "anthropic:claude-sonnet-4-5"     # or "openai:gpt-4o-mini"
//! api_key = "${ANTHROPIC_API_KEY}"         # optional; the provider's variable is the default
//!
//! [agents.researcher]                      # an agent `errand serve` hosts, graph id = table key
//! description = "Researches a topic and writes a short report."
//! system_prompt = "You research carefully."
//! tools = ["files", "fetch_url"]
//! workspace = "research"                   # for file tools; relative to this file
//!
//! [async_subagents.researcher]             # what the supervisor may start tasks on
//! description = "Researches a topic."      # the keys of the Deep Agents CLI
//! graph_id = "researcher"
//! url = "http://127.0.0.1:2024"            # none: the agents hosted in this process
//! [async_subagents.researcher.headers]
//! Authorization = "Bearer ${TOKEN}"
//! ```
//!
//! Strings may name environment variables as `${NAME}` or `${NAME:-fallback}`. A bad file is
//! refused with its path, the line and key, and what was expected. Top-level tables errand does
//! not know are reported and skipped, so a Deep Agents `config.toml` can be read as it is.

use anyhow::Context;
use errand::middleware::AsyncSubAgent;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A parsed `errand.toml`.
#[derive(Debug, Default)]
pub(crate) struct Config {
    /// The default model.
    pub(crate) model: Option<ModelConfig>,
    /// Hosted agents by name.
    pub(crate) agents: BTreeMap<String, AgentConfig>,
    /// Subagents the supervisor may start tasks on, by name (Deep Agents' CLI keys).
    pub(crate) async_subagents: Vec<AsyncSubAgent>,
    /// The folder the file is in; relative paths in it start there.
    pub(crate) base_dir: PathBuf,
    /// Top-level keys that were skipped.
    pub(crate) skipped: Vec<String>,
}

impl Config {
    /// Reads and checks `path`.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        let mut config =
            Self::parse(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    /// Parses the text of a config file.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let mut config: Self = toml::from_str(text)?;
        for spec in &mut config.async_subagents {
            let key = |field: &str| format!("[async_subagents.{}] {field}", spec.name);
            if let Some(url) = &spec.url {
                spec.url =
                    Some(expand_env(url).map_err(|e| anyhow::anyhow!("{}: {e}", key("url")))?);
            }
            for (name, value) in &mut spec.headers {
                *value = expand_env(value)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", key(&format!("headers.{name}"))))?;
            }
        }
        Ok(config)
    }

    /// A path from the file, resolved against the file's folder.
    pub(crate) fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

impl<'de> Deserialize<'de> for Config {
    /// Reads the known tables strictly and only names the rest: a typo inside a known table is
    /// an error, a foreign section is not. Going key by key keeps the parser's line numbers in
    /// every error.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConfigVisitor;
        impl<'de> Visitor<'de> for ConfigVisitor {
            type Value = Config;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a config with `[model]`, `[agents.NAME]` and `[async_subagents.NAME]` tables",
                )
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Config, M::Error> {
                let mut config = Config::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "model" => config.model = Some(map.next_value()?),
                        "agents" => config.agents = map.next_value()?,
                        "async_subagents" => {
                            let tables: BTreeMap<String, AsyncSubAgent> = map.next_value()?;
                            config.async_subagents = tables
                                .into_iter()
                                .map(|(name, mut spec)| {
                                    spec.name = name;
                                    spec
                                })
                                .collect();
                        }
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            config.skipped.push(key);
                        }
                    }
                }
                Ok(config)
            }
        }
        deserializer.deserialize_map(ConfigVisitor)
    }
}

/// A model: `"provider:name"`, or a table with the name and connection settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelConfig {
    /// `provider:model`, e.g. `anthropic:claude-sonnet-4-5`.
    pub(crate) name: String,
    /// Where the provider's API is, when not its default.
    pub(crate) base_url: Option<String>,
    /// The API key, when not from the provider's environment variable.
    pub(crate) api_key: Option<String>,
    /// The most tokens an answer may have.
    pub(crate) max_tokens: Option<u32>,
    /// Sampling temperature.
    pub(crate) temperature: Option<f32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelTable {
    name: EnvString,
    #[serde(default)]
    base_url: Option<EnvString>,
    #[serde(default)]
    api_key: Option<EnvString>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default, deserialize_with = "temperature")]
    temperature: Option<f32>,
}

/// A sampling temperature: a finite number, 0 or more. TOML reads `nan` and `inf` (and a
/// large number is infinite as an `f32`); a provider's JSON cannot carry them, so they are
/// refused here, where the error can name the line.
fn temperature<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f32>, D::Error> {
    let value = f32::deserialize(deserializer)?;
    if value.is_finite() && value >= 0.0 {
        Ok(Some(value))
    } else {
        Err(de::Error::custom(format!(
            "`temperature` must be a finite number, 0 or more, not {value}"
        )))
    }
}

impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModelVisitor;
        impl<'de> Visitor<'de> for ModelVisitor {
            type Value = ModelConfig;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a model as \"provider:name\" (e.g. \"anthropic:claude-sonnet-4-5\") or a table with `name`",
                )
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<ModelConfig, E> {
                Ok(ModelConfig {
                    name: expand_env(name).map_err(E::custom)?,
                    base_url: None,
                    api_key: None,
                    max_tokens: None,
                    temperature: None,
                })
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<ModelConfig, M::Error> {
                let table = ModelTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ModelConfig {
                    name: table.name.0,
                    base_url: table.base_url.map(|v| v.0),
                    api_key: table.api_key.map(|v| v.0),
                    max_tokens: table.max_tokens,
                    temperature: table.temperature,
                })
            }
        }
        deserializer.deserialize_any(ModelVisitor)
    }
}

/// A hosted agent, `[agents.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentConfig {
    /// What it is for, shown as its assistant's description.
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// Its model; the `[model]` table when absent.
    #[serde(default)]
    pub(crate) model: Option<ModelConfig>,
    /// Its system prompt.
    #[serde(default)]
    pub(crate) system_prompt: Option<String>,
    /// Built-in tools by name (`ls`, `read_file`, `write_file`, `edit_file`, `glob`, `grep`,
    /// the group `files`, `fetch_url`).
    #[serde(default)]
    pub(crate) tools: Vec<String>,
    /// The folder the file tools are confined to.
    #[serde(default)]
    pub(crate) workspace: Option<PathBuf>,
    /// The most model calls in one run.
    #[serde(default)]
    pub(crate) max_steps: Option<usize>,
    /// Summarise older messages once the conversation passes about this many tokens.
    #[serde(default)]
    pub(crate) summarize_after_tokens: Option<usize>,
}

/// A string with `${NAME}` and `${NAME:-fallback}` replaced from the environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnvString(pub(crate) String);

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        expand_env(&raw).map(Self).map_err(de::Error::custom)
    }
}

/// Replaces `${NAME}` and `${NAME:-fallback}` in `raw`; an unset variable without a fallback
/// is an error naming it, and so is a variable inside another (`${A:-${B}}`), which would
/// otherwise pass on as text.
pub(crate) fn expand_env(raw: &str) -> Result<String, String> {
    expand_with(raw, |name| std::env::var(name).ok())
}

fn expand_with(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in \"{raw}\""))?;
        if after[..end].contains("${") {
            return Err(format!(
                "variables do not nest: `${{` inside `${{...}}` in \"{raw}\""
            ));
        }
        let (name, fallback) = match after[..end].split_once(":-") {
            Some((name, fallback)) => (name, Some(fallback)),
            None => (&after[..end], None),
        };
        match (lookup(name).filter(|value| !value.is_empty()), fallback) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(fallback)) => out.push_str(fallback),
            (None, None) => {
                return Err(format!(
                    "the environment variable `{name}` is not set (write `${{{name}:-fallback}}` to allow that)"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_models_agents_and_skips_foreign_tables() {
        let config = Config::parse(
            r#"
theme = "dark"

[model]
name = "anthropic:claude-sonnet-4-5"
max_tokens = 2000

[ui]
colour = "blue"

[agents.researcher]
description = "Researches."
model = "openai:gpt-4o-mini"
tools = ["files", "fetch_url"]
workspace = "research"

[agents.writer]
system_prompt = "Write."

[async_subagents.researcher]
description = "Research agent"
graph_id = "agent"
url = "https://my-deployment.example"
[async_subagents.researcher.headers]
Authorization = "Bearer x"
"#,
        )
        .unwrap();
        let model = config.model.unwrap();
        assert_eq!(model.name, "anthropic:claude-sonnet-4-5");
        assert_eq!(model.max_tokens, Some(2000));
        assert_eq!(config.agents.len(), 2);
        let researcher = &config.agents["researcher"];
        assert_eq!(
            researcher.model.as_ref().unwrap().name,
            "openai:gpt-4o-mini"
        );
        assert_eq!(researcher.tools, ["files", "fetch_url"]);
        assert!(config.agents["writer"].model.is_none());
        assert_eq!(config.skipped, ["theme", "ui"]);
        let researcher = &config.async_subagents[0];
        assert_eq!(researcher.name, "researcher");
        assert_eq!(researcher.graph_id, "agent");
        assert_eq!(researcher.headers["Authorization"], "Bearer x");
    }

    #[test]
    fn a_bad_key_names_the_line_the_key_and_what_was_expected() {
        let error = Config::parse("[agents.researcher]\ndescription = \"x\"\ntool = [\"ls\"]\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 3"), "{error}");
        assert!(error.contains("unknown field `tool`"), "{error}");
        assert!(error.contains("tools"), "{error}");

        let error = Config::parse("[agents.a]\nmax_steps = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 2") && error.contains("max_steps"),
            "{error}"
        );

        let error = Config::parse("[model]\nname = 3\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 2"), "{error}");

        let error =
            Config::parse("[model]\nname = \"x\"\napi_key = \"${ERRAND_TEST_SURELY_UNSET}\"\n")
                .unwrap_err()
                .to_string();
        assert!(error.contains("line 3"), "{error}");
        assert!(error.contains("ERRAND_TEST_SURELY_UNSET"), "{error}");
    }

    #[test]
    fn a_temperature_no_model_takes_is_refused_with_its_line() {
        // TOML reads `nan` and `inf`, and 1e39 is infinite as an f32: written to a provider's
        // JSON, each would be `null`, and every model call would fail far from the file.
        for value in ["nan", "inf", "-inf", "1e39", "-0.5"] {
            let text = format!("[model]\nname = \"x:y\"\ntemperature = {value}\n");
            let error = Config::parse(&text)
                .err()
                .unwrap_or_else(|| panic!("temperature = {value} was accepted"))
                .to_string();
            assert!(
                error.contains("line 3") && error.contains("temperature"),
                "{value}: {error}"
            );
        }
        let config = Config::parse("[model]\nname = \"x:y\"\ntemperature = 0.7\n").unwrap();
        assert_eq!(config.model.unwrap().temperature, Some(0.7));
    }

    #[test]
    fn expands_environment_variables() {
        let lookup = |name: &str| (name == "KEY").then(|| "secret".to_owned());
        assert_eq!(
            expand_with("Bearer ${KEY}", lookup).unwrap(),
            "Bearer secret"
        );
        assert_eq!(
            expand_with("${NOPE:-local}/v1", lookup).unwrap(),
            "local/v1"
        );
        assert_eq!(expand_with("plain", lookup).unwrap(), "plain");
        assert!(
            expand_with("${NOPE}", lookup)
                .unwrap_err()
                .contains("`NOPE`")
        );
        assert!(expand_with("${KEY", lookup).is_err());
        // A variable in a fallback is not expanded; rather than pass `${KEY}` on as text, the
        // value is refused.
        let error = expand_with("${NOPE:-${KEY}}", lookup).unwrap_err();
        assert!(error.contains("do not nest"), "{error}");
        assert!(expand_with("${A${KEY}}", lookup).is_err());
    }
}
