//! A minimal HTTP/1.1 keep-alive client: one TCP connection, reused for every request, opened
//! again only when the server closed it (e.g. uvicorn's 5 s idle keep-alive timeout).

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// The longest any single request may take (a `join` under load, a bulk cancel of 10,000 runs).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// An answer: status and the whole body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as JSON, failing on a non-2xx status.
    pub(crate) fn json(&self) -> anyhow::Result<Value> {
        self.ensure_success()?;
        serde_json::from_slice(&self.body).context("the answer is not JSON")
    }

    /// Fails on a non-2xx status, quoting the start of the body.
    pub(crate) fn ensure_success(&self) -> anyhow::Result<()> {
        if self.status.is_success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.body);
        let text: String = text.chars().take(300).collect();
        bail!("HTTP {}: {text}", self.status)
    }

    /// A string field of the JSON body.
    pub(crate) fn field(&self, name: &str) -> anyhow::Result<String> {
        let value = self.json()?;
        value
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("the answer has no string `{name}`"))
    }
}

/// One keep-alive connection to a server.
#[derive(Debug)]
pub(crate) struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `addr` (opened lazily, at the first request).
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    /// Opens the TCP connection now, so that the first timed request does not pay for it.
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let mut conn = Self::new(addr);
        conn.ready_sender().await?;
        Ok(conn)
    }

    async fn ready_sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let usable = match self.sender.as_mut() {
            Some(sender) if !sender.is_closed() => sender.ready().await.is_ok(),
            _ => false,
        };
        if !usable {
            let stream = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP/1.1 handshake")?;
            tokio::spawn(async move {
                // Ends when the server closes the connection or the sender is dropped.
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    /// `GET path`.
    pub(crate) async fn get(&mut self, path: &str) -> anyhow::Result<Reply> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.request(Method::POST, path, Some(body)).await
    }

    /// `POST path` with no body.
    pub(crate) async fn post_empty(&mut self, path: &str) -> anyhow::Result<Reply> {
        self.request(Method::POST, path, None).await
    }

    /// Sends one request and reads the whole answer, within [`REQUEST_TIMEOUT`].
    pub(crate) async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let payload = match body {
            Some(value) => Bytes::from(serde_json::to_vec(value)?),
            None => Bytes::new(),
        };
        let send = self.send(&method, path, body.is_some(), payload);
        let Ok(result) = tokio::time::timeout(REQUEST_TIMEOUT, send).await else {
            // The connection is still busy with the abandoned request: start afresh.
            self.sender = None;
            bail!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}");
        };
        result.with_context(|| format!("{method} {path}"))
    }

    async fn send(
        &mut self,
        method: &Method,
        path: &str,
        json: bool,
        payload: Bytes,
    ) -> anyhow::Result<Reply> {
        let host = self.addr.to_string();
        let build = || {
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(HOST, host.as_str());
            if json {
                builder = builder.header(CONTENT_TYPE, "application/json");
            }
            if json || *method == Method::POST {
                builder = builder.header(CONTENT_LENGTH, payload.len());
            }
            builder.body(Full::new(payload.clone()))
        };
        // A request the connection never sent (the server had just closed it) is sent again
        // once, on a new connection; a request that was sent is never repeated.
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let sender = self.ready_sender().await?;
            match sender.try_send_request(build()?).await {
                Ok(response) => break response,
                Err(mut error) => {
                    self.sender = None;
                    if attempt > 1 || error.take_message().is_none() {
                        return Err(error.into_error().into());
                    }
                }
            }
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .context("reading the answer")?
            .to_bytes();
        Ok(Reply { status, body })
    }
}
