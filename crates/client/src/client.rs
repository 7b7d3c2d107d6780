//! The [`Client`], its builder, and how one call is sent: headers, timeouts, retries, errors.

use crate::config::{ApiKey, default_headers};
use crate::retry::{Retries, Safety, retry_error, retry_status};
use crate::transport::{ResponseBody, Transport, TransportResponse};
use crate::{Assistants, ClientError, RetryPolicy, Runs, Store, Threads, Timeouts};
use bytes::{Bytes, BytesMut};
use errand_protocol::{Health, InProcessAnswer, ServerInfo};
use futures::StreamExt as _;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The most of an error answer's body that is read.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A typed client of one server, over one [`Transport`].
///
/// Cheap to clone (one `Arc`); clones share the transport and its connections. The calls are
/// grouped as the official client groups them: [`threads`](Self::threads),
/// [`runs`](Self::runs), [`assistants`](Self::assistants) and [`store`](Self::store).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Arc<dyn Transport>,
    headers: HeaderMap,
    timeouts: Timeouts,
    retry: RetryPolicy,
    reconnect: RetryPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.inner.transport.target())
            .field("timeouts", &self.inner.timeouts)
            .field("retry", &self.inner.retry)
            .field("reconnect", &self.inner.reconnect)
            .finish_non_exhaustive()
    }
}

/// Where a client sends its requests.
#[derive(Debug, Clone, Default)]
enum Target {
    #[default]
    Unset,
    #[cfg(feature = "http")]
    Url(String),
    Transport(Arc<dyn Transport>),
}

/// Sets a [`Client`] up; see [`Client::builder`].
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    target: Target,
    api_key: ApiKey,
    headers: Vec<(String, String)>,
    timeouts: Timeouts,
    retry: Option<RetryPolicy>,
    reconnect: Option<RetryPolicy>,
    #[cfg(feature = "http")]
    http: crate::transport::HttpOptions,
}

impl ClientBuilder {
    /// Sends requests over HTTP to `url` (`http://host:port`, `https://host/prefix`).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.target = Target::Url(url.into());
        self
    }

    /// HTTP settings (HTTP/2 prior knowledge, pool); used with [`url`](Self::url).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[must_use]
    pub fn http_options(mut self, options: crate::transport::HttpOptions) -> Self {
        self.http = options;
        self
    }

    /// Sends requests into a `tower::Service` in this program (see
    /// [`InProcessTransport`](crate::transport::InProcessTransport)).
    #[cfg(feature = "in-process")]
    #[cfg_attr(docsrs, doc(cfg(feature = "in-process")))]
    #[must_use]
    pub fn in_process(
        self,
        service: impl crate::transport::InProcessService<http_body_util::Full<Bytes>>,
    ) -> Self {
        self.transport(Arc::new(crate::transport::InProcessTransport::new(service)))
    }

    /// Sends requests through this transport.
    #[must_use]
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.target = Target::Transport(transport);
        self
    }

    /// The API key, sent as `x-api-key`: `Some(key)` to send this key, `None` to send none.
    /// Without this call the key comes from `LANGGRAPH_API_KEY`, `LANGSMITH_API_KEY` or
    /// `LANGCHAIN_API_KEY`, the first one set (quotes stripped), as the official client does.
    #[must_use]
    pub fn api_key(mut self, key: Option<&str>) -> Self {
        self.api_key = match key {
            Some(key) => ApiKey::Explicit(key.to_owned()),
            None => ApiKey::Disabled,
        };
        self
    }

    /// A header sent with every request. `x-api-key` is refused at [`build`](Self::build) (use
    /// [`api_key`](Self::api_key)); `User-Agent` may be replaced.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Headers sent with every request; see [`header`](Self::header).
    #[must_use]
    pub fn headers<I, K, V>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.headers.extend(
            headers
                .into_iter()
                .map(|(name, value)| (name.into(), value.into())),
        );
        self
    }

    /// Connect and read timeouts (defaults: 5 s and 300 s).
    #[must_use]
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The connect timeout (HTTP only; default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// The read timeout: for the response to start, then between pieces of its body (default
    /// 300 s).
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.read = timeout;
        self
    }

    /// How failed requests are repeated (default [`RetryPolicy::REQUESTS`]).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// How dropped streams are resumed (default [`RetryPolicy::RECONNECT`]).
    #[must_use]
    pub fn reconnect(mut self, policy: RetryPolicy) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// An HTTP transport to `url` with this builder's timeouts and HTTP settings.
    #[cfg(feature = "http")]
    pub(crate) fn http_transport(&self, url: &str) -> Result<Arc<dyn Transport>, ClientError> {
        Ok(Arc::new(crate::transport::HttpTransport::with_options(
            url,
            self.timeouts,
            self.http,
        )?))
    }

    /// Builds the client: resolves the API key, checks the headers, makes the transport.
    pub fn build(self) -> Result<Client, ClientError> {
        let api_key = self.api_key.resolve();
        let headers = default_headers(api_key.as_deref(), &self.headers)?;
        let transport: Arc<dyn Transport> = match self.target {
            Target::Unset => {
                return Err(ClientError::Config(
                    "no server: give a URL or a transport".into(),
                ));
            }
            #[cfg(feature = "http")]
            Target::Url(url) => Arc::new(crate::transport::HttpTransport::with_options(
                &url,
                self.timeouts,
                self.http,
            )?),
            Target::Transport(transport) => transport,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                headers,
                timeouts: self.timeouts,
                retry: self.retry.unwrap_or(RetryPolicy::REQUESTS),
                reconnect: self.reconnect.unwrap_or(RetryPolicy::RECONNECT),
            }),
        })
    }
}

impl Client {
    /// A builder with the official client's defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client of the server at `url`, with the default settings and the API key from the
    /// environment.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn http(url: &str) -> Result<Self, ClientError> {
        Self::builder().url(url).build()
    }

    /// A client that calls `service` (e.g. `errand_server::Server::router()`) in-process, with
    /// the default settings and the API key from the environment.
    #[cfg(feature = "in-process")]
    #[cfg_attr(docsrs, doc(cfg(feature = "in-process")))]
    pub fn in_process(
        service: impl crate::transport::InProcessService<http_body_util::Full<Bytes>>,
    ) -> Result<Self, ClientError> {
        Self::builder().in_process(service).build()
    }

    /// Threads: create, read, update, delete, search, state and history.
    pub fn threads(&self) -> Threads<'_> {
        Threads::new(self)
    }

    /// Runs: create, stream, wait, read, list, cancel, join, delete.
    pub fn runs(&self) -> Runs<'_> {
        Runs::new(self)
    }

    /// Assistants: search and read.
    pub fn assistants(&self) -> Assistants<'_> {
        Assistants::new(self)
    }

    /// The long-term store: put, get, delete, search, list namespaces.
    pub fn store(&self) -> Store<'_> {
        Store::new(self)
    }

    /// `GET /ok`: whether the server answers.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.json(&Call::get("/ok")).await
    }

    /// `GET /info`: the server's version and features.
    pub async fn info(&self) -> Result<ServerInfo, ClientError> {
        self.json(&Call::get("/info")).await
    }

    /// The transport this client sends through.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// The timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }

    pub(crate) fn reconnect_policy(&self) -> RetryPolicy {
        self.inner.reconnect
    }

    /// Builds the transport request of `call`.
    fn request(&self, call: &Call) -> Result<http::Request<Bytes>, ClientError> {
        let mut request = http::Request::builder()
            .method(call.method.clone())
            .uri(call.path.as_str())
            .body(call.body.clone().unwrap_or_default())
            .map_err(|error| {
                ClientError::InvalidArgument(format!("invalid request `{}`: {error}", call.path))
            })?;
        let headers = request.headers_mut();
        *headers = self.inner.headers.clone();
        if call.body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if call.sse {
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if let Some(id) = &call.last_event_id {
            let value = HeaderValue::from_str(id).map_err(|_| {
                ClientError::InvalidArgument(format!("`{id}` is not a valid Last-Event-ID"))
            })?;
            headers.insert("last-event-id", value);
        }
        Ok(request)
    }

    /// Sends `call` until an answer with a success status comes, repeating it as its
    /// [`Safety`] allows; an error status becomes a [`ClientError`].
    pub(crate) async fn open(&self, call: &Call) -> Result<TransportResponse, ClientError> {
        self.open_within(call, &mut Retries::new(self.inner.retry))
            .await
    }

    /// [`open`](Self::open), spending the repeats from `retries`, which the caller may go on
    /// spending when the answer's body fails.
    async fn open_within(
        &self,
        call: &Call,
        retries: &mut Retries,
    ) -> Result<TransportResponse, ClientError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ClientError::Config(
                "errand-client calls must run inside a tokio runtime".into(),
            ));
        }
        let read = self.inner.timeouts.read;
        loop {
            let request = self.request(call)?;
            let sent = tokio::time::timeout(read, self.inner.transport.send(request)).await;
            let error = match sent {
                Ok(Ok(response)) if response.status().is_success() => return Ok(response),
                Ok(Ok(response)) => self.error_answer(response).await,
                Ok(Err(error)) => error,
                Err(_) => ClientError::Timeout {
                    waiting_for: "the response",
                    after: read,
                },
            };
            let repeatable = match error.api_error() {
                Some(answer) => retry_status(answer.status) && call.safety == Safety::Idempotent,
                None => retry_error(&error, call.safety),
            };
            if !retries.again(repeatable).await {
                return Err(error);
            }
        }
    }

    /// Reads an error answer into its error.
    async fn error_answer(&self, response: TransportResponse) -> ClientError {
        let (parts, mut body) = response.into_parts();
        let mut bytes = BytesMut::new();
        while bytes.len() < ERROR_BODY_LIMIT {
            match next_chunk(&mut body, self.inner.timeouts.read).await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        ClientError::from_status(parts.status, &parts.headers, &bytes)
    }

    /// Sends `call` and reads its whole answer; a safe call whose body is cut off is sent again.
    /// Failed sends and cut-off bodies spend one budget of retries.
    pub(crate) async fn fetch(
        &self,
        call: &Call,
    ) -> Result<(http::response::Parts, Bytes), ClientError> {
        let mut retries = Retries::new(self.inner.retry);
        loop {
            let response = self.open_within(call, &mut retries).await?;
            let (parts, body) = response.into_parts();
            match collect(body, self.inner.timeouts.read).await {
                Ok(bytes) => return Ok((parts, bytes)),
                Err(error) if retries.again(retry_error(&error, call.safety)).await => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// Sends `call` and reads its answer: the value a server in this process handed over with
    /// it ([`InProcessAnswer`]), which is what the body encodes, else the body decoded as JSON
    /// (leading keep-alive newlines are skipped).
    pub(crate) async fn json<T>(&self, call: &Call) -> Result<T, ClientError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let (mut parts, bytes) = self.fetch(call).await?;
        if let Some(InProcessAnswer(value)) = parts.extensions.remove::<InProcessAnswer<T>>() {
            return Ok(value);
        }
        decode_json(call, parts.status, &parts.headers, &bytes)
    }

    /// Sends `call` and reads its answer to the end, ignoring it.
    pub(crate) async fn send(&self, call: &Call) -> Result<(), ClientError> {
        self.fetch(call).await.map(|_| ())
    }
}

/// The next piece of a body, waiting at most `read`.
pub(crate) async fn next_chunk(
    body: &mut ResponseBody,
    read: Duration,
) -> Result<Option<Bytes>, ClientError> {
    match tokio::time::timeout(read, body.next()).await {
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(error))) => Err(error),
        Ok(None) => Ok(None),
        Err(_) => Err(ClientError::Timeout {
            waiting_for: "the response body",
            after: read,
        }),
    }
}

/// A whole body.
pub(crate) async fn collect(mut body: ResponseBody, read: Duration) -> Result<Bytes, ClientError> {
    let Some(first) = next_chunk(&mut body, read).await? else {
        return Ok(Bytes::new());
    };
    let Some(second) = next_chunk(&mut body, read).await? else {
        return Ok(first);
    };
    let mut bytes = BytesMut::from(&first[..]);
    bytes.extend_from_slice(&second);
    while let Some(chunk) = next_chunk(&mut body, read).await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes.freeze())
}

/// Reads a JSON answer, after the whitespace a waiting server sends as keep-alives.
pub(crate) fn decode_json<T: DeserializeOwned>(
    call: &Call,
    status: StatusCode,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, ClientError> {
    let start = bytes
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    serde_json::from_slice(&bytes[start..]).map_err(|error| {
        let what = format!("the answer to {} {}", call.method, call.path);
        ClientError::decode(what, Some(status), Some(headers), &bytes[start..], error)
    })
}

/// One call: what to send, and whether it may be sent again.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) method: Method,
    /// The path and query.
    pub(crate) path: String,
    /// A JSON body.
    pub(crate) body: Option<Bytes>,
    pub(crate) safety: Safety,
    /// Asks for server-sent events.
    pub(crate) sse: bool,
    pub(crate) last_event_id: Option<String>,
}

impl Call {
    fn new(method: Method, path: impl Into<String>, safety: Safety) -> Self {
        Self {
            method,
            path: path.into(),
            body: None,
            safety,
            sse: false,
            last_event_id: None,
        }
    }

    /// A `GET`.
    pub(crate) fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path, Safety::Idempotent)
    }

    /// A `DELETE` without a body.
    pub(crate) fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path, Safety::Idempotent)
    }

    /// A `POST` with an empty body (no content type), as the official client sends cancel.
    pub(crate) fn post_empty(path: impl Into<String>, safety: Safety) -> Self {
        Self::new(Method::POST, path, safety)
    }

    /// A request with a JSON body.
    pub(crate) fn with_json(
        method: Method,
        path: impl Into<String>,
        body: &impl Serialize,
        safety: Safety,
    ) -> Result<Self, ClientError> {
        let mut call = Self::new(method, path, safety);
        let bytes = serde_json::to_vec(body).map_err(|error| {
            ClientError::InvalidArgument(format!("the request body is not JSON: {error}"))
        })?;
        call.body = Some(Bytes::from(bytes));
        Ok(call)
    }

    /// Asks for server-sent events, resuming after `last_event_id` when given.
    pub(crate) fn sse(mut self, last_event_id: Option<String>) -> Self {
        self.sse = true;
        self.last_event_id = last_event_id;
        self
    }
}
