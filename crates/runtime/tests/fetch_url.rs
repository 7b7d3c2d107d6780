//! `fetch_url` against a local HTTP server: text, HTML, the size cap, binary content, error
//! statuses, schemes, redirects, timeouts and the private-network guard.

#![cfg(feature = "fetch")]

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use errand_runtime::Error;
use errand_runtime::builtin_tools::FetchUrl;
use errand_runtime::tool::{Tool, ToolContext};
use serde_json::json;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::Duration;

fn ok<T, E: Debug>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("set-up failed: {error:?}"),
    }
}

/// A server on a free local port; it lives as long as the test's runtime.
async fn serve() -> SocketAddr {
    let app = Router::new()
        .route(
            "/text",
            get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "hello, agent") }),
        )
        .route(
            "/json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"answer": 42}"#,
                )
            }),
        )
        .route(
            "/html",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    "<html><head><title>Page</title><script>var x = 1;</script></head>\
                     <body><h1>Title</h1><p>Some <a href=\"/x\">linked</a> text.</p></body></html>",
                )
            }),
        )
        .route(
            "/big",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain")],
                    "0123456789".repeat(10_000),
                )
            }),
        )
        .route(
            "/image",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    vec![0x89u8, b'P', b'N', b'G', 0, 0, 0, 13],
                )
            }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such page").into_response() }),
        )
        .route("/redirect", get(|| async { Redirect::to("/text") }))
        .route("/loop", get(|| async { Redirect::to("/loop") }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        );
    let listener = ok(tokio::net::TcpListener::bind("127.0.0.1:0").await);
    let address = ok(listener.local_addr());
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

async fn fetch(tool: &FetchUrl, url: &str) -> Result<String, Error> {
    let Some(args) = json!({ "url": url }).as_object().cloned() else {
        unreachable!()
    };
    tool.call(args, ToolContext::detached("f"))
        .await
        .map(|output| output.content)
}

fn local() -> FetchUrl {
    FetchUrl::new().allow_private_network(true)
}

#[tokio::test]
async fn text_and_json_come_back() {
    let address = serve().await;
    let text = fetch(&local(), &format!("http://{address}/text"))
        .await
        .unwrap();
    assert!(
        text.starts_with(&format!("URL: http://{address}/text\n")),
        "{text}"
    );
    assert!(text.contains("Content-Type: text/plain\n"), "{text}");
    assert!(text.ends_with("\n\nhello, agent"), "{text}");
    let json = fetch(&local(), &format!("http://{address}/json"))
        .await
        .unwrap();
    assert!(json.ends_with(r#"{"answer": 42}"#), "{json}");
}

#[tokio::test]
async fn html_comes_back_without_tags() {
    let address = serve().await;
    let text = fetch(&local(), &format!("http://{address}/html"))
        .await
        .unwrap();
    assert!(text.contains("(tags stripped)"), "{text}");
    assert!(
        text.ends_with("\n\nPage\nTitle\nSome linked text."),
        "{text}"
    );
    assert!(!text.contains("var x"), "{text}");
}

#[tokio::test]
async fn long_bodies_are_cut_with_a_marker() {
    let address = serve().await;
    let tool = local().with_max_bytes(1000);
    let text = fetch(&tool, &format!("http://{address}/big"))
        .await
        .unwrap();
    assert!(
        text.ends_with(
            "[truncated: the document is longer than 1000 bytes; only its start was read]"
        ),
        "{text}"
    );
    assert!(text.contains(&"0123456789".repeat(100)));
    assert!(text.len() < 1300, "{}", text.len());
    let whole = fetch(&local(), &format!("http://{address}/big"))
        .await
        .unwrap();
    assert!(!whole.contains("[truncated"));
}

#[tokio::test]
async fn binary_content_is_refused() {
    let address = serve().await;
    let error = fetch(&local(), &format!("http://{address}/image"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "ToolException");
    assert!(error.message().contains("image/png, not text"), "{error}");
}

#[tokio::test]
async fn error_statuses_are_reported() {
    let address = serve().await;
    let error = fetch(&local(), &format!("http://{address}/missing"))
        .await
        .unwrap_err();
    assert!(
        error
            .message()
            .contains("answered HTTP 404 Not Found: no such page"),
        "{error}"
    );
}

#[tokio::test]
async fn only_http_and_https_are_fetched() {
    for url in [
        "file:///etc/passwd",
        "ftp://example.com/a",
        "data:text/plain,hi",
    ] {
        let error = fetch(&local(), url).await.unwrap_err();
        assert!(
            error.message().contains("only http:// and https://"),
            "{url}: {error}"
        );
    }
    let error = fetch(&local(), "not a url").await.unwrap_err();
    assert!(error.message().contains("not a valid URL"), "{error}");
}

#[tokio::test]
async fn redirects_are_followed_and_limited() {
    let address = serve().await;
    let text = fetch(&local(), &format!("http://{address}/redirect"))
        .await
        .unwrap();
    assert!(
        text.starts_with(&format!("URL: http://{address}/text\n")),
        "{text}"
    );
    let error = fetch(
        &local().with_max_redirects(3),
        &format!("http://{address}/loop"),
    )
    .await
    .unwrap_err();
    assert!(error.message().contains("more than 3 redirects"), "{error}");
}

#[tokio::test]
async fn slow_servers_time_out() {
    let address = serve().await;
    let tool = local().with_timeout(Duration::from_millis(300));
    let error = fetch(&tool, &format!("http://{address}/slow"))
        .await
        .unwrap_err();
    assert!(
        error.message().contains("took longer than 0.3 s"),
        "{error}"
    );
}

#[tokio::test]
async fn local_addresses_are_refused_by_default() {
    let address = serve().await;
    let port = address.port();
    for url in [
        format!("http://{address}/text"),
        format!("http://localhost:{port}/text"),
        format!("http://[::1]:{port}/text"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let error = fetch(&FetchUrl::new(), &url).await.unwrap_err();
        assert!(
            error.message().contains("local or private"),
            "{url}: {error}"
        );
    }
}

#[tokio::test]
async fn cancellation_stops_a_fetch() {
    let address = serve().await;
    let context = ToolContext::detached("f");
    let cancel = context.cancel.clone();
    let Some(args) = json!({ "url": format!("http://{address}/slow") })
        .as_object()
        .cloned()
    else {
        unreachable!()
    };
    let tool = local();
    let call = tool.call(args, context);
    cancel.cancel();
    assert_eq!(call.await.unwrap_err(), Error::Cancelled);
}
