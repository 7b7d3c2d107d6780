//! What every request meets before its handler, from the outside in: a panic becomes a 500
//! ([`catch_panic`]), and the API key is checked ([`auth`]) before any handler runs, the 404
//! and 405 fallbacks included.
//!
//! It is one layer over every route and both fallbacks (see [`super::router`]): the routes are
//! matched first, but nothing of the match shows before the key is checked, and each layer
//! around axum's routes costs every request a boxed call.

use super::{auth, catch_panic};
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

/// A service behind the key check and the panic catch.
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
        // The inner service is called here rather than in the future below: that spares a
        // clone of it (an allocation, for axum's routes) on every request.
        let called = catch_panic::call(|| match auth::refusal(self.api_key.as_deref(), &request) {
            Some(refusal) => Called::Answered(refusal),
            None => Called::Answering(self.inner.call(request)),
        })
        .unwrap_or_else(|| Called::Answered(catch_panic::internal_error()));
        Box::pin(async move {
            Ok(match called {
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
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::{StatusCode, header};
    use axum::response::Response;
    use axum::routing::{get, post};
    use std::sync::Arc;
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
        let body = Body::from("{}");
        let response = answer(
            &guarded,
            Request::post("/boom").body(body).expect("request"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

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
