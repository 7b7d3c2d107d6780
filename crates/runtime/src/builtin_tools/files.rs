//! File tools confined to a workspace folder: `ls`, `read_file`, `write_file`, `edit_file`,
//! `glob` and `grep`, named and shaped like Deep Agents' filesystem tools so prompts carry over.
//!
//! The model sees the workspace as a filesystem of its own whose root is `/`: `/notes/a.md` and
//! `notes/a.md` both mean `<root>/notes/a.md`, and every path in an answer is written that way,
//! so the host's folder names never reach the model. A host path under the root (say the system
//! prompt names it) means the same file.
//!
//! No path leads outside the folder:
//! - `..` is refused outright rather than resolved, so there is nothing to get wrong about
//!   where it points once symbolic links are involved;
//! - every path is resolved on disk: its deepest existing part (a dangling symbolic link counts
//!   as existing) is canonicalised and must stay under the canonical root, for reads and for
//!   writes, so a symbolic link inside the workspace that points out is refused, and so is a
//!   file to be created under one;
//! - `write_file` creates with `O_EXCL`, which never follows a symbolic link at the last step;
//! - `glob` and `grep` never descend into symbolic links to folders, and read a linked file
//!   only when its target is inside the workspace.
//!
//! What this does not cover: a hard link inside the folder to a file outside it (nothing on
//! the path shows it), and another process swapping a folder for a symbolic link between the
//! check and the use. The tools themselves cannot make links, so a model cannot do either.

use crate::Error;
use crate::tool::{FunctionTool, SharedTool, ToolContext, ToolOutput};
use globset::{GlobBuilder, GlobMatcher};
use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The names of the six file tools, in the order [`Workspace::tools`] returns them.
pub const FILE_TOOL_NAMES: [&str; 6] =
    ["ls", "read_file", "write_file", "edit_file", "glob", "grep"];

/// The caps that keep the file tools' work and answers bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Lines `read_file` returns when the model gives no `limit`.
    pub default_read_lines: usize,
    /// Characters kept of one line in `read_file` and `grep` answers; the rest is cut with a
    /// marker.
    pub line_chars: usize,
    /// Bytes of one tool answer; longer answers are cut with a marker.
    pub output_bytes: usize,
    /// The largest file `edit_file` edits, `grep` searches, and `write_file` writes.
    pub file_bytes: u64,
    /// Matching lines `grep` reports before it stops.
    pub grep_matches: usize,
    /// Entries `ls` and paths `glob` report before they stop.
    pub listed_entries: usize,
    /// Folder entries `glob` and `grep` visit before they stop.
    pub walked_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_read_lines: 2000,
            line_chars: 2000,
            output_bytes: 100_000,
            file_bytes: 10 * 1024 * 1024,
            grep_matches: 200,
            listed_entries: 1000,
            walked_entries: 100_000,
        }
    }
}

/// A folder the file tools work in, and cannot leave.
///
/// ```
/// use errand_runtime::builtin_tools::Workspace;
/// let folder = tempfile::tempdir().unwrap();
/// let workspace = Workspace::new(folder.path()).unwrap();
/// assert_eq!(workspace.tools().len(), 6);
/// assert!(Workspace::new(folder.path().join("missing")).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    limits: Limits,
}

/// A path inside the workspace, checked.
#[derive(Debug)]
struct Resolved {
    /// Where it is on the host: the canonical form of its deepest existing part, then the
    /// parts that do not exist yet.
    host: PathBuf,
    /// How the model sees it: `/` and the parts, inside the workspace.
    shown: String,
    /// Whether the whole path exists (as anything: a file, a folder or a link).
    exists: bool,
}

impl Workspace {
    /// A workspace at `root`, which must be an existing folder. The root is canonicalised
    /// here, once, so later checks compare against the real folder.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, Error> {
        let given = root.as_ref();
        let root = fs::canonicalize(given).map_err(|error| {
            Error::Config(format!(
                "the workspace folder {} cannot be used: {error}",
                given.display()
            ))
        })?;
        if !root.is_dir() {
            return Err(Error::Config(format!(
                "the workspace {} is not a folder",
                given.display()
            )));
        }
        Ok(Self {
            root,
            limits: Limits::default(),
        })
    }

    /// The same workspace with other caps.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The canonical root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The caps in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

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

    /// Reads a path the model gave into the parts below the root, refusing `..`.
    fn parts(&self, path: &str) -> Result<Vec<String>, Error> {
        if path.contains('\0') {
            return Err(tool_error(format!(
                "the path {path:?} contains a NUL character; give a plain path such as /notes/a.md"
            )));
        }
        // Models trained on Windows paths write `\`; it is never a useful file name character.
        let unified = path.replace('\\', "/");
        let inside = Path::new(&unified)
            .strip_prefix(&self.root)
            .ok()
            .and_then(Path::to_str)
            .unwrap_or(&unified);
        let mut parts = Vec::new();
        for part in inside.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(tool_error(format!(
                        "the path '{path}' uses '..', which is not allowed: every path is inside \
                         the workspace, whose root is '/'. Write the full path from the root \
                         instead, e.g. '/notes/a.md'."
                    )));
                }
                part => {
                    // On Windows `C:` would replace the root when joined; a part must be a name.
                    let mut components = Path::new(part).components();
                    if !matches!(
                        (components.next(), components.next()),
                        (Some(Component::Normal(_)), None)
                    ) {
                        return Err(tool_error(format!(
                            "the path '{path}' has a part '{part}' that is not a file name"
                        )));
                    }
                    parts.push(part.to_owned());
                }
            }
        }
        Ok(parts)
    }

    /// Resolves a path the model gave to a place inside the workspace, or refuses it.
    fn resolve(&self, path: &str) -> Result<Resolved, Error> {
        let parts = self.parts(path)?;
        let shown = format!("/{}", parts.join("/"));
        // The deepest part that exists, by `lstat`: a dangling link exists, so that writing
        // "through" it is caught below instead of creating its target.
        let mut existing = self.root.clone();
        let mut found = 0;
        for part in &parts {
            let next = existing.join(part);
            if fs::symlink_metadata(&next).is_err() {
                break;
            }
            existing = next;
            found += 1;
        }
        let canonical = fs::canonicalize(&existing).map_err(|_| {
            tool_error(format!(
                "the path '{shown}' goes through a symbolic link that points nowhere; \
                 only files inside the workspace can be used"
            ))
        })?;
        if !canonical.starts_with(&self.root) {
            return Err(outside(&shown));
        }
        let mut host = canonical;
        host.extend(&parts[found..]);
        Ok(Resolved {
            host,
            shown,
            exists: found == parts.len(),
        })
    }

    /// How the model sees a host path under the root.
    fn show(&self, host: &Path) -> String {
        let relative = host.strip_prefix(&self.root).unwrap_or(host);
        let mut shown = String::from("/");
        shown.push_str(&relative.to_string_lossy().replace('\\', "/"));
        shown
    }

    fn ls(&self, path: Option<&str>) -> Result<ToolOutput, Error> {
        let dir = self.resolve(path.unwrap_or("/"))?;
        if !dir.exists {
            return Err(not_found(&dir.shown));
        }
        if !dir.host.is_dir() {
            return Ok(ToolOutput::text(dir.shown));
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(&dir.host).map_err(|error| io_error(&dir.shown, &error))? {
            let entry = entry.map_err(|error| io_error(&dir.shown, &error))?;
            let mut shown = self.show(&dir.host.join(entry.file_name()));
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                shown.push('/');
            }
            entries.push(shown);
        }
        if entries.is_empty() {
            return Ok(ToolOutput::text(format!(
                "The folder '{}' is empty.",
                dir.shown
            )));
        }
        entries.sort();
        let total = entries.len();
        entries.truncate(self.limits.listed_entries);
        let mut answer = entries.join("\n");
        if total > entries.len() {
            let _ = write!(
                answer,
                "\n[truncated: {} more entries not shown; use glob with a pattern to narrow the list]",
                total - entries.len()
            );
        }
        Ok(self.answer(answer))
    }

    fn read_file(
        &self,
        file_path: &str,
        offset: Option<usize>,
        limit: Option<usize>,
    ) -> Result<ToolOutput, Error> {
        let file = self.resolve(file_path)?;
        if !file.exists {
            return Err(not_found(&file.shown));
        }
        regular_file(&file)?;
        let offset = offset.unwrap_or(0);
        let limit = limit.unwrap_or(self.limits.default_read_lines);
        if limit == 0 {
            return Err(tool_error("limit must be at least 1 line"));
        }
        let handle = fs::File::open(&file.host).map_err(|error| io_error(&file.shown, &error))?;
        let mut reader = BufReader::new(handle);
        if reader
            .fill_buf()
            .map_err(|error| io_error(&file.shown, &error))?
            .is_empty()
        {
            return Ok(ToolOutput::text(format!(
                "System reminder: the file '{}' exists but is empty.",
                file.shown
            )));
        }
        if looks_binary(reader.buffer()) {
            return Err(tool_error(format!(
                "'{}' is a binary file; read_file reads text files only",
                file.shown
            )));
        }
        // Lines are read one at a time with a cap, so a huge file or a huge line costs no more
        // memory than the answer.
        let max_line_bytes = self.limits.line_chars.saturating_mul(4).max(4);
        let mut line = Vec::new();
        let mut number = 0usize;
        let mut answer = String::new();
        let mut next_offset = None;
        while let Some(cut) = read_capped_line(&mut reader, max_line_bytes, &mut line)
            .map_err(|error| io_error(&file.shown, &error))?
        {
            number += 1;
            if number <= offset {
                continue;
            }
            if number > offset + limit || answer.len() >= self.limits.output_bytes {
                next_offset = Some(number - 1);
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            let (text, chars_cut) = cut_chars(text, self.limits.line_chars);
            let _ = write!(answer, "{number:>6}\t{text}");
            if cut || chars_cut {
                answer.push_str(" [line truncated]");
            }
            answer.push('\n');
        }
        if number <= offset {
            return Err(tool_error(format!(
                "offset {offset} is past the end of '{}', which has {number} lines",
                file.shown
            )));
        }
        if let Some(next) = next_offset {
            let _ = write!(
                answer,
                "[truncated: the file has more lines; call read_file with offset={next} to read on]"
            );
        }
        Ok(ToolOutput::text(answer))
    }

    fn write_file(&self, file_path: &str, content: &str) -> Result<ToolOutput, Error> {
        let file = self.resolve(file_path)?;
        if file.exists {
            return Err(tool_error(format!(
                "Cannot write to '{}' because it already exists. Read it and then change it \
                 with edit_file, or write to a new path.",
                file.shown
            )));
        }
        if file.shown == "/" {
            return Err(tool_error(
                "give a file path such as /notes/a.md, not the root",
            ));
        }
        if content.len() as u64 > self.limits.file_bytes {
            return Err(tool_error(format!(
                "the content is {} bytes, more than the {} bytes a file may hold here; \
                 write it in parts to several files",
                content.len(),
                self.limits.file_bytes
            )));
        }
        if let Some(parent) = file.host.parent() {
            fs::create_dir_all(parent).map_err(|error| io_error(&file.shown, &error))?;
            // Checked again now that the folders exist, in case one appeared as a link meanwhile.
            let parent = fs::canonicalize(parent).map_err(|error| io_error(&file.shown, &error))?;
            if !parent.starts_with(&self.root) {
                return Err(outside(&file.shown));
            }
        }
        // `create_new` is O_EXCL: it fails on anything already there, a link included, and
        // never follows one.
        let mut handle = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file.host)
            .map_err(|error| io_error(&file.shown, &error))?;
        handle
            .write_all(content.as_bytes())
            .map_err(|error| io_error(&file.shown, &error))?;
        Ok(ToolOutput::text(format!(
            "Wrote {} bytes to '{}'.",
            content.len(),
            file.shown
        )))
    }

    fn edit_file(&self, args: &EditFileArgs) -> Result<ToolOutput, Error> {
        let file = self.resolve(&args.file_path)?;
        if !file.exists {
            return Err(not_found(&file.shown));
        }
        regular_file(&file)?;
        if args.old_string.is_empty() {
            return Err(tool_error(
                "old_string is empty; give the exact text to replace (to create a file, use write_file)",
            ));
        }
        if args.old_string == args.new_string {
            return Err(tool_error(
                "old_string and new_string are the same; nothing would change",
            ));
        }
        let text = self.read_text(&file)?;
        let count = text.matches(args.old_string.as_str()).count();
        if count == 0 {
            return Err(tool_error(format!(
                "old_string was not found in '{}'. It must match the file exactly, including \
                 spaces and indentation, without the line numbers read_file adds; read the file \
                 again and copy the text from it.",
                file.shown
            )));
        }
        if count > 1 && !args.replace_all {
            return Err(tool_error(format!(
                "old_string occurs {count} times in '{}'. Add surrounding lines to make it \
                 unique, or set replace_all to true to replace every occurrence.",
                file.shown
            )));
        }
        let edited = if args.replace_all {
            text.replace(args.old_string.as_str(), &args.new_string)
        } else {
            text.replacen(args.old_string.as_str(), &args.new_string, 1)
        };
        // `host` is canonical here (the file exists), so this writes the checked file itself.
        fs::write(&file.host, edited).map_err(|error| io_error(&file.shown, &error))?;
        Ok(ToolOutput::text(format!(
            "Replaced {count} occurrence{} in '{}'.",
            if count == 1 { "" } else { "s" },
            file.shown
        )))
    }

    /// A whole text file, for editing.
    fn read_text(&self, file: &Resolved) -> Result<String, Error> {
        let handle = fs::File::open(&file.host).map_err(|error| io_error(&file.shown, &error))?;
        let mut bytes = Vec::new();
        handle
            .take(self.limits.file_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| io_error(&file.shown, &error))?;
        if bytes.len() as u64 > self.limits.file_bytes {
            return Err(tool_error(format!(
                "'{}' is larger than {} bytes, too large to edit here",
                file.shown, self.limits.file_bytes
            )));
        }
        if looks_binary(&bytes) {
            return Err(tool_error(format!(
                "'{}' is a binary file; edit_file edits text files only",
                file.shown
            )));
        }
        String::from_utf8(bytes).map_err(|_| {
            tool_error(format!(
                "'{}' is not UTF-8 text; edit_file edits UTF-8 text files only",
                file.shown
            ))
        })
    }

    /// The files under `base`, with how the model sees them: folders are not followed through
    /// links, and a linked file only when its target is inside.
    fn walk(&self, base: &Resolved, cancel: &CancellationToken) -> Result<Walk, Error> {
        let mut walk = Walk::default();
        if !base.host.is_dir() {
            walk.files.push((base.shown.clone(), base.host.clone()));
            return Ok(walk);
        }
        // Entries still to look at, the next one last: a depth-first walk in name order.
        let mut pending = sorted_entries(&base.host);
        while let Some((path, kind)) = pending.pop() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            walk.visited += 1;
            if walk.visited > self.limits.walked_entries {
                walk.stopped = true;
                break;
            }
            if kind.is_dir() {
                pending.extend(sorted_entries(&path));
            } else if kind.is_file() {
                walk.files.push((self.show(&path), path));
            } else if kind.is_symlink()
                && let Ok(target) = fs::canonicalize(&path)
                && target.starts_with(&self.root)
                && target.is_file()
            {
                walk.files.push((self.show(&path), target));
            }
        }
        Ok(walk)
    }

    fn glob(
        &self,
        pattern: &str,
        path: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<ToolOutput, Error> {
        let base = self.resolve(path.unwrap_or("/"))?;
        if !base.exists {
            return Err(not_found(&base.shown));
        }
        // A pattern from the root (`/src/**/*.rs`) matches the whole shown path; another one
        // matches the path below `path`.
        let from_root = pattern.starts_with('/');
        let matcher = glob_matcher(pattern.trim_start_matches('/'))?;
        let walk = self.walk(&base, cancel)?;
        let prefix_len = if base.shown == "/" {
            1
        } else {
            base.shown.len() + 1
        };
        let mut found = Vec::new();
        let mut more = 0usize;
        for (shown, _) in &walk.files {
            let candidate = if from_root {
                &shown[1..]
            } else {
                shown.get(prefix_len..).unwrap_or(shown.as_str())
            };
            if matcher.is_match(candidate) {
                if found.len() < self.limits.listed_entries {
                    found.push(shown.as_str());
                } else {
                    more += 1;
                }
            }
        }
        if found.is_empty() {
            let mut answer = format!("No files match '{pattern}' under '{}'.", base.shown);
            if !from_root && !pattern.contains('/') {
                answer.push_str(
                    " '*' stays within one folder; use '**/' to search below, e.g. '**/*.md'.",
                );
            }
            return Ok(ToolOutput::text(answer));
        }
        let mut answer = found.join("\n");
        if more > 0 {
            let _ = write!(
                answer,
                "\n[truncated: {more} more matches not shown; narrow the pattern]"
            );
        }
        if walk.stopped {
            let _ = write!(
                answer,
                "\n[truncated: the search stopped after {} entries; search a smaller folder]",
                self.limits.walked_entries
            );
        }
        Ok(self.answer(answer))
    }

    fn grep(&self, args: &GrepArgs, cancel: &CancellationToken) -> Result<ToolOutput, Error> {
        let regex = RegexBuilder::new(&args.pattern)
            .size_limit(1 << 20)
            .build()
            .map_err(|error| {
                tool_error(format!(
                    "the pattern is not a valid regular expression: {error}. Escape special \
                     characters such as ( [ . * with a backslash to search for them literally."
                ))
            })?;
        let filter = args.glob.as_deref().map(glob_matcher).transpose()?;
        let base = self.resolve(args.path.as_deref().unwrap_or("/"))?;
        if !base.exists {
            return Err(not_found(&base.shown));
        }
        let walk = self.walk(&base, cancel)?;
        let mut search = Search {
            regex: &regex,
            mode: args.output_mode,
            limits: &self.limits,
            answer: String::new(),
            matches: 0,
            skipped: 0,
            full: false,
        };
        for (shown, host) in &walk.files {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if let Some(filter) = &filter {
                let name = shown.rsplit('/').next().unwrap_or(shown);
                let below = shown
                    .get(base.shown.len()..)
                    .unwrap_or(shown)
                    .trim_start_matches('/');
                if !filter.is_match(name) && !filter.is_match(below) {
                    continue;
                }
            }
            search.file(shown, host);
            if search.full {
                break;
            }
        }
        let mut answer = search.answer;
        if answer.is_empty() {
            answer = format!("No matches for '{}' under '{}'.", args.pattern, base.shown);
        }
        if search.full {
            let _ = write!(
                answer,
                "\n[truncated: stopped after {} matches; narrow the search with path or glob]",
                self.limits.grep_matches
            );
        }
        if search.skipped > 0 {
            let _ = write!(
                answer,
                "\n[{} binary or oversized files were not searched]",
                search.skipped
            );
        }
        if walk.stopped {
            let _ = write!(
                answer,
                "\n[truncated: the search stopped after {} entries; search a smaller folder]",
                self.limits.walked_entries
            );
        }
        Ok(self.answer(answer))
    }

    /// An answer cut to the output cap.
    fn answer(&self, mut text: String) -> ToolOutput {
        let cap = self.limits.output_bytes;
        if text.len() > cap {
            let mut end = cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            let _ = write!(
                text,
                "\n[truncated: the answer was longer than {cap} bytes]"
            );
        }
        ToolOutput::text(text)
    }
}

/// The files a search looks at.
#[derive(Debug, Default)]
struct Walk {
    /// (shown path, host path to read).
    files: Vec<(String, PathBuf)>,
    visited: usize,
    /// The walk hit [`Limits::walked_entries`].
    stopped: bool,
}

/// One `grep` in progress.
struct Search<'a> {
    regex: &'a Regex,
    mode: GrepOutput,
    limits: &'a Limits,
    answer: String,
    matches: usize,
    skipped: usize,
    full: bool,
}

impl Search<'_> {
    fn file(&mut self, shown: &str, host: &Path) {
        let Ok(meta) = fs::metadata(host) else {
            return;
        };
        if meta.len() > self.limits.file_bytes {
            self.skipped += 1;
            return;
        }
        let Ok(bytes) = fs::read(host) else {
            return;
        };
        if looks_binary(&bytes) {
            self.skipped += 1;
            return;
        }
        let text = String::from_utf8_lossy(&bytes);
        let mut count = 0usize;
        for (index, line) in text.lines().enumerate() {
            if !self.regex.is_match(line) {
                continue;
            }
            if self.matches >= self.limits.grep_matches
                || self.answer.len() >= self.limits.output_bytes
            {
                self.full = true;
                break;
            }
            self.matches += 1;
            count += 1;
            match self.mode {
                GrepOutput::Content => {
                    let (line, cut) = cut_chars(line, self.limits.line_chars);
                    let _ = writeln!(
                        self.answer,
                        "{shown}:{}:{line}{}",
                        index + 1,
                        if cut { " [line truncated]" } else { "" }
                    );
                }
                GrepOutput::FilesWithMatches => break,
                GrepOutput::Count => {}
            }
        }
        match self.mode {
            GrepOutput::FilesWithMatches if count > 0 => {
                let _ = writeln!(self.answer, "{shown}");
            }
            GrepOutput::Count if count > 0 => {
                let _ = writeln!(self.answer, "{shown}:{count}");
            }
            _ => {}
        }
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
struct EditFileArgs {
    /// The file to edit, e.g. `/notes/a.md`.
    file_path: String,
    /// The exact text to replace; it must occur once unless replace_all is true.
    old_string: String,
    /// The text to put in its place; it must differ from old_string.
    new_string: String,
    /// Replace every occurrence of old_string instead of exactly one. Defaults to false.
    #[serde(default)]
    replace_all: bool,
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
struct GrepArgs {
    /// The regular expression to search for, e.g. `TODO` or `fn \w+\(`.
    pattern: String,
    /// The folder or file to search. Defaults to the workspace root `/`.
    #[serde(default)]
    path: Option<String>,
    /// Only search files whose name (or path below `path`) matches this glob, e.g. `*.py`.
    #[serde(default)]
    glob: Option<String>,
    /// What to report: `content` (matching lines, the default), `files_with_matches` or `count`.
    #[serde(default)]
    output_mode: GrepOutput,
}

/// What `grep` reports.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum GrepOutput {
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

fn tool_error(message: impl Into<String>) -> Error {
    Error::failed("ToolException", message)
}

fn outside(shown: &str) -> Error {
    tool_error(format!(
        "the path '{shown}' leads outside the workspace through a symbolic link; only files \
         inside the workspace can be used"
    ))
}

fn not_found(shown: &str) -> Error {
    tool_error(format!(
        "'{shown}' does not exist. Paths are inside the workspace, whose root is '/'; use ls \
         or glob to find the right path."
    ))
}

/// An IO failure, said without the host path.
fn io_error(shown: &str, error: &io::Error) -> Error {
    let what = match error.kind() {
        io::ErrorKind::NotFound => return not_found(shown),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AlreadyExists => {
            "something already exists there; choose another path".to_owned()
        }
        io::ErrorKind::NotADirectory => "a part of the path is a file, not a folder".to_owned(),
        io::ErrorKind::IsADirectory => "it is a folder, not a file".to_owned(),
        _ => error.to_string(),
    };
    tool_error(format!("could not use '{shown}': {what}"))
}

/// Refuses folders and special files: opening a FIFO or a device could block for ever.
fn regular_file(file: &Resolved) -> Result<(), Error> {
    let meta = fs::metadata(&file.host).map_err(|error| io_error(&file.shown, &error))?;
    if meta.is_dir() {
        return Err(tool_error(format!(
            "'{}' is a folder, not a file; use ls to see what it holds",
            file.shown
        )));
    }
    if !meta.is_file() {
        return Err(tool_error(format!(
            "'{}' is not a regular file (a pipe, socket or device); the file tools read and \
             edit regular files only",
            file.shown
        )));
    }
    Ok(())
}

fn glob_matcher(pattern: &str) -> Result<GlobMatcher, Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|error| tool_error(format!("the glob pattern is not valid: {error}")))
}

/// The entries of a folder with their kinds (links not followed), last name first.
fn sorted_entries(folder: &Path) -> Vec<(PathBuf, fs::FileType)> {
    let Ok(entries) = fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut entries: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.path(), entry.file_type().ok()?)))
        .collect();
    entries.sort_by(|a, b| b.0.cmp(&a.0));
    entries
}

/// Text files have no NUL bytes near the start; binary ones nearly always do.
fn looks_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

/// The first `max` characters of `text`, and whether anything was cut.
fn cut_chars(text: &str, max: usize) -> (&str, bool) {
    match text.char_indices().nth(max) {
        Some((end, _)) => (&text[..end], true),
        None => (text, false),
    }
}

/// Reads one line into `line`, keeping at most `max` bytes of it and skipping the rest.
/// `None` at the end of the file; otherwise whether the line was cut.
fn read_capped_line(
    reader: &mut impl BufRead,
    max: usize,
    line: &mut Vec<u8>,
) -> io::Result<Option<bool>> {
    line.clear();
    let mut any = false;
    let mut cut = false;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(any.then_some(cut));
        }
        any = true;
        let (chunk, done) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&buffer[..=end], true),
            None => (buffer, false),
        };
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        reader.consume(used);
        if done {
            return Ok(Some(cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let folder = tempfile::tempdir().unwrap();
        let workspace = Workspace::new(folder.path()).unwrap();
        (folder, workspace)
    }

    async fn call(workspace: &Workspace, tool: &str, args: Value) -> Result<String, Error> {
        let tool = workspace.tool(tool).unwrap();
        let args = args.as_object().unwrap().clone();
        tool.call(args, ToolContext::detached("t"))
            .await
            .map(|output| output.content)
    }

    fn message(error: &Error) -> String {
        assert_eq!(error.kind(), "ToolException");
        error.message()
    }

    #[tokio::test]
    async fn write_read_edit_round_trip() {
        let (_folder, ws) = workspace();
        let wrote = call(
            &ws,
            "write_file",
            json!({"file_path": "/notes/a.md", "content": "one\ntwo\nthree\n"}),
        )
        .await
        .unwrap();
        assert_eq!(wrote, "Wrote 14 bytes to '/notes/a.md'.");
        let read = call(&ws, "read_file", json!({"file_path": "notes/a.md"}))
            .await
            .unwrap();
        assert_eq!(read, "     1\tone\n     2\ttwo\n     3\tthree\n");
        let read = call(
            &ws,
            "read_file",
            json!({"file_path": "/notes/a.md", "offset": 1, "limit": 1}),
        )
        .await
        .unwrap();
        assert!(read.starts_with("     2\ttwo\n[truncated"), "{read}");
        assert!(read.contains("offset=2"), "{read}");
        let again = call(
            &ws,
            "write_file",
            json!({"file_path": "/notes/a.md", "content": "x"}),
        )
        .await
        .unwrap_err();
        assert!(message(&again).contains("edit_file"));
        let edited = call(
            &ws,
            "edit_file",
            json!({"file_path": "/notes/a.md", "old_string": "two", "new_string": "2"}),
        )
        .await
        .unwrap();
        assert_eq!(edited, "Replaced 1 occurrence in '/notes/a.md'.");
        let text = fs::read_to_string(ws.root().join("notes/a.md")).unwrap();
        assert_eq!(text, "one\n2\nthree\n");
    }

    #[tokio::test]
    async fn edit_needs_a_unique_match_or_replace_all() {
        let (_folder, ws) = workspace();
        fs::write(ws.root().join("a.txt"), "x x x").unwrap();
        let missing = call(
            &ws,
            "edit_file",
            json!({"file_path": "a.txt", "old_string": "y", "new_string": "z"}),
        )
        .await
        .unwrap_err();
        assert!(message(&missing).contains("not found"));
        let many = call(
            &ws,
            "edit_file",
            json!({"file_path": "a.txt", "old_string": "x", "new_string": "z"}),
        )
        .await
        .unwrap_err();
        assert!(message(&many).contains("3 times"));
        let all = call(
            &ws,
            "edit_file",
            json!({"file_path": "a.txt", "old_string": "x", "new_string": "z", "replace_all": true}),
        )
        .await
        .unwrap();
        assert_eq!(all, "Replaced 3 occurrences in '/a.txt'.");
        assert_eq!(
            fs::read_to_string(ws.root().join("a.txt")).unwrap(),
            "z z z"
        );
    }

    #[tokio::test]
    async fn read_file_reports_missing_binary_empty_and_long_lines() {
        let (_folder, ws) = workspace();
        let missing = call(&ws, "read_file", json!({"file_path": "/nope.md"}))
            .await
            .unwrap_err();
        assert!(message(&missing).contains("does not exist"));
        fs::write(ws.root().join("b.bin"), [1u8, 0, 2, 3]).unwrap();
        let binary = call(&ws, "read_file", json!({"file_path": "/b.bin"}))
            .await
            .unwrap_err();
        assert!(message(&binary).contains("binary"));
        fs::write(ws.root().join("empty"), "").unwrap();
        let empty = call(&ws, "read_file", json!({"file_path": "/empty"}))
            .await
            .unwrap();
        assert!(empty.contains("empty"));
        let ws = ws.with_limits(Limits {
            line_chars: 5,
            ..Limits::default()
        });
        fs::write(ws.root().join("long"), "abcdefghij\nok").unwrap();
        let long = call(&ws, "read_file", json!({"file_path": "/long"}))
            .await
            .unwrap();
        assert_eq!(long, "     1\tabcde [line truncated]\n     2\tok\n");
        let past = call(&ws, "read_file", json!({"file_path": "/long", "offset": 5}))
            .await
            .unwrap_err();
        assert!(message(&past).contains("2 lines"));
    }

    #[tokio::test]
    async fn dot_dot_and_outside_links_are_refused() {
        let (folder, ws) = workspace();
        let dotdot = call(&ws, "read_file", json!({"file_path": "../etc/passwd"}))
            .await
            .unwrap_err();
        assert!(message(&dotdot).contains("'..'"));
        // A host-absolute path not under the root is a path inside the workspace.
        let absolute = call(&ws, "read_file", json!({"file_path": "/etc/passwd"}))
            .await
            .unwrap_err();
        assert!(message(&absolute).contains("does not exist"));
        // A host path under the root means the same file.
        fs::write(ws.root().join("in.txt"), "inside").unwrap();
        let host = ws.root().join("in.txt");
        let read = call(
            &ws,
            "read_file",
            json!({"file_path": host.to_str().unwrap()}),
        )
        .await
        .unwrap();
        assert!(read.contains("inside"));
        #[cfg(unix)]
        {
            let outside_dir = tempfile::tempdir().unwrap();
            fs::write(outside_dir.path().join("secret"), "secret").unwrap();
            std::os::unix::fs::symlink(outside_dir.path(), folder.path().join("link")).unwrap();
            std::os::unix::fs::symlink(
                outside_dir.path().join("new"),
                folder.path().join("dangling"),
            )
            .unwrap();
            let through = call(&ws, "read_file", json!({"file_path": "/link/secret"}))
                .await
                .unwrap_err();
            assert!(message(&through).contains("outside"));
            let create = call(
                &ws,
                "write_file",
                json!({"file_path": "/link/made", "content": "x"}),
            )
            .await
            .unwrap_err();
            assert!(message(&create).contains("outside"));
            let dangling = call(
                &ws,
                "write_file",
                json!({"file_path": "/dangling", "content": "x"}),
            )
            .await
            .unwrap_err();
            assert!(message(&dangling).contains("symbolic link"));
            assert!(!outside_dir.path().join("new").exists());
            assert!(!outside_dir.path().join("made").exists());
            let grep = call(&ws, "grep", json!({"pattern": "secret"}))
                .await
                .unwrap();
            assert!(grep.starts_with("No matches"), "{grep}");
        }
    }

    #[tokio::test]
    async fn ls_glob_and_grep_show_workspace_paths() {
        let (_folder, ws) = workspace();
        fs::create_dir_all(ws.root().join("docs/deep")).unwrap();
        fs::write(ws.root().join("top.md"), "# Top\nTODO: one\n").unwrap();
        fs::write(ws.root().join("docs/a.md"), "nothing").unwrap();
        fs::write(ws.root().join("docs/deep/b.md"), "todo two\nTODO three\n").unwrap();
        fs::write(ws.root().join("docs/c.txt"), "TODO four").unwrap();
        assert_eq!(call(&ws, "ls", json!({})).await.unwrap(), "/docs/\n/top.md");
        assert_eq!(
            call(&ws, "ls", json!({"path": "/docs"})).await.unwrap(),
            "/docs/a.md\n/docs/c.txt\n/docs/deep/"
        );
        assert_eq!(
            call(&ws, "glob", json!({"pattern": "**/*.md"}))
                .await
                .unwrap(),
            "/docs/a.md\n/docs/deep/b.md\n/top.md"
        );
        assert_eq!(
            call(&ws, "glob", json!({"pattern": "*.md"})).await.unwrap(),
            "/top.md"
        );
        assert_eq!(
            call(&ws, "glob", json!({"pattern": "*.md", "path": "/docs"}))
                .await
                .unwrap(),
            "/docs/a.md"
        );
        assert_eq!(
            call(
                &ws,
                "glob",
                json!({"pattern": "/docs/**/*.md", "path": "/docs/deep"})
            )
            .await
            .unwrap(),
            "/docs/deep/b.md"
        );
        assert_eq!(
            call(&ws, "grep", json!({"pattern": "TODO"})).await.unwrap(),
            "/docs/c.txt:1:TODO four\n/docs/deep/b.md:2:TODO three\n/top.md:2:TODO: one\n"
        );
        assert_eq!(
            call(
                &ws,
                "grep",
                json!({"pattern": "(?i)todo", "glob": "*.md", "output_mode": "count"})
            )
            .await
            .unwrap(),
            "/docs/deep/b.md:2\n/top.md:1\n"
        );
        assert_eq!(
            call(
                &ws,
                "grep",
                json!({"pattern": "TODO", "path": "/docs", "output_mode": "files_with_matches"})
            )
            .await
            .unwrap(),
            "/docs/c.txt\n/docs/deep/b.md\n"
        );
        let bad = call(&ws, "grep", json!({"pattern": "f("}))
            .await
            .unwrap_err();
        assert!(message(&bad).contains("backslash"));
    }

    #[tokio::test]
    async fn caps_are_marked() {
        let (_folder, ws) = workspace();
        let ws = ws.with_limits(Limits {
            grep_matches: 2,
            listed_entries: 2,
            output_bytes: 64,
            ..Limits::default()
        });
        for name in ["a", "b", "c"] {
            fs::write(ws.root().join(name), "hit\nhit\n").unwrap();
        }
        let grep = call(&ws, "grep", json!({"pattern": "hit"})).await.unwrap();
        assert_eq!(grep.lines().filter(|line| line.contains(":hit")).count(), 2);
        assert!(
            grep.contains("[truncated: stopped after 2 matches"),
            "{grep}"
        );
        let ls = call(&ws, "ls", json!({})).await.unwrap();
        assert!(ls.starts_with("/a\n/b\n[truncated: 1 more"), "{ls}");
        let glob = call(&ws, "glob", json!({"pattern": "*"})).await.unwrap();
        assert!(glob.contains("1 more matches"), "{glob}");
        fs::write(ws.root().join("big"), "x\n".repeat(100)).unwrap();
        let read = call(&ws, "read_file", json!({"file_path": "big"}))
            .await
            .unwrap();
        assert!(
            read.contains("[truncated: the file has more lines"),
            "{read}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn special_files_are_refused_without_blocking() {
        let (_folder, ws) = workspace();
        let fifo = ws.root().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|status| status.success()) {
            return; // No mkfifo here; nothing to check.
        }
        for (tool, args) in [
            ("read_file", json!({"file_path": "/pipe"})),
            (
                "edit_file",
                json!({"file_path": "/pipe", "old_string": "a", "new_string": "b"}),
            ),
            ("write_file", json!({"file_path": "/pipe", "content": "a"})),
        ] {
            let error = call(&ws, tool, args).await.unwrap_err();
            let text = message(&error);
            assert!(
                text.contains("not a regular file") || text.contains("already exists"),
                "{tool}: {text}"
            );
        }
        let grep = call(&ws, "grep", json!({"pattern": "a"})).await.unwrap();
        assert!(grep.starts_with("No matches"), "{grep}");
    }

    #[test]
    fn capped_lines_skip_the_rest_of_a_long_line() {
        let mut reader = io::Cursor::new(b"abcdef\nxy\nlast".to_vec());
        let mut line = Vec::new();
        assert_eq!(
            read_capped_line(&mut reader, 3, &mut line).unwrap(),
            Some(true)
        );
        assert_eq!(line, b"abc");
        assert_eq!(
            read_capped_line(&mut reader, 3, &mut line).unwrap(),
            Some(false)
        );
        assert_eq!(line, b"xy\n");
        assert_eq!(
            read_capped_line(&mut reader, 3, &mut line).unwrap(),
            Some(true)
        );
        assert_eq!(line, b"las");
        assert_eq!(read_capped_line(&mut reader, 3, &mut line).unwrap(), None);
    }
}
