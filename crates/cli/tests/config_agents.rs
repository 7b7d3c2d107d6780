//! `errand serve --config`: agents declared in `[agents.NAME]` tables are hosted beside `echo`,
//! on a real provider wire format (a local OpenAI-compatible server), and a bad config is
//! refused with its file, line and key.

// Helpers here run only inside tests: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

mod support;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use errand_client::Client;
use errand_protocol::{RunCreate, RunResult, ThreadCreate};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::{Arc, Mutex};

type Seen = Arc<Mutex<Vec<Value>>>;

/// Answers Chat Completions as OpenAI streams them: a content delta in two pieces, then the
/// finish reason, usage and `[DONE]`.
async fn chat_completions(State(seen): State<Seen>, Json(body): Json<Value>) -> Response {
    seen.lock().unwrap().push(body);
    let chunks = support::text_chunks("fake-model", &["Hello from ", "the local model."]);
    support::sse("fake-model", chunks, (12, 6))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_declared_agent_is_hosted_and_answers_through_the_server() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            axum::routing::post(chat_completions),
        )
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let model_url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("notes")).unwrap();
    let config = dir.path().join("errand.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[model]
name = "openai:fake-model"
base_url = "{model_url}"
api_key = "${{ERRAND_TEST_UNSET_KEY:-sk-local}}"

[agents.writer]
description = "Writes notes."
system_prompt = "You write short notes."
tools = ["files"]
workspace = "notes"
"#
        ),
    )
    .unwrap();
    let db = dir.path().join("errand.db");
    let served = support::serve([
        "--db".as_ref(),
        db.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let client = Client::http(&served.url).unwrap();

    let assistants = client
        .assistants()
        .search(&Default::default())
        .await
        .unwrap();
    let mut graphs: Vec<_> = assistants.iter().map(|a| a.graph_id.clone()).collect();
    graphs.sort();
    assert_eq!(graphs, ["echo", "writer"]);

    let thread = client
        .threads()
        .create(&ThreadCreate::default())
        .await
        .unwrap();
    let input = json!({"messages": [{"role": "user", "content": "Say hello."}]});
    let run = client
        .runs()
        .create(thread.thread_id, &RunCreate::new("writer", input))
        .await
        .unwrap();
    let result = client
        .runs()
        .join(thread.thread_id, run.run_id)
        .await
        .unwrap();
    let RunResult::Values(values) = result else {
        panic!("the run failed: {result:?}");
    };
    let messages = values["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["type"], "human");
    assert_eq!(messages[1]["type"], "ai");
    assert_eq!(messages[1]["content"], "Hello from the local model.");
    assert_eq!(messages[1]["usage_metadata"]["total_tokens"], 18);

    // What the model was sent: the system prompt, the user's words and the file tools.
    let request = seen.lock().unwrap()[0].clone();
    assert_eq!(request["model"], "fake-model");
    assert_eq!(
        request["messages"][0],
        json!({"role": "system", "content": "You write short notes."})
    );
    assert_eq!(request["messages"][1]["content"], "Say hello.");
    let mut tools: Vec<_> = request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["function"]["name"].as_str().unwrap().to_owned())
        .collect();
    tools.sort();
    assert_eq!(
        tools,
        ["edit_file", "glob", "grep", "ls", "read_file", "write_file"]
    );
}

fn refused(config_text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("errand.toml");
    std::fs::write(&config, config_text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["serve", "--port", "0", "--db"])
        .arg(dir.path().join("errand.db"))
        .arg("--config")
        .arg(&config)
        .env("ERRAND_LOG", "warn")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "a bad config must stop the server"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        stderr.contains("errand.toml"),
        "the file is named: {stderr}"
    );
    stderr
}

#[test]
fn a_bad_config_is_refused_with_file_line_key_and_what_was_expected() {
    let typo = refused("[agents.writer]\nsystem_prompt = \"x\"\ntool = [\"files\"]\n");
    assert!(typo.contains("line 3"), "{typo}");
    assert!(typo.contains("unknown field `tool`"), "{typo}");
    assert!(typo.contains("`tools`"), "{typo}");

    let no_key = refused("[agents.writer]\nmodel = \"openai:gpt-4o-mini\"\n");
    assert!(no_key.contains("agent `writer`"), "{no_key}");
    assert!(no_key.contains("OPENAI_API_KEY"), "{no_key}");

    let bad_tool = refused(
        "[model]\nname = \"openai:m\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[agents.writer]\ntools = [\"teleport\"]\n",
    );
    assert!(bad_tool.contains("teleport"), "{bad_tool}");
}
