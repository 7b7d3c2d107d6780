//! Fuzz target: [`Config::parse`] fed any text, valid config files, and valid files mutated
//! (bytes flipped, truncated, spliced, line breaks and BOMs put in, numbers out of range,
//! environment variables that are not set).
//!
//! Properties: parsing never panics; a valid file parses to what it says (its model, agents
//! and subagents, and the foreign keys it skipped), or, when it names a variable that is not
//! set, fails naming the variable; a mutated file parses or fails with an error that says where
//! (a line, or the subagent's key). `PROPTEST_CASES` sets the number of cases.

use super::Config;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A variable no environment sets.
const UNSET: &str = "ERRAND_FUZZ_SURELY_UNSET";

/// The fuzz targets' shared parts (the case count above all), kept with the protocol's.
#[path = "../../../protocol/tests/fuzz_support/mod.rs"]
mod fuzz_support;
use fuzz_support::config;

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `name` as a TOML key: bare when it can be.
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_owned()
    } else {
        toml_string(name)
    }
}

/// A string value: plain text (with no `$`, which would start a variable), or text with
/// `${VAR:-fallback}` in it, which reads as the fallback. Answers the TOML and what it reads
/// as.
fn env_text() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        4 => "[^$\\p{C}]{0,12}".prop_map(|text: String| (toml_string(&text), text)),
        1 => ("[a-z]{0,6}", "[a-z:/.]{0,8}").prop_map(|(head, fallback)| {
            let raw = format!("{head}${{{UNSET}:-{fallback}}}");
            (toml_string(&raw), format!("{head}{fallback}"))
        }),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_-]{0,8}",
        1 => "\\PC{1,8}",
    ]
}

/// What a valid file says.
#[derive(Debug, Clone, Default)]
struct Expected {
    model: Option<String>,
    agents: Vec<String>,
    /// Subagents by name, with their graph ids.
    subagents: BTreeMap<String, String>,
    skipped: Vec<String>,
    /// The file names a variable that is not set, without a fallback.
    unset: bool,
}

/// A `key = value` line of an agent or model table.
fn optional_lines(lines: Vec<Option<String>>) -> String {
    lines.into_iter().flatten().collect()
}

fn model_table() -> impl Strategy<Value = (String, String)> {
    (
        env_text(),
        prop::option::of(env_text()),
        prop::option::of(env_text()),
        prop::option::of(any::<u32>()),
        prop::option::of(0.0f32..2.0),
    )
        .prop_map(|(name, base_url, api_key, max_tokens, temperature)| {
            let lines = optional_lines(vec![
                Some(format!("name = {}\n", name.0)),
                base_url.map(|(url, _)| format!("base_url = {url}\n")),
                api_key.map(|(key, _)| format!("api_key = {key}\n")),
                max_tokens.map(|max| format!("max_tokens = {max}\n")),
                temperature.map(|t| format!("temperature = {t:?}\n")),
            ]);
            (format!("[model]\n{lines}"), name.1)
        })
}

fn agent_table(name: String) -> impl Strategy<Value = String> {
    (
        prop::option::of("\\PC{0,20}"),
        prop::option::of("[a-z]{1,6}:[a-z0-9.-]{1,10}"),
        prop::option::of("\\PC{0,20}"),
        vec(
            prop::sample::select(vec!["files", "fetch_url", "ls", "grep", "bogus"]),
            0..3,
        ),
        prop::option::of("[a-z/.]{1,10}"),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
    )
        .prop_map(
            move |(description, model, prompt, tools, workspace, steps, tokens)| {
                let tools: Vec<String> = tools.iter().map(|tool| toml_string(tool)).collect();
                let lines = optional_lines(vec![
                    description.map(|d| format!("description = {}\n", toml_string(&d))),
                    model.map(|m| format!("model = {}\n", toml_string(&m))),
                    prompt.map(|p| format!("system_prompt = {}\n", toml_string(&p))),
                    Some(format!("tools = [{}]\n", tools.join(", "))),
                    workspace.map(|w| format!("workspace = {}\n", toml_string(&w))),
                    steps.map(|s| format!("max_steps = {s}\n")),
                    tokens.map(|t| format!("summarize_after_tokens = {t}\n")),
                ]);
                format!("[agents.{}]\n{lines}", toml_key(&name))
            },
        )
}

/// An `[async_subagents.NAME]` table; answers it, its graph id, and whether it names an unset
/// variable without a fallback.
fn subagent_table(name: String) -> impl Strategy<Value = (String, String, bool)> {
    (
        "\\PC{0,20}",
        "[a-z][a-z0-9_-]{0,8}",
        prop::option::of(env_text()),
        btree_map("[A-Za-z][A-Za-z-]{0,10}", env_text(), 0..3),
        prop::option::of(prop::sample::select(vec!["interrupt", "enqueue"])),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec!["isolated", "fork"])),
        prop::option::of(any::<u32>()),
        prop::bool::weighted(0.05),
    )
        .prop_map(
            move |(description, graph_id, url, headers, update, notify, mode, deadline, unset)| {
                let url = if unset {
                    Some((toml_string(&format!("http://${{{UNSET}}}")), String::new()))
                } else {
                    url
                };
                let mut text = format!(
                    "[async_subagents.{}]\n{}",
                    toml_key(&name),
                    optional_lines(vec![
                        Some(format!("description = {}\n", toml_string(&description))),
                        Some(format!("graph_id = {}\n", toml_string(&graph_id))),
                        url.map(|(url, _)| format!("url = {url}\n")),
                        update.map(|u| format!("update_strategy = \"{u}\"\n")),
                        notify.map(|n| format!("notify_parent = {n}\n")),
                        mode.map(|m| format!("mode = \"{m}\"\n")),
                        deadline.map(|d| format!("deadline_secs = {d}\n")),
                    ])
                );
                if !headers.is_empty() {
                    let _ = writeln!(text, "[async_subagents.{}.headers]", toml_key(&name));
                    for (header, (value, _)) in headers {
                        let _ = writeln!(text, "{header} = {value}");
                    }
                }
                (text, graph_id, unset)
            },
        )
}

/// A valid config file and what it says.
fn valid_file() -> impl Strategy<Value = (String, Expected)> {
    (
        btree_map("theme|colour|version|[a-y]{1,6}", "[a-z]{0,6}", 0..2),
        prop::option::of(prop_oneof![
            model_table(),
            "[a-z]{1,6}:[a-z0-9.-]{1,10}"
                .prop_map(|name: String| (format!("model = {}\n", toml_string(&name)), name)),
        ]),
        prop::bool::weighted(0.3),
        prop::collection::btree_set(name(), 0..3),
        prop::collection::btree_set(name(), 0..3),
        prop::bool::weighted(0.2),
    )
        .prop_flat_map(|(foreign, model, ui, agents, subagents, crlf)| {
            let agent_tables: Vec<_> = agents.iter().cloned().map(agent_table).collect();
            let subagent_tables: Vec<_> = subagents.iter().cloned().map(subagent_table).collect();
            (
                Just((foreign, model, ui, agents, subagents, crlf)),
                agent_tables,
                subagent_tables,
            )
        })
        .prop_map(
            |((foreign, model, ui, agents, subagents, crlf), agent_tables, subagent_tables)| {
                let mut text = String::new();
                let mut expected = Expected::default();
                for (key, value) in &foreign {
                    let _ = writeln!(text, "{key} = {}", toml_string(value));
                    expected.skipped.push(key.clone());
                }
                // A top-level `model = "..."` must come before the first table.
                let (model_text, model_name) = model.unzip();
                if let Some(model_text) = &model_text
                    && !model_text.starts_with('[')
                {
                    text.push_str(model_text);
                }
                if let Some(model_text) = &model_text
                    && model_text.starts_with('[')
                {
                    text.push_str(model_text);
                }
                expected.model = model_name;
                if ui {
                    text.push_str("[ui]\ncolour = \"blue\"\n");
                    expected.skipped.push("ui".into());
                }
                for table in agent_tables {
                    text.push_str(&table);
                }
                expected.agents = agents.into_iter().collect();
                for (name, (table, graph_id, unset)) in subagents.into_iter().zip(subagent_tables) {
                    text.push_str(&table);
                    expected.unset |= unset;
                    expected.subagents.insert(name, graph_id);
                }
                if crlf {
                    text = text.replace('\n', "\r\n");
                }
                (text, expected)
            },
        )
}

/// A change to a file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Splice(Index, String, Index),
    Insert(Index, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let inserts = vec![
        "\r\n",
        "\r",
        "\n",
        "\u{feff}",
        "=",
        "[",
        "]",
        "[[",
        "\"",
        "'",
        "${",
        "}",
        "#",
        "\"\"\"",
        "\0",
        "\\",
        ".",
        " = 1\n",
        "\n[agents.x]\n",
        "\n[model]\n",
        "\ntemperature = nan\n",
        "\ntemperature = inf\n",
        "\ntemperature = 1e39\n",
        "\ntemperature = -1.0\n",
        "\nmax_tokens = 4294967296\n",
        "\nmax_steps = -1\n",
        "\nmax_steps = 1.5\n",
        "\nname = \"${ERRAND_FUZZ_SURELY_UNSET}\"\n",
        "\nheaders = 3\n",
        "\nurl = \"${x\"\n",
    ];
    prop_oneof![
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip(at, byte)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), valid_file(), any::<Index>())
            .prop_map(|(at, (other, _), from)| Mutation::Splice(at, other, from)),
        4 => (any::<Index>(), prop::sample::select(inserts))
            .prop_map(|(at, text)| Mutation::Insert(at, text)),
    ]
}

/// `text` with `mutation` applied to its bytes, read back as text (invalid UTF-8 replaced,
/// as a file would be refused before it got here).
fn mutate(text: &str, mutation: Mutation) -> String {
    let mut bytes = text.as_bytes().to_vec();
    match mutation {
        Mutation::Flip(at, byte) => {
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len() + 1)),
        Mutation::Splice(at, other, from) => {
            bytes.truncate(at.index(bytes.len() + 1));
            bytes.extend_from_slice(&other.as_bytes()[from.index(other.len() + 1)..]);
        }
        Mutation::Insert(at, insert) => {
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, insert.bytes());
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An error that says where the problem is: a line of the file, or the subagent key whose
/// value could not be expanded.
fn says_where(error: &str) -> bool {
    error.contains("line ") || error.starts_with("[async_subagents.")
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn any_text_parses_or_fails_cleanly(text in prop_oneof![
        any::<String>(),
        vec(prop::sample::select(vec![
            "[", "]", "=", "\"", "'", "\n", "\r\n", "model", "agents", "async_subagents", ".",
            "name", "url", "headers", "${", "}", ":-", "1", "true", " ", "#", "\u{feff}",
        ]), 0..32).prop_map(|pieces| pieces.concat()),
    ]) {
        if let Err(error) = Config::parse(&text) {
            let message = format!("{error:#}");
            prop_assert!(!message.is_empty());
        }
    }

    #[test]
    fn a_valid_file_reads_as_written((text, expected) in valid_file()) {
        let parsed = Config::parse(&text);
        if expected.unset {
            let error = format!("{:#}", parsed.expect_err("an unset variable is an error"));
            prop_assert!(error.contains(UNSET) && says_where(&error), "{}", error);
            return Ok(());
        }
        let config = parsed.map_err(|error| TestCaseError::fail(format!("{error:#}\n{text}")))?;
        prop_assert_eq!(config.model.map(|model| model.name), expected.model, "{}", text);
        prop_assert_eq!(config.agents.keys().cloned().collect::<Vec<_>>(), expected.agents);
        let subagents: BTreeMap<String, String> = config
            .async_subagents
            .into_iter()
            .map(|spec| (spec.name, spec.graph_id))
            .collect();
        prop_assert_eq!(subagents, expected.subagents);
        let mut skipped = config.skipped;
        skipped.sort();
        let mut expected_skipped = expected.skipped;
        expected_skipped.sort();
        prop_assert_eq!(skipped, expected_skipped);
    }

    #[test]
    fn a_mutated_file_parses_or_says_where_it_is_wrong(
        (text, _) in valid_file(),
        mutations in vec(mutation(), 1..3),
    ) {
        let text = mutations.into_iter().fold(text, |text, mutation| mutate(&text, mutation));
        if let Err(error) = Config::parse(&text) {
            let error = format!("{error:#}");
            prop_assert!(says_where(&error), "{}\nfrom:\n{}", error, text);
        }
    }
}
