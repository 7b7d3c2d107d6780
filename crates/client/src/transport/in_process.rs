//! The in-process transport: requests go straight into a `tower::Service` in this program.

use super::{ResponseBody, Transport, TransportRequest, TransportResponse};
use crate::ClientError;
use crate::error::BoxError;
use bytes::Bytes;
use errand_protocol::InProcessCall;
use futures::future::BoxFuture;
use futures::{FutureExt as _, TryStreamExt as _};
use http_body_util::{BodyExt as _, Full};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tower::{Service, ServiceExt as _};

type Call = dyn Fn(TransportRequest) -> BoxFuture<'static, Result<TransportResponse, ClientError>>
    + Send
    + Sync;

/// Calls a `tower::Service` (e.g. errand-server's `Router`) directly: the same requests and
/// answers as over HTTP, with no socket and no port.
///
/// Each request carries [`InProcessCall`] in its extensions. A service that answers with the
/// value its JSON body encodes ([`InProcessAnswer`](errand_protocol::InProcessAnswer), as
/// errand-server does for threads and runs created or read) spares the client decoding it;
/// any other answer is decoded from the body as usual.
///
/// Each call clones the service and drives it on the caller's task, so it works from any tokio
/// runtime (current-thread or multi-thread, inside `tokio::spawn`, or another runtime than the
/// one the server started on). Work the service spawns (a streamed body, say) runs on the
/// caller's runtime. Outside a tokio runtime a call fails with [`ClientError::Config`] instead
/// of panicking.
///
/// Call from a task where latency matters: a run that errand-server starts for a call made on
/// a runtime worker waits in that worker's queue, while one started from `block_on` (the body
/// of `#[tokio::main]`, which is no worker) must wake a worker thread. On a 2-vCPU virtual
/// machine that wake-up measured 16–47 µs per run created, against 1.5 µs from a task.
#[cfg_attr(docsrs, doc(cfg(feature = "in-process")))]
#[derive(Clone)]
pub struct InProcessTransport {
    call: Arc<Call>,
    target: Arc<str>,
}

impl fmt::Debug for InProcessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessTransport")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// A `tower::Service` the in-process transport can call: it takes requests with body `B`
/// and answers a streaming body of bytes. Any axum `Router` is one, for any `B`.
#[cfg_attr(docsrs, doc(cfg(feature = "in-process")))]
pub trait InProcessService<B>:
    Service<
        http::Request<B>,
        Response = http::Response<Self::ResponseBody>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + 'static
{
    /// The body of the service's answers.
    type ResponseBody: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
}

impl<B, S, RB> InProcessService<B> for S
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    RB: http_body::Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type ResponseBody = RB;
}

impl InProcessTransport {
    /// A transport into `service`, which takes requests with a [`Full<Bytes>`] body (an axum
    /// `Router` takes any body) and answers a streaming body.
    pub fn new(service: impl InProcessService<Full<Bytes>>) -> Self {
        Self::with_body::<Full<Bytes>>(service)
    }

    /// A transport into a service that takes requests with body type `B` (made from the
    /// request's bytes).
    pub fn with_body<B>(service: impl InProcessService<B>) -> Self
    where
        B: From<Bytes> + Send + 'static,
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let target = format!("in-process:{}", NEXT.fetch_add(1, Ordering::Relaxed));
        // A mutex, so services that are Send but not Sync (BoxCloneService) fit too; it is held
        // only to clone.
        let service = Mutex::new(service);
        let call = move |request: TransportRequest| {
            let service = service
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            async move {
                if tokio::runtime::Handle::try_current().is_err() {
                    return Err(ClientError::Config(
                        "the in-process transport must be called inside a tokio runtime".into(),
                    ));
                }
                let mut request = request.map(B::from);
                // The server may then hand its answer over as a value too (see
                // `errand_protocol::InProcessCall`).
                request.extensions_mut().insert(InProcessCall);
                let response = service.oneshot(request).await.map_err(|error| {
                    ClientError::transport("the in-process service failed", false, error)
                })?;
                Ok(response.map(|body| -> ResponseBody {
                    Box::pin(body.into_data_stream().map_err(|error| {
                        ClientError::transport("the in-process response body failed", false, error)
                    }))
                }))
            }
            .boxed()
        };
        Self {
            call: Arc::new(call),
            target: Arc::from(target),
        }
    }
}

impl Transport for InProcessTransport {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'static, Result<TransportResponse, ClientError>> {
        (self.call)(request)
    }

    fn target(&self) -> &str {
        &self.target
    }
}
