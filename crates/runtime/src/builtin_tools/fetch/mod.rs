//! `fetch_url`: an HTTP GET of a text page, for agents that read the web.
//!
//! GET only, `http` and `https` only, text only (`text/*`, JSON, XML, and the like), the body
//! capped in size with a marker, a timeout over the whole fetch, and few redirects. HTML comes
//! back with its tags stripped crudely (scripts and styles dropped, blocks on their own
//! lines), which is shorter for the model and good enough to read.
//!
//! By default it does not reach loopback, private, link-local or other non-public addresses,
//! so a model cannot use it to probe the host's own network (cloud metadata endpoints, local
//! admin pages): IP literals are checked in the URL and in every redirect, and names are
//! checked where they resolve. [`FetchUrl::allow_private_network`] lifts that. With an HTTP
//! proxy set in the environment, the proxy resolves names and this check sees IP literals only.
//!
//! `address.rs` decides which URLs and addresses may be fetched; `text.rs` turns a body into
//! the text the model reads.

mod address;
mod text;

use address::{PublicOnly, check_url};
use text::{decode, html_to_text, is_text};

use crate::Error;
use crate::tool::function::{arguments_of, parameters_of};
use crate::tool::{Tool, ToolContext, ToolOutput};
use async_trait::async_trait;
use errand_protocol::JsonObject;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Url, redirect};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

const DESCRIPTION: &str = "Fetches a web page or text document with an HTTP GET and returns its text.

Usage:
- url must be a full http:// or https:// URL.
- Only text comes back: HTML (with its tags stripped: scripts and styles dropped, one block per line), plain text, JSON, XML. Images, PDFs and other binary content are refused.
- Long documents are cut at a size limit with a marker saying so.
- It cannot reach local or private network addresses.";

/// The `fetch_url` tool.
///
/// ```
/// use errand_runtime::tool::Tool;
/// use errand_runtime::builtin_tools::FetchUrl;
/// use std::time::Duration;
///
/// let fetch = FetchUrl::new()
///     .with_max_bytes(256 * 1024)
///     .with_timeout(Duration::from_secs(10));
/// assert_eq!(fetch.name(), "fetch_url");
/// assert_eq!(fetch.parameters()["required"], serde_json::json!(["url"]));
/// ```
#[derive(Debug)]
pub struct FetchUrl {
    max_bytes: usize,
    timeout: Duration,
    max_redirects: usize,
    allow_private_network: bool,
    /// Built on the first call: building can fail, and `new` should not.
    client: OnceLock<reqwest::Client>,
}

impl Default for FetchUrl {
    fn default() -> Self {
        Self::new()
    }
}

impl FetchUrl {
    /// The tool with its defaults: 1 MiB, 30 s, 5 redirects, public addresses only.
    pub fn new() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_redirects: 5,
            allow_private_network: false,
            client: OnceLock::new(),
        }
    }

    /// At most `max_bytes` of a body are read; the rest is cut with a marker.
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The longest a whole fetch (connect, headers and body) may take.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.client = OnceLock::new();
        self
    }

    /// How many redirects one fetch follows.
    #[must_use]
    pub fn with_max_redirects(mut self, max_redirects: usize) -> Self {
        self.max_redirects = max_redirects;
        self.client = OnceLock::new();
        self
    }

    /// Whether loopback, private and link-local addresses may be fetched (default: no).
    /// Allow it for agents that are meant to read local services.
    #[must_use]
    pub fn allow_private_network(mut self, allow: bool) -> Self {
        self.allow_private_network = allow;
        self.client = OnceLock::new();
        self
    }

    fn client(&self) -> Result<&reqwest::Client, Error> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let max_redirects = self.max_redirects;
        let allow_private = self.allow_private_network;
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error(format!("more than {max_redirects} redirects"));
            }
            match check_url(attempt.url(), allow_private) {
                Ok(()) => attempt.follow(),
                Err(reason) => attempt.error(format!("a redirect {reason}")),
            }
        });
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("errand-fetch_url/", env!("CARGO_PKG_VERSION")))
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(policy);
        if !allow_private {
            builder = builder.dns_resolver(PublicOnly);
        }
        let client = builder.build().map_err(|error| {
            Error::Config(format!("fetch_url cannot make its HTTP client: {error}"))
        })?;
        Ok(self.client.get_or_init(|| client))
    }

    async fn fetch(&self, url: &str) -> Result<String, Error> {
        let parsed = Url::parse(url.trim()).map_err(|error| {
            tool_error(format!(
                "'{url}' is not a valid URL ({error}); give a full URL such as https://example.com/page"
            ))
        })?;
        check_url(&parsed, self.allow_private_network)
            .map_err(|reason| tool_error(format!("the URL {reason}")))?;
        let mut response = self
            .client()?
            .get(parsed.clone())
            .header(
                ACCEPT,
                "text/html, text/plain;q=0.9, application/json;q=0.9, application/xml;q=0.8, text/*;q=0.7, */*;q=0.1",
            )
            .send()
            .await
            .map_err(|error| self.request_error(&parsed, &error))?;
        let status = response.status();
        let shown_url = response.url().to_string();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let essence = content_type
            .as_deref()
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase());
        if let Some(essence) = &essence
            && !is_text(essence)
            && status.is_success()
        {
            return Err(tool_error(format!(
                "{shown_url} is {essence}, not text; fetch_url reads only text (HTML, plain \
                 text, JSON, XML)"
            )));
        }
        // The body is read in chunks up to the cap, so a huge answer costs no more than the cap.
        let mut body = Vec::new();
        let mut cut = false;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.request_error(&parsed, &error))?
        {
            let room = self.max_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                cut = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if essence.is_none() && body[..body.len().min(8192)].contains(&0) {
            return Err(tool_error(format!(
                "{shown_url} sent binary content without a content type; fetch_url reads only text"
            )));
        }
        let mut text = decode(&body, content_type.as_deref());
        let html = essence
            .as_deref()
            .is_some_and(|essence| essence == "text/html" || essence == "application/xhtml+xml");
        if html {
            text = html_to_text(&text);
        }
        if !status.is_success() {
            let mut detail: String = text.chars().take(500).collect();
            if detail.trim().is_empty() {
                detail = "(no body)".to_owned();
            }
            return Err(tool_error(format!(
                "{shown_url} answered HTTP {status}: {}",
                detail.trim()
            )));
        }
        let mut answer = format!(
            "URL: {shown_url}\nContent-Type: {}{}\n\n{text}",
            essence.as_deref().unwrap_or("unknown"),
            if html { " (tags stripped)" } else { "" }
        );
        if cut {
            let _ = write!(
                answer,
                "\n[truncated: the document is longer than {} bytes; only its start was read]",
                self.max_bytes
            );
        }
        Ok(answer)
    }

    fn request_error(&self, url: &Url, error: &reqwest::Error) -> Error {
        let why = if error.is_timeout() {
            format!("it took longer than {} s", self.timeout.as_secs_f64())
        } else if error.is_redirect() {
            format!("of its redirects: {}", chain(error))
        } else if error.is_connect() {
            format!("the server could not be reached: {}", chain(error))
        } else {
            chain(error)
        };
        tool_error(format!("fetching {url} failed because {why}"))
    }
}

#[async_trait]
impl Tool for FetchUrl {
    fn name(&self) -> &str {
        "fetch_url"
    }

    fn description(&self) -> &str {
        DESCRIPTION
    }

    fn parameters(&self) -> Value {
        parameters_of::<FetchArgs>()
    }

    async fn call(&self, args: JsonObject, context: ToolContext) -> Result<ToolOutput, Error> {
        let args: FetchArgs = arguments_of(self.name(), args)?;
        tokio::select! {
            answer = self.fetch(&args.url) => answer.map(ToolOutput::text),
            () = context.cancel.cancelled() => Err(Error::Cancelled),
        }
    }
}

/// Arguments of `fetch_url`.
#[derive(Debug, Deserialize, JsonSchema)]
struct FetchArgs {
    /// The http:// or https:// URL to fetch.
    url: String,
}

fn tool_error(message: impl Into<String>) -> Error {
    Error::failed("ToolException", message)
}

/// An error and its sources, which hold the useful part of a reqwest error.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let _ = write!(text, ": {inner}");
        source = inner.source();
    }
    text
}
