//! The call every provider makes the same way, whole or streamed, on its [`WireFormat`]; and
//! the decoding of a streamed (SSE) answer into deltas by the provider's [`EventDecoder`].

use super::{Http, transport_error};
use crate::Error;
use crate::model::{MessageBuilder, ModelDelta, ModelRequest, ModelStream};
use errand_protocol::Message;
use errand_protocol::sse::{SseDecoder, SseFrame, SseItem};
use futures::stream::{self, BoxStream, StreamExt};
use reqwest::Response;
use serde_json::Value;
use std::collections::VecDeque;

/// One provider's wire format: how a request is made and how its answers read. The call
/// itself, whole or streamed, is the same for every provider: [`complete`] and [`stream`].
#[async_trait::async_trait]
pub(crate) trait WireFormat: Send + Sync {
    /// The provider's name.
    const PROVIDER: &'static str;
    /// What reads its SSE events.
    type Decoder: EventDecoder;

    /// The model asked for.
    fn model(&self) -> &str;
    /// The shared HTTP client.
    fn http(&self) -> &Http;
    /// The JSON body of a call for `request`.
    fn request_body(&self, request: &ModelRequest, stream: bool) -> Value;
    /// Sends a body, with retries; answers a success status.
    async fn post(&self, body: &Value) -> Result<Response, Error>;
    /// The deltas that make up a whole (not streamed) answer.
    fn answer_deltas(model: &str, answer: Value) -> Result<Vec<ModelDelta>, Error>;
    /// A fresh reader of one streamed answer.
    fn decoder(model: &str) -> Self::Decoder;
}

/// Implements [`ChatModel`](crate::model::ChatModel) for a provider model by its
/// [`WireFormat`]: every provider answers the trait the same way, whole through [`complete`]
/// and streamed through [`stream`].
macro_rules! chat_model_by_wire_format {
    ($model:ty) => {
        #[async_trait::async_trait]
        impl $crate::model::ChatModel for $model {
            fn provider(&self) -> &str {
                <$model as $crate::providers::http::WireFormat>::PROVIDER
            }

            fn model_name(&self) -> &str {
                $crate::providers::http::WireFormat::model(self)
            }

            async fn complete(
                &self,
                request: &$crate::model::ModelRequest,
            ) -> Result<errand_protocol::Message, $crate::Error> {
                $crate::providers::http::complete(self, request).await
            }

            async fn stream(
                &self,
                request: &$crate::model::ModelRequest,
            ) -> Result<$crate::model::ModelStream, $crate::Error> {
                $crate::providers::http::stream(self, request).await
            }
        }
    };
}
pub(crate) use chat_model_by_wire_format;

/// One whole answer.
pub(crate) async fn complete<W: WireFormat>(
    wire: &W,
    request: &ModelRequest,
) -> Result<Message, Error> {
    let response = wire.post(&wire.request_body(request, false)).await?;
    let answer = wire.http().json_body(response).await?;
    let mut builder = MessageBuilder::new(W::PROVIDER);
    for delta in W::answer_deltas(wire.model(), answer)? {
        builder.push(delta);
    }
    builder.finish()
}

/// One streamed answer.
pub(crate) async fn stream<W: WireFormat>(
    wire: &W,
    request: &ModelRequest,
) -> Result<ModelStream, Error> {
    let response = wire.post(&wire.request_body(request, true)).await?;
    if is_json(&response) {
        // A server or proxy that ignored `stream: true`: the whole answer is still an answer.
        let answer = wire.http().json_body(response).await?;
        let deltas = W::answer_deltas(wire.model(), answer)?;
        return Ok(stream::iter(deltas.into_iter().map(Ok)).boxed());
    }
    Ok(sse_deltas(W::PROVIDER, response, W::decoder(wire.model())))
}

/// Whether `response` carries a JSON body (rather than the SSE a streamed call asked for).
pub(crate) fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("application/json"))
}

/// A provider's reading of its own SSE events into deltas.
pub(crate) trait EventDecoder: Send + 'static {
    /// Reads one event (`event` is its name, `data` its data), adding deltas to `out`.
    fn event(
        &mut self,
        event: Option<&str>,
        data: &str,
        out: &mut Vec<ModelDelta>,
    ) -> Result<(), Error>;

    /// Whether the answer is complete: nothing after this is read.
    fn is_done(&self) -> bool;

    /// Called when the body ends before [`EventDecoder::is_done`]: the last deltas, or the
    /// error for an answer cut short.
    fn end(&mut self, out: &mut Vec<ModelDelta>) -> Result<(), Error>;
}

/// The deltas of a streamed (SSE) response, decoded by `decoder`.
pub(crate) fn sse_deltas<D: EventDecoder>(
    provider: &'static str,
    response: Response,
    decoder: D,
) -> ModelStream {
    let state = SseState {
        provider,
        body: response.bytes_stream().boxed(),
        sse: SseDecoder::new(),
        decoder,
        pending: VecDeque::new(),
        ended: false,
    };
    stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.pending.pop_front() {
                return Some((item, state));
            }
            if state.ended {
                return None;
            }
            match state.body.next().await {
                Some(Ok(chunk)) => {
                    let items = state.sse.push(&chunk);
                    state.read(items);
                }
                Some(Err(error)) => {
                    state
                        .pending
                        .push_back(Err(transport_error(state.provider, &error)));
                    state.ended = true;
                }
                None => {
                    let items = state.sse.finish();
                    state.read(items);
                    if !state.ended {
                        let mut out = Vec::new();
                        let result = state.decoder.end(&mut out);
                        state.pending.extend(out.into_iter().map(Ok));
                        if let Err(error) = result {
                            state.pending.push_back(Err(error));
                        }
                        state.ended = true;
                    }
                }
            }
        }
    })
    .boxed()
}

struct SseState<D, B> {
    provider: &'static str,
    body: BoxStream<'static, Result<B, reqwest::Error>>,
    sse: SseDecoder,
    decoder: D,
    pending: VecDeque<Result<ModelDelta, Error>>,
    /// Set once the answer is complete or failed; nothing more is read or yielded after the
    /// pending items.
    ended: bool,
}

impl<D: EventDecoder, B> SseState<D, B> {
    fn read(&mut self, items: Vec<SseItem>) {
        for item in items {
            if self.ended {
                return;
            }
            // Comments are keep-alives; an event without data says nothing.
            let SseItem::Frame(SseFrame {
                event,
                data: Some(data),
                ..
            }) = item
            else {
                continue;
            };
            let mut out = Vec::new();
            let result = self.decoder.event(event.as_deref(), &data, &mut out);
            self.pending.extend(out.into_iter().map(Ok));
            match result {
                Ok(()) => self.ended = self.decoder.is_done(),
                Err(error) => {
                    self.pending.push_back(Err(error));
                    self.ended = true;
                }
            }
        }
    }
}
