//! Durability: a server killed with SIGKILL in the middle of runs loses nothing it accepted.
//! Started again on the same file, it has every thread and run, and every run ends. While one
//! server runs, a second one on its file is refused.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
struct Served {
    child: Child,
    address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--db"])
        .arg(db)
        .env("ERRAND_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("errand starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Served { child, address }
}

/// A fresh folder named for `name` and this process, and the database path in it.
fn temp_db(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("errand.db");
    (dir, db)
}

/// One HTTP/1.1 request on a fresh connection; the status and the JSON body.
fn call(address: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (
        status,
        serde_json::from_str(body.trim()).unwrap_or(Value::Null),
    )
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
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
