//! `errand serve`: the server on a SQLite file, or on PostgreSQL with `--database-url`, stopped
//! cleanly by SIGINT or SIGTERM.

use crate::agents;
use crate::config::Config;
use anyhow::Context;
use errand::server::storage::{PostgresConfig, PostgresStorage, SqliteStorage, Storage};
use errand::server::{ExecutorConfig, Server, graphs::Echo};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// Flags of `errand serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 2024)]
    port: u16,
    /// The SQLite database file (made if missing); unused with `--database-url`.
    #[arg(long, default_value = "errand.db")]
    db: PathBuf,
    /// Keep everything in this PostgreSQL database instead of the SQLite file
    /// (`postgres://user@host:5432/db`, `sslmode` as libpq reads it); several servers may share
    /// it.
    #[arg(long, env = "ERRAND_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The PostgreSQL schema errand's tables live in (made if missing), so that several
    /// deployments can share one database; letters, digits and `_`. Default: the
    /// connection's search path (usually `public`).
    #[arg(long, env = "ERRAND_DATABASE_SCHEMA", requires = "database_url")]
    database_schema: Option<String>,
    /// The most connections to PostgreSQL this server opens (besides one that listens for
    /// other replicas' signals).
    #[arg(
        long,
        env = "ERRAND_DATABASE_POOL",
        default_value_t = 16,
        requires = "database_url"
    )]
    database_pool: usize,
    /// The config file whose `[agents.NAME]` tables declare the agents to host, beside `echo`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Require this API key on every route but /ok.
    #[arg(long, env = "ERRAND_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The most runs executing at once.
    #[arg(long, default_value_t = 10_000)]
    max_concurrent_runs: usize,
    /// A run still going after this many seconds ends in `timeout`.
    #[arg(long, default_value_t = 86_400)]
    run_timeout_secs: u64,
    /// The most memory the runs in flight may hold together (their records and the events they
    /// streamed), in MiB; past it, accepted runs wait in the database until others end.
    #[arg(long, default_value_t = 256)]
    max_in_flight_mib: usize,
    /// How long this server holds its runs without renewing its lease, in seconds: if it dies,
    /// its runs go back to the queue (for another replica, or its next start) after this long.
    /// Renewed three times per period.
    #[arg(long, default_value_t = 30)]
    lease_secs: u64,
    /// How many attempts a run gets in all when servers die while running it.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Delete threads that have not changed for this many minutes and have no pending or
    /// running run, with their runs and checkpoints (as the Python server's thread TTL with
    /// the `delete` strategy). Unset: threads are kept until deleted.
    #[arg(long, value_name = "MINUTES")]
    thread_ttl: Option<u64>,
    /// Cap the database file at this many MiB: past it, errand behaves as on a full disk
    /// (new runs get 503, runs in flight wait to record their end) until space is freed.
    /// SQLite only.
    #[arg(long, conflicts_with = "database_url")]
    db_max_mib: Option<u64>,
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ERRAND_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let agents = match &args.config {
        Some(path) => {
            let config = Config::load(path)?;
            for skipped in &config.skipped {
                tracing::warn!(table = %skipped, "{}: skipping a table errand does not read", path.display());
            }
            agents::build_all(&config).with_context(|| format!("{}", path.display()))?
        }
        None => Vec::new(),
    };
    let (storage, database): (Arc<dyn Storage>, String) = match &args.database_url {
        Some(url) => {
            let mut config = PostgresConfig::new(url.clone());
            config.schema = args.database_schema.clone();
            config.pool_size = args.database_pool.max(1);
            let storage = PostgresStorage::connect(config)
                .await
                .context("connecting to the PostgreSQL database")?;
            (Arc::new(storage), "PostgreSQL".to_owned())
        }
        None => {
            let storage = SqliteStorage::open(&args.db)
                .with_context(|| format!("opening the database {}", args.db.display()))?;
            if let Some(mib) = args.db_max_mib {
                let cap = storage
                    .limit_size(Some(mib.saturating_mul(1024 * 1024)))
                    .await
                    .context("capping the database")?;
                tracing::info!(cap_mib = cap / (1024 * 1024), "the database is capped");
            }
            (Arc::new(storage), args.db.display().to_string())
        }
    };
    let mut builder = Server::builder()
        .graph("echo", Echo)
        .storage(storage)
        .executor_config(ExecutorConfig {
            max_concurrent_runs: args.max_concurrent_runs,
            run_timeout: Duration::from_secs(args.run_timeout_secs),
            max_in_flight_bytes: args.max_in_flight_mib.saturating_mul(1024 * 1024),
            lease: Duration::from_secs(args.lease_secs.max(1)),
            max_attempts: args.max_attempts.max(1),
            thread_ttl: args
                .thread_ttl
                .map(|minutes| Duration::from_secs(minutes.saturating_mul(60).max(1))),
            ..ExecutorConfig::default()
        });
    for (name, agent) in agents {
        tracing::info!(agent = %name, model = %agent.model().model_name(), "hosting agent");
        builder = builder.graph(name, agent);
    }
    if let Some(key) = args.api_key {
        builder = builder.api_key(key);
    }
    let server = builder.start().await.context("starting the server")?;
    let address = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        "errand {} serving on http://{local} (database {database})",
        env!("CARGO_PKG_VERSION"),
    );
    // Printed plainly too, so scripts can read the port when it was 0.
    println!("listening on http://{local}");
    server.serve(listener, stop_signal()).await?;
    tracing::info!("stopped; runs in flight resume at the next start");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
