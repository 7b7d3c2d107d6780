//! Starting and stopping the servers under test, and reading their memory and CPU from `/proc`.
//!
//! A [`Server`] owns its process and its temporary folder (database or project copy, log): dropping
//! it sends SIGTERM, then SIGKILL if the process is still there after [`STOP_TIMEOUT`], and removes
//! the folder, so a failing or interrupted bench leaves nothing running.

use super::http::Conn;
use crate::local::free_port;
use crate::peer;
use anyhow::{Context, bail};
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a stopped server may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a benched `errand serve` keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Storage {
    /// A fresh SQLite file in the server's temporary folder (the default).
    Sqlite,
    /// PostgreSQL at this URL, in a fresh schema per server start.
    Postgres(String),
}

impl Storage {
    /// PostgreSQL at `ERRAND_BENCH_DATABASE_URL`, else `ERRAND_TEST_DATABASE_URL`, else the
    /// local server's `test` database.
    pub(crate) fn postgres_from_env() -> Self {
        let url = std::env::var("ERRAND_BENCH_DATABASE_URL")
            .or_else(|_| std::env::var("ERRAND_TEST_DATABASE_URL"))
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        Self::Postgres(url)
    }
}

/// Which implementation a server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `errand serve`.
    Errand,
    /// The Python LangGraph server, `langgraph dev`.
    Python,
}

impl Side {
    /// The name used in tables and JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Errand => "errand",
            Side::Python => "python",
        }
    }
}

/// A server process started by the bench, stopped when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    side: Side,
    child: Child,
    pid: u32,
    addr: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    stopped: Option<String>,
    /// The PostgreSQL schema of an errand on PostgreSQL.
    schema: Option<String>,
}

/// Memory and CPU of a process, from `/proc/PID/status` and `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcStats {
    /// Resident set size, MiB.
    pub(crate) rss_mib: f64,
    /// Peak resident set size, MiB.
    pub(crate) hwm_mib: f64,
    /// OS threads.
    pub(crate) threads: u64,
    /// User + system CPU time, seconds.
    pub(crate) cpu_s: f64,
}

impl Server {
    /// Starts `errand serve` on a free port with a fresh database in a temporary folder
    /// (`--max-concurrent-runs` left at its default when `None`).
    pub(crate) fn start_errand(
        binary: &Path,
        storage: &Storage,
        max_concurrent_runs: Option<usize>,
    ) -> anyhow::Result<Self> {
        // A schema per start, as a file per start: each server begins empty.
        let schema = format!("errand_bench_{}", uuid::Uuid::new_v4().simple());
        Self::start_errand_with(binary, storage, &schema, max_concurrent_runs)
    }

    /// Starts another replica of an errand on PostgreSQL, on its `schema`.
    pub(crate) fn start_errand_in(
        binary: &Path,
        storage: &Storage,
        schema: &str,
    ) -> anyhow::Result<Self> {
        if *storage == Storage::Sqlite {
            bail!("only an errand on PostgreSQL has replicas");
        }
        Self::start_errand_with(binary, storage, schema, None)
    }

    /// `errand serve` on `storage` (in `schema` on PostgreSQL).
    fn start_errand_with(
        binary: &Path,
        storage: &Storage,
        schema: &str,
        max_concurrent_runs: Option<usize>,
    ) -> anyhow::Result<Self> {
        let dir = temp_dir("errand")?;
        let port = free_port()?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("ERRAND_LOG", "warn")
            .current_dir(&dir);
        let schema = match storage {
            Storage::Sqlite => {
                command.arg("--db").arg(dir.join("bench.db"));
                None
            }
            Storage::Postgres(url) => {
                command.args(["--database-url", url, "--database-schema", schema]);
                Some(schema.to_owned())
            }
        };
        if let Some(max) = max_concurrent_runs {
            command.args(["--max-concurrent-runs", &max.to_string()]);
        }
        let mut server = Self::spawn(Side::Errand, command, dir, port)?;
        server.schema = schema;
        Ok(server)
    }

    /// The PostgreSQL schema of an errand on PostgreSQL.
    pub(crate) fn database_schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Starts `langgraph dev` of the peer's venv `venv` on a free port, serving a fresh copy
    /// of the repository's graph project (`root`'s `tests/interop/peer/`), so that its
    /// `.langgraph_api/` store starts empty.
    pub(crate) fn start_python(root: &Path, venv: &Path, n_jobs: usize) -> anyhow::Result<Self> {
        let dir = temp_dir("python")?;
        if let Err(error) = peer::copy_project(root, &dir) {
            let _ = fs::remove_dir_all(&dir);
            return Err(error);
        }
        let port = free_port()?;
        let command = peer::langgraph_dev(venv, &dir, port, n_jobs);
        Self::spawn(Side::Python, command, dir, port)
    }

    fn spawn(side: Side, mut command: Command, dir: PathBuf, port: u16) -> anyhow::Result<Self> {
        let log = dir.join("server.log");
        let out = match File::create(&log) {
            Ok(file) => file,
            Err(error) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(error).context("creating the server log");
            }
        };
        let err = out.try_clone()?;
        let child = match command.stdin(Stdio::null()).stdout(out).stderr(err).spawn() {
            Ok(child) => child,
            Err(error) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(error).with_context(|| format!("starting {command:?}"));
            }
        };
        Ok(Self {
            side,
            pid: child.id(),
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            dir,
            log,
            stopped: None,
            schema: None,
        })
    }

    /// Waits until `GET /ok` answers 200, within `timeout`; returns how long that took.
    pub(crate) async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited early ({status}); log:\n{}",
                    self.side.name(),
                    self.log_tail()
                );
            }
            let mut conn = Conn::new(self.addr);
            if let Ok(reply) = conn.get("/ok").await
                && reply.status.is_success()
            {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} did not answer /ok within {timeout:?}; log:\n{}",
            self.side.name(),
            self.log_tail()
        )
    }

    /// Which implementation this is.
    pub(crate) fn side(&self) -> Side {
        self.side
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Memory and CPU of the server process now.
    pub(crate) fn stats(&self) -> anyhow::Result<ProcStats> {
        proc_stats(self.pid)
    }

    /// The last lines of the server's log.
    pub(crate) fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]); says how it ended.
    pub(crate) fn stop(&mut self) -> String {
        if let Some(how) = &self.stopped {
            return how.clone();
        }
        let how = self.terminate();
        self.stopped = Some(how.clone());
        how
    }

    fn terminate(&mut self) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        let start = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if sent {
            while start.elapsed() < STOP_TIMEOUT {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return format!("SIGTERM: exited in {:.2} s ({status})", secs(start));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if sent {
            format!("SIGKILL: still running {STOP_TIMEOUT:?} after SIGTERM")
        } else {
            "SIGKILL: SIGTERM could not be sent".to_owned()
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if let Err(error) = fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {error}", self.dir.display());
        }
    }
}

/// Seconds since `start`.
fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// A fresh folder under the system's temporary folder.
fn temp_dir(label: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("errand-bench-{label}-{}", uuid::Uuid::new_v4()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Clock ticks per second of `/proc/PID/stat` times (asked once of `getconf`; 100 otherwise).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// Memory and CPU of process `pid`.
pub(crate) fn proc_stats(pid: u32) -> anyhow::Result<ProcStats> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let mut stats = ProcStats::default();
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let number = value
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        match key {
            "VmRSS" => stats.rss_mib = kib_to_mib(number),
            "VmHWM" => stats.hwm_mib = kib_to_mib(number),
            "Threads" => stats.threads = number,
            _ => {}
        }
    }
    stats.cpu_s = cpu_seconds(pid)?;
    Ok(stats)
}

/// User + system CPU seconds of process `pid` (`/proc/PID/stat` fields 14 and 15).
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis don't.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field 14 (utime) is index 11.
    let ticks = |index: usize| -> anyhow::Result<f64> {
        let field = fields.get(index).context("short /proc/PID/stat")?;
        Ok(field.parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks())
}

/// CPU seconds all processes of the machine spent busy since boot (`/proc/stat`, all but idle
/// and iowait).
pub(crate) fn machine_busy_seconds() -> Option<f64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some((total - idle) / clock_ticks())
}

/// The 1-, 5- and 15-minute load averages.
pub(crate) fn load_average() -> Option<[f64; 3]> {
    let text = fs::read_to_string("/proc/loadavg").ok()?;
    let mut numbers = text.split_whitespace().map(|n| n.parse::<f64>().ok());
    Some([numbers.next()??, numbers.next()??, numbers.next()??])
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
