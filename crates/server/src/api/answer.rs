//! JSON answers that also carry their value for a caller in this process.
//!
//! A client's in-process transport marks its requests with [`InProcessCall`]; for those, the
//! answers here add the value the JSON body encodes as an [`InProcessAnswer`], so that the
//! client takes it instead of decoding the body (see `errand_protocol`'s `in_process`).

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use errand_protocol::{InProcessAnswer, InProcessCall};
use serde::Serialize;
use std::convert::Infallible;

/// Who sent the request: a client in this process, or one over the network. The default is
/// the latter, for a request whose answer is not the value (a stream, a join).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Caller {
    in_process: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            in_process: parts.extensions.get::<InProcessCall>().is_some(),
        })
    }
}

impl Caller {
    /// `value` as JSON, and as itself for a caller in this process.
    pub(crate) fn answer<T>(self, value: T) -> Answer<T> {
        Answer {
            value,
            in_process: self.in_process,
        }
    }

    /// True for a caller in this process, which takes answers as values.
    pub(crate) fn is_in_process(self) -> bool {
        self.in_process
    }
}

/// A JSON answer; see [`Caller::answer`].
#[derive(Debug)]
pub(crate) struct Answer<T> {
    value: T,
    in_process: bool,
}

impl<T: Serialize + Clone + Send + Sync + 'static> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        let response = Json(&self.value).into_response();
        if self.in_process {
            with_typed(response, Some(self.value))
        } else {
            response
        }
    }
}

/// `response` with `value`, the value its body encodes, as its typed answer.
pub(crate) fn with_typed<T: Clone + Send + Sync + 'static>(
    mut response: Response,
    value: Option<T>,
) -> Response {
    if let Some(value) = value
        && response.status().is_success()
    {
        response.extensions_mut().insert(InProcessAnswer(value));
    }
    response
}
