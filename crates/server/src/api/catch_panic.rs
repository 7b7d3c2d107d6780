//! The last line of defence: a panic while answering a request becomes a 500 `{"detail"}`
//! answer, logged, instead of a connection dropped with no answer (and, for a caller in this
//! process, instead of a panic in its own task). Handlers are written not to panic; this is
//! for the panic nobody foresaw.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use errand_protocol::ErrorBody;
use futures::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

// Unwind safety, for both: the panicking request's future is dropped whole; what it shared
// with other requests (storage, the executor) is behind locks that stay usable after a panic.

/// `answer`'s response, or a 500 if it panics.
pub(super) async fn answer(answer: impl Future<Output = Response>) -> Response {
    match AssertUnwindSafe(answer).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            log(&*panic);
            internal_error()
        }
    }
}

/// What `call` gives (for a service call, the answer to come), or `None` if it panics; the
/// panic is logged, and [`internal_error`] is its answer.
pub(super) fn call<T>(call: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(AssertUnwindSafe(call))
        .inspect_err(|panic| log(&**panic))
        .ok()
}

/// The answer for a panic.
pub(super) fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(ErrorBody::new("Internal Server Error")),
    )
        .into_response()
}

fn log(panic: &(dyn Any + Send)) {
    tracing::error!(panic = panic_message(panic), "answering a request panicked");
}

/// The message a panic was raised with, when it has one.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::{answer, call};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use std::panic::panic_any;

    async fn detail(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        body["detail"].as_str().expect("a detail").to_owned()
    }

    #[tokio::test]
    async fn a_panic_is_a_500_with_a_detail() {
        for message in [Some("with a message"), None] {
            let response = answer(async move {
                tokio::task::yield_now().await;
                match message {
                    Some(message) => panic!("{message}"),
                    None => panic_any(42),
                }
            })
            .await;
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(detail(response).await, "Internal Server Error");
        }
    }

    #[test]
    fn a_panic_in_a_call_is_caught() {
        assert_eq!(call(|| -> u8 { panic!("in the call") }), None);
    }

    #[tokio::test]
    async fn an_answer_passes_through() {
        let response = answer(async { StatusCode::IM_A_TEAPOT.into_response() }).await;
        assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(call(|| 7), Some(7));
    }
}
