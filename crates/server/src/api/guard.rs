//! What every request meets before its handler, from the outside in: its connection is
//! settled after the answer ([`keep_alive`]: an unread body discarded, or `Connection: close`),
//! a panic becomes a 500 ([`catch_panic`]), and the API key is checked ([`auth`]) before any
//! handler runs, the 404 and 405 fallbacks included.
//!
//! The panic catch wraps all the code that answers; only the settling is outside it, because it
//! must see the body that a panicking handler left unread, and it is written not to panic.
//!
//! It is one layer over every route and both fallbacks (see [`super::router`]): the routes are
//! matched first, but nothing of the match shows before the key is checked, and each layer
//! around axum's routes costs every request a boxed call.

use super::{auth, catch_panic, keep_alive};
use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Puts a [`Guard`] around a service.
#[derive(Clone, Debug)]
pub(super) struct GuardLayer {
    api_key: Option<Arc<str>>,
}

impl GuardLayer {
    /// A guard that asks for `api_key`, if there is one.
    pub(super) fn new(api_key: Option<Arc<str>>) -> Self {
        Self { api_key }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            api_key: self.api_key.clone(),
            inner,
        }
    }
}

/// A service behind the key check, the panic catch and the keep-alive settling.
#[derive(Clone, Debug)]
pub(super) struct Guard<S> {
    api_key: Option<Arc<str>>,
    inner: S,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (request, watch) = keep_alive::watch(request);
        // The inner service is called here rather than in the future below: that spares a
        // clone of it (an allocation, for axum's routes) on every request.
        let called = catch_panic::call(|| match auth::refusal(self.api_key.as_deref(), &request) {
            Some(refusal) => Called::Answered(refusal),
            None => Called::Answering(self.inner.call(request)),
        })
        .unwrap_or_else(|| Called::Answered(catch_panic::internal_error()));
        Box::pin(async move {
            let response = match called {
                Called::Answering(answer) => {
                    catch_panic::answer(async move {
                        match answer.await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        }
                    })
                    .await
                }
                Called::Answered(response) => response,
            };
            Ok(match watch {
                Some(watch) => watch.settle(response).await,
                None => response,
            })
        })
    }
}

/// A request as [`Guard::call`] leaves it to its future.
enum Called<A> {
    /// Passed on: the inner service's answer, to come.
    Answering(A),
    /// Answered at once: refused, or a panic in the call.
    Answered(Response),
}

#[cfg(test)]
mod tests {
    use super::GuardLayer;
    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::extract::Request;
    use axum::http::{StatusCode, header};
    use axum::response::Response;
    use axum::routing::{get, post};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("a handler panicked")
    }

    /// Panics holding the body it has not read.
    async fn boom_holding(body: Body) -> &'static str {
        let _held = body;
        tokio::task::yield_now().await;
        panic!("a handler panicked")
    }

    fn guarded(api_key: Option<&str>) -> Router {
        Router::new()
            .route("/boom", post(boom_holding).get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(GuardLayer::new(api_key.map(Arc::from)))
    }

    async fn answer(router: &Router, request: Request) -> Response {
        match router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_router_goes_on() {
        let guarded = guarded(None);
        let read = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&read);
        let body = Body::from_stream(futures::stream::iter((0..8).map(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from_static(b"{}  "))
        })));
        let response = answer(
            &guarded,
            Request::post("/boom").body(body).expect("request"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        // The body the handler never read was discarded: the connection is kept.
        assert!(response.headers().get(header::CONNECTION).is_none());
        assert_eq!(read.load(Ordering::SeqCst), 8);

        let response = answer(
            &guarded,
            Request::get("/boom").body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let response = answer(
            &guarded,
            Request::get("/fine").body(Body::empty()).expect("request"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Reads one HTTP/1.1 answer with a `Content-Length`: its status and whether it closes.
    async fn read_answer(
        reader: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    ) -> Option<(u16, bool)> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut head = Vec::new();
        let mut line = String::new();
        while line != "\r\n" {
            line.clear();
            if reader.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            head.push(line.to_ascii_lowercase());
        }
        let status = head.first()?.split(' ').nth(1)?.parse().ok()?;
        let value = |name: &str| {
            head.iter()
                .find_map(|line| line.strip_prefix(name).map(str::trim).map(str::to_owned))
        };
        let length: usize = value("content-length:")?.parse().ok()?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.ok()?;
        Some((status, value("connection:").as_deref() == Some("close")))
    }

    #[tokio::test]
    async fn a_panic_leaves_the_connection_usable() {
        use tokio::io::AsyncWriteExt;
        let router = guarded(None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("an address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let mut connection = tokio::io::BufReader::new(stream);
        let body = vec![b' '; 64 * 1024];
        for round in 0..20 {
            let head = format!(
                "POST /boom HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let stream = connection.get_mut();
            stream.write_all(head.as_bytes()).await.expect("sends");
            stream.write_all(&body).await.expect("sends");
            let answer = read_answer(&mut connection).await;
            assert_eq!(answer, Some((500, false)), "round {round}");
            connection
                .get_mut()
                .write_all(b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("sends");
            let answer = read_answer(&mut connection).await;
            assert_eq!(answer, Some((200, false)), "round {round}");
        }
        drop(connection);
        drop(stop);
        let _ = serving.await;
    }

    #[tokio::test]
    async fn the_key_is_checked_before_a_handler_runs() {
        let request = Request::get("/boom").body(Body::empty()).expect("request");
        let response = answer(&guarded(Some("k")), request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE),
            Some(&header::HeaderValue::from_static("Bearer"))
        );
    }
}
