//! `errand demo` runs offline, with no key and no set-up, and shows every step: three tasks
//! started at once, one steered, one cancelled, results as they finish, progress and timings.

use std::process::Command;

#[test]
fn the_offline_demo_shows_every_step_and_ends_cleanly() {
    let output = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["demo", "--offline"])
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("errand demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    assert!(stdout.contains("model:  scripted"), "{stdout}");
    assert!(
        stdout.contains("I've started three research tasks"),
        "{stdout}"
    );
    assert!(
        stdout.contains("told the SQLite task to focus on WAL mode"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Cancelled async subagent task:"),
        "{stdout}"
    );
    assert!(stdout.contains("working:"), "progress is shown: {stdout}");
    assert_eq!(
        stdout.matches(") is success").count(),
        2,
        "two results arrive as notices: {stdout}"
    );
    assert!(
        stdout.contains("focus on WAL mode and fsync.\": 1. WAL lets readers"),
        "the steered task answers its new instruction: {stdout}"
    );
    let board = stdout
        .split("done. The task board:")
        .nth(1)
        .expect("the final board");
    assert_eq!(board.matches(" success ").count(), 2, "{board}");
    assert_eq!(board.matches(" cancelled ").count(), 1, "{board}");
}
