//! The runs in flight hold no more memory than the budget allows: past it, accepted runs wait
//! in storage, pending, and start as the runs before them end.

mod support;

use axum::http::StatusCode;
use errand_protocol::{Run, RunStatus};
use errand_server::ExecutorConfig;
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_budget_runs_wait_in_storage_and_all_finish() {
    // Each run holds over 64 KiB from its start (its record), and as much again once its
    // `values` event carries its input: the budget is over by the third run in flight.
    let config = ExecutorConfig {
        max_in_flight_bytes: 150 * 1024,
        idle_poll: Duration::from_millis(20),
        ..ExecutorConfig::default()
    };
    let api = api_with(config, None).await;
    let input = format!("sleep=0.2 {}", "x".repeat(64 * 1024));
    let mut runs = Vec::new();
    for _ in 0..8 {
        let thread = api.thread().await;
        let answer = api.start(&thread, &input, json!({})).await;
        assert_eq!(answer.status, StatusCode::OK);
        runs.push(serde_json::from_slice::<Run>(&answer.body).expect("run"));
    }

    let (mut most_running, mut saw_waiting) = (0, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut statuses = Vec::new();
        for run in &runs {
            let answer = api.get_run(run).await;
            statuses.push(
                serde_json::from_slice::<Run>(&answer.body)
                    .expect("run")
                    .status,
            );
        }
        let running = statuses
            .iter()
            .filter(|s| **s == RunStatus::Running)
            .count();
        let pending = statuses
            .iter()
            .filter(|s| **s == RunStatus::Pending)
            .count();
        most_running = most_running.max(running);
        saw_waiting |= running > 0 && pending > 0;
        if statuses.iter().all(|status| *status == RunStatus::Success) {
            break;
        }
        assert!(Instant::now() < deadline, "runs stuck: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        most_running <= 3,
        "{most_running} runs were in flight at once"
    );
    assert!(saw_waiting, "runs waited in storage while others ran");
}
