//! `errand chat` in a real terminal: tmux runs it, the test types into it and reads the screen.
//!
//! The supervisor's model is a local OpenAI-compatible Chat Completions server started by the
//! test (streamed answers and streamed tool calls, as OpenAI sends them), scripted by what each
//! request ends with. The subagent is the built-in `echo` graph, hosted by the chat itself,
//! told to sleep a few seconds so the task is still running while the user talks.
//!
//! It checks what the chat promises: Ctrl-C cancels a turn in progress; a request starts a task (after the user approves it at
//! the approval prompt), the status line shows the running task, the user sends another
//! message while it runs and gets an answer, and the completion notice appears by itself,
//! followed by the supervisor's reaction, with no input from the user.

// Helpers here run only inside tests: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

mod support;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the echo subagent works: long enough that the user's second message and its
/// answer come while it runs.
const TASK_SECONDS: u32 = 8;

/// The longest wait for anything to appear on the screen.
const PATIENCE: Duration = Duration::from_secs(60);

/// What the fake model saw, and how many tool calls it made (for their ids).
#[derive(Default)]
struct Fake {
    requests: Mutex<Vec<Value>>,
    calls: AtomicUsize,
}

/// The text of a Chat Completions message's content (a string, or a list of text parts).
fn content(message: &Value) -> String {
    match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect(),
        _ => String::new(),
    }
}

fn chunk(delta: &Value, finish: &Value) -> Value {
    support::chunk("fake", delta, finish)
}

/// The supervisor's script: the request's last message decides the answer.
async fn chat_completions(State(fake): State<Arc<Fake>>, Json(body): Json<Value>) -> Response {
    fake.requests.lock().unwrap().push(body.clone());
    let last = body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .cloned()
        .unwrap_or(Value::Null);
    let text = content(&last);
    let reply = |words: &str| {
        vec![
            chunk(&json!({"role": "assistant", "content": ""}), &Value::Null),
            chunk(&json!({"content": words}), &Value::Null),
            chunk(&json!({}), &json!("stop")),
        ]
    };
    if text.contains("slowly") {
        // Long enough that only the user's Ctrl-C ends the turn; the chat then drops the
        // request.
        tokio::time::sleep(PATIENCE).await;
    }
    let events = if last["role"] == "tool" {
        reply("Started the research task; I will tell you when it is done.")
    } else if text.contains("SYSTEM NOTIFICATION") {
        reply("Research finished: the echo subagent reported back.")
    } else if text.contains("research") {
        // A tool call streamed the way OpenAI streams it: the name first, the arguments in
        // pieces, then the finish reason.
        let id = format!("call_{}", fake.calls.fetch_add(1, Ordering::SeqCst));
        let arguments = json!({
            "description": format!("sleep={TASK_SECONDS} research tides"),
            "subagent_type": "echo",
        })
        .to_string();
        let (first, second) = arguments.split_at(arguments.len() / 2);
        vec![
            chunk(
                &json!({"role": "assistant", "content": null, "tool_calls": [{
                    "index": 0, "id": id, "type": "function",
                    "function": {"name": "start_async_task", "arguments": ""}
                }]}),
                &Value::Null,
            ),
            chunk(
                &json!({"tool_calls": [{"index": 0, "function": {"arguments": first}}]}),
                &Value::Null,
            ),
            chunk(
                &json!({"tool_calls": [{"index": 0, "function": {"arguments": second}}]}),
                &Value::Null,
            ),
            chunk(&json!({}), &json!("tool_calls")),
        ]
    } else {
        reply("It is 42.")
    };
    support::sse("fake", events, (10, 5))
}

/// Serves the fake model on a runtime of its own, so the test's blocking waits never starve
/// it; its base url.
fn fake_model(fake: Arc<Fake>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/v1/chat/completions",
                    axum::routing::post(chat_completions),
                )
                .with_state(fake);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}/v1", rx.recv().unwrap())
}

/// A tmux server of the test's own (its own socket), killed when dropped, even on failure.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a detached 200x50 terminal.
    fn start(command: &str) -> Self {
        let tmux = Self {
            socket: format!("errand-chat-test-{}", std::process::id()),
        };
        // The pane stays when its command ends, so a failure shows how it ended.
        tmux.run(&[
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            "200",
            "-y",
            "50",
            command,
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            // Run from inside another tmux, the test's server is still its own.
            .env_remove("TMUX")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Types `text` and presses Enter.
    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", text]);
        self.run(&["send-keys", "-t", "chat", "Enter"]);
    }

    /// The screen and its scrollback, wrapped lines joined, and whether the pane's command
    /// has ended.
    fn screen(&self) -> String {
        let screen = self.run(&["capture-pane", "-p", "-J", "-S", "-1000", "-t", "chat"]);
        let dead = self.run(&[
            "display-message",
            "-p",
            "-t",
            "chat",
            "#{pane_dead} #{pane_dead_status} #{pane_dead_signal}",
        ]);
        let mut fields = dead.split_whitespace();
        match (fields.next(), fields.next(), fields.next()) {
            (Some("1"), _, Some(signal)) => format!("{screen}\n[errand killed by signal {signal}]"),
            (Some("1"), Some(status), None) => format!("{screen}\n[errand exited: {status}]"),
            _ => screen,
        }
    }

    /// Waits until the screen shows `needle`; the screen then.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {needle:?}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn quoted(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn chat_starts_a_task_answers_meanwhile_and_reports_the_notice_by_itself() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!(
            "SKIPPED chat_starts_a_task_answers_meanwhile_and_reports_the_notice_by_itself: tmux is not installed"
        );
        return;
    }
    let fake = Arc::new(Fake::default());
    let model_url = fake_model(Arc::clone(&fake));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("errand.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[model]
name = "openai:fake"
base_url = "{model_url}"
api_key = "x"

[async_subagents.echo]
description = "Researches a topic (a test subagent that echoes its task)."
graph_id = "echo"
"#
        ),
    )
    .unwrap();
    // The chat's environment names no other model, and its history stays in the temporary
    // folder. `exec`: the chat is the pane's only process, as in a user's terminal, so a
    // Ctrl-C reaches it alone (a shell around it would die of it); the pane stays when it
    // exits, to show how it ended.
    let command = format!(
        "exec env -u ERRAND_MODEL -u OPENAI_API_KEY -u OPENAI_BASE_URL -u ANTHROPIC_API_KEY \
         HOME={home} TERM=xterm-256color {bin} chat --config {config} --db {db} --no-history",
        home = quoted(dir.path()),
        bin = quoted(Path::new(env!("CARGO_BIN_EXE_errand"))),
        config = quoted(&config),
        db = quoted(&dir.path().join("errand.db")),
    );
    let tmux = Tmux::start(&command);

    tmux.wait_for("errand chat: supervisor model openai:fake");
    tmux.wait_for("you> ");

    // Ctrl-C while the supervisor's turn runs cancels that turn, not the chat.
    tmux.type_line("Answer slowly, please.");
    let deadline = Instant::now() + PATIENCE;
    while !fake
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|request| request.to_string().contains("slowly"))
    {
        assert!(Instant::now() < deadline, "the model was never asked");
        std::thread::sleep(Duration::from_millis(50));
    }
    tmux.run(&["send-keys", "-t", "chat", "C-c"]);
    tmux.wait_for("(turn cancelled)");

    // A request starts a task, once approved at the prompt.
    tmux.type_line("Please research tides for me.");
    tmux.wait_for("approve start of `echo` task: sleep=");
    tmux.type_line("y");
    tmux.wait_for("supervisor: Started the research task");
    // The status line shows it running.
    tmux.wait_for("[tasks] echo ");

    // Another message while it runs, and its answer.
    tmux.type_line("What is 6 times 7?");
    let screen = tmux.wait_for("supervisor: It is 42.");
    assert!(
        !screen.contains("Research finished"),
        "the task ended before the second answer; the screen:\n{screen}"
    );

    // Nothing more is typed: the notice and the supervisor's reaction come by themselves.
    tmux.wait_for("echo] success");
    let screen = tmux.wait_for("supervisor: Research finished: the echo subagent reported back.");
    let answered = screen.find("supervisor: It is 42.").unwrap();
    let notice = screen.find("echo] success").unwrap();
    let reaction = screen.find("supervisor: Research finished").unwrap();
    assert!(
        answered < notice && notice < reaction,
        "the notice and the reaction come after the answer; the screen:\n{screen}"
    );
    let notified = fake.requests.lock().unwrap().iter().any(|request| {
        request["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .is_some_and(|last| content(last).contains("SYSTEM NOTIFICATION"))
    });
    assert!(notified, "the model was sent the notice");

    tmux.type_line("/tasks");
    tmux.wait_for("1 task(s):");
    tmux.type_line("/quit");
    let screen = tmux.wait_for("bye");
    // Shown with --nocapture: what a user would have seen.
    println!("{screen}");
}
