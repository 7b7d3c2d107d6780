//! The API key check, made before routing: without the key a client learns nothing about the
//! routes, not even which exist (no 404 or 405 before the 401).

use crate::ServerError;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

/// The 401 `{"detail"}` answer for a request without the key, if the server has one: every
/// request but `GET /ok` (and its `HEAD`) must carry it in `x-api-key` or as a bearer token.
pub(super) fn refusal(api_key: Option<&str>, request: &Request) -> Option<Response> {
    let expected = api_key?;
    // Health checks carry no key.
    if request.uri().path() == "/ok" && matches!(*request.method(), Method::GET | Method::HEAD) {
        return None;
    }
    if carries_key(request.headers(), expected.as_bytes()) {
        return None;
    }
    let mut refusal = ServerError::Unauthorized(
        "Missing or invalid API key: send it in the x-api-key header or as a Bearer token".into(),
    )
    .into_response();
    // RFC 9110 §11.6.1: a 401 names the scheme it wants.
    refusal
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(refusal)
}

/// Whether `x-api-key` or the bearer token is the key; either may carry it.
fn carries_key(headers: &HeaderMap, expected: &[u8]) -> bool {
    let in_header = headers
        .get("x-api-key")
        .is_some_and(|given| constant_time_eq(given.as_bytes(), expected));
    let as_bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| bearer_token(value.as_bytes()))
        .is_some_and(|given| constant_time_eq(given, expected));
    in_header || as_bearer
}

/// The token of `Bearer <token>`: the scheme in any case (RFC 9110 §11.1), spaces or tabs
/// around and between the two.
fn bearer_token(credentials: &[u8]) -> Option<&[u8]> {
    let mut parts = credentials
        .trim_ascii()
        .splitn(2, |byte| matches!(byte, b' ' | b'\t'));
    let scheme = parts.next()?;
    let token = parts.next()?.trim_ascii();
    scheme.eq_ignore_ascii_case(b"bearer").then_some(token)
}

/// Compares two secrets in time that depends only on their lengths.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(0));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, constant_time_eq};

    #[test]
    fn compares_secrets() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret1", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn reads_the_bearer_token_in_any_case_and_spacing() {
        for credentials in [
            &b"Bearer k"[..],
            b"bearer k",
            b"BEARER k",
            b"Bearer  \t k ",
            b" Bearer k",
        ] {
            assert_eq!(
                bearer_token(credentials),
                Some(&b"k"[..]),
                "{credentials:?}"
            );
        }
        for credentials in [&b"Bearerk"[..], b"Basic k", b"k", b"", b"Bearer"] {
            assert_ne!(
                bearer_token(credentials),
                Some(&b"k"[..]),
                "{credentials:?}"
            );
        }
    }
}
