//! Runs each example: the library functions their `main`s call, and once the built binaries of
//! the two-process example and of `read_stream`, as a user runs them.

// Helpers here run only inside tests: an unwrap that fails is the test failing.
#![allow(clippy::unwrap_used)]

use errand::middleware::TaskStatus;
use errand::protocol::sse::SseDecoder;
use errand_examples::researcher::ResearcherServer;
use errand_examples::supervisor::{Outcome, short};
use errand_examples::{Transcript, in_process, mixed, read_stream, supervisor_http};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest one example may take before the test fails (they take a few seconds).
const LIMIT: Duration = Duration::from_secs(60);

/// Checks what every example must show: two tasks started on `agents`, the user answered
/// while they ran, both ends pushed as notices, and each result reported by a supervisor turn
/// that read the notice.
fn assert_delegated_and_heard_back(outcome: &Outcome, agents: [&str; 2]) {
    let text = outcome.transcript.join("\n");
    let started: Vec<&str> = outcome.started.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(started, agents, "{text}");
    assert_eq!(
        text.matches("task started: ").count(),
        2,
        "each start is printed\n{text}"
    );
    assert!(
        outcome.answers[0].contains("I've handed 2 research task(s)"),
        "{text}"
    );
    assert!(
        text.contains("user: While that runs") && outcome.answers[1].contains("works on its own"),
        "the user's second message is answered\n{text}"
    );

    assert_eq!(outcome.notices.len(), 2, "{text}");
    for (task_id, agent) in &outcome.started {
        let (event, _after) = outcome
            .notices
            .iter()
            .find(|(event, _)| event.task_id.to_string() == *task_id)
            .unwrap_or_else(|| panic!("no notice for task {task_id}\n{text}"));
        assert_eq!(&event.agent_name, agent);
        assert_eq!(event.status, TaskStatus::Success, "{text}");
        let result = event.result.as_deref().unwrap_or_default();
        assert!(result.starts_with("Findings on "), "{result}");
        assert!(
            text.contains(&format!("notice: task {} ({agent})", short(task_id))),
            "{text}"
        );
        // The supervisor read the notice in a turn and reported the result from it.
        assert!(
            outcome
                .answers
                .iter()
                .any(|answer| answer.contains(&format!(
                    "Result from {agent} (task {}, success): {result}",
                    short(task_id)
                ))),
            "{text}"
        );
    }
    // The researcher used its tool on both topics.
    assert_eq!(text.matches("calls lookup_notes").count(), 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_example() {
    let outcome = tokio::time::timeout(LIMIT, in_process::run())
        .await
        .expect("the example ends by itself")
        .unwrap();
    assert_delegated_and_heard_back(&outcome, ["researcher", "researcher"]);
    assert!(outcome.transcript.iter().any(|l| l.contains("in-process")));
}

/// The two-process example's two halves, in one test: the researcher's server on a free port,
/// and the supervisor against its URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn researcher_server_and_supervisor_http_examples() {
    let transcript = Transcript::new();
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let server = ResearcherServer::start(address, None, &transcript)
        .await
        .unwrap();
    let mut outcome = tokio::time::timeout(LIMIT, supervisor_http::run(&server.url))
        .await
        .expect("the example ends by itself")
        .unwrap();
    // The researcher prints into its own transcript, as it would in its own process.
    outcome.transcript.extend(transcript.lines());
    assert_delegated_and_heard_back(&outcome, ["researcher", "researcher"]);
    assert!(outcome.notices.iter().all(|(event, _)| {
        event
            .result
            .as_deref()
            .unwrap_or_default()
            .contains("remote")
    }));
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_example() {
    let outcome = tokio::time::timeout(LIMIT, mixed::run(None))
        .await
        .expect("the example ends by itself")
        .unwrap();
    assert_delegated_and_heard_back(&outcome, ["local_researcher", "remote_researcher"]);
    let result_of = |agent: &str| {
        outcome
            .notices
            .iter()
            .find(|(event, _)| event.agent_name == agent)
            .and_then(|(event, _)| event.result.clone())
            .unwrap_or_default()
    };
    assert!(result_of("local_researcher").contains("(researched in-process)"));
    assert!(result_of("remote_researcher").contains("(researched on the remote server)"));
}

/// The mixed example pointed at a researcher server with `--url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_example_with_a_url() {
    let transcript = Transcript::new();
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let server = ResearcherServer::start(address, None, &transcript)
        .await
        .unwrap();
    let mut outcome = tokio::time::timeout(LIMIT, mixed::run(Some(&server.url)))
        .await
        .expect("the example ends by itself")
        .unwrap();
    outcome.transcript.extend(transcript.lines());
    assert_delegated_and_heard_back(&outcome, ["local_researcher", "remote_researcher"]);
    server.stop().await.unwrap();
}

/// Where cargo puts the built examples: `target/<profile>/examples/`, beside the `deps/`
/// folder this test runs from. `cargo test -p errand-examples` builds them.
fn example_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe
        .parent()?
        .parent()?
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

/// Kills the child when dropped, so a failing test leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit, at most `limit`; its exit status and stdout.
fn finish(mut child: Running, limit: Duration) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut out = String::new();
            child
                .0
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            return (status, out);
        }
        assert!(Instant::now() < deadline, "the example did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The two-process example as a user runs it: `researcher_server` prints its URL, then
/// `supervisor_http --url` runs against it and exits 0.
#[test]
fn the_two_example_binaries_talk_over_http() {
    let (Some(server_bin), Some(supervisor_bin)) = (
        example_binary("researcher_server"),
        example_binary("supervisor_http"),
    ) else {
        eprintln!(
            "skipped: the example binaries are not built (`cargo test -p errand-examples` builds them)"
        );
        return;
    };
    let mut server = Running(
        Command::new(server_bin)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = server.0.stdout.take().unwrap();
    let (lines, first) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let listening = first
        .recv_timeout(LIMIT)
        .expect("the server prints its address")
        .unwrap();
    let url = listening
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {listening}"))
        .to_owned();

    let supervisor = Running(
        Command::new(supervisor_bin)
            .args(["--url", &url])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (status, out) = finish(supervisor, LIMIT);
    assert!(status.success(), "{status}\n{out}");
    assert_eq!(out.matches("task started: ").count(), 2, "{out}");
    assert_eq!(out.matches("ended: success").count(), 2, "{out}");
    assert_eq!(
        out.matches("Result from researcher (task ").count(),
        2,
        "{out}"
    );
    // The server did the work: it printed each tool call.
    let mut server_out = Vec::new();
    while let Ok(Ok(line)) = first.recv_timeout(Duration::from_secs(5)) {
        server_out.push(line);
        if server_out.len() == 2 {
            break;
        }
    }
    assert_eq!(
        server_out
            .iter()
            .filter(|l| l.contains("calls lookup_notes"))
            .count(),
        2,
        "{server_out:?}"
    );
}

/// A URL that is not one is refused up front, with the reason.
#[tokio::test]
async fn supervisor_http_refuses_a_bad_url() {
    let error = supervisor_http::run("localhost:2024").await.unwrap_err();
    assert!(
        format!("{error:#}").contains("invalid url 'localhost:2024'"),
        "{error:#}"
    );
}

/// The recorded streams of `crates/protocol/tests/fixtures/sse/`, sorted by name.
fn sse_fixtures() -> Vec<PathBuf> {
    let folder =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/protocol/tests/fixtures/sse");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sse"))
        .collect();
    paths.sort();
    paths
}

/// What `read_stream` writes for `stream`.
fn read_stream_output(stream: &[u8]) -> String {
    let mut out = Vec::new();
    read_stream::run(stream, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn read_stream_writes_one_line_per_event_of_every_recorded_stream() {
    let fixtures = sse_fixtures();
    assert!(fixtures.len() >= 10, "{fixtures:?}");
    let mut lines = 0;
    for path in fixtures {
        let stream = std::fs::read(&path).unwrap();
        let out = read_stream_output(&stream);
        // A join of a finished run without an id replays nothing: its fixture is empty.
        let items = SseDecoder::decode_all(&stream);
        lines += items.len();
        assert_eq!(
            out.lines().count(),
            items.len(),
            "{}\n{out}",
            path.display()
        );
    }
    assert!(lines > 50, "{lines} lines in all");
}

#[test]
fn read_stream_summarises_a_values_stream() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/protocol/tests/fixtures/sse/values.sse");
    let out = read_stream_output(&std::fs::read(fixture).unwrap());
    assert_eq!(
        out,
        "[-] metadata: run 01a209d4-fbb7-77af-96e9-5750b624e2ee attempt 1\n\
         [-] values: 1 messages\n\
         [-] values: 2 messages\n"
    );
}

/// The built `read_stream` on each recorded stream, given as a file and on stdin, writes what
/// the library writes and exits 0.
#[test]
fn the_read_stream_binary_reads_every_recorded_stream() {
    let Some(binary) = example_binary("read_stream") else {
        eprintln!(
            "skipped: the example binaries are not built (`cargo test -p errand-examples` builds them)"
        );
        return;
    };
    for path in sse_fixtures() {
        let expected = read_stream_output(&std::fs::read(&path).unwrap());
        let from_file = Running(
            Command::new(&binary)
                .arg(&path)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let (status, out) = finish(from_file, LIMIT);
        assert!(status.success(), "{}: {status}\n{out}", path.display());
        assert_eq!(out, expected, "{}", path.display());

        let mut from_stdin = Running(
            Command::new(&binary)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut stdin = from_stdin.0.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, &std::fs::read(&path).unwrap()).unwrap();
        drop(stdin);
        let (status, out) = finish(from_stdin, LIMIT);
        assert!(status.success(), "{}: {status}\n{out}", path.display());
        assert_eq!(out, expected, "{}", path.display());
    }
}
