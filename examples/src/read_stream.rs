//! The `read_stream` example: decodes a run's server-sent event stream into typed events and
//! writes one line per event (and per comment, such as a heartbeat).

use anyhow::Context;
use errand::protocol::sse::{SseDecoder, SseItem};
use errand::protocol::{StreamEvent, StreamPart};
use std::io::{Read, Write};

/// Reads the stream from `input` to its end, writing each event's line to `out` as soon as the
/// event is complete (so a live stream piped in shows each event as it comes).
pub fn run(mut input: impl Read, out: &mut impl Write) -> anyhow::Result<()> {
    let mut decoder = SseDecoder::new();
    let mut buffer = [0_u8; 8192];
    loop {
        let read = input.read(&mut buffer).context("reading the stream")?;
        let items = if read == 0 {
            decoder.finish()
        } else {
            decoder.push(&buffer[..read])
        };
        for item in items {
            writeln!(out, "{}", describe(item)?).context("writing the output")?;
        }
        if read == 0 {
            return Ok(());
        }
    }
}

/// One line about an item: `: text` for a comment, `[id] event: summary` for an event.
pub fn describe(item: SseItem) -> anyhow::Result<String> {
    let frame = match item {
        SseItem::Comment(text) => return Ok(format!(": {text}")),
        SseItem::Frame(frame) => frame,
    };
    let event = StreamEvent::from_frame(&frame)?;
    let id = event.id.as_deref().unwrap_or("-");
    let summary = match &event.part {
        StreamPart::Metadata(metadata) => {
            format!("run {} attempt {}", metadata.run_id, metadata.attempt)
        }
        StreamPart::Values(values) => {
            let messages = values["messages"].as_array().map_or(0, Vec::len);
            format!("{messages} messages")
        }
        StreamPart::Messages(chunk) => format!("{}: {:?}", chunk.0.kind, chunk.0.text()),
        StreamPart::MessagesPartial(messages) | StreamPart::MessagesComplete(messages) => messages
            .iter()
            .map(|message| format!("{}: {:?}", message.kind, message.text()))
            .collect::<Vec<_>>()
            .join(", "),
        StreamPart::Error(error) => error.to_string(),
        other => other.data_json()?.unwrap_or_default(),
    };
    Ok(format!("[{id}] {}: {summary}", event.event_name()))
}
