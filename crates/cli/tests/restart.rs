//! Durability: a server killed with SIGKILL in the middle of runs loses nothing it accepted.
//! Started again on the same file, it has every thread and run, and every run ends. While one
//! server runs, a second one on its file is refused.

use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{Served, call};

fn serve(db: &Path) -> Served {
    support::serve([std::ffi::OsStr::new("--db"), db.as_os_str()])
}

/// A fresh folder named for `name` and this process, and the database path in it.
fn temp_db(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("errand.db");
    (dir, db)
}

#[test]
fn a_killed_server_loses_no_accepted_thread_or_run() {
    let (dir, db) = temp_db("errand-restart");

    let server = serve(&db);
    let mut runs = Vec::new();
    for index in 0..6 {
        let (status, thread) = call(&server.address, "POST", "/threads", Some(&json!({})));
        assert_eq!(status, 200);
        let thread_id = thread["thread_id"].as_str().expect("id").to_owned();
        // Two runs per thread: the first still running at the kill, the second pending.
        for text in [
            format!("sleep=1.5 first {index}"),
            format!("second {index}"),
        ] {
            let body = json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": text}]}});
            let (status, run) = call(
                &server.address,
                "POST",
                &format!("/threads/{thread_id}/runs"),
                Some(&body),
            );
            assert_eq!(status, 200, "{run}");
            runs.push((
                thread_id.clone(),
                run["run_id"].as_str().expect("id").to_owned(),
            ));
        }
    }
    // Wait until the first runs are running, then kill without warning.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, run) = call(
            &server.address,
            "GET",
            &format!("/threads/{}/runs/{}", runs[0].0, runs[0].1),
            None,
        );
        if run["status"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    drop(server);

    let server = serve(&db);
    let deadline = Instant::now() + Duration::from_secs(30);
    for (thread_id, run_id) in &runs {
        let (status, _) = call(
            &server.address,
            "GET",
            &format!("/threads/{thread_id}"),
            None,
        );
        assert_eq!(status, 200, "thread {thread_id} was lost");
        loop {
            let (status, run) = call(
                &server.address,
                "GET",
                &format!("/threads/{thread_id}/runs/{run_id}"),
                None,
            );
            assert_eq!(status, 200, "run {run_id} was lost");
            match run["status"].as_str() {
                Some("success") => break,
                Some("pending" | "running") => {}
                other => panic!("run {run_id} ended {other:?}, not success"),
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} never ended after the restart"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The interrupted first runs were taken up again: a second attempt, and both answers.
    let (_, thread) = call(
        &server.address,
        "GET",
        &format!("/threads/{}", runs[0].0),
        None,
    );
    let texts: Vec<&str> = thread["values"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "sleep=1.5 first 0",
            "echo: sleep=1.5 first 0",
            "second 0",
            "echo: second 0"
        ]
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_stops_cleanly_and_the_next_start_takes_the_run_up() {
    let (dir, db) = temp_db("errand-sigterm");

    let mut server = serve(&db);
    let (_, thread) = call(&server.address, "POST", "/threads", Some(&json!({})));
    let thread_id = thread["thread_id"].as_str().expect("id").to_owned();
    let body = json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": "sleep=30 long"}]}});
    let (_, run) = call(
        &server.address,
        "POST",
        &format!("/threads/{thread_id}/runs"),
        Some(&body),
    );
    let run_path = format!(
        "/threads/{thread_id}/runs/{}",
        run["run_id"].as_str().expect("id")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&server.address, "GET", &run_path, None).1["status"] != "running" {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(10));
    }

    // A client waiting on the run must not hold the stop up.
    let waiter = {
        let (address, join) = (server.address.clone(), format!("{run_path}/join"));
        std::thread::spawn(move || call(&address, "GET", &join, None))
    };
    std::thread::sleep(Duration::from_millis(100));

    let terminated = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(terminated.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = server.child.try_wait().expect("waits") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "the server exited with {exit}");
    let (status, answer) = waiter.join().expect("the waiting client");
    assert_eq!(status, 200);
    assert!(answer["__error__"].is_object(), "{answer}");
    drop(server);

    // The run was left for the next start, not marked as ended: it is running again there.
    let server = serve(&db);
    let (_, run) = call(&server.address, "GET", &run_path, None);
    assert!(
        matches!(run["status"].as_str(), Some("pending" | "running")),
        "{run}"
    );
    let (status, _) = call(&server.address, "POST", &format!("{run_path}/cancel"), None);
    assert_eq!(status, 202);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_server_on_the_same_database_is_refused_while_the_first_runs() {
    let (dir, db) = temp_db("errand-second");

    let first = serve(&db);
    let (status, thread) = call(&first.address, "POST", "/threads", Some(&json!({})));
    assert_eq!(status, 200);

    // Two servers on one file would both take up the runs the other is executing.
    let mut second = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--db"])
        .arg(&db)
        .env("ERRAND_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("errand starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = second.try_wait().expect("waits") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second server on the same database kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!exit.success());
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr reads");
    assert!(stderr.contains("in use by another process"), "{stderr}");

    // The first one is unharmed, and once it is gone the file opens again.
    let path = format!("/threads/{}", thread["thread_id"].as_str().expect("id"));
    assert_eq!(call(&first.address, "GET", &path, None).0, 200);
    drop(first);
    let again = serve(&db);
    assert_eq!(call(&again.address, "GET", &path, None).0, 200);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}
