//! The HTTP edges of `errand serve`: auth before routing.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use errand_server::storage::SqliteStorage;
use errand_server::{Server, graphs::Echo};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

async fn server(key: Option<&str>) -> Server {
    let mut builder = Server::builder()
        .graph("echo", Echo)
        .storage(Arc::new(SqliteStorage::in_memory().expect("storage")));
    if let Some(key) = key {
        builder = builder.api_key(key);
    }
    builder.start().await.expect("server starts")
}

// --- Auth before routing ---

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = server
        .router()
        .oneshot(request.body(Body::from("{}")).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("JSON")
    };
    (status, body)
}

/// Paths and methods that exist, that do not, and that exist with another method.
const PROBES: &[(&str, &str)] = &[
    ("POST", "/threads"),
    ("GET", "/info"),
    ("GET", "/nowhere"),
    ("POST", "/nowhere/at/all"),
    ("DELETE", "/threads"),
    ("PUT", "/info"),
    ("POST", "/ok"),
    ("DELETE", "/ok"),
    ("GET", "/ok/"),
    ("GET", "/"),
    ("OPTIONS", "/threads/search"),
];

#[tokio::test]
async fn without_a_key_every_path_but_get_ok_answers_401() {
    let server = server(Some("s3cret")).await;
    for (method, path) in PROBES {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        for headers in [
            &[][..],
            &[("x-api-key", "nope")],
            &[("authorization", "Bearer nope")],
            &[("authorization", "s3cret")],
            &[("authorization", "Basic s3cret")],
            &[("authorization", "Bearers3cret")],
            &[("x-api-key", "s3cret2")],
        ] {
            let (status, body) = call(&server, method.clone(), path, headers).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {headers:?}"
            );
            assert!(body["detail"].is_string(), "{method} {path}: {body}");
        }
    }
    for method in [Method::GET, Method::HEAD] {
        let (status, _) = call(&server, method, "/ok", &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn with_a_key_routing_answers_as_without_one() {
    let keyed = server(Some("s3cret")).await;
    let open = server(None).await;
    for (method, path) in PROBES {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let expected = call(&open, method.clone(), path, &[]).await.0;
        let (status, body) = call(&keyed, method.clone(), path, &[("x-api-key", "s3cret")]).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        if status.is_client_error() {
            assert!(body["detail"].is_string(), "{method} {path}: {body}");
        }
    }
    assert_eq!(
        call(&keyed, Method::GET, "/nowhere", &[("x-api-key", "s3cret")])
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &keyed,
            Method::DELETE,
            "/threads",
            &[("x-api-key", "s3cret")]
        )
        .await
        .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let server = server(Some("s3cret")).await;
    for authorization in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "bEaReR s3cret",
        "Bearer   s3cret",
        "Bearer\ts3cret",
        "Bearer s3cret ",
        " Bearer s3cret",
    ] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/threads",
            &[("authorization", authorization)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{authorization:?}: {body}");
    }
    // Either header may carry the key.
    let (status, _) = call(
        &server,
        Method::POST,
        "/threads",
        &[("x-api-key", "nope"), ("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
