//! Fuzz target: SSE decoding ([`SseDecoder`]) and typed stream events
//! ([`StreamEvent::from_frame`]), fed what a server (or anyone on the path) may send.
//!
//! Inputs are arbitrary bytes, soups of SSE field names and line breaks, and valid streams of
//! the events a run sends (`metadata`, `values`, `messages`, `error`... with namespaces, ids and
//! retries, in LF, CR, CRLF or mixed line endings, with or without a BOM), mutated: bytes
//! flipped, truncated, spliced, non-UTF-8, NUL, BOMs, line breaks put in, long lines. Each is
//! decoded with the default event size limit or a small one, so dropping oversized events is
//! fuzzed too.
//!
//! Properties:
//! - decoding never panics, and splitting the bytes into chunks anywhere (down to one byte per
//!   chunk) gives the same items, last event id, retry and count of dropped events as decoding
//!   them whole;
//! - every decoded frame reads as a typed event or an error, never a panic; a typed event
//!   writes a frame that reads back as the same event, and that frame encodes and decodes to
//!   itself;
//! - any frame the encoder can express decodes back to itself (with the documented changes
//!   for what SSE cannot carry).
//!
//! `PROPTEST_CASES` sets the number of cases; the memory bound on an endless line is in
//! `sse_memory.rs`.

mod fuzz_support;

use errand_protocol::StreamEvent;
use errand_protocol::sse::{DEFAULT_MAX_EVENT_SIZE, SseDecoder, SseFrame, SseItem, encode_comment};
use fuzz_support::{
    byte_mutation, config, json_any, json_object, json_tree, json_tree_object, mutate_bytes, soup,
    text,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use std::cell::Cell;

// ---- decoding -----------------------------------------------------------------------------

/// Everything a decoder tells about a stream.
#[derive(Debug, PartialEq)]
struct Decoded {
    items: Vec<SseItem>,
    last_event_id: Option<String>,
    retry: Option<u64>,
    oversized: u64,
}

/// Decodes `chunks` in turn with a fresh decoder of limit `max`.
fn decode<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, max: usize) -> Decoded {
    let mut decoder = SseDecoder::with_max_event_size(max);
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.push_into(chunk, &mut items);
    }
    decoder.finish_into(&mut items);
    Decoded {
        items,
        last_event_id: decoder.last_event_id().map(str::to_owned),
        retry: decoder.retry(),
        oversized: decoder.oversized_events(),
    }
}

/// `bytes` cut at `cuts` (taken modulo the length, in any order; repeats give empty chunks).
fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        out.push(&bytes[start..cut]);
        start = cut;
    }
    out.push(&bytes[start..]);
    out
}

// ---- inputs -------------------------------------------------------------------------------

const EVENTS: &[&str] = &[
    "metadata",
    "values",
    "updates",
    "messages",
    "messages/partial",
    "messages/complete",
    "messages/metadata",
    "custom",
    "tasks",
    "checkpoints",
    "debug",
    "events",
    "error",
    "end",
    "message",
];

/// A chat message as LangChain or an OpenAI-style client writes one.
fn message() -> impl Strategy<Value = Value> {
    let content = prop_oneof![
        text().prop_map(Value::String),
        vec(
            prop_oneof![
                text().prop_map(|text| json!({"type": "text", "text": text})),
                text().prop_map(Value::String),
                json_object(),
            ],
            0..3
        )
        .prop_map(Value::Array),
        Just(Value::Null),
    ];
    let call = prop_oneof![
        (text(), json_object(), text())
            .prop_map(|(name, args, id)| json!({"name": name, "args": args, "id": id, "type": "tool_call"})),
        (text(), text(), text()).prop_map(
            |(name, arguments, id)| json!({"id": id, "function": {"name": name, "arguments": arguments}})
        ),
    ];
    (
        prop::sample::select(vec![
            ("type", "human"),
            ("type", "ai"),
            ("type", "tool"),
            ("type", "AIMessageChunk"),
            ("role", "user"),
            ("role", "assistant"),
            ("role", "developer"),
        ]),
        content,
        prop::option::of(text()),
        prop::option::of(vec(call, 0..2)),
        json_object(),
    )
        .prop_map(|((tag, kind), content, id, calls, extra)| {
            let mut message = json!({ tag: kind, "content": content, "id": id });
            if let Some(calls) = calls {
                message["tool_calls"] = Value::Array(calls);
            }
            if let (Value::Object(message), Value::Object(extra)) = (&mut message, extra) {
                for (key, value) in extra {
                    message.entry(key).or_insert(value);
                }
            }
            message
        })
}

/// A message as LangChain or an OpenAI-style client writes one, that must read: content as
/// text or a list of text, bare strings and other blocks, tool calls in either form with
/// arguments that are a JSON object, unknown keys beside.
fn well_formed_message() -> impl Strategy<Value = Value> {
    let block = prop_oneof![
        text().prop_map(|text| json!({"type": "text", "text": text})),
        text().prop_map(Value::String),
        (text(), json_tree_object()).prop_map(|(kind, fields)| {
            let mut block = fields;
            block["type"] = Value::String(kind);
            block
        }),
    ];
    let content = prop_oneof![
        text().prop_map(Value::String),
        vec(block, 0..4).prop_map(Value::Array),
    ];
    let call = prop_oneof![
        (text(), json_tree_object(), text())
            .prop_map(|(name, args, id)| json!({"name": name, "args": args, "id": id, "type": "tool_call"})),
        (text(), json_tree_object(), text()).prop_map(|(name, args, id)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
        }),
    ];
    (
        prop::sample::select(vec![
            ("type", "human"),
            ("type", "ai"),
            ("type", "tool"),
            ("type", "AIMessageChunk"),
            ("role", "user"),
            ("role", "assistant"),
            ("role", "system"),
        ]),
        content,
        prop::option::of(text()),
        prop::option::of(vec(call, 0..3)),
        prop::collection::btree_map("x_[a-z]{1,6}", json_tree(), 0..2),
    )
        .prop_map(|((tag, kind), content, id, calls, extra)| {
            let mut message = json!({ tag: kind, "content": content, "id": id });
            if let Some(calls) = calls {
                message["tool_calls"] = Value::Array(calls);
            }
            for (key, value) in extra {
                message[key] = value;
            }
            message
        })
}

/// A frame of each kind a run's stream carries, with data of the right shape.
fn well_formed_frame() -> impl Strategy<Value = SseFrame> {
    let message = well_formed_message;
    let part = prop_oneof![
        (any::<u128>(), any::<u32>()).prop_map(|(id, attempt)| {
            (
                "metadata",
                json!({"run_id": uuid::Uuid::from_u128(id), "attempt": attempt}),
            )
        }),
        json_tree().prop_map(|data| ("values", data)),
        json_tree_object().prop_map(|data| ("updates", data)),
        (message(), json_tree_object())
            .prop_map(|(message, meta)| ("messages", json!([message, meta]))),
        vec(message(), 0..3).prop_map(|messages| ("messages/partial", Value::Array(messages))),
        vec(message(), 0..3).prop_map(|messages| ("messages/complete", Value::Array(messages))),
        (text(), json_tree_object())
            .prop_map(|(id, meta)| ("messages/metadata", json!({ id: {"metadata": meta} }))),
        json_tree().prop_map(|data| ("custom", data)),
        (text(), text())
            .prop_map(|(error, message)| ("error", json!({"error": error, "message": message}))),
        json_tree().prop_map(|data| ("end", data)),
    ];
    (
        part,
        vec("[a-z]{1,6}:[0-9a-f]{1,4}", 0..3),
        prop::option::of("[0-9]{1,13}-[0-9]"),
    )
        .prop_map(|((event, data), namespace, id)| {
            let mut name = event.to_owned();
            for segment in namespace {
                name.push('|');
                name.push_str(&segment);
            }
            SseFrame {
                id,
                ..SseFrame::new(name, data.to_string())
            }
        })
}

/// The data an event of this name carries, mostly of the right shape.
fn data_for(event: &'static str) -> BoxedStrategy<String> {
    let shaped: BoxedStrategy<Value> = match event {
        "metadata" => (any::<u128>(), any::<u32>(), json_object())
            .prop_map(|(id, attempt, extra)| {
                let mut data = json!({"run_id": uuid::Uuid::from_u128(id), "attempt": attempt});
                if let (Value::Object(data), Value::Object(extra)) = (&mut data, extra) {
                    for (key, value) in extra {
                        data.entry(key).or_insert(value);
                    }
                }
                data
            })
            .boxed(),
        "error" => (text(), text())
            .prop_map(|(error, message)| json!({"error": error, "message": message}))
            .boxed(),
        "messages" => (message(), json_object())
            .prop_map(|(message, meta)| json!([message, meta]))
            .boxed(),
        "messages/partial" | "messages/complete" => {
            vec(message(), 0..3).prop_map(Value::Array).boxed()
        }
        "messages/metadata" => (text(), json_object())
            .prop_map(|(id, meta)| json!({ id: {"metadata": meta} }))
            .boxed(),
        _ => json_any().boxed(),
    };
    prop_oneof![
        12 => shaped.prop_map(|data| data.to_string()),
        1 => text(),
        1 => Just(String::new()),
    ]
    .boxed()
}

/// A frame a run's stream may carry, with its namespace, id and retry.
fn run_frame() -> impl Strategy<Value = SseFrame> {
    prop::sample::select(EVENTS)
        .prop_flat_map(|event| {
            (
                Just(event),
                vec("[a-z]{1,6}:[0-9a-f]{1,4}", 0..3),
                prop::option::weighted(0.95, data_for(event)),
                prop::option::of("[0-9]{1,13}-[0-9]"),
                prop::option::weighted(0.1, any::<u64>()),
            )
        })
        .prop_map(|(event, namespace, data, id, retry)| {
            let mut name = event.to_owned();
            for segment in namespace {
                name.push('|');
                name.push_str(&segment);
            }
            SseFrame {
                event: Some(name),
                data,
                id,
                retry,
            }
        })
}

/// A run's stream: frames and heartbeats, written with `eol` line endings (`None`: LF, CR and
/// CRLF in turn), after a BOM if `bom`.
fn run_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        vec(
            prop_oneof![
                8 => run_frame().prop_map(|frame| frame.encode()),
                1 => Just(": heartbeat\r\n\r\n".to_owned()),
                1 => text().prop_map(|text| {
                    let mut out = String::new();
                    encode_comment(&text, &mut out);
                    out
                }),
            ],
            0..6,
        ),
        prop::sample::select(vec![Some("\r\n"), Some("\n"), Some("\r"), None]),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(parts, eol, bom)| {
            let crlf = parts.concat();
            let mut out = if bom {
                "\u{feff}".to_owned()
            } else {
                String::new()
            };
            match eol {
                Some(eol) => out.push_str(&crlf.replace("\r\n", eol)),
                None => {
                    for (index, line) in crlf.split("\r\n").enumerate() {
                        if index > 0 {
                            out.push_str(["\n", "\r", "\r\n"][index % 3]);
                        }
                        out.push_str(line);
                    }
                }
            }
            out.into_bytes()
        })
}

/// SSE field names, separators and line breaks, strung together.
fn sse_soup() -> impl Strategy<Value = Vec<u8>> {
    let pieces = [
        "event",
        "data",
        "id",
        "retry",
        ":",
        " ",
        "\n",
        "\r",
        "\r\n",
        "\u{feff}",
        "\0",
        "values",
        "error",
        "|",
        "{}",
        "[",
        "]",
        "\"",
        "1",
        "x",
        "\u{fffd}",
        "\u{1F600}",
        "\\",
    ];
    let mut pieces: Vec<String> = pieces.map(str::to_owned).to_vec();
    pieces.push(String::from_utf8_lossy(b"\xff").into_owned());
    prop_oneof![
        soup(pieces, 48),
        // Bytes that are not UTF-8 at all, in a stream of fields.
        vec(
            prop_oneof![
                Just(b"data: ".to_vec()),
                Just(b"\n".to_vec()),
                Just(vec![0xFF]),
                Just(vec![0xE2, 0x82])
            ],
            0..24
        )
        .prop_map(|pieces| pieces.concat()),
    ]
}

fn stream_input() -> impl Strategy<Value = Vec<u8>> {
    let inserts: Vec<&'static [u8]> = vec![
        b"\r",
        b"\n",
        b"\r\n",
        b"\n\n",
        b"\0",
        b"\xff",
        b"\xef\xbb\xbf",
        b":",
        b"data: ",
        b"id: \0",
        b"retry: 99999999999999999999\n",
    ];
    let mutated = (
        run_stream(),
        byte_mutation(run_stream(), inserts),
        prop::option::weighted(0.05, 1usize..2048),
    )
        .prop_map(|(stream, mutation, long)| {
            let mut bytes = mutate_bytes(stream, mutation);
            if let Some(len) = long {
                // A long line in the middle, for the small limits.
                let at = bytes.len() / 2;
                bytes.splice(at..at, std::iter::repeat_n(b'x', len));
            }
            bytes
        });
    prop_oneof![
        1 => vec(any::<u8>(), 0..256),
        2 => sse_soup(),
        8 => mutated,
    ]
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(DEFAULT_MAX_EVENT_SIZE),
        1 => 0usize..300,
    ]
}

/// Any text for an event name, data or id: line breaks, NUL, BOMs, colons and spaces in it.
fn wild_text() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            6 => any::<char>().prop_map(String::from),
            1 => prop::sample::select(vec!["\n", "\r", "\r\n", "\0", " ", ":", "\u{feff}", "data: "])
                .prop_map(str::to_owned),
        ],
        0..20,
    )
    .prop_map(|pieces| pieces.concat())
}

/// `text` with CR and LF (and NUL, if `nul`) as spaces, as the encoder writes names and ids.
fn clean(text: &str, nul: bool) -> String {
    text.chars()
        .map(|c| {
            if c == '\r' || c == '\n' || (nul && c == '\0') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// What the decoder gives back for `frame` after encoding: CR and LF in the event name and
/// id, and NUL in the id, become spaces; CR and CRLF in data become LF; an empty name is none;
/// a frame with neither name nor data is not dispatched.
fn as_decoded(frame: &SseFrame) -> Option<SseFrame> {
    let event = frame
        .event
        .as_deref()
        .map(|event| clean(event, false))
        .filter(|event| !event.is_empty());
    let data = frame
        .data
        .as_ref()
        .map(|data| data.replace("\r\n", "\n").replace('\r', "\n"));
    (event.is_some() || data.is_some()).then(|| SseFrame {
        event,
        data,
        id: frame.id.as_deref().map(|id| clean(id, true)),
        retry: frame.retry,
    })
}

/// Reads the frames of `bytes` as typed events and checks each one that reads writes a frame
/// that reads back the same and survives encoding; answers how many read.
fn check_typed_events(bytes: &[u8]) -> Result<usize, TestCaseError> {
    let mut typed = 0;
    for item in SseDecoder::decode_all(bytes) {
        let SseItem::Frame(frame) = item else {
            continue;
        };
        let Ok(event) = StreamEvent::from_frame(&frame) else {
            continue;
        };
        typed += 1;
        let written = event
            .to_frame()
            .map_err(|error| TestCaseError::fail(format!("{error}: {event:?}")))?;
        let again = StreamEvent::from_frame(&written)
            .map_err(|error| TestCaseError::fail(format!("{error}: {written:?} from {frame:?}")))?;
        prop_assert_eq!(&again, &event, "from {:?}", frame);
        let wire = written.encode();
        prop_assert_eq!(
            SseDecoder::decode_all(wire.as_bytes()),
            vec![SseItem::Frame(written.clone())],
            "{:?}",
            wire
        );
    }
    Ok(typed)
}

#[test]
fn frames_read_as_typed_events_or_errors() {
    let config = ProptestConfig {
        source_file: Some(file!()),
        ..config(3000)
    };
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let typed = Cell::new(0usize);
    let outcome = runner.run(&stream_input(), |bytes| {
        typed.set(typed.get() + check_typed_events(&bytes)?);
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // Each valid stream holds up to five frames; enough of them must read for this to test
    // more than the error path.
    let typed = typed.get();
    assert!(
        typed >= cases as usize / 2,
        "only {typed} typed events in {cases} cases"
    );
}

// ---- the properties -----------------------------------------------------------------------

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn chunking_never_changes_what_is_decoded(
        bytes in stream_input(),
        cuts in vec(any::<usize>(), 0..24),
        max in limit(),
    ) {
        let whole = decode([&bytes[..]], max);
        let chunked = decode(chunks(&bytes, &cuts), max);
        prop_assert_eq!(&chunked, &whole);
        let bytewise = decode(bytes.chunks(1), max);
        prop_assert_eq!(&bytewise, &whole);
    }

    #[test]
    fn well_formed_events_read_as_typed_events(frames in vec(well_formed_frame(), 1..4)) {
        let wire: String = frames.iter().map(SseFrame::encode).collect();
        let decoded = SseDecoder::decode_all(wire.as_bytes());
        prop_assert_eq!(decoded.len(), frames.len());
        for item in decoded {
            let SseItem::Frame(frame) = item else {
                return Err(TestCaseError::fail("a comment from frames"));
            };
            if let Err(error) = StreamEvent::from_frame(&frame) {
                return Err(TestCaseError::fail(format!("{error}\n{frame:?}")));
            }
        }
        let typed = check_typed_events(wire.as_bytes())?;
        prop_assert_eq!(typed, frames.len());
    }

    #[test]
    fn encoded_frames_decode_to_themselves(
        frames in vec(
            (
                prop::option::of(wild_text()),
                prop::option::of(wild_text()),
                prop::option::of(wild_text()),
                prop::option::of(any::<u64>()),
            ),
            0..5,
        ),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let frames: Vec<SseFrame> = frames
            .into_iter()
            .map(|(event, data, id, retry)| SseFrame { event, data, id, retry })
            .collect();
        let wire: String = frames.iter().map(SseFrame::encode).collect();
        let expected: Vec<SseItem> = frames
            .iter()
            .filter_map(as_decoded)
            .map(SseItem::Frame)
            .collect();
        let decoded = decode(chunks(wire.as_bytes(), &cuts), DEFAULT_MAX_EVENT_SIZE);
        prop_assert_eq!(&decoded.items, &expected, "{:?}", wire);
        let last_id = frames
            .iter()
            .rev()
            .find_map(|frame| frame.id.as_deref())
            .map(|id| clean(id, true))
            .filter(|id| !id.is_empty());
        prop_assert_eq!(decoded.last_event_id, last_id);
        prop_assert_eq!(decoded.oversized, 0);
    }
}
