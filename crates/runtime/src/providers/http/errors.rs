//! An error status, an error event or an unreadable answer, as the crate's [`Error`], with the
//! provider's own message.

use crate::Error;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

/// The error for a final error `status` with `body`.
pub(crate) fn status_error(
    provider: &str,
    model: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &str,
) -> Error {
    let (detail, code) = error_detail(body);
    let detail = if detail.is_empty() {
        status.to_string()
    } else {
        detail
    };
    status_code_error(provider, model, status.as_u16(), retry_after, detail, &code)
}

/// The error for an error the provider described as `status` and `detail` (with the error's
/// `code` or `type`, when it had one).
pub(crate) fn status_code_error(
    provider: &str,
    model: &str,
    status: u16,
    retry_after: Option<Duration>,
    detail: String,
    code: &str,
) -> Error {
    let provider = provider.to_owned();
    match status {
        401 | 403 => Error::Unauthorized { provider, detail },
        404 => Error::UnknownModel {
            provider,
            model: model.to_owned(),
            detail,
        },
        400 | 422 if names_unknown_model(code, &detail) => Error::UnknownModel {
            provider,
            model: model.to_owned(),
            detail,
        },
        429 => Error::RateLimited {
            provider,
            retry_after,
            detail,
        },
        status => Error::Provider {
            provider,
            status,
            detail,
        },
    }
}

/// Whether an error says the model does not exist. OpenAI-compatible servers differ: OpenAI
/// answers 404 `model_not_found`, vLLM 404 "does not exist", others 400 with a sentence.
fn names_unknown_model(code: &str, detail: &str) -> bool {
    let detail = detail.to_lowercase();
    code == "model_not_found"
        || (detail.contains("model")
            && ["not found", "does not exist", "not exist", "unknown model"]
                .iter()
                .any(|phrase| detail.contains(phrase)))
}

/// The provider's message in an error body, and its error code or type.
///
/// Reads the shapes providers use: `{"error": {"message", "type", "code"}}` (OpenAI, Anthropic,
/// Ollama), `{"error": "..."}`, `{"message": "..."}` (vLLM) and `{"detail": "..."}`; any other
/// body is quoted, shortened.
pub(crate) fn error_detail(body: &str) -> (String, String) {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return (excerpt(body), String::new());
    };
    let error = value.get("error").unwrap_or(&value);
    let text = |key: &str| match error.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    let code = text("code").or_else(|| text("type")).unwrap_or_default();
    let message = match error {
        Value::String(message) => Some(message.clone()),
        _ => text("message").or_else(|| text("detail")),
    };
    match message {
        Some(message) => {
            let kind = text("type").filter(|kind| !kind.is_empty() && kind != "error");
            let detail = match kind {
                Some(kind) => format!("{kind}: {message}"),
                None => message,
            };
            (detail, code)
        }
        None => (excerpt(body), code),
    }
}

/// At most 500 characters of `text`, for error messages.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX: usize = 500;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Reads a JSON value as `T`, or explains what was missing.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    provider: &str,
    what: &str,
    value: Value,
) -> Result<T, Error> {
    let shown = excerpt(&value.to_string());
    serde_json::from_value(value).map_err(|error| Error::MalformedResponse {
        provider: provider.to_owned(),
        detail: format!("{what} does not have the expected shape ({error}): {shown}"),
    })
}

/// Reads SSE event data as JSON, or explains why it is not.
pub(crate) fn parse_event<T: serde::de::DeserializeOwned>(
    provider: &str,
    data: &str,
) -> Result<T, Error> {
    serde_json::from_str(data).map_err(|error| Error::MalformedResponse {
        provider: provider.to_owned(),
        detail: format!(
            "a streamed event could not be read ({error}): {}",
            excerpt(data)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_of_every_shape_are_read() {
        let anthropic =
            r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}"#;
        assert_eq!(
            error_detail(anthropic),
            (
                "not_found_error: model: claude-x".into(),
                "not_found_error".into()
            )
        );
        let openai = r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        assert_eq!(
            error_detail(openai),
            (
                "invalid_request_error: The model `x` does not exist".into(),
                "model_not_found".into()
            )
        );
        assert_eq!(error_detail(r#"{"error":"no"}"#).0, "no");
        assert_eq!(
            error_detail(r#"{"object":"error","message":"m","code":404}"#),
            ("m".into(), "404".into())
        );
        assert_eq!(error_detail(r#"{"detail":"d"}"#).0, "d");
        assert_eq!(
            error_detail("<html>bad gateway</html>").0,
            "<html>bad gateway</html>"
        );
        assert_eq!(excerpt(&"x".repeat(600)).len(), 503);
    }

    #[test]
    fn statuses_map_to_errors() {
        let error = |status: u16, body: &str| {
            status_error("p", "m", StatusCode::from_u16(status).unwrap(), None, body)
        };
        assert!(matches!(error(401, ""), Error::Unauthorized { .. }));
        assert!(matches!(error(403, ""), Error::Unauthorized { .. }));
        assert!(matches!(error(404, ""), Error::UnknownModel { .. }));
        assert!(matches!(
            error(
                400,
                r#"{"error":{"message":"model \"x\" not found, try pulling it first"}}"#
            ),
            Error::UnknownModel { .. }
        ));
        assert!(matches!(
            error(400, r#"{"error":{"message":"max_tokens is too large"}}"#),
            Error::Provider { status: 400, .. }
        ));
        assert!(matches!(error(429, ""), Error::RateLimited { .. }));
        match error(503, "") {
            Error::Provider { status, detail, .. } => {
                assert_eq!((status, detail.as_str()), (503, "503 Service Unavailable"));
            }
            other => panic!("{other:?}"),
        }
    }
}
