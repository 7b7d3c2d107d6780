//! Property tests of the SSE codec: encoding then decoding gives back the
//! same items, however the byte stream is split into chunks and whatever
//! line endings it uses.

use errand_protocol::sse::{SseDecoder, SseFrame, SseItem, encode_comment};
use proptest::prelude::*;

/// What a stream is made of, before encoding.
#[derive(Debug, Clone)]
enum Part {
    Frame(SseFrame),
    Comment(String),
}

/// Event names as the server uses them (never empty, no line breaks).
fn event_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "metadata",
        "values",
        "updates",
        "messages/partial",
        "updates|agent:1f0c",
        "custom",
        "error",
        "end",
        "message",
    ])
    .prop_map(str::to_owned)
}

/// Arbitrary unicode text including CR, LF, CRLF, NUL, colons and spaces.
fn data_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>().prop_map(String::from),
            1 => Just("\n".to_owned()),
            1 => Just("\r".to_owned()),
            1 => Just("\r\n".to_owned()),
            1 => Just(" ".to_owned()),
            1 => Just(":".to_owned()),
            1 => Just("\u{FEFF}".to_owned()),
        ],
        0..24,
    )
    .prop_map(|pieces| pieces.concat())
}

/// Text without CR, LF or NUL (ids and comments).
fn line_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,13}-[0-9]",
        "\\PC{0,16}",
        Just(String::new()),
        Just(" lead".to_owned()),
    ]
}

fn frame() -> impl Strategy<Value = SseFrame> {
    (
        prop::option::of(event_name()),
        prop::option::of(data_text()),
        prop::option::of(line_text()),
        prop::option::of(any::<u64>()),
    )
        // Without an event name or data, a frame is not dispatched.
        .prop_filter("frame with an event name or data", |(event, data, _, _)| {
            event.is_some() || data.is_some()
        })
        .prop_map(|(event, data, id, retry)| SseFrame {
            event,
            data,
            id,
            retry,
        })
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        4 => frame().prop_map(Part::Frame),
        1 => line_text().prop_map(Part::Comment),
    ]
}

fn parts() -> impl Strategy<Value = Vec<Part>> {
    prop::collection::vec(part(), 0..12)
}

/// The items the decoder must yield for `parts`: data with CR or CRLF
/// comes back with LF, as SSE cannot carry a CR.
fn expected(parts: &[Part]) -> Vec<SseItem> {
    parts
        .iter()
        .map(|part| match part {
            Part::Frame(frame) => {
                let mut frame = frame.clone();
                frame.data = frame
                    .data
                    .map(|data| data.replace("\r\n", "\n").replace('\r', "\n"));
                SseItem::Frame(frame)
            }
            Part::Comment(text) => SseItem::Comment(text.clone()),
        })
        .collect()
}

/// The id the decoder must report after `parts`: the last non-empty one,
/// unless an empty id reset it later.
fn expected_last_id(parts: &[Part]) -> Option<&str> {
    parts
        .iter()
        .rev()
        .find_map(|part| match part {
            Part::Frame(frame) => frame.id.as_deref(),
            Part::Comment(_) => None,
        })
        .filter(|id| !id.is_empty())
}

/// Encodes with the crate's encoder (CRLF).
fn encode(parts: &[Part]) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Frame(frame) => frame.encode_into(&mut out),
            Part::Comment(text) => encode_comment(text, &mut out),
        }
    }
    out
}

/// A small alternate encoder with the given line ending; `None` picks
/// the line ending per part (LF, CR or CRLF, in turn).
fn encode_with(parts: &[Part], eol: Option<&str>, bom: bool) -> String {
    let mut out = String::new();
    if bom {
        out.push('\u{FEFF}');
    }
    for (index, part) in parts.iter().enumerate() {
        let eol = eol.unwrap_or(["\n", "\r", "\r\n"][index % 3]);
        let mut line = |name: &str, value: &str| {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str(eol);
        };
        match part {
            Part::Frame(frame) => {
                if let Some(event) = &frame.event {
                    line("event", event);
                }
                if let Some(data) = &frame.data {
                    let data = data.replace("\r\n", "\n").replace('\r', "\n");
                    for data_line in data.split('\n') {
                        line("data", data_line);
                    }
                }
                if let Some(id) = &frame.id {
                    line("id", id);
                }
                if let Some(retry) = frame.retry {
                    line("retry", &retry.to_string());
                }
            }
            Part::Comment(text) => line("", text),
        }
        out.push_str(eol);
    }
    out
}

/// Splits `bytes` at the given positions (any order, repeats give empty
/// chunks) and decodes the chunks one by one.
fn decode_chunked(bytes: &[u8], cuts: &[usize]) -> (Vec<SseItem>, Option<String>) {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    let mut start = 0;
    for cut in cuts {
        decoder.push_into(&bytes[start..cut], &mut items);
        start = cut;
    }
    decoder.push_into(&bytes[start..], &mut items);
    decoder.finish_into(&mut items);
    (items, decoder.last_event_id().map(str::to_owned))
}

/// Decodes `bytes` in one push.
fn decode_whole(bytes: &[u8]) -> (Vec<SseItem>, Option<String>) {
    let mut decoder = SseDecoder::new();
    let mut items = decoder.push(bytes);
    items.extend(decoder.finish());
    (items, decoder.last_event_id().map(str::to_owned))
}

/// Decodes `bytes` one byte at a time, with an empty chunk after each.
fn decode_bytewise(bytes: &[u8]) -> Vec<SseItem> {
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    for byte in bytes {
        items.extend(decoder.push(std::slice::from_ref(byte)));
        items.extend(decoder.push(&[]));
    }
    items.extend(decoder.finish());
    items
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..40)
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(parts in parts()) {
        let wire = encode(&parts);
        let (items, last_id) = decode_whole(wire.as_bytes());
        prop_assert_eq!(items, expected(&parts));
        prop_assert_eq!(last_id.as_deref(), expected_last_id(&parts));
    }

    #[test]
    fn any_chunking_decodes_the_same(parts in parts(), cuts in cuts()) {
        let wire = encode(&parts);
        let whole = decode_whole(wire.as_bytes());
        let chunked = decode_chunked(wire.as_bytes(), &cuts);
        prop_assert_eq!(&chunked, &whole);
        prop_assert_eq!(decode_bytewise(wire.as_bytes()), whole.0);
    }

    #[test]
    fn lf_cr_and_mixed_line_endings_decode_the_same(
        parts in parts(),
        cuts in cuts(),
        eol in prop::sample::select(vec![Some("\n"), Some("\r"), Some("\r\n"), None]),
        bom in any::<bool>(),
    ) {
        let wire = encode_with(&parts, eol, bom);
        let expected_items = expected(&parts);
        let expected_id = expected_last_id(&parts).map(str::to_owned);
        let whole = decode_whole(wire.as_bytes());
        prop_assert_eq!(&whole.0, &expected_items);
        prop_assert_eq!(&whole.1, &expected_id);
        let chunked = decode_chunked(wire.as_bytes(), &cuts);
        prop_assert_eq!(&chunked.0, &expected_items);
        prop_assert_eq!(&chunked.1, &expected_id);
        prop_assert_eq!(decode_bytewise(wire.as_bytes()), expected_items);
    }

    #[test]
    fn line_breaks_in_event_and_id_never_break_framing(
        event in data_text(),
        data in prop::option::of(data_text()),
        id in prop::option::of(data_text()),
        next in frame(),
    ) {
        // Whatever the event name and id, the frame stays one frame and the
        // next frame is unaffected.
        let frame = SseFrame { event: Some(event.clone()), data: data.clone(), id: id.clone(), retry: None };
        let mut wire = frame.encode();
        next.encode_into(&mut wire);
        let clean = |text: &str, nul: bool| -> String {
            text.chars()
                .map(|c| if c == '\r' || c == '\n' || (nul && c == '\0') { ' ' } else { c })
                .collect()
        };
        let event = Some(clean(&event, false)).filter(|e| !e.is_empty());
        let mut items = Vec::new();
        if event.is_some() || data.is_some() {
            items.push(SseItem::Frame(SseFrame {
                event,
                data: data.map(|d| d.replace("\r\n", "\n").replace('\r', "\n")),
                id: id.map(|id| clean(&id, true)),
                retry: None,
            }));
        }
        items.extend(expected(&[Part::Frame(next)]));
        prop_assert_eq!(SseDecoder::decode_all(wire.as_bytes()), items);
    }
}
