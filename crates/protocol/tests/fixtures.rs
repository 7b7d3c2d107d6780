//! Every fixture captured from the official Python server (see `fixtures/README.md`) parses
//! into its typed value and serialises back to the same JSON: key order aside, with no key
//! added or dropped and every `null` kept. SSE captures decode, type and re-encode byte for byte.

use errand_protocol::sse::{SseDecoder, SseItem};
use errand_protocol::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[derive(Debug, serde::Deserialize)]
struct Entry {
    file: String,
    #[serde(rename = "type")]
    kind: String,
}

fn index() -> Vec<Entry> {
    let text = std::fs::read_to_string(fixtures_dir().join("index.json")).expect("index.json");
    serde_json::from_str(&text).expect("index.json is a list of {file, type}")
}

/// Parses `original` as `T`, writes it back, and describes any difference.
fn roundtrip<T: Serialize + DeserializeOwned>(original: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(original.clone()).map_err(|e| format!("parse: {e}"))?;
    let written = serde_json::to_value(&typed).map_err(|e| format!("write: {e}"))?;
    if &written == original {
        Ok(written)
    } else {
        Err(format!(
            "differs: {}",
            first_difference(original, &written, "$")
        ))
    }
}

/// The path and values of the first place two JSON documents differ.
fn first_difference(expected: &Value, actual: &Value, path: &str) -> String {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                match a.get(key) {
                    None => return format!("{path}.{key} was dropped"),
                    Some(other) if other != value => {
                        return first_difference(value, other, &format!("{path}.{key}"));
                    }
                    Some(_) => {}
                }
            }
            match a.keys().find(|key| !e.contains_key(*key)) {
                Some(key) => format!("{path}.{key} was added"),
                None => format!("{path}: objects differ"),
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]")))
            .unwrap_or_else(|| format!("{path}: arrays differ")),
        _ => format!("{path}: expected {expected}, got {actual}"),
    }
}

/// Messages found anywhere in a document: objects with a LangChain message `type`.
fn collect_messages<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(object) => {
            let is_message = object.contains_key("content")
                && matches!(
                    object.get("type").and_then(Value::as_str),
                    Some("human" | "ai" | "tool" | "system" | "AIMessageChunk")
                );
            if is_message {
                out.push(value);
            }
            object.values().for_each(|v| collect_messages(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_messages(v, out)),
        _ => {}
    }
}

fn check_json(entry: &Entry, original: &Value) -> Result<usize, String> {
    match entry.kind.as_str() {
        "Thread" => roundtrip::<Thread>(original),
        "ThreadList" => roundtrip::<Vec<Thread>>(original),
        "Run" => roundtrip::<Run>(original),
        "RunList" => roundtrip::<Vec<Run>>(original),
        "ThreadState" => roundtrip::<ThreadState>(original),
        "ThreadStateList" => roundtrip::<Vec<ThreadState>>(original),
        "ThreadStateUpdateResponse" => roundtrip::<ThreadStateUpdateResponse>(original),
        "Assistant" => roundtrip::<Assistant>(original),
        "AssistantList" => roundtrip::<Vec<Assistant>>(original),
        "StoreItem" => roundtrip::<StoreItem>(original),
        "StoreItemOrNull" => roundtrip::<Option<StoreItem>>(original),
        "SearchItemsResponse" => roundtrip::<SearchItemsResponse>(original),
        "ListNamespacesResponse" => roundtrip::<ListNamespacesResponse>(original),
        "ErrorBody" => roundtrip::<ErrorBody>(original),
        "RunResult" => roundtrip::<RunResult>(original),
        "Info" => roundtrip::<ServerInfo>(original),
        "Ok" => roundtrip::<Health>(original),
        "RunCreate" => roundtrip::<RunCreate>(original),
        "ThreadCreate" => roundtrip::<ThreadCreate>(original),
        "ThreadPatch" => roundtrip::<ThreadPatch>(original),
        "ThreadSearchRequest" => roundtrip::<ThreadSearchRequest>(original),
        "HistoryRequest" => roundtrip::<HistoryRequest>(original),
        "ThreadStateUpdate" => roundtrip::<ThreadStateUpdate>(original),
        "AssistantSearchRequest" => roundtrip::<AssistantSearchRequest>(original),
        "StorePutRequest" => roundtrip::<StorePutRequest>(original),
        "StoreSearchRequest" => roundtrip::<StoreSearchRequest>(original),
        "StoreListNamespacesRequest" => roundtrip::<StoreListNamespacesRequest>(original),
        "StoreDeleteRequest" => roundtrip::<StoreDeleteRequest>(original),
        "RunCancelManyRequest" => roundtrip::<RunCancelManyRequest>(original),
        other => Err(format!("unknown fixture type {other}")),
    }?;
    let mut messages = Vec::new();
    collect_messages(original, &mut messages);
    for message in &messages {
        roundtrip::<Message>(message).map_err(|e| format!("message {message}: {e}"))?;
    }
    Ok(messages.len())
}

/// Decodes a capture, types every event, and checks that re-encoding the typed events gives
/// the captured bytes back.
fn check_sse(bytes: &[u8]) -> Result<usize, String> {
    let items = SseDecoder::decode_all(bytes);
    let mut rewritten = String::new();
    let mut events = 0;
    for item in &items {
        match item {
            SseItem::Comment(text) => errand_protocol::sse::encode_comment(text, &mut rewritten),
            SseItem::Frame(frame) => {
                let event = StreamEvent::from_frame(frame).map_err(|e| e.to_string())?;
                let again = event.to_frame().map_err(|e| e.to_string())?;
                // The data is compared as JSON: Python and Rust may spell a number differently.
                let same_data = match (&frame.data, &again.data) {
                    (Some(a), Some(b)) => {
                        serde_json::from_str::<Value>(a).ok()
                            == serde_json::from_str::<Value>(b).ok()
                    }
                    (a, b) => a == b,
                };
                if !same_data || frame.event != again.event || frame.id != again.id {
                    return Err(format!("event changed:\n{frame:?}\n{again:?}"));
                }
                // Messages inside any event (values, updates, chunks) also parse as typed messages.
                if let Some(data) = &frame.data {
                    let data: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
                    let mut messages = Vec::new();
                    collect_messages(&data, &mut messages);
                    for message in messages {
                        roundtrip::<Message>(message).map_err(|e| format!("message: {e}"))?;
                    }
                }
                frame.encode_into(&mut rewritten);
                events += 1;
            }
        }
    }
    if rewritten.as_bytes() != bytes {
        return Err("re-encoding the decoded frames does not give the captured bytes".into());
    }
    // The same bytes split into one-byte chunks decode to the same items.
    let mut decoder = SseDecoder::new();
    let mut chunked = Vec::new();
    for byte in bytes.chunks(1) {
        chunked.extend(decoder.push(byte));
    }
    chunked.extend(decoder.finish());
    if chunked != items {
        return Err("one-byte chunks decode differently".into());
    }
    Ok(events)
}

#[test]
fn every_captured_fixture_roundtrips() {
    let entries = index();
    assert!(
        entries.len() > 20,
        "the index lists only {} fixtures",
        entries.len()
    );
    let mut failures = String::new();
    let mut messages = 0;
    let mut events = 0;
    for entry in &entries {
        let path = fixtures_dir().join(&entry.file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = if entry.kind == "Sse" {
            check_sse(&bytes).map(|n| events += n)
        } else {
            serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|original| check_json(entry, &original))
                .map(|n| messages += n)
        };
        if let Err(error) = outcome {
            let _ = writeln!(failures, "{} ({}): {error}", entry.file, entry.kind);
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures that do not round-trip:\n{failures}"
    );
    assert!(messages > 10, "only {messages} messages were checked");
    assert!(events > 10, "only {events} stream events were checked");
}

#[test]
fn every_fixture_file_is_in_the_index() {
    let entries = index();
    let mut missing = Vec::new();
    for kind in ["responses", "errors", "requests", "sse"] {
        let Ok(dir) = std::fs::read_dir(fixtures_dir().join(kind)) else {
            continue;
        };
        for file in dir {
            let name = format!("{kind}/{}", file.unwrap().file_name().to_string_lossy());
            if !entries.iter().any(|entry| entry.file == name) {
                missing.push(name);
            }
        }
    }
    assert!(missing.is_empty(), "not in index.json: {missing:?}");
}
