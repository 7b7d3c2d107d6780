//! The file tools called as the model calls them: answers, refusals and caps.

use super::read_write::read_capped_line;
use super::{Limits, Workspace};
use crate::Error;
use crate::tool::ToolContext;
use serde_json::{Value, json};
use std::{fs, io};

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
