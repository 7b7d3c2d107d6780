//! Request parsing that answers errors the way the Python server does.

use crate::{ServerError, ServerResult};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use errand_protocol::MAX_BODY_NESTING;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use uuid::Uuid;

/// A JSON body. Unlike `axum::Json` it needs no content type (the official client sends none on
/// some calls), reads an empty body as `{}`, and answers 422 with serde's message, which names
/// the field, or 413 when the body is over the limit.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ServerError;

    async fn from_request(request: Request, state: &S) -> ServerResult<Self> {
        let announced = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok())
            .and_then(|length| length.parse::<u64>().ok());
        if announced.is_some_and(|length| length > crate::api::BODY_LIMIT as u64) {
            // Refused for its announced length, but read up to the limit and dropped rather
            // than kept: a client that is still sending gets to read the answer (clients do
            // not read one while they send), and the connection is then settled as after any
            // early answer (`keep_alive`).
            let mut body = request.into_body().into_data_stream();
            let mut read = 0;
            while read < crate::api::BODY_LIMIT {
                match body.next().await {
                    Some(Ok(chunk)) => read += chunk.len(),
                    Some(Err(_)) | None => break,
                }
            }
            return Err(ServerError::PayloadTooLarge {
                limit: crate::api::BODY_LIMIT,
            });
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ServerError::PayloadTooLarge {
                        limit: crate::api::BODY_LIMIT,
                    }
                } else {
                    ServerError::BadRequest(rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(Self)
    }
}

/// The parameters of a route's path. Unlike `axum::extract::Path`, a path that cannot be read
/// (its percent-encoding is not UTF-8) answers 422 with `{"detail"}`, as every other error.
#[derive(Debug)]
pub(crate) struct Path<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ServerResult<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|rejection| ServerError::Unprocessable(rejection.body_text()))
    }
}

/// Parses a request body; an empty body is `{}`. A body nested deeper than
/// [`MAX_BODY_NESTING`] is refused, naming its top-level key, since what it carries could not
/// be read back once stored inside a run or a thread.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ServerResult<T> {
    let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    if let Some(deep) = too_deep(body, MAX_BODY_NESTING) {
        let field = deep.key.map_or_else(
            || "the body".to_owned(),
            |key| String::from_utf8_lossy(key).into_owned(),
        );
        return Err(ServerError::Unprocessable(format!(
            "{field}: nested more than {MAX_BODY_NESTING} levels deep (counting the body), more \
             than errand keeps, so that what it stores is always read back"
        )));
    }
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ServerError::Unprocessable("Invalid JSON in request body".into())
        }
        Category::Data => ServerError::Unprocessable(error.to_string()),
    })
}

/// Where a JSON text nests too deep: the top-level key it happens under, if any.
#[derive(Debug, PartialEq, Eq)]
struct TooDeep<'a> {
    key: Option<&'a [u8]>,
}

/// Finds whether `json` nests more than `limit` arrays and objects deep, without parsing it:
/// one pass over the bytes that only follows brackets and strings. Text that is not JSON is
/// left for the parser to refuse.
fn too_deep(json: &[u8], limit: usize) -> Option<TooDeep<'_>> {
    let mut depth = 0_usize;
    let mut index = 0;
    // The last string seen in the top-level object, and the key it became at its `:`.
    let mut last_string: Option<&[u8]> = None;
    let mut key: Option<&[u8]> = None;
    while let Some(&byte) = json.get(index) {
        match byte {
            b'"' => {
                let start = index + 1;
                index = start;
                while let Some(&byte) = json.get(index) {
                    match byte {
                        b'\\' => index += 2,
                        b'"' => break,
                        _ => index += 1,
                    }
                }
                if depth == 1 {
                    last_string = json.get(start..index.min(json.len()));
                }
            }
            b':' if depth == 1 => key = last_string.take(),
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Some(TooDeep { key });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        index += 1;
    }
    None
}

/// Parses a path id, answering `Invalid <what> ID: must be a UUID` as the Python server does.
pub(crate) fn parse_id(text: &str, what: &str) -> ServerResult<Uuid> {
    Uuid::parse_str(text)
        .map_err(|_| ServerError::Unprocessable(format!("Invalid {what} ID: must be a UUID")))
}

/// A boolean query value as the Python server reads it: `true`, `yes` or `1`, in any case.
pub(crate) fn query_flag(value: Option<&str>) -> bool {
    value.is_some_and(|value| {
        let value = value.trim();
        value == "1" || value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("yes")
    })
}

/// The first value of `key` among query pairs.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::{TooDeep, too_deep};

    fn nested(key: &str, levels: usize) -> String {
        format!(
            "{{\"a\": 1, \"{key}\": {}0{}}}",
            "[".repeat(levels),
            "]".repeat(levels)
        )
    }

    #[test]
    fn nesting_is_counted_from_the_body_and_blamed_on_its_key() {
        assert_eq!(too_deep(nested("input", 9).as_bytes(), 10), None);
        assert_eq!(
            too_deep(nested("input", 10).as_bytes(), 10),
            Some(TooDeep {
                key: Some(b"input".as_slice())
            })
        );
        assert_eq!(
            too_deep(b"[[[]]]", 2),
            Some(TooDeep { key: None }),
            "a body that is not an object has no key to blame"
        );
    }

    #[test]
    fn brackets_and_quotes_inside_strings_do_not_count() {
        let text = r#"{"k\"[[[": "[[[[{{{{ \" [[[[", "v": [1]}"#;
        assert_eq!(too_deep(text.as_bytes(), 2), None);
        assert_eq!(
            too_deep(text.as_bytes(), 1),
            Some(TooDeep {
                key: Some(b"v".as_slice())
            })
        );
    }

    #[test]
    fn text_that_is_not_json_never_panics() {
        for text in ["\"", "\"\\", "{\"a\\", "]]]]}}}", "{:{:", ""] {
            let _ = too_deep(text.as_bytes(), 1);
        }
    }
}
