//! A stream that never ends its line, or never ends its event, must not make the decoder hold
//! all of it: what the decoder keeps is bounded by its event size limit, whatever the server
//! sends.
//!
//! Measured as the process's peak resident memory (`VmHWM`), so this file holds one test only:
//! another test running beside it would move the peak.

#![cfg(target_os = "linux")]

use errand_protocol::sse::{DEFAULT_MAX_EVENT_SIZE, SseDecoder, SseFrame, SseItem};

const MIB: usize = 1024 * 1024;

/// The process's peak resident memory so far, in bytes.
fn peak_resident() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|number| number.trim().parse::<usize>().ok())
        .expect("a VmHWM line");
    kib * 1024
}

/// Feeds `chunk` `times` times, then an empty line and one small event, and answers what came
/// out of the small event and how much the peak resident memory grew meanwhile.
fn feed(decoder: &mut SseDecoder, chunk: &[u8], times: usize) -> (Vec<SseItem>, usize) {
    let before = peak_resident();
    let mut items = Vec::new();
    for _ in 0..times {
        items.extend(decoder.push(chunk));
    }
    let grown = peak_resident().saturating_sub(before);
    items.extend(decoder.push(b"\n\nevent: after\ndata: ok\n\n"));
    (items, grown)
}

#[test]
fn endless_lines_and_endless_events_are_held_to_the_limit() {
    // Three times the limit: a decoder that keeps everything grows by all of it.
    let total = 3 * DEFAULT_MAX_EVENT_SIZE;
    let bound = DEFAULT_MAX_EVENT_SIZE * 2;
    let after = SseItem::Frame(SseFrame::new("after", "ok"));

    // One line that never ends.
    let mut decoder = SseDecoder::new();
    assert!(decoder.push(b"event: big\ndata: ").is_empty());
    let chunk = vec![b'x'; MIB];
    let (items, grown) = feed(&mut decoder, &chunk, total / MIB);
    assert!(
        grown < bound,
        "an endless line grew the peak by {} MiB",
        grown / MIB
    );
    // The oversized event is dropped whole; the stream goes on.
    assert_eq!(items, std::slice::from_ref(&after));

    // One event whose short `data:` lines never end in an empty line.
    let mut decoder = SseDecoder::new();
    let lines =
        b"data: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789a\n".repeat(MIB / 64);
    let (items, grown) = feed(&mut decoder, &lines, total / lines.len());
    assert!(
        grown < bound,
        "an endless event grew the peak by {} MiB",
        grown / MIB
    );
    assert_eq!(items, [after]);
}
