//! Keep-alive connections that survive answers given before the request body was read.
//!
//! A handler may answer without reading the body (a 401, 404, 405, a 413 past the limit, any
//! early error). hyper then reads on only what already sits in its buffer and, if the body is
//! not all there, closes the connection after the answer, which it sent without
//! `Connection: close`: the client's next request on that connection fails ("Server
//! disconnected"). So when an HTTP/1.x answer is ready and the body was left unread, the rest
//! is read and discarded here if it is small ([`DISCARD_LIMIT`] bytes within
//! [`DISCARD_TIME`]), and otherwise the answer says `Connection: close`.
//!
//! The body is watched, not copied: frames pass through as they are, and what a request with a
//! body pays is its watcher (one small shared slot, and the box around any wrapped body).
//! Requests without a body, HTTP/2 (where an unread body ends only its stream) and calls made
//! in this process (no connection) are passed on untouched.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::response::Response;
use errand_protocol::InProcessCall;
use futures::{FutureExt, StreamExt};
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most of an unread body discarded to keep its connection; past it the connection closes.
/// Reading a megabyte costs less than a new connection; the body limit (16 MiB) would not.
pub(super) const DISCARD_LIMIT: u64 = 1024 * 1024;

/// The longest the answer waits for the unread rest of a body to arrive.
pub(super) const DISCARD_TIME: Duration = Duration::from_secs(1);

/// Watches `request`'s body, if its connection may need settling after the answer: then the
/// [`Watch`] must settle the answer once the handler is done with the request.
pub(super) fn watch(request: Request) -> (Request, Option<Watch>) {
    let http1 = matches!(request.version(), Version::HTTP_10 | Version::HTTP_11);
    if !http1
        || request.body().is_end_stream()
        || request.extensions().get::<InProcessCall>().is_some()
    {
        return (request, None);
    }
    let waits_for_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let left = Arc::new(Mutex::new(None));
    let request = request.map(|body| {
        Body::new(Watched {
            body,
            polled: false,
            ended: false,
            left: Arc::clone(&left),
        })
    });
    let watch = Watch {
        left,
        waits_for_continue,
    };
    (request, Some(watch))
}

/// What a watched body left unread, and how its request asked for it.
#[derive(Debug)]
pub(super) struct Watch {
    left: Arc<Mutex<Option<Unread>>>,
    waits_for_continue: bool,
}

impl Watch {
    /// `response`, after the rest of the body was discarded, or telling the client that the
    /// connection ends. Called once the handler dropped the request (its future is done): a
    /// body the answer still holds (a stream) is the answer's business.
    pub(super) async fn settle(self, response: Response) -> Response {
        // Still shared: the body lives on in the answer.
        let Some(left) = Arc::into_inner(self.left) else {
            return response;
        };
        match left.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(unread) => {
                if discarded(unread, self.waits_for_continue).await {
                    response
                } else {
                    closing(response)
                }
            }
            None => response,
        }
    }
}

/// The part of a body its handler did not read, left behind when it dropped the body.
#[derive(Debug)]
struct Unread {
    rest: Body,
    /// Whether the handler asked for any of it: if not, a client that waits for
    /// `100 Continue` has not sent it, and asking now would invite a body only to discard it.
    polled: bool,
}

/// Reads and discards `unread`; whether it ended within the limits (and so the connection is
/// ready for the next request).
async fn discarded(unread: Unread, waits_for_continue: bool) -> bool {
    if (waits_for_continue && !unread.polled) || unread.rest.size_hint().lower() > DISCARD_LIMIT {
        return false;
    }
    let mut rest = unread.rest.into_data_stream();
    let discard = async {
        let mut seen: u64 = 0;
        while let Some(chunk) = rest.next().await {
            let Ok(chunk) = chunk else {
                return false;
            };
            seen = seen.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
            if seen > DISCARD_LIMIT {
                return false;
            }
        }
        true
    };
    let mut discard = std::pin::pin!(discard);
    // Most often the rest is already here (in hyper's buffer): no timer for that.
    if let Some(ended) = discard.as_mut().now_or_never() {
        return ended;
    }
    tokio::time::timeout(DISCARD_TIME, discard)
        .await
        .unwrap_or(false)
}

/// `response`, telling the client that the connection ends after it.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that, dropped before its end, leaves the rest in `left`.
struct Watched {
    body: Body,
    polled: bool,
    ended: bool,
    left: Arc<Mutex<Option<Unread>>>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.polled = true;
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) {
            self.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.is_end_stream() {
            let unread = Unread {
                rest: std::mem::take(&mut self.body),
                polled: self.polled,
            };
            *self.left.lock().unwrap_or_else(PoisonError::into_inner) = Some(unread);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DISCARD_LIMIT, watch};
    use axum::body::{Body, Bytes};
    use axum::extract::Request;
    use axum::http::{HeaderMap, StatusCode, Version, header};
    use axum::response::{IntoResponse, Response};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A body of `chunks` chunks of `size` bytes, of no known length, and how many were read.
    fn counted_body(chunks: usize, size: usize) -> (Body, Arc<AtomicUsize>) {
        let read = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&read);
        let stream = futures::stream::iter((0..chunks).map(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![b' '; size]))
        }));
        (Body::from_stream(stream), read)
    }

    fn request(body: Body) -> Request {
        Request::post("/threads").body(body).expect("request")
    }

    /// An answer that drops the request unread.
    async fn refuse(request: Request) -> Response {
        drop(request);
        StatusCode::NOT_FOUND.into_response()
    }

    /// `answer`'s response to `request`, settled.
    async fn answer<A: Future<Output = Response>>(
        request: Request,
        answer: impl FnOnce(Request) -> A,
    ) -> Response {
        let (request, watch) = watch(request);
        let response = answer(request).await;
        match watch {
            Some(watch) => watch.settle(response).await,
            None => response,
        }
    }

    fn closes(headers: &HeaderMap) -> bool {
        headers
            .get(header::CONNECTION)
            .is_some_and(|value| value == "close")
    }

    #[tokio::test]
    async fn an_unread_small_body_is_discarded_and_the_connection_kept() {
        let (body, read) = counted_body(16, 1024);
        let response = answer(request(body), refuse).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(!closes(response.headers()));
        assert_eq!(read.load(Ordering::SeqCst), 16);
    }

    #[tokio::test]
    async fn a_read_body_is_left_alone() {
        let (body, read) = counted_body(4, 1024);
        let response = answer(request(body), |request: Request| async move {
            let bytes = axum::body::to_bytes(request.into_body(), usize::MAX).await;
            assert_eq!(bytes.map(|bytes| bytes.len()).ok(), Some(4096));
            StatusCode::OK.into_response()
        })
        .await;
        assert!(!closes(response.headers()));
        assert_eq!(read.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_unread_body_past_the_limit_closes_the_connection() {
        let chunk = 64 * 1024;
        let chunks = usize::try_from(2 * DISCARD_LIMIT).expect("small") / chunk;
        let (body, read) = counted_body(chunks, chunk);
        let response = answer(request(body), refuse).await;
        assert!(closes(response.headers()));
        assert!(read.load(Ordering::SeqCst) < chunks);

        // A length known to be past the limit is not read at all.
        let known = vec![0; usize::try_from(DISCARD_LIMIT).expect("small") + 1];
        let response = answer(request(Body::from(known)), refuse).await;
        assert!(closes(response.headers()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_closes_the_connection() {
        let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let response = answer(request(Body::from_stream(never)), refuse).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(closes(response.headers()));
    }

    #[tokio::test]
    async fn a_client_waiting_for_100_continue_is_not_asked_for_its_body() {
        let (body, read) = counted_body(1, 10);
        let mut waiting = request(body);
        waiting.headers_mut().insert(
            header::EXPECT,
            axum::http::HeaderValue::from_static("100-continue"),
        );
        let response = answer(waiting, refuse).await;
        assert!(closes(response.headers()));
        assert_eq!(read.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn http2_and_calls_in_this_process_are_passed_on_untouched() {
        let (body, read) = counted_body(1, 10);
        let mut http2 = request(body);
        *http2.version_mut() = Version::HTTP_2;
        let response = answer(http2, refuse).await;
        assert!(!closes(response.headers()));
        assert_eq!(read.load(Ordering::SeqCst), 0);

        let (body, read) = counted_body(1, 10);
        let mut in_process = request(body);
        in_process
            .extensions_mut()
            .insert(errand_protocol::InProcessCall);
        let response = answer(in_process, refuse).await;
        assert!(!closes(response.headers()));
        assert_eq!(read.load(Ordering::SeqCst), 0);
    }
}
