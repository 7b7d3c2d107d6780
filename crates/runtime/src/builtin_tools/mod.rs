//! Built-in tools for hosted agents: tools the runtime ships, each a [`Tool`] like any other
//! (the trait and [`FunctionTool`] are in [`crate::tool`]).
//!
//! - File tools confined to a [`Workspace`] folder (feature `files`): `ls`, `read_file`,
//!   `write_file`, `edit_file`, `glob` and `grep`, named and shaped like Deep Agents'
//!   filesystem tools. No path the model gives reads or writes outside the folder.
//! - [`FetchUrl`] (feature `fetch`): `fetch_url`, an HTTP GET of text, size-capped.
//!
//! Config files name them; [`by_name`] turns a name into tools:
//!
//! ```
//! # #[cfg(all(feature = "files", feature = "fetch"))] {
//! use errand_runtime::builtin_tools;
//!
//! let folder = tempfile::tempdir().unwrap();
//! let files = builtin_tools::by_name("files", Some(folder.path())).unwrap();
//! let names: Vec<&str> = files.iter().map(|tool| tool.name()).collect();
//! assert_eq!(names, ["ls", "read_file", "write_file", "edit_file", "glob", "grep"]);
//!
//! assert_eq!(builtin_tools::by_name("fetch_url", None).unwrap()[0].name(), "fetch_url");
//! // File tools need a folder to work in.
//! assert!(builtin_tools::by_name("read_file", None).is_err());
//! # }
//! ```
//!
//! [`Tool`]: crate::tool::Tool
//! [`FunctionTool`]: crate::tool::FunctionTool

#[cfg(feature = "fetch")]
mod fetch;
#[cfg(feature = "files")]
mod files;

#[cfg(feature = "fetch")]
#[cfg_attr(docsrs, doc(cfg(feature = "fetch")))]
pub use fetch::FetchUrl;
#[cfg(feature = "files")]
#[cfg_attr(docsrs, doc(cfg(feature = "files")))]
pub use files::{FILE_TOOL_NAMES, Limits, Workspace};

use crate::Error;
use crate::tool::SharedTool;
use std::path::Path;

/// Every name [`by_name`] knows: the six file tools, `fetch_url`, and `files` for all six file
/// tools.
pub const BUILT_IN_NAMES: [&str; 8] = [
    "ls",
    "read_file",
    "write_file",
    "edit_file",
    "glob",
    "grep",
    "fetch_url",
    "files",
];

/// The built-in tools a config file names by `name`: one of [`BUILT_IN_NAMES`].
///
/// The file tools (and `files`, which is all six) work in `workspace`, which must be an
/// existing folder. Each call makes new tools; a name that this build left out (its feature is
/// off), a file tool without a workspace, and an unknown name are [`Error::Config`].
pub fn by_name(name: &str, workspace: Option<&Path>) -> Result<Vec<SharedTool>, Error> {
    match name {
        "files" | "ls" | "read_file" | "write_file" | "edit_file" | "glob" | "grep" => {
            file_tools(name, workspace)
        }
        "fetch_url" => fetch_tool(),
        _ => Err(Error::Config(format!(
            "there is no built-in tool `{name}`; the built-in tools are {}",
            BUILT_IN_NAMES
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(feature = "files")]
fn file_tools(name: &str, workspace: Option<&Path>) -> Result<Vec<SharedTool>, Error> {
    let Some(folder) = workspace else {
        return Err(Error::Config(format!(
            "the tool `{name}` works in a workspace folder, and this agent has none: give the \
             agent a workspace folder to use file tools"
        )));
    };
    let workspace = Workspace::new(folder)?;
    if name == "files" {
        return Ok(workspace.tools());
    }
    Ok(workspace.tool(name).into_iter().collect())
}

#[cfg(not(feature = "files"))]
fn file_tools(name: &str, _workspace: Option<&Path>) -> Result<Vec<SharedTool>, Error> {
    Err(Error::Config(format!(
        "the tool `{name}` is not in this build: errand-runtime was built without its `files` \
         feature"
    )))
}

#[cfg(feature = "fetch")]
fn fetch_tool() -> Result<Vec<SharedTool>, Error> {
    Ok(vec![std::sync::Arc::new(FetchUrl::new())])
}

#[cfg(not(feature = "fetch"))]
fn fetch_tool() -> Result<Vec<SharedTool>, Error> {
    Err(Error::Config(
        "the tool `fetch_url` is not in this build: errand-runtime was built without its \
         `fetch` feature"
            .to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_list_the_known_ones() {
        let error = by_name("shell", None).unwrap_err();
        let Error::Config(message) = error else {
            panic!("not a config error: {error:?}");
        };
        assert!(message.contains("`shell`"), "{message}");
        for name in BUILT_IN_NAMES {
            assert!(message.contains(&format!("`{name}`")), "{message}");
        }
    }

    #[cfg(feature = "files")]
    #[test]
    fn file_tools_need_an_existing_workspace() {
        assert!(matches!(by_name("ls", None), Err(Error::Config(_))));
        let folder = tempfile::tempdir().unwrap();
        assert!(matches!(
            by_name("files", Some(&folder.path().join("missing"))),
            Err(Error::Config(_))
        ));
        let grep = by_name("grep", Some(folder.path())).unwrap();
        assert_eq!(grep.len(), 1);
        assert_eq!(grep[0].name(), "grep");
    }
}
