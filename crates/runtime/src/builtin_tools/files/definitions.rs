//! The six file tools as the model sees them: their names, descriptions and argument types,
//! and how each call reaches the [`Workspace`] (off the async threads, since file work blocks).

use super::FILE_TOOL_NAMES;
use super::workspace::{Workspace, tool_error};
use crate::Error;
use crate::tool::{FunctionTool, SharedTool, ToolContext, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;

impl Workspace {
    /// The six file tools, all working in this workspace, in the order of [`FILE_TOOL_NAMES`].
    pub fn tools(&self) -> Vec<SharedTool> {
        FILE_TOOL_NAMES
            .iter()
            .filter_map(|name| self.tool(name))
            .collect()
    }

    /// The file tool called `name` (one of [`FILE_TOOL_NAMES`]), working in this workspace.
    pub fn tool(&self, name: &str) -> Option<SharedTool> {
        let workspace = Arc::new(self.clone());
        let tool: SharedTool = match name {
            "ls" => Arc::new(FunctionTool::new(
                "ls",
                LS_DESCRIPTION,
                move |args: LsArgs, _context: ToolContext| {
                    let workspace = workspace.clone();
                    blocking(move || workspace.ls(args.path.as_deref()))
                },
            )),
            "read_file" => Arc::new(FunctionTool::new(
                "read_file",
                READ_FILE_DESCRIPTION,
                move |args: ReadFileArgs, _context: ToolContext| {
                    let workspace = workspace.clone();
                    blocking(move || workspace.read_file(&args.file_path, args.offset, args.limit))
                },
            )),
            "write_file" => Arc::new(FunctionTool::new(
                "write_file",
                WRITE_FILE_DESCRIPTION,
                move |args: WriteFileArgs, _context: ToolContext| {
                    let workspace = workspace.clone();
                    blocking(move || workspace.write_file(&args.file_path, &args.content))
                },
            )),
            "edit_file" => Arc::new(FunctionTool::new(
                "edit_file",
                EDIT_FILE_DESCRIPTION,
                move |args: EditFileArgs, _context: ToolContext| {
                    let workspace = workspace.clone();
                    blocking(move || workspace.edit_file(&args))
                },
            )),
            "glob" => Arc::new(FunctionTool::new(
                "glob",
                GLOB_DESCRIPTION,
                move |args: GlobArgs, context: ToolContext| {
                    let workspace = workspace.clone();
                    blocking(move || {
                        workspace.glob(&args.pattern, args.path.as_deref(), &context.cancel)
                    })
                },
            )),
            "grep" => Arc::new(FunctionTool::new(
                "grep",
                GREP_DESCRIPTION,
                move |args: GrepArgs, context: ToolContext| {
                    let workspace = workspace.clone();
                    blocking(move || workspace.grep(&args, &context.cancel))
                },
            )),
            _ => return None,
        };
        Some(tool)
    }
}

const LS_DESCRIPTION: &str = "Lists the files and folders in a folder of the workspace (folders end with '/').

Paths are inside the workspace, whose root is '/'. Use this to explore before reading or editing files.";

const READ_FILE_DESCRIPTION: &str = "Reads a text file of the workspace.

Usage:
- Paths are inside the workspace, whose root is '/', e.g. '/notes/a.md'.
- By default it reads up to 2000 lines from the start of the file. For large files use offset (0-based line to start after) and limit (number of lines), e.g. read_file(file_path=\"/a.md\", offset=2000, limit=500).
- Lines come numbered like `cat -n`, starting at 1. The numbers are not part of the file: never copy them into edit_file.
- Very long lines are cut, and the answer says when the file has more lines and which offset reads on.
- Binary files are refused. It is fine to read a file that may not exist; you get an error.
- Read a file before editing it.";

const WRITE_FILE_DESCRIPTION: &str =
    "Writes a new text file in the workspace, creating its folders.

Usage:
- Paths are inside the workspace, whose root is '/', e.g. '/notes/a.md'.
- It refuses to overwrite a file that exists: change existing files with edit_file.";

const EDIT_FILE_DESCRIPTION: &str = "Replaces exact text in a text file of the workspace.

Usage:
- Read the file first. old_string must match the file exactly, including indentation, and without the line numbers read_file shows.
- old_string must occur once in the file; give more surrounding lines to make it unique, or set replace_all to replace every occurrence.
- Prefer editing existing files to writing new ones.";

const GLOB_DESCRIPTION: &str = "Finds files in the workspace whose path matches a glob pattern.

Patterns: `*` matches within one folder, `**` any number of folders, `?` one character, `{a,b}` either. A pattern starting with '/' matches from the workspace root; another matches below `path` (default '/').

Examples: `**/*.py` (all Python files), `*.txt` (text files directly in `path`), `/docs/**/*.md` (Markdown files under /docs).";

const GREP_DESCRIPTION: &str = "Searches the text files of the workspace for lines matching a regular expression.

Usage:
- pattern is a regular expression (Rust regex syntax): escape ( ) [ ] . * + ? | with a backslash to match them literally, e.g. `def __init__\\(self\\)`. `(?i)` makes it ignore case.
- path is a folder or file to search (default '/', the whole workspace); glob keeps only files whose name or path matches, e.g. `*.py`.
- output_mode: `content` (default; `path:line:text` for every matching line), `files_with_matches` (paths only), `count` (matches per file).
- Binary files are skipped and the number of matches reported is capped.";

/// Arguments of `ls`.
#[derive(Debug, Deserialize, JsonSchema)]
struct LsArgs {
    /// The folder to list, e.g. `/` or `/notes`. Defaults to the workspace root `/`.
    #[serde(default)]
    path: Option<String>,
}

/// Arguments of `read_file`.
#[derive(Debug, Deserialize, JsonSchema)]
struct ReadFileArgs {
    /// The file to read, e.g. `/notes/a.md`.
    file_path: String,
    /// How many lines to skip before reading (0-based). Defaults to 0.
    #[serde(default)]
    offset: Option<usize>,
    /// How many lines to read at most. Defaults to 2000.
    #[serde(default)]
    limit: Option<usize>,
}

/// Arguments of `write_file`.
#[derive(Debug, Deserialize, JsonSchema)]
struct WriteFileArgs {
    /// The new file, e.g. `/notes/a.md`. It must not exist yet.
    file_path: String,
    /// The whole text of the file.
    content: String,
}

/// Arguments of `edit_file`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct EditFileArgs {
    /// The file to edit, e.g. `/notes/a.md`.
    pub(super) file_path: String,
    /// The exact text to replace; it must occur once unless replace_all is true.
    pub(super) old_string: String,
    /// The text to put in its place; it must differ from old_string.
    pub(super) new_string: String,
    /// Replace every occurrence of old_string instead of exactly one. Defaults to false.
    #[serde(default)]
    pub(super) replace_all: bool,
}

/// Arguments of `glob`.
#[derive(Debug, Deserialize, JsonSchema)]
struct GlobArgs {
    /// The glob pattern, e.g. `**/*.py`, `*.txt` or `/docs/**/*.md`.
    pattern: String,
    /// The folder to search from. Defaults to the workspace root `/`.
    #[serde(default)]
    path: Option<String>,
}

/// Arguments of `grep`.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct GrepArgs {
    /// The regular expression to search for, e.g. `TODO` or `fn \w+\(`.
    pub(super) pattern: String,
    /// The folder or file to search. Defaults to the workspace root `/`.
    #[serde(default)]
    pub(super) path: Option<String>,
    /// Only search files whose name (or path below `path`) matches this glob, e.g. `*.py`.
    #[serde(default)]
    pub(super) glob: Option<String>,
    /// What to report: `content` (matching lines, the default), `files_with_matches` or `count`.
    #[serde(default)]
    pub(super) output_mode: GrepOutput,
}

/// What `grep` reports.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum GrepOutput {
    /// `path:line:text` for every matching line.
    #[default]
    Content,
    /// The paths of files with a match.
    FilesWithMatches,
    /// `path:count` for every file with a match.
    Count,
}

/// Runs blocking file work off the async threads.
async fn blocking(
    work: impl FnOnce() -> Result<ToolOutput, Error> + Send + 'static,
) -> Result<ToolOutput, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(tool_error(format!("the file tool failed: {error}"))))
}
