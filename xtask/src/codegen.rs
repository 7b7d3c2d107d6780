//! Generated files: what they should contain, and writing or checking them.

use crate::openapi;
use anyhow::{Context, bail};
use errand_protocol as wire;
use schemars::{JsonSchema, generate::SchemaSettings};
use std::fs;
use std::path::Path;

/// Write the files, or only check that they are up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Write,
    Check,
}

/// One generated file: its path from the workspace root, and its contents.
#[derive(Debug)]
pub(crate) struct GeneratedFile {
    pub(crate) path: String,
    pub(crate) contents: String,
}

/// The folder of the per-type JSON schemas.
const SCHEMA_DIR: &str = "spec/schemas";

/// Calls `$each!(Type)` for every wire type that gets a schema file (as errand reads it).
macro_rules! for_each_wire_type {
    ($each:ident) => {
        $each!(wire::Assistant);
        $each!(wire::AssistantSearchRequest);
        $each!(wire::Checkpoint);
        $each!(wire::ErrorBody);
        $each!(wire::Health);
        $each!(wire::HistoryRequest);
        $each!(wire::Interrupt);
        $each!(wire::ListNamespacesResponse);
        $each!(wire::Message);
        $each!(wire::MessageChunk);
        $each!(wire::Run);
        $each!(wire::RunCancelManyRequest);
        $each!(wire::RunCreate);
        $each!(wire::RunError);
        $each!(wire::RunMetadata);
        $each!(wire::RunResult);
        $each!(wire::SearchItemsResponse);
        $each!(wire::ServerInfo);
        $each!(wire::StoreDeleteRequest);
        $each!(wire::StoreItem);
        $each!(wire::StoreListNamespacesRequest);
        $each!(wire::StorePutRequest);
        $each!(wire::StoreSearchRequest);
        $each!(wire::Thread);
        $each!(wire::ThreadCreate);
        $each!(wire::ThreadPatch);
        $each!(wire::ThreadSearchRequest);
        $each!(wire::ThreadState);
        $each!(wire::ThreadStateUpdate);
        $each!(wire::ThreadStateUpdateResponse);
    };
}

/// Every generated file with the contents it should have.
pub(crate) fn generated_files() -> anyhow::Result<Vec<GeneratedFile>> {
    let mut files = Vec::new();
    macro_rules! schema_file {
        ($ty:ty) => {
            files.push(schema_file::<$ty>()?);
        };
    }
    for_each_wire_type!(schema_file);
    files.push(GeneratedFile {
        path: "spec/openapi.json".into(),
        contents: pretty(&openapi::document()?)?,
    });
    Ok(files)
}

fn schema_file<T: JsonSchema>() -> anyhow::Result<GeneratedFile> {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    Ok(GeneratedFile {
        path: format!("{SCHEMA_DIR}/{}.json", T::schema_name()),
        contents: pretty(&schema)?,
    })
}

fn pretty(value: &impl serde::Serialize) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// Writes the generated files under `root`, or in [`Mode::Check`] fails naming each one that is
/// missing, stale, or no longer generated.
pub(crate) fn run(root: &Path, mode: Mode) -> anyhow::Result<()> {
    let files = generated_files()?;
    let mut stale = Vec::new();
    for file in &files {
        let path = root.join(&file.path);
        let current = fs::read_to_string(&path).ok();
        if current.as_deref() == Some(file.contents.as_str()) {
            continue;
        }
        match mode {
            Mode::Check => stale.push(file.path.clone()),
            Mode::Write => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                fs::write(&path, &file.contents)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", file.path);
            }
        }
    }
    for leftover in leftover_schema_files(root, &files)? {
        match mode {
            Mode::Check => stale.push(format!("{leftover} (no longer generated)")),
            Mode::Write => {
                fs::remove_file(root.join(&leftover))
                    .with_context(|| format!("removing {leftover}"))?;
                println!("removed {leftover}");
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated files are stale: {}\nrun `cargo xtask codegen` and commit the result",
            stale.join(", ")
        );
    }
    if mode == Mode::Check {
        println!("codegen: {} files up to date", files.len());
    }
    Ok(())
}

/// Schema files on disk that no wire type generates any more.
fn leftover_schema_files(root: &Path, files: &[GeneratedFile]) -> anyhow::Result<Vec<String>> {
    let dir = root.join(SCHEMA_DIR);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut leftovers = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let path = format!("{SCHEMA_DIR}/{name}");
        if !files.iter().any(|file| file.path == path) {
            leftovers.push(path);
        }
    }
    leftovers.sort();
    Ok(leftovers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in spec matches the wire types: the same check CI runs.
    #[test]
    fn checked_in_files_are_up_to_date() {
        let root = crate::workspace_root().unwrap();
        run(&root, Mode::Check).unwrap();
    }

    /// A changed file is caught, and writing mends it.
    #[test]
    fn a_stale_file_fails_the_check_until_rewritten() {
        let scratch = std::env::temp_dir().join(format!("errand-codegen-{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        run(&scratch, Mode::Write).unwrap();
        run(&scratch, Mode::Check).unwrap();

        let thread_schema = scratch.join(SCHEMA_DIR).join("Thread.json");
        let edited = fs::read_to_string(&thread_schema)
            .unwrap()
            .replace("\"thread_id\"", "\"thread_uuid\"");
        fs::write(&thread_schema, edited).unwrap();
        let orphan = scratch.join(SCHEMA_DIR).join("Removed.json");
        fs::write(&orphan, "{}\n").unwrap();

        let error = run(&scratch, Mode::Check).unwrap_err().to_string();
        assert!(error.contains("spec/schemas/Thread.json"), "{error}");
        assert!(
            error.contains("Removed.json (no longer generated)"),
            "{error}"
        );

        run(&scratch, Mode::Write).unwrap();
        run(&scratch, Mode::Check).unwrap();
        assert!(!orphan.exists());
        fs::remove_dir_all(&scratch).unwrap();
    }
}
