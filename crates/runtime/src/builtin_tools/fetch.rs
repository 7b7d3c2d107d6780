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

use crate::Error;
use crate::tool::{Tool, ToolContext, ToolOutput};
use async_trait::async_trait;
use errand_protocol::JsonObject;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Url, redirect};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
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
        let mut schema = schemars::schema_for!(FetchArgs).to_value();
        if let Some(object) = schema.as_object_mut() {
            object.remove("$schema");
            object.remove("title");
        }
        schema
    }

    async fn call(&self, args: JsonObject, context: ToolContext) -> Result<ToolOutput, Error> {
        let args: FetchArgs = serde_json::from_value(Value::Object(args)).map_err(|error| {
            Error::failed(
                "ToolArgumentsError",
                format!("the arguments do not fit the tool `fetch_url`: {error}"),
            )
        })?;
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

/// Why `url` may not be fetched, if it may not: the scheme, or a host that is plainly local.
fn check_url(url: &Url, allow_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "uses the scheme '{}'; fetch_url fetches only http:// and https:// URLs",
            url.scheme()
        ));
    }
    if allow_private {
        return Ok(());
    }
    let Some(host) = url.host_str() else {
        return Err("has no host".to_owned());
    };
    // IPv6 literals come in brackets; names are left for the resolver to check.
    let local = match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => !is_public(ip),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if local {
        return Err(format!(
            "points to a local or private address ({host}), which fetch_url does not reach"
        ));
    }
    Ok(())
}

/// Whether `ip` is a public unicast address.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() {
                return false;
            }
            if let Some(v4) = v6.to_ipv4() {
                return is_public(IpAddr::V4(v4));
            }
            let [first, second, ..] = v6.segments();
            !(v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || (first == 0x2001 && second == 0x0db8) // documentation
                || (first == 0x0064 && second == 0xff9b)) // NAT64, which reaches IPv4 space
        }
    }
}

/// A resolver that answers only public addresses, so a name cannot lead to a local one.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| is_public(address.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} has no public address (fetch_url does not reach local or private ones)"
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether a content type (lowercase, without parameters) is text the model can read.
fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-ndjson"
                | "application/yaml"
                | "application/x-yaml"
                | "application/toml"
                | "application/x-sh"
                | "application/sql"
                | "application/graphql"
        )
}

/// The body as text: Latin-1 when the content type says so, UTF-8 otherwise (invalid bytes
/// replaced).
fn decode(body: &[u8], content_type: Option<&str>) -> String {
    let charset = content_type
        .into_iter()
        .flat_map(|value| value.split(';').skip(1))
        .filter_map(|parameter| parameter.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches('"').to_ascii_lowercase());
    match charset.as_deref() {
        // Windows-1252 differs from Latin-1 only in 0x80-0x9F, which are rare in text.
        Some("iso-8859-1" | "latin1" | "latin-1" | "windows-1252" | "us-ascii") => {
            body.iter().map(|&byte| char::from(byte)).collect()
        }
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Tags that start a new line of text.
const BLOCKS: [&str; 30] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "title",
    "tr",
];

/// HTML as text, crudely: no tags, no scripts, styles or comments; blocks on their own lines;
/// the common entities decoded; spaces collapsed and blank lines dropped.
fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        push_decoded(&mut text, &rest[..start]);
        let tag = &rest[start..];
        if let Some(comment) = tag.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(end) = tag.find('>') else {
            rest = "";
            break;
        };
        let inner = &tag[1..end];
        rest = &tag[end + 1..];
        let closing = inner.starts_with('/');
        let name = inner
            .trim_start_matches('/')
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !closing && matches!(name.as_str(), "script" | "style" | "noscript" | "template") {
            // Their content is code, not text: skip to the closing tag.
            let close = format!("</{name}");
            rest = rest
                .to_ascii_lowercase()
                .find(&close)
                .map_or("", |at| &rest[at..]);
            continue;
        }
        if BLOCKS.contains(&name.as_str()) {
            text.push('\n');
        } else if matches!(name.as_str(), "td" | "th") {
            text.push(' ');
        }
    }
    push_decoded(&mut text, rest);
    let mut tidy = String::with_capacity(text.len());
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.is_empty() {
            tidy.push_str(&words.join(" "));
            tidy.push('\n');
        }
    }
    tidy.trim_end().to_owned()
}

/// Appends `raw` with its character references decoded (the common named ones and numeric).
fn push_decoded(text: &mut String, raw: &str) {
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        text.push_str(&rest[..at]);
        let entity = &rest[at + 1..];
        let decoded = entity.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &entity[..end];
            let found = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            };
            found.map(|found| (found, end))
        });
        match decoded {
            Some((found, end)) => {
                text.push(found);
                rest = &entity[end + 1..];
            }
            None => {
                text.push('&');
                rest = entity;
            }
        }
    }
    text.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text() {
        let html = "<html><head><title>T &amp; U</title><style>p{color:red}</style>\
                    <script>if (a < b) { alert('x') }</script></head>\
                    <body><!-- note --><h1>Head</h1><p>One <b>bold</b>&nbsp;word&#33;</p>\
                    <ul><li>a</li><li>b</li></ul></body></html>";
        assert_eq!(html_to_text(html), "T & U\nHead\nOne bold word!\na\nb");
    }

    #[test]
    fn only_public_addresses_pass() {
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(local.parse().unwrap()), "{local}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_and_local_hosts() {
        let check = |url: &str, allow| check_url(&Url::parse(url).unwrap(), allow);
        assert!(check("https://example.com/a", false).is_ok());
        assert!(
            check("file:///etc/passwd", true)
                .unwrap_err()
                .contains("scheme 'file'")
        );
        assert!(check("ftp://example.com", true).is_err());
        assert!(check("http://localhost:8080/", false).is_err());
        assert!(check("http://127.0.0.1:8080/", false).is_err());
        assert!(check("http://[::1]/", false).is_err());
        assert!(check("http://127.0.0.1:8080/", true).is_ok());
    }

    #[tokio::test]
    async fn names_that_resolve_locally_are_refused() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let error = PublicOnly.resolve(name).await.err().unwrap();
        assert!(error.to_string().contains("no public address"), "{error}");
    }

    #[test]
    fn text_types_and_charsets() {
        for text in [
            "text/html",
            "application/json",
            "application/ld+json",
            "image/svg+xml",
        ] {
            assert!(is_text(text), "{text}");
        }
        for binary in ["image/png", "application/pdf", "application/octet-stream"] {
            assert!(!is_text(binary), "{binary}");
        }
        assert_eq!(
            decode(b"caf\xe9", Some("text/plain; charset=ISO-8859-1")),
            "café"
        );
        assert_eq!(decode("café".as_bytes(), Some("text/plain")), "café");
    }
}
