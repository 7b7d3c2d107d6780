//! errand-server: the Agent Protocol server that hosts subagents.
//!
//! It serves the LangGraph server API as the official clients call it, keeps every accepted
//! thread and run in [`storage`] before it answers, runs graphs on an [`Executor`] (one running
//! run per thread, the multitask strategies, cancel, timeouts), and streams their events with
//! replay. Its place in the layers (see [`DESIGN.md`](https://github.com/errand-rs/errand/blob/main/DESIGN.md)): it serves [`errand_protocol`]'s types and
//! hosts [`errand_runtime::Graph`]s; it never knows about the supervisor's tools.
//!
//! ```
//! use errand_server::{Server, graphs::Echo, storage::SqliteStorage};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .graph("echo", Echo)
//!     .storage(Arc::new(SqliteStorage::in_memory()?))
//!     .start()
//!     .await?;
//! // An axum Router: serve it on a socket, or call it in-process as a tower::Service.
//! let _router = server.router();
//! server.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(())
//! # }
//! ```

// Nothing a request carries may panic the server: no indexing or slicing that can miss, no
// panics or expects outside tests (a request's own panic is still caught, as the last line).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::panic,
        clippy::unreachable,
        clippy::expect_used
    )
)]

mod api;
mod error;
mod executor;
pub mod graphs;
mod hub;
mod registry;
pub mod storage;

pub use errand_protocol as protocol;
pub use errand_runtime as runtime;
pub use error::{ServerError, ServerResult};
pub use executor::{AcceptedRun, Executor, ExecutorConfig, RunRequest, RunScope};
pub use registry::Graphs;

use axum::Router;
use errand_runtime::Graph;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use storage::Storage;

/// A running server: its executor and its router.
#[derive(Debug, Clone)]
pub struct Server {
    executor: Executor,
    router: Router,
}

/// Sets a server up; see [`Server::builder`].
#[derive(Debug, Default)]
pub struct ServerBuilder {
    graphs: Graphs,
    storage: Option<Arc<dyn Storage>>,
    config: ExecutorConfig,
    api_key: Option<String>,
}

impl ServerBuilder {
    /// Hosts `graph` under `name`; its assistant id is derived from the name.
    #[must_use]
    pub fn graph(mut self, name: impl Into<String>, graph: impl Graph) -> Self {
        self.graphs.insert(name, Arc::new(graph));
        self
    }

    /// Hosts an already shared graph under `name`.
    #[must_use]
    pub fn shared_graph(mut self, name: impl Into<String>, graph: Arc<dyn Graph>) -> Self {
        self.graphs.insert(name, graph);
        self
    }

    /// Where threads and runs are kept.
    #[must_use]
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// How runs are executed.
    #[must_use]
    pub fn executor_config(mut self, config: ExecutorConfig) -> Self {
        self.config = config;
        self
    }

    /// Requires this key (`x-api-key` or `Authorization: Bearer`) on every route but `/ok`.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into()).filter(|key| !key.is_empty());
        self
    }

    /// Recovers runs cut off by the last stop and starts executing.
    pub async fn start(self) -> ServerResult<Server> {
        let storage = match self.storage {
            Some(storage) => storage,
            None => Arc::new(storage::SqliteStorage::in_memory()?),
        };
        let executor = Executor::new(storage, self.graphs, self.config);
        executor.start().await?;
        let router = api::router(api::AppState {
            executor: executor.clone(),
            api_key: self.api_key.map(Arc::from),
        });
        Ok(Server { executor, router })
    }
}

impl Server {
    /// A builder with no graphs, in-memory storage and default settings.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The HTTP API as an axum `Router`: a `tower::Service` to serve or to call in-process.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The executor, for cancelling or waiting on runs from Rust.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Serves HTTP on `listener` until `signal` completes, then stops: no new requests, and
    /// running runs are left to be taken up by the next start.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use axum::serve::ListenerExt;
        let executor = self.executor.clone();
        // Without TCP_NODELAY a streamed answer (wait, join, SSE) sent in several writes waits
        // for the client's delayed ACK: 40 ms per join on Linux.
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
        });
        axum::serve(listener, self.router)
            .with_graceful_shutdown(async move {
                signal.await;
                executor.shutdown(Duration::from_secs(5)).await;
            })
            .await
    }

    /// Serves HTTP on 127.0.0.1 at a free port, in a task of its own, until the answer is
    /// dropped: for tests, examples and benches that talk to the server over a real socket.
    pub async fn serve_local(&self) -> std::io::Result<LocalServe> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = self.clone();
        tokio::spawn(async move {
            let signal = async move {
                let _ = stopped.await;
            };
            if let Err(error) = server.serve(listener, signal).await {
                tracing::warn!(%error, "serving on a local port failed");
            }
        });
        Ok(LocalServe { addr, _stop: stop })
    }

    /// Stops executing: running runs are stopped without an end recorded, so the next start on
    /// the same storage takes them up again.
    pub async fn shutdown(&self, grace: Duration) {
        self.executor.shutdown(grace).await;
    }
}

/// A server served on a local port by [`Server::serve_local`]; serving stops when this is
/// dropped (and the server's executor with it, as after [`Server::serve`]).
#[derive(Debug)]
pub struct LocalServe {
    addr: SocketAddr,
    /// Never sent on: dropping it ends the serving task.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl LocalServe {
    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` and the address: a base URL for a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
