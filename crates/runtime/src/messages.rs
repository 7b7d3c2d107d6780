//! The `messages` state channel and its reducer.

use errand_protocol::{Message, ProtocolError};
use serde_json::Value;
use uuid::Uuid;

/// Merges `new` into `existing` as LangGraph's `add_messages` does: a message whose id is
/// already there replaces it in place, any other is appended, and a message without an id gets
/// a fresh one, so clients can dedupe on ids.
///
/// ```
/// use errand_protocol::Message;
/// use errand_runtime::add_messages;
/// let mut history = vec![Message::human("hi").with_id("1")];
/// add_messages(&mut history, vec![Message::ai("hello"), Message::human("hi!").with_id("1")]);
/// assert_eq!(history.len(), 2);
/// assert_eq!(history[0].text(), "hi!");
/// assert!(history[1].id.is_some());
/// ```
pub fn add_messages(existing: &mut Vec<Message>, new: Vec<Message>) {
    for mut message in new {
        let id = message
            .id
            .get_or_insert_with(|| Uuid::new_v4().to_string())
            .clone();
        match existing
            .iter_mut()
            .find(|old| old.id.as_deref() == Some(id.as_str()))
        {
            Some(old) => *old = message,
            None => existing.push(message),
        }
    }
}

/// Reads the `messages` of a state (or of a run's input): a list of messages in the `type` or
/// role form, a single message, or a bare string (a user message). A missing key is no messages.
pub fn messages_from_value(state: &Value) -> Result<Vec<Message>, ProtocolError> {
    match state.get("messages") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().cloned().map(Message::from_value).collect(),
        Some(Value::String(text)) => Ok(vec![Message::human(text.clone())]),
        Some(single) => Message::from_value(single.clone()).map(|m| vec![m]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_protocol::MessageKind;
    use serde_json::json;

    #[test]
    fn reads_every_form_of_input_messages() {
        let state = json!({"messages": [
            {"role": "user", "content": "one"},
            {"type": "ai", "content": "two", "id": "a"},
            {"role": "tool", "content": "three", "tool_call_id": "c1"}
        ]});
        let messages = messages_from_value(&state).unwrap();
        let kinds: Vec<_> = messages.iter().map(|m| m.kind.clone()).collect();
        assert_eq!(
            kinds,
            [MessageKind::Human, MessageKind::Ai, MessageKind::Tool]
        );
        assert_eq!(messages[2].tool_call_id.as_deref(), Some("c1"));

        let bare = messages_from_value(&json!({"messages": "hello"})).unwrap();
        assert_eq!(bare[0].kind, MessageKind::Human);
        assert!(messages_from_value(&json!({})).unwrap().is_empty());
        assert!(messages_from_value(&json!({"messages": [{"content": "no kind"}]})).is_err());
    }

    #[test]
    fn add_messages_replaces_by_id_and_assigns_ids() {
        let mut history = Vec::new();
        add_messages(&mut history, vec![Message::human("a"), Message::human("b")]);
        assert_eq!(history.len(), 2);
        assert_ne!(history[0].id, history[1].id);
        let first = history[0].id.clone().unwrap();
        add_messages(&mut history, vec![Message::ai("a2").with_id(first.clone())]);
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].text(), "a2");
        assert_eq!(history[0].id.as_deref(), Some(first.as_str()));
    }
}
