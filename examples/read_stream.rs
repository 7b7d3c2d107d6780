//! Decodes a run's server-sent event stream into typed events and prints one line per event.
//!
//! ```text
//! cargo run -p errand-examples --example read_stream -- crates/protocol/tests/fixtures/sse/values.sse
//! curl -sN -X POST .../threads/$TID/runs/stream -d '...' | cargo run -p errand-examples --example read_stream
//! ```

use anyhow::Context;
use errand::protocol::sse::{SseDecoder, SseItem};
use errand::protocol::{StreamEvent, StreamPart};
use std::io::Read;

fn main() -> anyhow::Result<()> {
    let mut input: Box<dyn Read> = match std::env::args().nth(1) {
        Some(path) => {
            Box::new(std::fs::File::open(&path).with_context(|| format!("opening {path}"))?)
        }
        None => Box::new(std::io::stdin()),
    };
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
            print_item(item)?;
        }
        if read == 0 {
            return Ok(());
        }
    }
}

fn print_item(item: SseItem) -> anyhow::Result<()> {
    let frame = match item {
        SseItem::Comment(text) => {
            println!(": {text}");
            return Ok(());
        }
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
        other => event_data(other)?,
    };
    println!("[{id}] {}: {summary}", event.event_name());
    Ok(())
}

fn event_data(part: &StreamPart) -> anyhow::Result<String> {
    Ok(part.data_json()?.unwrap_or_default())
}
