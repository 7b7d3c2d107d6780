//! Property tests: any value of each wire type serialises to JSON and parses back equal, and any
//! typed stream event survives SSE framing, encoding and decoding.

use errand_protocol::sse::{SseDecoder, SseItem};
use errand_protocol::*;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt::Debug;
use uuid::Uuid;

// ---- building blocks ----------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,8}"
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1.0e9..1.0e9_f64).prop_map(Value::from),
        text().prop_map(Value::String),
    ]
}

fn json_any() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(name(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Any JSON but a bare `null`, for `Option<Value>` and `Nullable<Value>` fields, where `null`
/// means "no value" by design.
fn json_some() -> impl Strategy<Value = Value> {
    json_any().prop_filter("not null", |value| !value.is_null())
}

fn object() -> impl Strategy<Value = JsonObject> {
    btree_map(name(), json_any(), 0..4).prop_map(|m| m.into_iter().collect())
}

/// Unknown keys: prefixed so they never collide with a typed field.
fn extra() -> impl Strategy<Value = JsonObject> {
    btree_map("x_[a-z0-9]{1,6}", json_any(), 0..3).prop_map(|m| m.into_iter().collect())
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    // 1970 to 2100, to the microsecond.
    (0_i64..4_102_444_800_000_000)
        .prop_map(|micros| Timestamp::from_timestamp_micros(micros).expect("in range"))
}

fn nullable<S: Strategy>(inner: S) -> impl Strategy<Value = Nullable<S::Value>>
where
    S::Value: Clone + Debug,
{
    prop_oneof![
        Just(Nullable::Absent),
        Just(Nullable::Null),
        inner.prop_map(Nullable::Present),
    ]
}

/// A JSON number, integer or float, kept in the form it was written.
fn number() -> impl Strategy<Value = serde_json::Number> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Number::from),
        (-1.0e9..1.0e9_f64).prop_map(|f| serde_json::Number::from_f64(f).expect("finite")),
    ]
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(name(), 0..3)
}

// ---- messages -----------------------------------------------------------------------------

fn message_kind() -> impl Strategy<Value = MessageKind> {
    prop_oneof![
        Just(MessageKind::Human),
        Just(MessageKind::Ai),
        Just(MessageKind::System),
        Just(MessageKind::Tool),
        Just(MessageKind::AiChunk),
        Just(MessageKind::Other("remove".into())),
        Just(MessageKind::Other("function".into())),
    ]
}

fn content_block() -> impl Strategy<Value = ContentBlock> {
    (name(), extra()).prop_map(|(kind, fields)| ContentBlock { kind, fields })
}

fn content() -> impl Strategy<Value = MessageContent> {
    prop_oneof![
        text().prop_map(MessageContent::Text),
        vec(content_block(), 0..3).prop_map(MessageContent::Blocks),
    ]
}

fn tool_call() -> impl Strategy<Value = ToolCall> {
    (name(), object(), option::of(name()), option::of(name())).prop_map(|(name, args, id, kind)| {
        ToolCall {
            name,
            args,
            id,
            kind,
        }
    })
}

prop_compose! {
    fn message()(
        content in content(),
        additional_kwargs in object(),
        response_metadata in object(),
        kind in message_kind(),
        name in option::of(text()),
        id in option::of(text()),
        tool_calls in option::of(vec(tool_call(), 0..3)),
        tool_call_id in option::of(text()),
        extra in extra(),
    ) -> Message {
        Message { content, additional_kwargs, response_metadata, kind, name, id, tool_calls, tool_call_id, extra }
    }
}

// ---- threads ------------------------------------------------------------------------------

fn thread_status() -> impl Strategy<Value = ThreadStatus> {
    prop_oneof![
        Just(ThreadStatus::Idle),
        Just(ThreadStatus::Busy),
        Just(ThreadStatus::Interrupted),
        Just(ThreadStatus::Error),
    ]
}

fn interrupt() -> impl Strategy<Value = Interrupt> {
    (option::of(text()), json_any(), extra()).prop_map(|(id, value, extra)| Interrupt {
        id,
        value,
        extra,
    })
}

prop_compose! {
    fn thread()(
        thread_id in uuid(),
        created_at in timestamp(),
        updated_at in timestamp(),
        state_updated_at in option::of(timestamp()),
        metadata in object(),
        status in thread_status(),
        config in option::of(object()),
        values in nullable(json_some()),
        interrupts in option::of(btree_map(name(), vec(interrupt(), 0..2), 0..2)),
        error in nullable(json_some()),
        ttl in option::of(json_some()),
        (extracted, extra) in (option::of(object()), extra()),
    ) -> Thread {
        Thread { thread_id, created_at, updated_at, state_updated_at, metadata, status, config, values, interrupts, error, ttl, extracted, extra }
    }
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        option::of(text()),
        option::of(uuid()),
        option::of(text()),
        nullable(object()),
        extra(),
    )
        .prop_map(
            |(checkpoint_id, thread_id, checkpoint_ns, checkpoint_map, extra)| Checkpoint {
                checkpoint_id,
                thread_id,
                checkpoint_ns,
                checkpoint_map,
                extra,
            },
        )
}

fn thread_task() -> impl Strategy<Value = ThreadTask> {
    (
        text(),
        name(),
        nullable(json_some()),
        option::of(vec(interrupt(), 0..2)),
        extra(),
    )
        .prop_map(|(id, name, error, interrupts, extra)| ThreadTask {
            id,
            name,
            error,
            interrupts,
            extra,
        })
}

prop_compose! {
    fn thread_state()(
        values in json_any(),
        next in strings(),
        tasks in vec(thread_task(), 0..2),
        metadata in nullable(object()),
        created_at in nullable(timestamp()),
        checkpoint in nullable(checkpoint()),
        parent_checkpoint in nullable(checkpoint()),
        interrupts in option::of(vec(interrupt(), 0..2)),
        checkpoint_id in nullable(text()),
        parent_checkpoint_id in nullable(text()),
        extra in extra(),
    ) -> ThreadState {
        ThreadState { values, next, tasks, metadata, created_at, checkpoint, parent_checkpoint, interrupts, checkpoint_id, parent_checkpoint_id, extra }
    }
}

fn thread_ttl() -> impl Strategy<Value = ThreadTtl> {
    (
        option::of(prop_oneof![
            Just(TtlStrategy::Delete),
            Just(TtlStrategy::KeepLatest)
        ]),
        option::of(number()),
        extra(),
    )
        .prop_map(|(strategy, ttl, extra)| ThreadTtl {
            strategy,
            ttl,
            extra,
        })
}

fn thread_create() -> impl Strategy<Value = ThreadCreate> {
    (
        option::of(uuid()),
        option::of(object()),
        option::of(prop_oneof![
            Just(IfExists::Raise),
            Just(IfExists::DoNothing)
        ]),
        option::of(thread_ttl()),
        option::of(vec(json_any(), 0..2)),
        extra(),
    )
        .prop_map(
            |(thread_id, metadata, if_exists, ttl, supersteps, extra)| ThreadCreate {
                thread_id,
                metadata,
                if_exists,
                ttl,
                supersteps,
                extra,
            },
        )
}

fn thread_patch() -> impl Strategy<Value = ThreadPatch> {
    (option::of(object()), option::of(thread_ttl()), extra()).prop_map(|(metadata, ttl, extra)| {
        ThreadPatch {
            metadata,
            ttl,
            extra,
        }
    })
}

fn sort_order() -> impl Strategy<Value = SortOrder> {
    prop_oneof![Just(SortOrder::Asc), Just(SortOrder::Desc)]
}

prop_compose! {
    fn thread_search()(
        ids in option::of(vec(uuid(), 0..3)),
        metadata in option::of(object()),
        values in option::of(object()),
        status in option::of(thread_status()),
        limit in any::<u32>(),
        offset in any::<u32>(),
        sort_by in option::of(name()),
        sort_order in option::of(sort_order()),
        select in option::of(strings()),
        extract in option::of(btree_map(name(), text(), 0..3)),
        extra in extra(),
    ) -> ThreadSearchRequest {
        ThreadSearchRequest { ids, metadata, values, status, limit, offset, sort_by, sort_order, select, extract, extra }
    }
}

fn history_request() -> impl Strategy<Value = HistoryRequest> {
    (
        any::<u32>(),
        option::of(json_some()),
        option::of(object()),
        option::of(checkpoint()),
        extra(),
    )
        .prop_map(
            |(limit, before, metadata, checkpoint, extra)| HistoryRequest {
                limit,
                before,
                metadata,
                checkpoint,
                extra,
            },
        )
}

fn state_update() -> impl Strategy<Value = ThreadStateUpdate> {
    (
        nullable(json_some()),
        option::of(name()),
        option::of(checkpoint()),
        option::of(text()),
        extra(),
    )
        .prop_map(
            |(values, as_node, checkpoint, checkpoint_id, extra)| ThreadStateUpdate {
                values,
                as_node,
                checkpoint,
                checkpoint_id,
                extra,
            },
        )
}

fn state_update_response() -> impl Strategy<Value = ThreadStateUpdateResponse> {
    (checkpoint(), extra())
        .prop_map(|(checkpoint, extra)| ThreadStateUpdateResponse { checkpoint, extra })
}

// ---- runs ---------------------------------------------------------------------------------

fn run_status() -> impl Strategy<Value = RunStatus> {
    prop_oneof![
        Just(RunStatus::Pending),
        Just(RunStatus::Running),
        Just(RunStatus::Error),
        Just(RunStatus::Success),
        Just(RunStatus::Timeout),
        Just(RunStatus::Interrupted),
    ]
}

fn multitask_strategy() -> impl Strategy<Value = MultitaskStrategy> {
    prop_oneof![
        Just(MultitaskStrategy::Reject),
        Just(MultitaskStrategy::Interrupt),
        Just(MultitaskStrategy::Rollback),
        Just(MultitaskStrategy::Enqueue),
    ]
}

prop_compose! {
    fn run_kwargs()(
        input in nullable(json_some()),
        config in nullable(object()),
        context in nullable(object()),
        stream_mode in nullable(stream_modes()),
        interrupt_before in nullable(interrupt_nodes()),
        webhook in nullable(text()),
        feedback_keys in nullable(strings()),
        flags in (nullable(any::<bool>()), nullable(any::<bool>()), nullable(any::<bool>())),
        extra in extra(),
    ) -> RunKwargs {
        let (temporary, subgraphs, resumable) = flags;
        RunKwargs {
            input, config, context, stream_mode, interrupt_before, webhook, feedback_keys,
            temporary, subgraphs, resumable, extra, ..RunKwargs::default()
        }
    }
}

prop_compose! {
    fn run()(
        run_id in uuid(),
        thread_id in uuid(),
        assistant_id in uuid(),
        created_at in timestamp(),
        updated_at in timestamp(),
        status in run_status(),
        metadata in object(),
        kwargs in run_kwargs(),
        multitask_strategy in multitask_strategy(),
        extra in extra(),
    ) -> Run {
        Run { run_id, thread_id, assistant_id, created_at, updated_at, status, metadata, kwargs, multitask_strategy, extra }
    }
}

fn stream_mode() -> impl Strategy<Value = StreamMode> {
    proptest::sample::select(StreamMode::ALL.to_vec())
}

fn stream_modes() -> impl Strategy<Value = StreamModes> {
    prop_oneof![
        stream_mode().prop_map(StreamModes::One),
        vec(stream_mode(), 0..4).prop_map(StreamModes::Many),
    ]
}

fn interrupt_nodes() -> impl Strategy<Value = InterruptNodes> {
    prop_oneof![
        Just(InterruptNodes::All(AllNodes::All)),
        strings().prop_map(InterruptNodes::Nodes),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    (
        option::of(json_some()),
        option::of(json_some()),
        option::of(json_some()),
        extra(),
    )
        .prop_map(|(update, resume, goto, extra)| Command {
            update,
            resume,
            goto,
            extra,
        })
}

fn run_config() -> impl Strategy<Value = RunConfig> {
    (
        option::of(strings()),
        option::of(any::<u32>()),
        option::of(object()),
        extra(),
    )
        .prop_map(|(tags, recursion_limit, configurable, extra)| RunConfig {
            tags,
            recursion_limit,
            configurable,
            extra,
        })
}

/// Fields of [`RunCreate`] that shape what the graph does.
type RunInputs = (
    String,
    Nullable<Value>,
    Option<Command>,
    Option<RunConfig>,
    Option<JsonObject>,
    Option<JsonObject>,
    Option<Checkpoint>,
    Option<String>,
    Option<bool>,
    Option<Durability>,
    Option<InterruptNodes>,
    Option<InterruptNodes>,
);

fn run_inputs() -> impl Strategy<Value = RunInputs> {
    (
        prop_oneof![name(), uuid().prop_map(|id| id.to_string())],
        nullable(json_some()),
        option::of(command()),
        option::of(run_config()),
        option::of(object()),
        option::of(object()),
        option::of(checkpoint()),
        option::of(text()),
        option::of(any::<bool>()),
        option::of(prop_oneof![
            Just(Durability::Sync),
            Just(Durability::Async),
            Just(Durability::Exit)
        ]),
        option::of(interrupt_nodes()),
        option::of(interrupt_nodes()),
    )
}

prop_compose! {
    fn run_create()(
        inputs in run_inputs(),
        feedback_keys in option::of(strings()),
        webhook in option::of(text()),
        multitask_strategy in option::of(multitask_strategy()),
        if_not_exists in option::of(prop_oneof![Just(IfNotExists::Create), Just(IfNotExists::Reject)]),
        on_disconnect in option::of(prop_oneof![Just(OnDisconnect::Cancel), Just(OnDisconnect::Continue)]),
        on_completion in option::of(prop_oneof![Just(OnCompletion::Delete), Just(OnCompletion::Keep)]),
        after_seconds in option::of(number()),
        (stream_mode, stream_subgraphs, stream_resumable) in (option::of(stream_modes()), option::of(any::<bool>()), option::of(any::<bool>())),
        langsmith_tracer in option::of(json_some()),
        strict_resume in option::of(any::<bool>()),
        extra in extra(),
    ) -> RunCreate {
        let (assistant_id, input, command, config, context, metadata, checkpoint, checkpoint_id, checkpoint_during, durability, interrupt_before, interrupt_after) = inputs;
        RunCreate {
            assistant_id, input, command, config, context, metadata, checkpoint, checkpoint_id,
            checkpoint_during, durability, interrupt_before, interrupt_after, feedback_keys, webhook,
            multitask_strategy, if_not_exists, on_disconnect, on_completion, after_seconds,
            stream_mode, stream_subgraphs, stream_resumable, langsmith_tracer, strict_resume, extra,
        }
    }
}

fn run_error() -> impl Strategy<Value = RunError> {
    (name(), text()).prop_map(|(error, message)| RunError { error, message })
}

fn run_result() -> impl Strategy<Value = RunResult> {
    prop_oneof![
        run_error().prop_map(RunResult::Error),
        json_any().prop_map(RunResult::Values),
    ]
}

fn cancel_many() -> impl Strategy<Value = RunCancelManyRequest> {
    (
        option::of(uuid()),
        option::of(vec(uuid(), 0..3)),
        option::of(prop_oneof![
            Just(CancelStatusFilter::Pending),
            Just(CancelStatusFilter::Running),
            Just(CancelStatusFilter::All)
        ]),
        extra(),
    )
        .prop_map(|(thread_id, run_ids, status, extra)| RunCancelManyRequest {
            thread_id,
            run_ids,
            status,
            extra,
        })
}

// ---- assistants, store, misc ---------------------------------------------------------------

prop_compose! {
    fn assistant()(
        assistant_id in uuid(),
        graph_id in name(),
        config in object(),
        context in option::of(object()),
        metadata in object(),
        name in option::of(text()),
        created_at in timestamp(),
        updated_at in timestamp(),
        version in option::of(any::<u32>()),
        description in nullable(text()),
        extra in extra(),
    ) -> Assistant {
        Assistant { assistant_id, graph_id, config, context, metadata, name, created_at, updated_at, version, description, extra }
    }
}

prop_compose! {
    fn assistant_search()(
        metadata in option::of(object()),
        graph_id in option::of(name()),
        name in option::of(text()),
        limit in any::<u32>(),
        offset in any::<u32>(),
        sort_by in option::of(name()),
        sort_order in option::of(sort_order()),
        select in option::of(strings()),
        extra in extra(),
    ) -> AssistantSearchRequest {
        AssistantSearchRequest { metadata, graph_id, name, limit, offset, sort_by, sort_order, select, extra }
    }
}

fn store_item() -> impl Strategy<Value = StoreItem> {
    (
        strings(),
        text(),
        object(),
        timestamp(),
        timestamp(),
        extra(),
    )
        .prop_map(
            |(namespace, key, value, created_at, updated_at, extra)| StoreItem {
                namespace,
                key,
                value,
                created_at,
                updated_at,
                extra,
            },
        )
}

fn store_put() -> impl Strategy<Value = StorePutRequest> {
    (
        strings(),
        text(),
        object(),
        option::of(json_some()),
        option::of(number()),
        extra(),
    )
        .prop_map(
            |(namespace, key, value, index, ttl, extra)| StorePutRequest {
                namespace,
                key,
                value,
                index,
                ttl,
                extra,
            },
        )
}

fn store_delete() -> impl Strategy<Value = StoreDeleteRequest> {
    (strings(), text(), extra()).prop_map(|(namespace, key, extra)| StoreDeleteRequest {
        namespace,
        key,
        extra,
    })
}

fn store_search() -> impl Strategy<Value = StoreSearchRequest> {
    (
        option::of(strings()),
        option::of(object()),
        any::<u32>(),
        any::<u32>(),
        option::of(text()),
        option::of(any::<bool>()),
        extra(),
    )
        .prop_map(
            |(namespace_prefix, filter, limit, offset, query, refresh_ttl, extra)| {
                StoreSearchRequest {
                    namespace_prefix,
                    filter,
                    limit,
                    offset,
                    query,
                    refresh_ttl,
                    extra,
                }
            },
        )
}

fn store_namespaces() -> impl Strategy<Value = StoreListNamespacesRequest> {
    (
        option::of(strings()),
        option::of(strings()),
        option::of(any::<u32>()),
        any::<u32>(),
        any::<u32>(),
        extra(),
    )
        .prop_map(|(prefix, suffix, max_depth, limit, offset, extra)| {
            StoreListNamespacesRequest {
                prefix,
                suffix,
                max_depth,
                limit,
                offset,
                extra,
            }
        })
}

// ---- stream events ------------------------------------------------------------------------

fn stream_part() -> impl Strategy<Value = StreamPart> {
    prop_oneof![
        (uuid(), any::<u32>(), extra()).prop_map(|(run_id, attempt, extra)| {
            StreamPart::Metadata(RunMetadata {
                run_id,
                attempt,
                extra,
            })
        }),
        json_any().prop_map(StreamPart::Values),
        json_any().prop_map(StreamPart::Updates),
        (message(), object()).prop_map(|(message, meta)| StreamPart::Messages(Box::new(
            MessageChunk(message, meta)
        ))),
        vec(message(), 0..2).prop_map(StreamPart::MessagesPartial),
        vec(message(), 0..2).prop_map(StreamPart::MessagesComplete),
        object().prop_map(StreamPart::MessagesMetadata),
        json_any().prop_map(StreamPart::Custom),
        json_any().prop_map(StreamPart::Tasks),
        json_any().prop_map(StreamPart::Checkpoints),
        json_any().prop_map(StreamPart::Debug),
        json_any().prop_map(StreamPart::Events),
        run_error().prop_map(StreamPart::Error),
        ("x_[a-z]{1,6}", option::of(json_any()))
            .prop_map(|(event, data)| StreamPart::Other { event, data }),
    ]
}

fn stream_event() -> impl Strategy<Value = StreamEvent> {
    (
        option::of("[0-9]{1,13}-[0-9]{1,3}"),
        vec("[a-z_]{1,6}:[0-9a-f]{1,8}", 0..3),
        stream_part(),
    )
        .prop_map(|(id, namespace, part)| StreamEvent {
            id,
            namespace,
            part,
        })
}

// ---- the properties -----------------------------------------------------------------------

fn assert_roundtrip<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let text = serde_json::to_string(value).expect("serialises");
    let back: T = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("does not parse back: {error}\n{text}"));
    assert_eq!(&back, value, "changed in a round trip through {text}");
    // And the JSON itself is stable: writing the parsed value gives the same document.
    let again: Value = serde_json::to_value(&back).expect("serialises");
    let first: Value = serde_json::from_str(&text).expect("is JSON");
    assert_eq!(again, first);
}

macro_rules! roundtrip {
    ($($test:ident: $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            $(
                #[test]
                fn $test(value in $strategy) {
                    assert_roundtrip(&value);
                }
            )*
        }
    };
}

roundtrip! {
    message_roundtrips: message();
    thread_roundtrips: thread();
    thread_state_roundtrips: thread_state();
    thread_create_roundtrips: thread_create();
    thread_patch_roundtrips: thread_patch();
    thread_search_roundtrips: thread_search();
    history_request_roundtrips: history_request();
    state_update_roundtrips: state_update();
    state_update_response_roundtrips: state_update_response();
    run_roundtrips: run();
    run_create_roundtrips: run_create();
    run_result_roundtrips: run_result();
    cancel_many_roundtrips: cancel_many();
    assistant_roundtrips: assistant();
    assistant_search_roundtrips: assistant_search();
    store_item_roundtrips: store_item();
    store_put_roundtrips: store_put();
    store_delete_roundtrips: store_delete();
    store_search_roundtrips: store_search();
    store_namespaces_roundtrips: store_namespaces();
    search_items_roundtrips: vec(store_item(), 0..3).prop_map(|items| SearchItemsResponse { items });
    list_namespaces_roundtrips: vec(strings(), 0..3).prop_map(|namespaces| ListNamespacesResponse { namespaces });
    error_body_roundtrips: text().prop_map(ErrorBody::new);
    health_roundtrips: (any::<bool>(), extra()).prop_map(|(ok, extra)| Health { ok, extra });
    server_info_roundtrips: (object(), extra()).prop_map(|(flags, extra)| ServerInfo { flags, extra });
    interrupt_roundtrips: interrupt();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A typed event written as an SSE frame, encoded, and decoded in arbitrary chunks comes back
    /// as the same event.
    #[test]
    fn stream_events_survive_sse(events in vec(stream_event(), 1..4), cut in any::<prop::sample::Index>()) {
        let mut wire = String::new();
        for event in &events {
            event.to_frame().expect("frames").encode_into(&mut wire);
        }
        let bytes = wire.as_bytes();
        let split = cut.index(bytes.len() + 1);
        let mut decoder = SseDecoder::new();
        let mut items = decoder.push(&bytes[..split]);
        items.extend(decoder.push(&bytes[split..]));
        items.extend(decoder.finish());
        let decoded: Vec<StreamEvent> = items
            .into_iter()
            .map(|item| match item {
                SseItem::Frame(frame) => StreamEvent::from_frame(&frame).expect("parses"),
                SseItem::Comment(comment) => panic!("unexpected comment {comment:?}"),
            })
            .collect();
        prop_assert_eq!(decoded, events);
    }

    /// Timestamps read back from their text equal the original, to the microsecond.
    #[test]
    fn timestamps_roundtrip_through_text(at in timestamp()) {
        let text = at.to_string();
        prop_assert!(text.ends_with("+00:00"), "{}", text);
        prop_assert_eq!(text.parse::<Timestamp>().expect("parses"), at);
    }
}

/// A map with a key the typed struct owns must not be generated as `extra`; this guards the
/// generator itself, so the properties above cannot pass by never exercising `extra`.
#[test]
fn extra_keys_are_kept_through_a_round_trip() {
    let mut thread: Thread = serde_json::from_value(serde_json::json!({
        "thread_id": "01a209c7-cb3d-703a-a572-3d1cdf842b43",
        "created_at": "2026-11-23T19:00:18.366014+00:00",
        "updated_at": "2026-11-23T19:00:18.366014+00:00",
        "metadata": {}, "status": "idle", "values": null,
        "x_future": {"nested": [1, 2]}
    }))
    .unwrap();
    assert_eq!(thread.extra["x_future"]["nested"][1], 2);
    thread.extra.insert("x_more".into(), Value::Bool(true));
    let written = serde_json::to_value(&thread).unwrap();
    assert_eq!(written["x_more"], true);
    assert_eq!(written["values"], Value::Null);
    assert!(written.get("interrupts").is_none());
    assert!(written.get("error").is_none());
    let _: Map<String, Value> = thread.extra;
}
