//! The framing's cases: the exact bytes written, every line ending, chunk splits, the size
//! limit, BOMs, ids, retries and the end of a stream.

use super::*;

fn frame(event: Option<&str>, data: Option<&str>, id: Option<&str>) -> SseItem {
    SseItem::Frame(SseFrame {
        event: event.map(str::to_owned),
        data: data.map(str::to_owned),
        id: id.map(str::to_owned),
        retry: None,
    })
}

fn comment(text: &str) -> SseItem {
    SseItem::Comment(text.to_owned())
}

fn decode(input: &[u8]) -> Vec<SseItem> {
    SseDecoder::decode_all(input)
}

/// Decodes `input` one byte per chunk, with empty chunks in between.
fn decode_bytewise(input: &[u8]) -> Vec<SseItem> {
    let mut decoder = SseDecoder::new();
    let mut out = Vec::new();
    for byte in input {
        decoder.push_into(std::slice::from_ref(byte), &mut out);
        decoder.push_into(&[], &mut out);
    }
    decoder.finish_into(&mut out);
    out
}

#[test]
fn encodes_exact_server_framing() {
    let f =
        SseFrame::new("metadata", r#"{"run_id":"01a2","attempt":1}"#).with_id("1795460430449-0");
    assert_eq!(
        f.encode(),
        "event: metadata\r\ndata: {\"run_id\":\"01a2\",\"attempt\":1}\r\nid: 1795460430449-0\r\n\r\n"
    );
    let f = SseFrame::new("values", "{}");
    assert_eq!(f.encode(), "event: values\r\ndata: {}\r\n\r\n");
    let f = SseFrame::new("a", "x").with_id("7").with_retry(1500);
    assert_eq!(
        f.encode(),
        "event: a\r\ndata: x\r\nid: 7\r\nretry: 1500\r\n\r\n"
    );
}

#[test]
fn encode_into_appends() {
    let mut out = String::from(HEARTBEAT);
    SseFrame::new("end", "null").encode_into(&mut out);
    assert_eq!(out, ": heartbeat\r\n\r\nevent: end\r\ndata: null\r\n\r\n");
}

#[test]
fn encodes_multiline_data_one_line_each() {
    let f = SseFrame::new("m", "a\nb\r\nc\rd\n");
    assert_eq!(
        f.encode(),
        "event: m\r\ndata: a\r\ndata: b\r\ndata: c\r\ndata: d\r\ndata: \r\n\r\n"
    );
    assert_eq!(
        decode(f.encode().as_bytes()),
        vec![frame(Some("m"), Some("a\nb\nc\nd\n"), None)]
    );
}

#[test]
fn empty_data_and_no_data_are_distinct() {
    let empty = SseFrame::new("e", "");
    assert_eq!(empty.encode(), "event: e\r\ndata: \r\n\r\n");
    assert_eq!(
        decode(empty.encode().as_bytes()),
        vec![SseItem::Frame(empty)]
    );

    let none = SseFrame {
        event: Some("e".into()),
        ..SseFrame::default()
    };
    assert_eq!(none.encode(), "event: e\r\n\r\n");
    assert_eq!(decode(none.encode().as_bytes()), vec![SseItem::Frame(none)]);

    let data_only = SseFrame {
        data: Some(String::new()),
        ..SseFrame::default()
    };
    assert_eq!(data_only.encode(), "data: \r\n\r\n");
    assert_eq!(
        decode(data_only.encode().as_bytes()),
        vec![SseItem::Frame(data_only)]
    );
    // `data:` without the space is the same.
    assert_eq!(decode(b"data:\n\n"), vec![frame(None, Some(""), None)]);
    assert_eq!(decode(b"data\n\n"), vec![frame(None, Some(""), None)]);
}

#[test]
fn line_breaks_in_event_and_id_become_spaces() {
    let f = SseFrame::new("a\r\nb\nc\r", "x").with_id("1\n2\0");
    assert_eq!(f.encode(), "event: a  b c \r\ndata: x\r\nid: 1 2 \r\n\r\n");
    assert_eq!(
        decode(f.encode().as_bytes()),
        vec![frame(Some("a  b c "), Some("x"), Some("1 2 "))]
    );
}

#[test]
fn empty_event_name_is_left_out() {
    let f = SseFrame::new("", "x");
    assert_eq!(f.encode(), "data: x\r\n\r\n");
    assert_eq!(
        decode(f.encode().as_bytes()),
        vec![frame(None, Some("x"), None)]
    );
    // An `event:` line with an empty value resets the name.
    assert_eq!(
        decode(b"event: a\nevent:\ndata: x\n\n"),
        vec![frame(None, Some("x"), None)]
    );
    assert_eq!(decode(b"event:\n\n"), vec![]);
}

#[test]
fn leading_spaces_beyond_one_are_kept() {
    let f = SseFrame::new(" ev ", "  two").with_id(" i");
    assert_eq!(decode(f.encode().as_bytes()), vec![SseItem::Frame(f)]);
    assert_eq!(decode(b"data:x\n\n"), vec![frame(None, Some("x"), None)]);
    assert_eq!(
        decode(b"data:  x \n\n"),
        vec![frame(None, Some(" x "), None)]
    );
    // Only the first colon separates name and value.
    assert_eq!(
        decode(b"data: a:b\n\n"),
        vec![frame(None, Some("a:b"), None)]
    );
}

#[test]
fn comments_and_heartbeats() {
    assert_eq!(decode(HEARTBEAT.as_bytes()), vec![comment("heartbeat")]);
    let mut out = String::new();
    encode_comment("hello", &mut out);
    assert_eq!(out, ": hello\r\n\r\n");
    encode_comment("a\nb", &mut out);
    assert_eq!(out, ": hello\r\n\r\n: a\r\n: b\r\n\r\n");
    assert_eq!(
        decode(out.as_bytes()),
        vec![comment("hello"), comment("a"), comment("b")]
    );
    assert_eq!(
        decode(b":\n:x\n:  y\n"),
        vec![comment(""), comment("x"), comment(" y")]
    );
    // A comment inside an event does not end it.
    assert_eq!(
        decode(b"event: e\n: hb\ndata: d\n\n"),
        vec![comment("hb"), frame(Some("e"), Some("d"), None)]
    );
}

#[test]
fn lf_cr_and_crlf_line_endings() {
    let expected = vec![
        frame(Some("a"), Some("1\n2"), Some("x")),
        comment("c"),
        frame(None, Some("3"), None),
    ];
    for eol in ["\n", "\r", "\r\n"] {
        let text = [
            "event: a", "data: 1", "data: 2", "id: x", "", ": c", "data: 3", "",
        ]
        .map(|line| format!("{line}{eol}"))
        .concat();
        assert_eq!(decode(text.as_bytes()), expected, "eol {eol:?}");
        assert_eq!(decode_bytewise(text.as_bytes()), expected, "eol {eol:?}");
    }
    // Mixed in one stream.
    assert_eq!(
        decode(b"event: a\rdata: 1\r\ndata: 2\nid: x\r\r\n: c\ndata: 3\r\n\r"),
        expected
    );
}

#[test]
fn multiple_data_lines_are_joined() {
    assert_eq!(
        decode(b"data: a\ndata:\ndata: b\n\n"),
        vec![frame(None, Some("a\n\nb"), None)]
    );
}

#[test]
fn cr_lf_split_between_chunks_is_one_line_break() {
    let mut decoder = SseDecoder::new();
    assert_eq!(decoder.push(b"event: a\r"), vec![]);
    assert_eq!(decoder.push(b"\ndata: 1\r"), vec![]);
    // The LF here completes the CRLF pair, it is not an empty line.
    assert_eq!(decoder.push(b"\n"), vec![]);
    assert_eq!(decoder.push(b""), vec![]);
    assert_eq!(
        decoder.push(b"data: 2\r\n\r"),
        vec![frame(Some("a"), Some("1\n2"), None)]
    );
    assert_eq!(decoder.push(b""), vec![]);
    assert_eq!(decoder.push(b"\n"), vec![]);
    assert_eq!(
        decoder.push(b"data: 3\n\n"),
        vec![frame(None, Some("3"), None)]
    );
    assert_eq!(decoder.finish(), vec![]);
}

/// Decodes `input` whole and one byte at a time with `max` as the limit,
/// checks both agree, and answers the items and the count of drops.
fn decode_limited(input: &[u8], max: usize) -> (Vec<SseItem>, u64, Option<String>) {
    let mut whole = SseDecoder::with_max_event_size(max);
    let mut items = whole.push(input);
    whole.finish_into(&mut items);
    let mut bytewise = SseDecoder::with_max_event_size(max);
    let mut one_by_one = Vec::new();
    for byte in input {
        bytewise.push_into(std::slice::from_ref(byte), &mut one_by_one);
    }
    bytewise.finish_into(&mut one_by_one);
    assert_eq!(items, one_by_one, "whole and bytewise differ");
    assert_eq!(whole.oversized_events(), bytewise.oversized_events());
    assert_eq!(whole.last_event_id(), bytewise.last_event_id());
    let last_id = whole.last_event_id().map(str::to_owned);
    (items, whole.oversized_events(), last_id)
}

#[test]
fn the_default_limit_applies_to_new_decoders() {
    assert_eq!(SseDecoder::new().max_event_size(), DEFAULT_MAX_EVENT_SIZE);
    assert_eq!(
        SseDecoder::default().max_event_size(),
        DEFAULT_MAX_EVENT_SIZE
    );
    assert_eq!(SseDecoder::new().oversized_events(), 0);
}

#[test]
fn a_line_over_the_limit_drops_its_event_and_only_it() {
    // `data: 0123456789` is 16 bytes: at a limit of 16 it is kept.
    let (items, dropped, _) = decode_limited(b"data: 0123456789\n\n", 16);
    assert_eq!(items, vec![frame(None, Some("0123456789"), None)]);
    assert_eq!(dropped, 0);
    // One byte more and the whole event goes, with its id and the lines
    // after the long one; a comment before it was already yielded. The
    // events around it are untouched.
    let input = b"data: a\nid: 1\n\nevent: e\n: c\ndata: 0123456789X\n: d\nid: 2\n\ndata: b\n\n";
    let (items, dropped, last_id) = decode_limited(input, 16);
    assert_eq!(
        items,
        vec![
            frame(None, Some("a"), Some("1")),
            comment("c"),
            frame(None, Some("b"), None)
        ]
    );
    assert_eq!(dropped, 1);
    assert_eq!(last_id.as_deref(), Some("1"));
    // A long comment on its own is dropped too, and counted.
    let (items, dropped, _) = decode_limited(b": 0123456789abcdefg\ndata: x\n\n", 16);
    assert_eq!(items, vec![]);
    assert_eq!(dropped, 1);
}

#[test]
fn an_event_over_the_limit_in_short_lines_is_dropped() {
    // Name, data and id together: 1 + 10 + 1 = 12 bytes fit in 16.
    let input = b"event: e\ndata: 0123456789\nid: 9\n\n";
    let (items, dropped, _) = decode_limited(input, 16);
    assert_eq!(items, vec![frame(Some("e"), Some("0123456789"), Some("9"))]);
    assert_eq!(dropped, 0);
    // A second data line makes 1 + 10 + 1 + 10 = 22: each line fits, the
    // event does not.
    let input = b"event: e\ndata: 0123456789\ndata: 0123456789\nid: 9\n\ndata: b\n\n";
    let (items, dropped, last_id) = decode_limited(input, 16);
    assert_eq!(items, vec![frame(None, Some("b"), None)]);
    assert_eq!(dropped, 1);
    assert_eq!(last_id, None);
    // Many data lines, each short, never ended by an empty line.
    let endless = b"data: 0123456789\n".repeat(100);
    let (items, dropped, _) = decode_limited(&endless, 64);
    assert_eq!(items, vec![]);
    assert_eq!(dropped, 1);
}

#[test]
fn a_line_dropped_mid_chunk_skips_to_its_line_break() {
    let mut decoder = SseDecoder::with_max_event_size(8);
    assert_eq!(decoder.push(b"data: 0123"), vec![]);
    // Over the limit before its line break: dropped, the rest is skipped.
    assert_eq!(decoder.push(b"456789"), vec![]);
    assert_eq!(decoder.push(b"data: not a field\r"), vec![]);
    // The LF of the CRLF pair, then the empty line that ends the event.
    assert_eq!(decoder.push(b"\n\r\n"), vec![]);
    assert_eq!(
        decoder.push(b"data: ok\n\n"),
        vec![frame(None, Some("ok"), None)]
    );
    assert_eq!(decoder.oversized_events(), 1);
    assert!(
        decoder.carry_capacity() <= 8,
        "{}",
        decoder.carry_capacity()
    );
}

#[test]
fn cr_cr_is_two_line_breaks() {
    let mut decoder = SseDecoder::new();
    assert_eq!(decoder.push(b"data: 1\r"), vec![]);
    assert_eq!(decoder.push(b"\r"), vec![frame(None, Some("1"), None)]);
}

#[test]
fn bom_is_skipped_once() {
    assert_eq!(
        decode(b"\xEF\xBB\xBFdata: x\n\n"),
        vec![frame(None, Some("x"), None)]
    );
    assert_eq!(
        decode_bytewise(b"\xEF\xBB\xBFdata: x\n\n"),
        vec![frame(None, Some("x"), None)]
    );
    assert_eq!(decode(b"\xEF\xBB\xBF\n: c\n"), vec![comment("c")]);
    // A second BOM is part of the field name, an unknown field.
    assert_eq!(decode(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"), vec![]);
    // Not at the start of the stream: not skipped.
    assert_eq!(decode(b"\n\xEF\xBB\xBFdata: x\n\n"), vec![]);
    // A lone BOM is nothing.
    assert_eq!(decode(b"\xEF\xBB\xBF"), vec![]);
}

#[test]
fn id_updates_without_dispatch() {
    let mut decoder = SseDecoder::new();
    assert_eq!(decoder.last_event_id(), None);
    assert_eq!(decoder.push(b"id: 5\n\n"), vec![]);
    assert_eq!(decoder.last_event_id(), Some("5"));
    // An event without an id keeps the last id but has none itself.
    assert_eq!(
        decoder.push(b"data: x\n\n"),
        vec![frame(None, Some("x"), None)]
    );
    assert_eq!(decoder.last_event_id(), Some("5"));
    assert_eq!(
        decoder.push(b"data: y\nid: 6\n\n"),
        vec![frame(None, Some("y"), Some("6"))]
    );
    assert_eq!(decoder.last_event_id(), Some("6"));
    // The id is only committed by the empty line.
    assert_eq!(decoder.push(b"id: 7\n"), vec![]);
    assert_eq!(decoder.last_event_id(), Some("6"));
    assert_eq!(decoder.push(b"\n"), vec![]);
    assert_eq!(decoder.last_event_id(), Some("7"));
    // An id with NUL is ignored.
    assert_eq!(
        decoder.push(b"data: z\nid: 8\0\n\n"),
        vec![frame(None, Some("z"), None)]
    );
    assert_eq!(decoder.last_event_id(), Some("7"));
    // An empty id resets it.
    assert_eq!(
        decoder.push(b"data: w\nid\n\n"),
        vec![frame(None, Some("w"), Some(""))]
    );
    assert_eq!(decoder.last_event_id(), None);
}

#[test]
fn retry_must_be_digits() {
    let mut decoder = SseDecoder::new();
    assert_eq!(decoder.push(b"retry: 1000\n\n"), vec![]);
    assert_eq!(decoder.retry(), Some(1000));
    for bad in [
        &b"retry: 10a\n"[..],
        b"retry: -5\n",
        b"retry: +5\n",
        b"retry:\n",
        b"retry:  5\n",
        b"retry: 99999999999999999999999\n",
    ] {
        assert_eq!(decoder.push(bad), vec![]);
        assert_eq!(decoder.retry(), Some(1000), "{bad:?}");
    }
    assert_eq!(
        decoder.push(b"\ndata: x\nretry: 20\n\n"),
        vec![SseItem::Frame(SseFrame {
            data: Some("x".into()),
            retry: Some(20),
            ..SseFrame::default()
        })]
    );
    assert_eq!(decoder.retry(), Some(20));
}

#[test]
fn unknown_fields_ignored() {
    assert_eq!(
        decode(b"foo: bar\nevent: e\nEvent: f\ndata : x\nDATA: y\ndata: z\n\n"),
        vec![frame(Some("e"), Some("z"), None)]
    );
    assert_eq!(decode(b"foo: bar\n\n"), vec![]);
}

#[test]
fn line_without_colon_is_field_with_empty_value() {
    assert_eq!(
        decode(b"data\ndata\n\n"),
        vec![frame(None, Some("\n"), None)]
    );
    assert_eq!(
        decode(b"event\ndata: x\n\n"),
        vec![frame(None, Some("x"), None)]
    );
    assert_eq!(
        decode(b"id\ndata: x\n\n"),
        vec![frame(None, Some("x"), Some(""))]
    );
}

#[test]
fn event_without_data_is_dispatched() {
    assert_eq!(decode(b"event: e\n\n"), vec![frame(Some("e"), None, None)]);
}

#[test]
fn invalid_utf8_is_replaced() {
    assert_eq!(
        decode(b"event: a\xFFb\ndata: \xE2\x82\ndata: ok\xC3\n: \xF0\x9F\n\n"),
        vec![
            comment("\u{FFFD}"),
            frame(Some("a\u{FFFD}b"), Some("\u{FFFD}\nok\u{FFFD}"), None),
        ]
    );
    // A multi-byte character split between chunks is not replaced.
    let mut decoder = SseDecoder::new();
    assert_eq!(decoder.push(b"data: \xE2\x82"), vec![]);
    assert_eq!(
        decoder.push(b"\xAC\n\n"),
        vec![frame(None, Some("\u{20AC}"), None)]
    );
}

#[test]
fn finish_discards_incomplete_event_but_yields_comment() {
    let mut decoder = SseDecoder::new();
    assert_eq!(decoder.push(b"event: e\ndata: x\nid: 9\n"), vec![]);
    assert_eq!(decoder.finish(), vec![]);
    assert_eq!(decoder.last_event_id(), None);

    let mut decoder = SseDecoder::new();
    assert_eq!(
        decoder.push(b"data: x\n\n: bye"),
        vec![frame(None, Some("x"), None)]
    );
    assert_eq!(decoder.finish(), vec![comment("bye")]);

    // A final line without a line break is still processed.
    let mut decoder = SseDecoder::new();
    assert_eq!(decoder.push(b"retry: 5"), vec![]);
    assert_eq!(decoder.finish(), vec![]);
    assert_eq!(decoder.retry(), Some(5));

    // A trailing CR ends the line; finish adds nothing.
    let mut decoder = SseDecoder::new();
    assert_eq!(
        decoder.push(b"data: x\r\r"),
        vec![frame(None, Some("x"), None)]
    );
    assert_eq!(decoder.finish(), vec![]);
}

#[test]
fn finish_resets_for_a_new_stream() {
    let mut decoder = SseDecoder::new();
    assert_eq!(
        decoder.push(b"id: 3\n\nretry: 7\n\ndata: partial\r"),
        vec![]
    );
    assert_eq!(decoder.finish(), vec![]);
    assert_eq!(decoder.last_event_id(), Some("3"));
    assert_eq!(decoder.retry(), Some(7));
    // The pending CR is forgotten: this LF is an empty line, and the
    // partial event is gone. A BOM is skipped again.
    assert_eq!(decoder.push(b"\n\xEF\xBB\xBFdata: y\n\n"), vec![]);
    assert_eq!(decoder.finish(), vec![]);
    assert_eq!(
        decoder.push(b"\xEF\xBB\xBFdata: y\n\n"),
        vec![frame(None, Some("y"), None)]
    );
}

#[test]
fn find_eol_matches_naive_scan() {
    let naive = |hay: &[u8]| hay.iter().position(|&b| b == b'\r' || b == b'\n');
    let mut hay = vec![b'a'; 40];
    assert_eq!(find_eol(&hay), None);
    for at in 0..hay.len() {
        for eol in [b'\r', b'\n'] {
            hay[at] = eol;
            assert_eq!(find_eol(&hay), naive(&hay));
            assert_eq!(find_eol(&hay[at.min(3)..]), naive(&hay[at.min(3)..]));
            hay[at] = b'a';
        }
    }
    // Bytes that could trip the bit tricks: borrows, high bits, near values.
    let tricky: Vec<u8> = (0..=255u8).cycle().take(600).collect();
    for start in 0..16 {
        assert_eq!(find_eol(&tricky[start..]), naive(&tricky[start..]));
    }
    let noisy = [0x00, 0x01, 0x0B, 0x0C, 0x0E, 0x8A, 0x8D, 0xFF, 0x0D, 0x0A];
    for start in 0..noisy.len() {
        assert_eq!(find_eol(&noisy[start..]), naive(&noisy[start..]));
    }
    assert_eq!(
        find_eol(&[0x00, 0x0B, 0x0C, 0x8D, 0xFF, 0x0E, 0x09, 0x01, 0x0A]),
        Some(8)
    );
}
