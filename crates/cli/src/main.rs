//! The `errand` command.
//!
//! It will run `errand serve | chat | tasks | demo` from one TOML config. For now it knows only
//! `--version` and `--help`, and says so for anything else rather than pretending.

use anyhow::bail;

const USAGE: &str = "\
errand: background subagents for LLM agents

usage: errand [--version | --help]

The serve, chat, tasks and demo commands are not built yet.";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--version" | "-V") => {
            println!("errand {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        None | Some("--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
