//! Listing and searching folders: `ls`, `glob` and `grep`. Searches walk the folder without
//! following links to folders, and read a linked file only when its target is inside.

use super::Limits;
use super::definitions::{GrepArgs, GrepOutput};
use super::read_write::{cut_chars, looks_binary};
use super::workspace::{Resolved, Workspace, io_error, not_found, tool_error};
use crate::Error;
use crate::tool::ToolOutput;
use globset::{GlobBuilder, GlobMatcher};
use regex::{Regex, RegexBuilder};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

impl Workspace {
    pub(super) fn ls(&self, path: Option<&str>) -> Result<ToolOutput, Error> {
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

    pub(super) fn glob(
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
        walk.note_stopped(&mut answer, &self.limits);
        Ok(self.answer(answer))
    }

    pub(super) fn grep(
        &self,
        args: &GrepArgs,
        cancel: &CancellationToken,
    ) -> Result<ToolOutput, Error> {
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
        walk.note_stopped(&mut answer, &self.limits);
        Ok(self.answer(answer))
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

impl Walk {
    /// Adds to `answer` that the walk stopped at [`Limits::walked_entries`], when it did.
    fn note_stopped(&self, answer: &mut String, limits: &Limits) {
        if self.stopped {
            let _ = write!(
                answer,
                "\n[truncated: the search stopped after {} entries; search a smaller folder]",
                limits.walked_entries
            );
        }
    }
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
