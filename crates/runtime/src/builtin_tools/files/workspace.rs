//! The workspace folder and the confinement of every path the model gives to it: what the
//! module's documentation promises is checked here, once, for every tool.

use super::Limits;
use crate::Error;
use crate::tool::ToolOutput;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

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
    pub(super) root: PathBuf,
    pub(super) limits: Limits,
}

/// A path inside the workspace, checked.
#[derive(Debug)]
pub(super) struct Resolved {
    /// Where it is on the host: the canonical form of its deepest existing part, then the
    /// parts that do not exist yet.
    pub(super) host: PathBuf,
    /// How the model sees it: `/` and the parts, inside the workspace.
    pub(super) shown: String,
    /// Whether the whole path exists (as anything: a file, a folder or a link).
    pub(super) exists: bool,
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
    pub(super) fn resolve(&self, path: &str) -> Result<Resolved, Error> {
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
    pub(super) fn show(&self, host: &Path) -> String {
        let relative = host.strip_prefix(&self.root).unwrap_or(host);
        let mut shown = String::from("/");
        shown.push_str(&relative.to_string_lossy().replace('\\', "/"));
        shown
    }

    /// An answer cut to the output cap.
    pub(super) fn answer(&self, mut text: String) -> ToolOutput {
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

pub(super) fn tool_error(message: impl Into<String>) -> Error {
    Error::failed("ToolException", message)
}

pub(super) fn outside(shown: &str) -> Error {
    tool_error(format!(
        "the path '{shown}' leads outside the workspace through a symbolic link; only files \
         inside the workspace can be used"
    ))
}

pub(super) fn not_found(shown: &str) -> Error {
    tool_error(format!(
        "'{shown}' does not exist. Paths are inside the workspace, whose root is '/'; use ls \
         or glob to find the right path."
    ))
}

/// An IO failure, said without the host path.
pub(super) fn io_error(shown: &str, error: &io::Error) -> Error {
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
pub(super) fn regular_file(file: &Resolved) -> Result<(), Error> {
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
