//! [`ClientCache`]: one client per (server, headers), shared by whoever needs one.

use crate::transport::Transport;
use crate::{Client, ClientBuilder, ClientError};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Clients kept by the server they reach and the custom headers they send, so that every
/// subagent spec with the same `url` and `headers` shares one client and its connections.
///
/// A spec without a URL reaches the local server through the in-process transport given to
/// [`with_local`](Self::with_local). Clients to the same URL share one HTTP connection pool
/// whatever their headers. Cheap to clone: clones share the cache.
///
/// ```
/// use errand_client::{Client, ClientCache};
/// let cache = ClientCache::new(Client::builder().api_key(None));
/// let a = cache.get(Some("http://127.0.0.1:8123/"), &[])?;
/// let b = cache.get(Some("http://127.0.0.1:8123"), &[])?;
/// let c = cache.get(Some("http://127.0.0.1:8123"), &[("X-Tenant".into(), "t1".into())])?;
/// assert_eq!(cache.len(), 2);
/// assert!(std::sync::Arc::ptr_eq(a.transport(), b.transport()));
/// assert!(std::sync::Arc::ptr_eq(a.transport(), c.transport()));
/// # Ok::<(), errand_client::ClientError>(())
/// ```
#[derive(Clone, Default)]
pub struct ClientCache {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The settings of every client made here (timeouts, retries, API key).
    template: ClientBuilder,
    /// The transport for specs without a URL.
    local: Option<Arc<dyn Transport>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    clients: HashMap<CacheKey, Client>,
    /// One transport per URL, shared by the clients of every header set.
    transports: HashMap<String, Arc<dyn Transport>>,
}

/// What a cached client is filed under: its target (a base URL, or `in-process:<n>`) and its
/// custom headers, names lowercased, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The base URL without a trailing slash, or the in-process transport's target.
    pub target: String,
    /// The custom headers, names lowercased, sorted by name.
    pub headers: Vec<(String, String)>,
}

impl fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCache")
            .field(
                "local",
                &self.inner.local.as_ref().map(|local| local.target()),
            )
            .field("clients", &self.len())
            .finish_non_exhaustive()
    }
}

impl ClientCache {
    /// A cache whose clients are built with `template`'s settings (its target is ignored).
    pub fn new(template: ClientBuilder) -> Self {
        Self {
            inner: Arc::new(Inner {
                template,
                local: None,
                state: Mutex::default(),
            }),
        }
    }

    /// A cache that also reaches the local server through `transport` (typically an
    /// [`InProcessTransport`](crate::transport::InProcessTransport)) when no URL is given.
    pub fn with_local(template: ClientBuilder, transport: Arc<dyn Transport>) -> Self {
        Self {
            inner: Arc::new(Inner {
                template,
                local: Some(transport),
                state: Mutex::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The client for `url` (or the local server when `None`) with these custom headers, made
    /// on first use.
    pub fn get(
        &self,
        url: Option<&str>,
        headers: &[(String, String)],
    ) -> Result<Client, ClientError> {
        let target = match (url, &self.inner.local) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(local)) => local.target().to_owned(),
            (None, None) => {
                return Err(ClientError::Config(
                    "no URL given and this cache has no local (in-process) server".into(),
                ));
            }
        };
        let mut sorted: Vec<(String, String)> = headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect();
        sorted.sort();
        let key = CacheKey {
            target,
            headers: sorted,
        };
        let mut state = self.lock();
        if let Some(client) = state.clients.get(&key) {
            return Ok(client.clone());
        }
        let transport = match (url, &self.inner.local) {
            (None, Some(local)) => Arc::clone(local),
            _ => match state.transports.get(&key.target) {
                Some(transport) => Arc::clone(transport),
                None => {
                    let transport = self.http_transport(&key.target)?;
                    state
                        .transports
                        .insert(key.target.clone(), Arc::clone(&transport));
                    transport
                }
            },
        };
        let client = self
            .inner
            .template
            .clone()
            .transport(transport)
            .headers(key.headers.iter().cloned())
            .build()?;
        state.clients.insert(key, client.clone());
        Ok(client)
    }

    #[cfg(feature = "http")]
    fn http_transport(&self, url: &str) -> Result<Arc<dyn Transport>, ClientError> {
        self.inner.template.http_transport(url)
    }

    #[cfg(not(feature = "http"))]
    fn http_transport(&self, url: &str) -> Result<Arc<dyn Transport>, ClientError> {
        Err(ClientError::Config(format!(
            "cannot reach `{url}`: errand-client was built without the `http` feature"
        )))
    }

    /// How many clients are cached.
    pub fn len(&self) -> usize {
        self.lock().clients.len()
    }

    /// True when no client is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every cached client (clients handed out keep working).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.clients.clear();
        state.transports.clear();
    }
}
