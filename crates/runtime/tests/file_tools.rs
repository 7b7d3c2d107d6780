//! The file tools never read or write outside their workspace folder, whatever path a model
//! gives them: a property test with hostile paths against every tool.
//!
//! Each case builds a fresh folder holding a secret file and a secret folder beside the
//! workspace, and symbolic links inside the workspace that point at them (and one that points
//! nowhere outside). Every tool is called with the generated path; no answer may contain the
//! secret, and the world outside the workspace must be exactly as it was.

#![cfg(feature = "files")]

use errand_runtime::builtin_tools::Workspace;
use errand_runtime::tool::{SharedTool, ToolContext};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs;
use std::path::PathBuf;

/// What the secret files hold; no tool answer may ever contain it.
const SECRET: &str = "s3cr3t-9f1c2a7e-never-leaves";

fn ok<T, E: Debug>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("set-up failed: {error:?}"),
    }
}

/// A fresh world: `outer/` with secrets, and `outer/ws/` the workspace.
struct World {
    outer: tempfile::TempDir,
    tools: Vec<SharedTool>,
}

impl World {
    fn new() -> Self {
        let outer = ok(tempfile::tempdir());
        let root = outer.path();
        ok(fs::write(root.join("sentinel.txt"), SECRET));
        ok(fs::create_dir(root.join("secret_dir")));
        ok(fs::write(root.join("secret_dir/secret.txt"), SECRET));
        let ws = root.join("ws");
        ok(fs::create_dir_all(ws.join("sub")));
        ok(fs::write(ws.join("inside.txt"), "inside text\n"));
        ok(fs::write(ws.join("sub/file.md"), "# notes\n"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            ok(symlink(root.join("secret_dir"), ws.join("out_dir")));
            ok(symlink(root.join("sentinel.txt"), ws.join("out_file")));
            ok(symlink(root.join("new_target.txt"), ws.join("dangling")));
            ok(symlink(root, ws.join("sub/abs_up")));
            ok(symlink("../..", ws.join("sub/rel_up")));
            // A link that stays inside is fine to use.
            ok(symlink("inside.txt", ws.join("in_link")));
        }
        let tools = ok(Workspace::new(&ws)).tools();
        Self { outer, tools }
    }

    /// Everything outside the workspace: each path (links not followed) with its content or
    /// link target.
    fn outside(&self) -> BTreeMap<PathBuf, String> {
        let mut seen = BTreeMap::new();
        let mut pending = vec![self.outer.path().to_path_buf()];
        while let Some(folder) = pending.pop() {
            for entry in ok(fs::read_dir(&folder)) {
                let path = ok(entry).path();
                if path == self.outer.path().join("ws") {
                    continue;
                }
                let meta = ok(fs::symlink_metadata(&path));
                let what = if meta.is_dir() {
                    pending.push(path.clone());
                    "folder".to_owned()
                } else if meta.file_type().is_symlink() {
                    format!("link to {}", ok(fs::read_link(&path)).display())
                } else {
                    ok(fs::read_to_string(&path))
                };
                seen.insert(path, what);
            }
        }
        seen
    }

    fn tool(&self, name: &str) -> &SharedTool {
        match self.tools.iter().find(|tool| tool.name() == name) {
            Some(tool) => tool,
            None => panic!("no tool {name}"),
        }
    }
}

/// Every call a model could make with `path` in it.
fn calls(path: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("ls", json!({ "path": path })),
        ("read_file", json!({ "file_path": path })),
        (
            "read_file",
            json!({ "file_path": path, "offset": 0, "limit": 5 }),
        ),
        (
            "write_file",
            json!({ "file_path": path, "content": "written by the test" }),
        ),
        (
            "edit_file",
            json!({ "file_path": path, "old_string": "s3cr3t", "new_string": "pwned" }),
        ),
        (
            "edit_file",
            json!({ "file_path": path, "old_string": "s3cr3t", "new_string": "pwned", "replace_all": true }),
        ),
        ("glob", json!({ "pattern": path })),
        ("glob", json!({ "pattern": "**/*", "path": path })),
        ("grep", json!({ "pattern": "s3cr3t", "path": path })),
        ("grep", json!({ "pattern": "s3cr3t", "glob": path })),
        (
            "grep",
            json!({ "pattern": ".", "path": path, "output_mode": "files_with_matches" }),
        ),
    ]
}

fn check(world: &World, runtime: &tokio::runtime::Runtime, path: &str) {
    let before = world.outside();
    for (name, args) in calls(path) {
        let Value::Object(args) = args else {
            unreachable!()
        };
        let answer = runtime.block_on(world.tool(name).call(args, ToolContext::detached("p")));
        let text = match answer {
            Ok(output) => output.content,
            Err(error) => error.message(),
        };
        assert!(
            !text.contains(SECRET),
            "{name}({path:?}) leaked the secret: {text}"
        );
    }
    assert_eq!(
        world.outside(),
        before,
        "calls with {path:?} changed something outside the workspace"
    );
}

/// Path parts a hostile model would try.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("..".to_owned()),
        2 => Just(".".to_owned()),
        2 => Just(String::new()),
        1 => Just("...".to_owned()),
        1 => Just("~".to_owned()),
        2 => Just("ws".to_owned()),
        2 => Just("sentinel.txt".to_owned()),
        2 => Just("secret_dir".to_owned()),
        2 => Just("secret.txt".to_owned()),
        3 => Just("out_dir".to_owned()),
        3 => Just("out_file".to_owned()),
        3 => Just("dangling".to_owned()),
        2 => Just("sub".to_owned()),
        2 => Just("abs_up".to_owned()),
        2 => Just("rel_up".to_owned()),
        1 => Just("in_link".to_owned()),
        1 => Just("inside.txt".to_owned()),
        1 => Just("new.txt".to_owned()),
        1 => Just("..\\..".to_owned()),
        1 => Just("C:".to_owned()),
        1 => Just("ünïcødé-名前".to_owned()),
        1 => Just("**".to_owned()),
        2 => "[a-z.\\\\é]{1,6}",
    ]
}

/// A whole hostile path: parts joined by `/`, `\` or `//`, maybe from the root, the host root
/// of the world, or the workspace's host path.
fn hostile_path(outer: &str) -> impl Strategy<Value = String> {
    let start = prop_oneof![
        Just(String::new()),
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("./".to_owned()),
        Just(format!("{outer}/")),
        Just(format!("{outer}/ws/")),
        Just("/etc/".to_owned()),
    ];
    let separator = prop_oneof![Just("/"), Just("/"), Just("\\"), Just("//")];
    (
        start,
        prop::collection::vec((part(), separator), 0..7),
        any::<bool>(),
    )
        .prop_map(|(start, parts, trailing)| {
            let mut path = start;
            for (index, (part, separator)) in parts.iter().enumerate() {
                if index > 0 {
                    path.push_str(separator);
                }
                path.push_str(part);
            }
            if trailing {
                path.push('/');
            }
            path
        })
}

fn runtime() -> tokio::runtime::Runtime {
    ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn no_path_reaches_outside_the_workspace(
        // The world is made per case; its host path is only known then, so the path is built
        // from a placeholder and the real prefix put in below.
        path in hostile_path("@OUTER@")
    ) {
        let world = World::new();
        let runtime = runtime();
        let outer = world.outer.path().to_string_lossy().into_owned();
        check(&world, &runtime, &path.replace("@OUTER@", &outer));
    }
}

/// The paths a property test might take long to find, spelled out.
#[test]
fn known_escapes_are_refused() {
    let world = World::new();
    let runtime = runtime();
    let outer = world.outer.path().to_string_lossy().into_owned();
    for path in [
        "../sentinel.txt",
        "/../sentinel.txt",
        "..\\sentinel.txt",
        "sub/../../sentinel.txt",
        &format!("{outer}/sentinel.txt"),
        &format!("{outer}/secret_dir/secret.txt"),
        &format!("{outer}/ws/../sentinel.txt"),
        "out_file",
        "/out_file",
        "out_dir/secret.txt",
        "out_dir/new.txt",
        "out_dir",
        "dangling",
        "sub/abs_up/sentinel.txt",
        "sub/abs_up/secret_dir/secret.txt",
        "sub/rel_up/sentinel.txt",
        "sub/abs_up/ws/../sentinel.txt",
        "/",
        "",
        "**/*",
        "**",
    ] {
        check(&world, &runtime, path);
    }
}

/// Links that stay inside the workspace keep working, so the check is not just "refuse links".
#[cfg(unix)]
#[test]
fn links_inside_the_workspace_work() {
    let world = World::new();
    let runtime = runtime();
    let call = |name: &str, args: Value| {
        let Value::Object(args) = args else {
            unreachable!()
        };
        runtime
            .block_on(world.tool(name).call(args, ToolContext::detached("p")))
            .map(|output| output.content)
    };
    let read = ok(call("read_file", json!({"file_path": "/in_link"})));
    assert!(read.contains("inside text"), "{read}");
    let grep = ok(call("grep", json!({"pattern": "inside"})));
    assert!(grep.contains("/in_link:1:inside text"), "{grep}");
    assert!(!grep.contains("s3cr3t"), "{grep}");
    let listed = ok(call("ls", json!({})));
    assert!(
        listed.contains("/out_dir"),
        "links are listed by name: {listed}"
    );
    let escaped = call("read_file", json!({"file_path": "/out_file"}));
    assert!(escaped.is_err_and(|error| error.message().contains("outside the workspace")));
    assert_eq!(
        fs::read_to_string(world.outer.path().join("sentinel.txt"))
            .ok()
            .as_deref(),
        Some(SECRET)
    );
}
