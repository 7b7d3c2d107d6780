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
//!
//! The module is split by job: `workspace.rs` confines paths to the folder, `read_write.rs`
//! reads, writes and edits one file, `search.rs` lists and searches folders (`ls`, `glob`,
//! `grep`), and `definitions.rs` is the six tools as the model sees them (names, descriptions,
//! argument types) and how each call reaches the workspace.

mod definitions;
mod read_write;
mod search;
#[cfg(test)]
mod tests;
mod workspace;

pub use workspace::Workspace;

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
