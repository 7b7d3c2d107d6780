//! Scale-out: several `errand serve` processes on one PostgreSQL database act as one server.
//! Runs created on any replica end on the survivors when one is killed, none has its result
//! kept twice, and a replica that stalls past its lease and wakes up has its writes refused.
//! A cancel sent to one replica stops a run executing on another, a stream opened on a third
//! follows it live and resumes on a fourth with `Last-Event-ID`, and a replica stopped with
//! SIGTERM hands its runs over at once.
//!
//! Runs when `ERRAND_TEST_DATABASE_URL` names a PostgreSQL database (`.ci/run` sets it); each
//! run of the test works in a schema of its own.

mod support;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{Served, call, call_text};

/// The database, or `None` (the test is skipped, saying so).
fn database_url() -> Option<String> {
    let url = std::env::var("ERRAND_TEST_DATABASE_URL").ok();
    if url.is_none() {
        eprintln!("ERRAND_TEST_DATABASE_URL is not set: the multi-replica test is skipped");
    }
    url
}

/// A replica on `url`/`schema`, with a lease of `lease_secs`, logging to a file of `dir`.
fn replica(url: &str, schema: &str, lease_secs: u64, dir: &Path, name: &str) -> (Served, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let served = support::serve_logging_to(
        [
            "--database-url",
            url,
            "--database-schema",
            schema,
            "--lease-secs",
            &lease_secs.to_string(),
        ],
        Stdio::from(file),
    );
    (served, log)
}

fn new_thread(address: &str) -> String {
    let (status, thread) = call(address, "POST", "/threads", Some(&json!({})));
    assert_eq!(status, 200, "{thread}");
    thread["thread_id"].as_str().expect("thread id").to_owned()
}

fn new_run(address: &str, thread_id: &str, text: &str) -> String {
    let body =
        json!({"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": text}]}});
    let (status, run) = call(
        address,
        "POST",
        &format!("/threads/{thread_id}/runs"),
        Some(&body),
    );
    assert_eq!(status, 200, "{run}");
    run["run_id"].as_str().expect("run id").to_owned()
}

fn status_of(address: &str, thread_id: &str, run_id: &str) -> String {
    let (_, run) = call(
        address,
        "GET",
        &format!("/threads/{thread_id}/runs/{run_id}"),
        None,
    );
    run["status"].as_str().unwrap_or("missing").to_owned()
}

/// Waits until the run's status is one of `wanted`, asking `address`.
fn wait_for(address: &str, thread_id: &str, run_id: &str, wanted: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = status_of(address, thread_id, run_id);
        if wanted.contains(&status.as_str()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} is {status}, not {wanted:?}, after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The `(id, event, data)` frames of an SSE body.
fn frames(body: &str) -> Vec<(u64, String, Value)> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|frame| {
            let mut id = None;
            let mut event = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("id: ") {
                    id = value.trim().parse().ok();
                } else if let Some(value) = line.strip_prefix("event: ") {
                    event = Some(value.trim().to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(value).ok();
                }
            }
            Some((id?, event?, data?))
        })
        .collect()
}

/// The AI answers on a thread.
fn answers(address: &str, thread_id: &str) -> Vec<String> {
    let (_, thread) = call(address, "GET", &format!("/threads/{thread_id}"), None);
    thread["values"]["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter(|message| message["type"] == "ai")
                .filter_map(|message| message["content"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Opens a join stream on `address` and reads frames until `count` have come, then drops
/// the connection. Answers the frames read.
fn read_some_frames(address: &str, path: &str, count: usize) -> Vec<(u64, String, Value)> {
    let mut stream = TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("writes");
    let mut reader = BufReader::new(stream);
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        // Chunk sizes are lines of their own; frames span whole lines.
        text.push_str(&line);
        let read = frames(&text);
        if read.len() >= count || Instant::now() > deadline {
            return read;
        }
    }
    frames(&text)
}

fn log_of(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    text
}

fn signal(served: &Served, name: &str) {
    let status = std::process::Command::new("kill")
        .args([name, &served.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {name}");
}

#[test]
fn replicas_on_one_database_share_runs_cancels_streams_and_survive_kills() {
    let Some(url) = database_url() else {
        return;
    };
    let schema = format!("errand_replicas_{}", std::process::id());
    let dir = std::env::temp_dir().join(&schema);
    std::fs::create_dir_all(&dir).expect("temp dir");
    // A short lease, so that a dead replica's runs are taken up within seconds.
    let (a, _) = replica(&url, &schema, 2, &dir, "a");
    let (b, b_log) = replica(&url, &schema, 2, &dir, "b");
    let (c, _) = replica(&url, &schema, 2, &dir, "c");
    let replicas = [&a, &b, &c];

    // Runs round-robin over the three, each on a thread of its own, each sleeping a little.
    let mut runs = Vec::new();
    for index in 0..12 {
        let on = replicas[index % 3];
        let thread_id = new_thread(&on.address);
        let run_id = new_run(&on.address, &thread_id, &format!("sleep=1.5 run {index}"));
        runs.push((index % 3, thread_id, run_id));
    }
    // Replica A is killed while its runs run: the survivors take them up once its lease
    // runs out, and every run ends, each with one answer.
    let (_, thread_a, run_a) = runs[0].clone();
    wait_for(
        &b.address,
        &thread_a,
        &run_a,
        &["running"],
        Duration::from_secs(10),
    );
    let mut a = a;
    a.child.kill().expect("SIGKILL");
    let _ = a.child.wait();
    drop(a);
    for (index, (_, thread_id, run_id)) in runs.iter().enumerate() {
        wait_for(
            &b.address,
            thread_id,
            run_id,
            &["success"],
            Duration::from_secs(30),
        );
        assert_eq!(
            answers(&c.address, thread_id),
            vec![format!("echo: sleep=1.5 run {index}")],
            "thread of run {index}"
        );
    }
    // A's runs were taken over by a second attempt.
    let (_, events) = call_text(
        &b.address,
        "GET",
        &format!("/threads/{thread_a}/runs/{run_a}/stream"),
        None,
        &[],
    );
    // Its stream shows both attempts, numbered on from one to the other.
    let replayed = frames(&events);
    let attempts: Vec<&Value> = replayed
        .iter()
        .filter(|(_, event, _)| event == "metadata")
        .map(|(_, _, data)| &data["attempt"])
        .collect();
    assert_eq!(attempts.last(), Some(&&json!(2)), "{events}");
    assert!(
        replayed.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "ids rise across attempts: {events}"
    );

    // Replica B stalls (SIGSTOP, as a long pause or a frozen VM would) while its runs run:
    // its lease runs out, C and D take its runs up, and when B wakes up what its stale
    // attempts write is refused, so every thread keeps exactly one answer.
    let (d, _) = replica(&url, &schema, 2, &dir, "d");
    let mut stalled = Vec::new();
    for index in 0..4 {
        let thread_id = new_thread(&b.address);
        let run_id = new_run(
            &b.address,
            &thread_id,
            &format!("sleep=1.5 stalled {index}"),
        );
        stalled.push((thread_id, run_id));
    }
    wait_for(
        &c.address,
        &stalled[0].0,
        &stalled[0].1,
        &["running"],
        Duration::from_secs(10),
    );
    signal(&b, "-STOP");
    for (thread_id, run_id) in &stalled {
        wait_for(
            &c.address,
            thread_id,
            run_id,
            &["success"],
            Duration::from_secs(30),
        );
    }
    signal(&b, "-CONT");
    std::thread::sleep(Duration::from_secs(3));
    for (index, (thread_id, _)) in stalled.iter().enumerate() {
        assert_eq!(
            answers(&d.address, thread_id),
            vec![format!("echo: sleep=1.5 stalled {index}")],
            "thread of stalled run {index}"
        );
    }
    let log = log_of(&b_log);
    assert!(
        log.contains("lease was lost"),
        "replica B's stale writes were not refused:\n{log}"
    );

    // A cancel sent to C stops a run executing on B.
    let thread_id = new_thread(&b.address);
    let run_id = new_run(&b.address, &thread_id, "sleep=60 to be cancelled");
    wait_for(
        &c.address,
        &thread_id,
        &run_id,
        &["running"],
        Duration::from_secs(10),
    );
    let (status, _) = call(
        &c.address,
        "POST",
        &format!("/threads/{thread_id}/runs/{run_id}/cancel"),
        None,
    );
    assert_eq!(status, 202);
    wait_for(
        &c.address,
        &thread_id,
        &run_id,
        &["interrupted"],
        Duration::from_secs(10),
    );

    // A stream opened on C follows a run executing on B live; after a disconnect it resumes
    // on D with Last-Event-ID, with no gap and no duplicate.
    let thread_id = new_thread(&b.address);
    let run_id = new_run(&b.address, &thread_id, "sleep=2 streamed");
    let path = format!("/threads/{thread_id}/runs/{run_id}/stream");
    let first = read_some_frames(&c.address, &path, 2);
    assert!(first.len() >= 2, "{first:?}");
    assert_eq!(
        status_of(&c.address, &thread_id, &run_id),
        "running",
        "the first frames came while the run ran"
    );
    let last_id = first.last().map(|frame| frame.0).expect("an id");
    let (_, rest) = call_text(
        &d.address,
        "GET",
        &path,
        None,
        &[("Last-Event-ID", &last_id.to_string())],
    );
    let rest = frames(&rest);
    // Together the two parts are the whole stream as stored, read again once the run ended.
    let ids: Vec<u64> = first.iter().chain(&rest).map(|frame| frame.0).collect();
    let (_, whole) = call_text(&b.address, "GET", &path, None, &[]);
    let expected: Vec<u64> = frames(&whole).iter().map(|frame| frame.0).collect();
    assert_eq!(ids, expected, "ids across the two replicas");
    assert!(
        rest.iter().any(|(_, event, data)| event == "values"
            && data.to_string().contains("echo: sleep=2 streamed")),
        "{rest:?}"
    );

    // SIGTERM hands a replica's runs over at once. E runs with a lease far longer than the
    // test waits, so only the hand-over can let another replica end the run in time.
    let (e, _) = replica(&url, &schema, 600, &dir, "e");
    let thread_id = new_thread(&e.address);
    let run_id = new_run(&e.address, &thread_id, "sleep=1 handed over");
    wait_for(
        &d.address,
        &thread_id,
        &run_id,
        &["running"],
        Duration::from_secs(10),
    );
    signal(&e, "-TERM");
    wait_for(
        &d.address,
        &thread_id,
        &run_id,
        &["success"],
        Duration::from_secs(20),
    );
    assert_eq!(
        answers(&d.address, &thread_id),
        vec!["echo: sleep=1 handed over".to_owned()]
    );
    drop((b, c, d, e));
    let _ = std::fs::remove_dir_all(&dir);
}
