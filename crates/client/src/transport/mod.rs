//! How requests reach a server.
//!
//! A [`Transport`] takes one HTTP request (method, path and query, headers, body) and answers
//! the response head with a streaming body. The [`Client`](crate::Client) builds the requests,
//! adds the headers, applies timeouts and retries, and reads the answers, so every transport
//! sends the same requests and gets the same answers.
//!
//! | transport | feature | reaches | how |
//! |---|---|---|---|
//! | [`HttpTransport`] | `http` | a server at a URL (`http://`, `https://`) | reqwest with rustls; HTTP/1.1 keep-alive, HTTP/2 by ALPN or prior knowledge |
//! | [`InProcessTransport`] | `in-process` | any `tower::Service` in this program, e.g. errand-server's `Router` | calls the service on the caller's task: no socket, no port |
//!
//! Write your own (a proxy, a recorder, a fault injector for tests) by implementing the trait;
//! a client holds it as `Arc<dyn Transport>`.

#[cfg(feature = "http")]
mod http;
#[cfg(feature = "in-process")]
mod in_process;

#[cfg(feature = "http")]
pub use self::http::{HttpOptions, HttpTransport};
#[cfg(feature = "in-process")]
pub use self::in_process::{InProcessService, InProcessTransport};

use crate::ClientError;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::fmt;

/// The body of a response: its chunks as they arrive.
pub type ResponseBody = BoxStream<'static, Result<Bytes, ClientError>>;

/// A request as a transport gets it: the URI is the path and query only (`/threads/…?limit=10`);
/// the transport knows where to send it.
pub type TransportRequest = ::http::Request<Bytes>;

/// A response as a transport answers it: status and headers, and the body as a stream.
pub type TransportResponse = ::http::Response<ResponseBody>;

/// One way of reaching a server. Object safe: a client holds an `Arc<dyn Transport>`.
///
/// Implementations answer every status as a response (errors are the client's business) and
/// fail only when no answer came: [`ClientError::Transport`] (with `connect: true` when the
/// request never left) or [`ClientError::Timeout`].
pub trait Transport: fmt::Debug + Send + Sync + 'static {
    /// Sends one request and answers the response head; the body streams after.
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'static, Result<TransportResponse, ClientError>>;

    /// Names what this transport reaches, for caches and logs: the base URL, or
    /// `in-process:<n>` for an in-process service (unique per transport).
    fn target(&self) -> &str;
}
