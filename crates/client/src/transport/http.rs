//! The HTTP transport: reqwest with rustls.

use super::{ResponseBody, Transport, TransportRequest, TransportResponse};
use crate::{ClientError, Timeouts};
use futures::future::BoxFuture;
use futures::{FutureExt as _, TryStreamExt as _};
use std::sync::Arc;
use std::time::Duration;

/// HTTP settings beyond the timeouts.
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOptions {
    /// Speak HTTP/2 without negotiating it (h2c on plain `http://`; errand serves it). Over
    /// `https://`, HTTP/2 is chosen by ALPN whatever this says.
    pub http2_prior_knowledge: bool,
    /// How long an idle kept-alive connection stays in the pool.
    pub pool_idle_timeout: Duration,
    /// How many idle connections per host the pool keeps.
    pub pool_max_idle_per_host: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            http2_prior_knowledge: false,
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
        }
    }
}

/// Sends requests to a server at a base URL with reqwest (rustls for `https://`, HTTP/1.1
/// keep-alive and HTTP/2). Cloning shares the connection pool.
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    /// The base URL without a trailing slash; request paths are appended to it.
    base: Arc<str>,
}

impl HttpTransport {
    /// A transport to `base_url` (`http://host:port` or `https://host/prefix`).
    pub fn new(base_url: &str, timeouts: Timeouts) -> Result<Self, ClientError> {
        Self::with_options(base_url, timeouts, HttpOptions::default())
    }

    /// A transport with HTTP settings.
    pub fn with_options(
        base_url: &str,
        timeouts: Timeouts,
        options: HttpOptions,
    ) -> Result<Self, ClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.pool_max_idle_per_host)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none());
        if options.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        }
        let client = builder.build().map_err(|error| {
            ClientError::Config(format!("could not build the HTTP client: {error}"))
        })?;
        Self::from_reqwest(client, base_url)
    }

    /// A transport over a reqwest client set up elsewhere (proxies, certificates...).
    pub fn from_reqwest(client: reqwest::Client, base_url: &str) -> Result<Self, ClientError> {
        let url = reqwest::Url::parse(base_url)
            .map_err(|error| ClientError::Config(format!("invalid URL `{base_url}`: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ClientError::Config(format!(
                "invalid URL `{base_url}`: expected http://host or https://host"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ClientError::Config(format!(
                "invalid URL `{base_url}`: a base URL has no query or fragment"
            )));
        }
        let base = url.as_str().trim_end_matches('/');
        Ok(Self {
            client,
            base: Arc::from(base),
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }
}

/// A reqwest failure as a client error.
fn transport_error(error: reqwest::Error) -> ClientError {
    if error.is_connect() {
        let message = if error.is_timeout() {
            "could not connect in time"
        } else {
            "could not connect"
        };
        ClientError::transport(format!("{message}: {error}"), true, error)
    } else {
        ClientError::transport(error.to_string(), false, error)
    }
}

impl Transport for HttpTransport {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'static, Result<TransportResponse, ClientError>> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        let url = format!("{}{path}", self.base);
        let request = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body);
        async move {
            let mut response = request.send().await.map_err(transport_error)?;
            let mut answer = http::Response::builder()
                .status(response.status())
                .version(response.version());
            if let Some(headers) = answer.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            let body: ResponseBody = Box::pin(response.bytes_stream().map_err(|error| {
                ClientError::transport(
                    format!("reading the response body failed: {error}"),
                    false,
                    error,
                )
            }));
            answer
                .body(body)
                .map_err(|error| ClientError::transport("invalid response head", false, error))
        }
        .boxed()
    }

    fn target(&self) -> &str {
        &self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        let transport =
            HttpTransport::new("http://127.0.0.1:8123/", Timeouts::default()).expect("valid");
        assert_eq!(transport.base_url(), "http://127.0.0.1:8123");
        let transport =
            HttpTransport::new("https://example.com/deploy/", Timeouts::default()).expect("valid");
        assert_eq!(transport.target(), "https://example.com/deploy");
        for bad in ["ftp://x", "not a url", "http://x/?q=1"] {
            assert!(
                matches!(
                    HttpTransport::new(bad, Timeouts::default()),
                    Err(ClientError::Config(_))
                ),
                "{bad}"
            );
        }
    }
}
