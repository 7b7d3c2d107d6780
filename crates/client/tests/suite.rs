//! One suite against errand-server, run once per transport: every call, each error kind,
//! streaming, and dropped streams resumed.

mod support;

use errand_client::protocol::{
    AssistantSearchRequest, CancelAction, HistoryRequest, IfExists, JsonObject,
    RunCancelManyRequest, RunConfig, RunResult, RunStatus, StoreListNamespacesRequest,
    StoreSearchRequest, StreamEvent, StreamPart, ThreadCreate, ThreadPatch, ThreadSearchRequest,
    ThreadStateUpdate, ThreadStatus, assistant_id_for_graph,
};
use errand_client::{CancelOptions, Client, ClientError, JoinStreamOptions, ListRuns, RetryPolicy};
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::{
    Cut, Cutting, Env, Kind, all_events, echo, echo_streamed, env, env_with, ids, joined, names,
    new_thread, texts, unknown_id,
};

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

/// Each event of the echo graph, once, in order, with ids 1..=5.
fn assert_complete_echo(events: &[StreamEvent], text: &str) {
    assert_eq!(
        names(events),
        ["metadata", "values", "messages", "updates", "values"],
        "{events:#?}"
    );
    assert_eq!(ids(events), ["1", "2", "3", "4", "5"]);
    let StreamPart::Values(last) = &events[4].part else {
        panic!("not values: {:?}", events[4]);
    };
    assert_eq!(texts(last), [text.to_owned(), format!("echo: {text}")]);
}

async fn health_and_info(kind: Kind) {
    let env = env(kind).await;
    assert!(env.client.health().await.expect("health").ok);
    let info = env.client.info().await.expect("info");
    assert!(!info.flags.is_empty() || !info.extra.is_empty());
}

async fn threads_create_get_update_search_delete(kind: Kind) {
    let env = env(kind).await;
    let threads = env.client.threads();
    let thread = threads
        .create(&ThreadCreate {
            metadata: Some(object(json!({"team": "a"}))),
            ..ThreadCreate::default()
        })
        .await
        .expect("created");
    assert_eq!(thread.status, ThreadStatus::Idle);
    assert_eq!(thread.values, errand_client::protocol::Nullable::Null);

    let read = threads.get(thread.thread_id).await.expect("read");
    assert_eq!(read.thread_id, thread.thread_id);

    let duplicate = threads
        .create(&ThreadCreate {
            thread_id: Some(thread.thread_id),
            ..ThreadCreate::default()
        })
        .await
        .expect_err("409");
    assert!(matches!(duplicate, ClientError::Conflict(_)), "{duplicate}");
    assert_eq!(
        duplicate.detail(),
        Some(format!("Thread with ID {} already exists", thread.thread_id).as_str())
    );
    let same = threads
        .create(&ThreadCreate {
            thread_id: Some(thread.thread_id),
            if_exists: Some(IfExists::DoNothing),
            ..ThreadCreate::default()
        })
        .await
        .expect("do_nothing");
    assert_eq!(same.thread_id, thread.thread_id);

    let patched = threads
        .update(
            thread.thread_id,
            &ThreadPatch {
                metadata: Some(object(json!({"owner": "me"}))),
                ..ThreadPatch::default()
            },
        )
        .await
        .expect("patched");
    assert_eq!(
        Value::Object(patched.metadata),
        json!({"team": "a", "owner": "me"})
    );

    let found = threads
        .search(&ThreadSearchRequest {
            metadata: Some(object(json!({"owner": "me"}))),
            ..ThreadSearchRequest::default()
        })
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].thread_id, thread.thread_id);

    threads.delete(thread.thread_id).await.expect("deleted");
    let gone = threads.get(thread.thread_id).await.expect_err("404");
    assert!(gone.is_not_found(), "{gone}");
    assert_eq!(
        gone.detail(),
        Some(format!("Thread with ID {} not found", thread.thread_id).as_str())
    );
    let again = threads.delete(thread.thread_id).await.expect_err("404");
    assert!(again.is_not_found());
}

async fn thread_state_and_history(kind: Kind) {
    let env = env(kind).await;
    let thread = env.thread().await;
    let threads = env.client.threads();
    let empty = threads.get_state(thread.thread_id).await.expect("state");
    assert_eq!(empty.values, json!({}));

    let written = threads
        .update_state(
            thread.thread_id,
            &ThreadStateUpdate {
                values: errand_client::protocol::Nullable::Present(
                    json!({"messages": [{"role": "user", "content": "noted"}]}),
                ),
                ..ThreadStateUpdate::default()
            },
        )
        .await
        .expect("update_state");
    assert!(written.checkpoint.checkpoint_id.is_some());
    let state = threads.get_state(thread.thread_id).await.expect("state");
    assert_eq!(texts(&state.values), ["noted"]);

    let run = env.start(&thread, "hi").await;
    env.client
        .runs()
        .join(thread.thread_id, run.run_id)
        .await
        .expect("join");
    let history = threads
        .get_history(thread.thread_id, &HistoryRequest::default())
        .await
        .expect("history");
    assert!(history.len() >= 2, "{}", history.len());
    assert_eq!(texts(&history[0].values), ["noted", "hi", "echo: hi"]);
    let gone = threads
        .get_history(unknown_id(), &HistoryRequest::default())
        .await
        .expect_err("404");
    assert!(gone.is_not_found());
}

async fn runs_create_get_list_join_delete(kind: Kind) {
    let env = env(kind).await;
    let thread = env.thread().await;
    let runs = env.client.runs();
    let run = env.start(&thread, "hello").await;
    assert_eq!(run.thread_id, thread.thread_id);
    assert!(matches!(
        run.status,
        RunStatus::Pending | RunStatus::Running
    ));

    let joined = runs.join(thread.thread_id, run.run_id).await.expect("join");
    let RunResult::Values(values) = &joined else {
        panic!("failed: {joined:?}");
    };
    assert_eq!(texts(values), ["hello", "echo: hello"]);
    let done = runs.get(thread.thread_id, run.run_id).await.expect("get");
    assert_eq!(done.status, RunStatus::Success);

    let second = env.start(&thread, "again").await;
    runs.join(thread.thread_id, second.run_id)
        .await
        .expect("join");
    let listed = runs
        .list(thread.thread_id, ListRuns::default())
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        [second.run_id, run.run_id]
    );
    let one = runs
        .list(
            thread.thread_id,
            ListRuns {
                limit: 1,
                offset: 1,
                status: Some(RunStatus::Success),
            },
        )
        .await
        .expect("list");
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].run_id, run.run_id);

    runs.delete(thread.thread_id, run.run_id)
        .await
        .expect("delete");
    let gone = runs
        .get(thread.thread_id, run.run_id)
        .await
        .expect_err("404");
    assert!(gone.is_not_found(), "{gone}");
}

async fn runs_wait_on_a_thread_and_stateless(kind: Kind) {
    let env = env(kind).await;
    let thread = env.thread().await;
    let runs = env.client.runs();
    let waited = runs.wait(thread.thread_id, &echo("w")).await.expect("wait");
    assert_eq!(
        waited,
        RunResult::Values(
            env.client
                .threads()
                .get(thread.thread_id)
                .await
                .expect("thread")
                .values
                .as_option()
                .cloned()
                .expect("values")
        )
    );
    let stateless = runs.wait(None, &echo("s")).await.expect("wait");
    let RunResult::Values(values) = stateless else {
        panic!("failed");
    };
    assert_eq!(texts(&values), ["s", "echo: s"]);

    let created = runs.create(None, &echo("bg")).await.expect("create");
    assert_ne!(created.thread_id, thread.thread_id);

    let events = all_events(
        runs.stream(None, &echo_streamed("st"))
            .await
            .expect("stream"),
    )
    .await;
    assert_complete_echo(&events, "st");

    let failed = runs
        .wait(thread.thread_id, &echo("fail=boom"))
        .await
        .expect("wait");
    let error = failed.error().expect("an error");
    assert_eq!(
        (error.error.as_str(), error.message.as_str()),
        ("EchoError", "boom")
    );
}

async fn runs_stream_typed_events(kind: Kind) {
    let env = env(kind).await;
    let thread = env.thread().await;
    let runs = env.client.runs();
    let stream = runs
        .stream(thread.thread_id, &echo_streamed("hi"))
        .await
        .expect("stream");
    let run = stream.run().expect("the headers name the run");
    assert_eq!(run.thread_id, thread.thread_id);
    let events = all_events(stream).await;
    assert_complete_echo(&events, "hi");
    let StreamPart::Metadata(metadata) = &events[0].part else {
        panic!("metadata first");
    };
    assert_eq!(metadata.run_id, run.run_id);
    assert_eq!(
        runs.get(thread.thread_id, run.run_id)
            .await
            .expect("get")
            .status,
        RunStatus::Success
    );

    // Joining a finished run replays it; from an id, only what follows.
    let replay = joined(
        &env.client,
        thread.thread_id,
        run.run_id,
        JoinStreamOptions::default(),
    )
    .await;
    assert_complete_echo(&replay, "hi");
    let tail = joined(
        &env.client,
        thread.thread_id,
        run.run_id,
        JoinStreamOptions {
            last_event_id: Some("3".into()),
            ..JoinStreamOptions::default()
        },
    )
    .await;
    assert_eq!(ids(&tail), ["4", "5"]);
    let updates = joined(
        &env.client,
        thread.thread_id,
        run.run_id,
        JoinStreamOptions {
            stream_mode: vec![errand_client::protocol::StreamMode::Updates],
            ..JoinStreamOptions::default()
        },
    )
    .await;
    assert_eq!(names(&updates), ["metadata", "updates"]);

    // A failed run ends with an error event.
    let failed = all_events(
        runs.stream(thread.thread_id, &echo_streamed("fail=bad"))
            .await
            .expect("stream"),
    )
    .await;
    let last = failed.last().expect("events");
    assert!(last.is_final());
    assert!(matches!(&last.part, StreamPart::Error(e) if e.message == "bad"));

    // A live join follows a running run to its end.
    let running = env
        .client
        .runs()
        .create(thread.thread_id, &echo_streamed("sleep=0.3"))
        .await
        .expect("run");
    let live = joined(
        &env.client,
        thread.thread_id,
        running.run_id,
        JoinStreamOptions::default(),
    )
    .await;
    assert_eq!(live.len(), 5, "{:?}", names(&live));
}

async fn runs_cancel_and_cancel_many(kind: Kind) {
    let env = env(kind).await;
    let thread = env.thread().await;
    let runs = env.client.runs();
    let run = env.start(&thread, "sleep=30").await;
    env.wait_status(&run, RunStatus::Running).await;
    runs.cancel(thread.thread_id, run.run_id, CancelOptions::default())
        .await
        .expect("cancel");
    env.wait_status(&run, RunStatus::Interrupted).await;
    let again = runs
        .cancel(thread.thread_id, run.run_id, CancelOptions::default())
        .await
        .expect_err("an ended run");
    assert!(again.is_not_found(), "{again}");

    let waited = env.start(&thread, "sleep=30").await;
    runs.cancel(
        thread.thread_id,
        waited.run_id,
        CancelOptions {
            wait: true,
            action: CancelAction::Interrupt,
        },
    )
    .await
    .expect("cancel and wait");
    let ended = runs
        .get(thread.thread_id, waited.run_id)
        .await
        .expect("get");
    assert_eq!(ended.status, RunStatus::Interrupted);

    let many = env.start(&thread, "sleep=30").await;
    runs.cancel_many(
        &RunCancelManyRequest {
            thread_id: Some(thread.thread_id),
            run_ids: Some(vec![many.run_id]),
            ..RunCancelManyRequest::default()
        },
        CancelAction::Interrupt,
    )
    .await
    .expect("cancel_many");
    env.wait_status(&many, RunStatus::Interrupted).await;
    let bad = runs
        .cancel_many(&RunCancelManyRequest::default(), CancelAction::Interrupt)
        .await
        .expect_err("422");
    assert!(matches!(bad, ClientError::Unprocessable(_)), "{bad}");

    let rolled = env.start(&thread, "sleep=30").await;
    env.wait_status(&rolled, RunStatus::Running).await;
    runs.cancel(
        thread.thread_id,
        rolled.run_id,
        CancelOptions {
            wait: true,
            action: CancelAction::Rollback,
        },
    )
    .await
    .expect("rollback");
    let gone = runs
        .get(thread.thread_id, rolled.run_id)
        .await
        .expect_err("rolled back");
    assert!(gone.is_not_found());
}

async fn assistants_search_and_get(kind: Kind) {
    let env = env(kind).await;
    let found = env
        .client
        .assistants()
        .search(&AssistantSearchRequest::default())
        .await
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].graph_id, "echo");
    let id = assistant_id_for_graph("echo");
    let one = env
        .client
        .assistants()
        .get(&id.to_string())
        .await
        .expect("get");
    assert_eq!(one.assistant_id, id);
    let missing = env
        .client
        .assistants()
        .get(&unknown_id().to_string())
        .await
        .expect_err("404");
    assert!(missing.is_not_found());
    let invalid = env
        .client
        .assistants()
        .get("not a uuid")
        .await
        .expect_err("422");
    assert!(
        matches!(invalid, ClientError::Unprocessable(_)),
        "{invalid}"
    );
    assert_eq!(
        invalid.detail(),
        Some("Invalid assistant ID: must be a UUID")
    );
}

async fn store_put_get_search_list_delete(kind: Kind) {
    let env = env(kind).await;
    let store = env.client.store();
    store
        .put_item(&["users", "u1"], "prefs", object(json!({"theme": "dark"})))
        .await
        .expect("put");
    store
        .put_item(&["users", "u2"], "prefs", object(json!({"theme": "light"})))
        .await
        .expect("put");
    let item = store
        .get(&["users", "u1"], "prefs")
        .await
        .expect("get")
        .expect("an item");
    assert_eq!(Value::Object(item.value), json!({"theme": "dark"}));
    assert_eq!(item.namespace, ["users", "u1"]);

    let search: StoreSearchRequest = serde_json::from_value(json!({
        "namespace_prefix": ["users"], "filter": {"theme": "light"}
    }))
    .expect("request");
    let found = store.search(&search).await.expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].namespace, ["users", "u2"]);

    let list: StoreListNamespacesRequest =
        serde_json::from_value(json!({"prefix": ["users"]})).expect("request");
    let mut namespaces = store.list_namespaces(&list).await.expect("namespaces");
    namespaces.sort();
    assert_eq!(namespaces, [["users", "u1"], ["users", "u2"]]);

    store
        .delete(&["users", "u1"], "prefs")
        .await
        .expect("delete");
    assert!(
        store
            .get(&["users", "u1"], "prefs")
            .await
            .expect("get")
            .is_none()
    );

    let dotted = store
        .get(&["a.b"], "k")
        .await
        .expect_err("client-side check");
    assert!(
        matches!(dotted, ClientError::InvalidArgument(_)),
        "{dotted}"
    );
    let empty_label = store
        .put_item(&["users", ""], "k", JsonObject::new())
        .await
        .expect_err("422");
    assert!(
        matches!(empty_label, ClientError::Unprocessable(_)),
        "{empty_label}"
    );
}

async fn error_kinds(kind: Kind) {
    let env = env(kind).await;
    let thread = env.thread().await;
    let runs = env.client.runs();

    let not_found = runs
        .create(unknown_id(), &echo("x"))
        .await
        .expect_err("404");
    assert!(not_found.is_not_found());
    assert_eq!(not_found.detail(), Some("Thread or assistant not found."));
    assert_eq!(not_found.status().map(|s| s.as_u16()), Some(404));

    let unprocessable = runs
        .create(
            thread.thread_id,
            &errand_client::protocol::RunCreate::new("nope", json!({})),
        )
        .await
        .expect_err("422");
    assert!(matches!(unprocessable, ClientError::Unprocessable(_)));
    assert!(
        unprocessable
            .detail()
            .is_some_and(|d| d.starts_with("Invalid assistant: 'nope'")),
        "{unprocessable}"
    );

    let mut contradictory = echo("x");
    contradictory.config = Some(RunConfig {
        configurable: Some(object(json!({"a": 1}))),
        ..RunConfig::default()
    });
    contradictory.context = Some(object(json!({"b": 2})));
    let bad_request = runs
        .create(thread.thread_id, &contradictory)
        .await
        .expect_err("400");
    assert!(
        matches!(bad_request, ClientError::BadRequest(_)),
        "{bad_request}"
    );

    let mut reject = echo("x");
    reject.multitask_strategy = Some(errand_client::protocol::MultitaskStrategy::Reject);
    let busy = env.start(&thread, "sleep=30").await;
    let conflict = runs
        .create(thread.thread_id, &reject)
        .await
        .expect_err("409");
    assert!(matches!(conflict, ClientError::Conflict(_)), "{conflict}");
    runs.cancel(thread.thread_id, busy.run_id, CancelOptions::default())
        .await
        .expect("cancel");

    let huge = "x".repeat(17 * 1024 * 1024);
    let too_large = env
        .client
        .threads()
        .create(&ThreadCreate {
            metadata: Some(object(json!({"blob": huge}))),
            ..ThreadCreate::default()
        })
        .await
        .expect_err("413");
    assert!(
        matches!(too_large, ClientError::PayloadTooLarge(_)),
        "{too_large}"
    );
    assert!(
        too_large
            .detail()
            .is_some_and(|d| d.contains("larger than the limit"))
    );
}

async fn unauthorized_without_the_key(kind: Kind) {
    let env = env_with(kind, Some("s3cret"), |builder| builder).await;
    let refused = env.client.threads().create(&ThreadCreate::default()).await;
    let error = refused.expect_err("401");
    assert!(matches!(error, ClientError::Unauthorized(_)), "{error}");
    assert!(error.detail().is_some_and(|d| d.contains("API key")));
    // /ok needs no key.
    assert!(env.client.health().await.expect("health").ok);

    let (builder, _served) = support::builder_for(kind, &env.server).await;
    let keyed = support::fast(builder)
        .api_key(Some("s3cret"))
        .build()
        .expect("client");
    keyed
        .threads()
        .create(&ThreadCreate::default())
        .await
        .expect("accepted with the key");
    let (builder, _served) = support::builder_for(kind, &env.server).await;
    let wrong = support::fast(builder)
        .api_key(Some("wrong"))
        .build()
        .expect("client");
    assert!(matches!(
        wrong
            .threads()
            .search(&ThreadSearchRequest::default())
            .await,
        Err(ClientError::Unauthorized(_))
    ));
}

async fn read_timeout(kind: Kind) {
    let env = env_with(kind, None, |builder| {
        builder
            .read_timeout(Duration::from_millis(200))
            .retry(RetryPolicy::fast(1))
    })
    .await;
    let thread = env.thread().await;
    let run = env.start(&thread, "sleep=3").await;
    let started = tokio::time::Instant::now();
    let error = env
        .client
        .runs()
        .join(thread.thread_id, run.run_id)
        .await
        .expect_err("times out");
    assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
    env.client
        .runs()
        .cancel(thread.thread_id, run.run_id, CancelOptions::default())
        .await
        .expect("cancel");
}

/// A client whose streams go through a [`Cutting`] transport over `kind`.
async fn cutting_env(
    kind: Kind,
    after_chunks: usize,
    cuts: usize,
    how: Cut,
    reconnect: RetryPolicy,
    delay: Duration,
) -> (Env, Arc<Cutting>) {
    let server = support::server(None).await;
    let (builder, served) = support::builder_for(kind, &server).await;
    let plain = support::fast(builder).build().expect("client");
    let cutting = Arc::new(
        Cutting::new(Arc::clone(plain.transport()), after_chunks, cuts, how).with_delay(delay),
    );
    let client = Client::builder()
        .transport(cutting.clone())
        .api_key(None)
        .retry(RetryPolicy::fast(3))
        .reconnect(reconnect)
        .build()
        .expect("client");
    let env = Env {
        server,
        client,
        kind,
        served,
    };
    (env, cutting)
}

async fn dropped_stream_resumes_with_last_event_id(kind: Kind) {
    for how in [Cut::Error, Cut::Close] {
        let (env, cutting) =
            cutting_env(kind, 1, 1, how, RetryPolicy::fast(5), Duration::ZERO).await;
        let thread = env.thread().await;
        let stream = env
            .client
            .runs()
            .stream(thread.thread_id, &echo_streamed("sleep=0.5"))
            .await
            .expect("stream");
        let events = all_events(stream).await;
        assert_complete_echo(&events, "sleep=0.5");
        // The first chunk had the metadata (and maybe the first values); the reconnect asked
        // for what followed the metadata: the id before the last one seen, if any (the events
        // of the last id seen are dropped when they come again). errand sends no `end` event,
        // so the natural end of the resumed stream is checked too: the run has ended, its
        // stream is replayed once from the id before the last (its event dropped, as seen),
        // and the stream ends.
        let gets = cutting.stream_gets();
        assert_eq!(gets.len(), 2, "{how:?}: {gets:?}");
        assert_eq!(gets[0].last_event_id.as_deref(), Some("1"));
        assert_eq!(gets[1].last_event_id.as_deref(), Some("4"));
        let run_path = events_run_path(&events, &thread);
        let run_reads = cutting
            .seen()
            .iter()
            .filter(|seen| seen.method == "GET" && seen.path == run_path)
            .count();
        assert_eq!(run_reads, 2, "{how:?}: {:?}", cutting.seen());
    }
}

/// `/threads/{tid}/runs/{rid}` of the streamed run.
fn events_run_path(events: &[StreamEvent], thread: &errand_client::protocol::Thread) -> String {
    let StreamPart::Metadata(metadata) = &events[0].part else {
        panic!("metadata first");
    };
    format!("/threads/{}/runs/{}", thread.thread_id, metadata.run_id)
}

async fn a_stream_of_an_ended_run_is_replayed_once(kind: Kind) {
    // The cut comes once the run has ended: the stream is replayed from the last id, once,
    // and ends.
    let (env, cutting) = cutting_env(
        kind,
        1,
        1,
        Cut::Error,
        RetryPolicy::fast(5),
        Duration::from_millis(500),
    )
    .await;
    let thread = env.thread().await;
    let stream = env
        .client
        .runs()
        .stream(thread.thread_id, &echo_streamed("quick"))
        .await
        .expect("stream");
    let events = all_events(stream).await;
    assert_complete_echo(&events, "quick");
    assert_eq!(cutting.stream_gets().len(), 1, "{:?}", cutting.seen());
}

async fn a_stream_that_keeps_dropping_gives_up(kind: Kind) {
    // Every stream closes at once while the run sleeps: a bounded number of reconnects, then
    // an error.
    let (env, cutting) = cutting_env(
        kind,
        0,
        usize::MAX,
        Cut::Close,
        RetryPolicy::fast(3),
        Duration::ZERO,
    )
    .await;
    let thread = env.thread().await;
    let mut stream = env
        .client
        .runs()
        .stream(thread.thread_id, &echo("sleep=30"))
        .await
        .expect("stream");
    let run = stream.run().expect("run");
    let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("in time")
        .expect("an item");
    let error = item.expect_err("gives up");
    assert!(matches!(error, ClientError::Transport { .. }), "{error}");
    assert!(
        tokio::time::timeout(Duration::from_secs(1), stream.next())
            .await
            .expect("in time")
            .is_none()
    );
    assert_eq!(cutting.stream_gets().len(), 3);
    env.client
        .runs()
        .cancel(run.thread_id, run.run_id, CancelOptions::default())
        .await
        .expect("cancel");
}

async fn a_cut_wait_is_joined_again(kind: Kind) {
    let server = support::server(None).await;
    let (builder, served) = support::builder_for(kind, &server).await;
    let plain = support::fast(builder).build().expect("client");
    // A transport that fails the body of the first wait.
    #[derive(Debug)]
    struct CutWait(
        Arc<dyn errand_client::transport::Transport>,
        std::sync::atomic::AtomicBool,
    );
    impl errand_client::transport::Transport for CutWait {
        fn send(
            &self,
            request: errand_client::transport::TransportRequest,
        ) -> futures::future::BoxFuture<
            'static,
            Result<errand_client::transport::TransportResponse, ClientError>,
        > {
            use futures::FutureExt as _;
            let cut = request.uri().path().ends_with("/wait")
                && !self.1.swap(true, std::sync::atomic::Ordering::SeqCst);
            let sent = self.0.send(request);
            async move {
                let response = sent.await?;
                if !cut {
                    return Ok(response);
                }
                Ok(response.map(|_| -> errand_client::transport::ResponseBody {
                    Box::pin(futures::stream::once(async {
                        Err(ClientError::Transport {
                            message: "cut".into(),
                            connect: false,
                            source: None,
                        })
                    }))
                }))
            }
            .boxed()
        }
        fn target(&self) -> &str {
            self.0.target()
        }
    }
    let client = Client::builder()
        .transport(Arc::new(CutWait(
            Arc::clone(plain.transport()),
            std::sync::atomic::AtomicBool::new(false),
        )))
        .api_key(None)
        .reconnect(RetryPolicy::fast(3))
        .build()
        .expect("client");
    let thread = new_thread(&client).await;
    let result = client
        .runs()
        .wait(thread.thread_id, &echo("w"))
        .await
        .expect("joined again");
    let RunResult::Values(values) = result else {
        panic!("failed");
    };
    assert_eq!(texts(&values), ["w", "echo: w"]);
    // One run only: the wait was not sent twice.
    let listed = client
        .runs()
        .list(thread.thread_id, ListRuns::default())
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    drop(served);
}

/// Runs every test of the suite over one transport.
macro_rules! suite {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn health_and_info() {
                super::health_and_info($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn threads_create_get_update_search_delete() {
                super::threads_create_get_update_search_delete($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn thread_state_and_history() {
                super::thread_state_and_history($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runs_create_get_list_join_delete() {
                super::runs_create_get_list_join_delete($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runs_wait_on_a_thread_and_stateless() {
                super::runs_wait_on_a_thread_and_stateless($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runs_stream_typed_events() {
                super::runs_stream_typed_events($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn runs_cancel_and_cancel_many() {
                super::runs_cancel_and_cancel_many($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn assistants_search_and_get() {
                super::assistants_search_and_get($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn store_put_get_search_list_delete() {
                super::store_put_get_search_list_delete($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn error_kinds() {
                super::error_kinds($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unauthorized_without_the_key() {
                super::unauthorized_without_the_key($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn read_timeout() {
                super::read_timeout($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dropped_stream_resumes_with_last_event_id() {
                super::dropped_stream_resumes_with_last_event_id($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_stream_of_an_ended_run_is_replayed_once() {
                super::a_stream_of_an_ended_run_is_replayed_once($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_stream_that_keeps_dropping_gives_up() {
                super::a_stream_that_keeps_dropping_gives_up($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_cut_wait_is_joined_again() {
                super::a_cut_wait_is_joined_again($kind).await;
            }
        }
    };
}

suite!(http, Kind::Http);
suite!(in_process, Kind::InProcess);
