//! `errand tasks list | check | cancel` against a running `errand serve`.

// Helpers here run only inside tests: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

mod support;

use errand_client::Client;
use errand_protocol::{RunCreate, RunResult, ThreadCreate};
use serde_json::json;
use std::process::Command;
use uuid::Uuid;

fn tasks(url: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["tasks", "--url", url])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A thread as a supervisor's start tool makes it, with one run.
async fn task(client: &Client, agent: &str, text: &str) -> Uuid {
    let mut metadata = serde_json::Map::new();
    metadata.insert("subagent_name".into(), json!(agent));
    let thread = client
        .threads()
        .create(&ThreadCreate {
            metadata: Some(metadata),
            ..ThreadCreate::default()
        })
        .await
        .unwrap();
    let input = json!({"messages": [{"role": "user", "content": text}]});
    client
        .runs()
        .create(thread.thread_id, &RunCreate::new("echo", input))
        .await
        .unwrap();
    thread.thread_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_check_and_cancel_the_tasks_on_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let served = support::serve(["--db".as_ref(), dir.path().join("errand.db").as_os_str()]);
    let client = Client::http(&served.url).unwrap();
    let done = task(&client, "researcher", "hello there").await;
    let busy = task(&client, "writer", "sleep=60").await;
    // A thread no supervisor made is not a task.
    client
        .threads()
        .create(&ThreadCreate::default())
        .await
        .unwrap();
    let runs = client.runs().list(done, Default::default()).await.unwrap();
    assert!(matches!(
        client.runs().join(done, runs[0].run_id).await.unwrap(),
        RunResult::Values(_)
    ));

    let listing = tasks(&served.url, &["list"]);
    assert_eq!(
        listing.lines().count(),
        3,
        "a header and two tasks: {listing}"
    );
    assert!(
        listing.contains(&format!("{done}  researcher")),
        "{listing}"
    );
    assert!(listing.contains(&format!("{busy}  writer")), "{listing}");
    let running = tasks(&served.url, &["list", "--status", "success"]);
    assert!(
        running.contains(&done.to_string()) && !running.contains(&busy.to_string()),
        "{running}"
    );

    let checked = tasks(&served.url, &["check", &done.to_string()]);
    assert!(checked.contains("status: success"), "{checked}");
    assert!(checked.contains("echo: hello there"), "{checked}");

    let cancelled = tasks(&served.url, &["cancel", &busy.to_string()]);
    assert!(cancelled.contains("Cancelled 1 run(s)"), "{cancelled}");
    assert!(cancelled.contains("status is now cancelled"), "{cancelled}");
    let again = tasks(&served.url, &["cancel", &done.to_string()]);
    assert!(
        again.contains("nothing was cancelled (status: success)"),
        "{again}"
    );
}
