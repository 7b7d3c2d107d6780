//! What both providers use besides the HTTP plumbing: the environment their keys and base URLs
//! come from, and the one system prompt they send.

use crate::model::ModelRequest;
use errand_protocol::MessageKind;

/// Reads an environment variable; an empty value counts as unset.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The system prompt a provider sends: the request's own, then every system message of the
/// conversation, separated by blank lines. `None` when all of them are empty.
pub(crate) fn system_prompt(request: &ModelRequest) -> Option<String> {
    let messages = request
        .messages
        .iter()
        .filter(|message| message.kind == MessageKind::System)
        .map(|message| message.text().into_owned());
    let parts: Vec<String> = request
        .system
        .iter()
        .cloned()
        .chain(messages)
        .filter(|part| !part.trim().is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_prompt_folds_system_messages() {
        use errand_protocol::Message;
        let mut request = ModelRequest::new(vec![
            Message::system("two"),
            Message::human("hi"),
            Message::system(" "),
        ]);
        assert_eq!(system_prompt(&request).as_deref(), Some("two"));
        request.system = Some("one".into());
        assert_eq!(system_prompt(&request).as_deref(), Some("one\n\ntwo"));
        assert_eq!(system_prompt(&ModelRequest::default()), None);
    }
}
