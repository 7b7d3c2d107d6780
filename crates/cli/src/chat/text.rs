//! What the chat writes about approvals and tasks, one short line each where it can: the
//! approval question and prompt, the reading of the user's answer, a task's notice.

use super::tasks::{first_line, short};
use errand::middleware::{Action, Approval, ApprovalRequest, TaskEvent, TaskStatus};

/// What an approval request is about, in a sentence.
pub(super) fn describe(request: &ApprovalRequest) -> String {
    let mut text = format!("{} of `{}` task", request.action, request.agent_name);
    if let Some(task) = &request.task_id {
        text.push_str(&format!(" {}", short(&task.to_string())));
    }
    if let Some(words) = &request.text {
        let label = match request.action {
            Action::Update => "new instructions",
            _ => "description",
        };
        text.push_str(&format!("\n  {label}: {}", words.trim()));
    }
    text
}

/// The question the approval prompt asks.
pub(super) fn approval_prompt(request: &ApprovalRequest) -> String {
    let mut prompt = format!(
        "approve {} of `{}` task",
        request.action, request.agent_name
    );
    if let Some(words) = request.text.as_deref().map(first_line) {
        let words: String = if words.chars().count() > 60 {
            words.chars().take(57).chain("...".chars()).collect()
        } else {
            words
        };
        prompt.push_str(&format!(": {words}"));
    } else if let Some(task) = &request.task_id {
        prompt.push_str(&format!(" {}", short(&task.to_string())));
    }
    prompt.push_str("? [y/N] ");
    prompt
}

/// Reads an answer to an approval: y/yes approves; n/no or nothing refuses, with the words
/// after it as the reason. `None` when it is neither.
pub(super) fn parse_approval(line: &str) -> Option<Approval> {
    let line = line.trim();
    let (word, rest) = line
        .split_once(|c: char| c.is_whitespace() || c == ',' || c == ':')
        .unwrap_or((line, ""));
    let reason = rest.trim_start_matches([',', ':']).trim().to_owned();
    match word.to_ascii_lowercase().as_str() {
        "y" | "yes" if reason.is_empty() => Some(Approval::Approve),
        "" | "n" | "no" => Some(Approval::Reject((!reason.is_empty()).then_some(reason))),
        _ => None,
    }
}

/// One line about a task's new status, for the notice printed as it arrives.
pub(super) fn notice_line(event: &TaskEvent) -> String {
    let mut line = format!(
        "[task {} {}] {}",
        short(&event.task_id.to_string()),
        event.agent_name,
        event.status
    );
    let detail = match event.status {
        TaskStatus::Success => event.result.as_deref(),
        TaskStatus::Error | TaskStatus::Timeout => event.error.as_deref(),
        _ => None,
    };
    if let Some(detail) = detail.map(first_line).filter(|d| !d.is_empty()) {
        line.push_str(&format!(": {detail}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_answers_are_read_leniently() {
        assert_eq!(parse_approval("y"), Some(Approval::Approve));
        assert_eq!(parse_approval(" YES "), Some(Approval::Approve));
        assert_eq!(parse_approval(""), Some(Approval::Reject(None)));
        assert_eq!(parse_approval("n"), Some(Approval::Reject(None)));
        assert_eq!(
            parse_approval("no, too expensive"),
            Some(Approval::Reject(Some("too expensive".into())))
        );
        assert_eq!(
            parse_approval("n: not now"),
            Some(Approval::Reject(Some("not now".into())))
        );
        assert_eq!(parse_approval("what is 6 times 7?"), None);
        assert_eq!(parse_approval("yes please do"), None);
    }

    #[test]
    fn prompts_and_notices_are_one_short_line() {
        let request = ApprovalRequest {
            action: Action::Start,
            agent_name: "researcher".into(),
            task_id: None,
            text: Some(format!("{}\nsecond line", "x".repeat(100))),
        };
        let prompt = approval_prompt(&request);
        assert!(prompt.starts_with("approve start of `researcher` task: xxx"));
        assert!(prompt.ends_with("...? [y/N] "));
        assert!(!prompt.contains('\n'));

        let event = TaskEvent {
            task_id: uuid::Uuid::from_u128(0x0195f3c2_aaaa_7000_8000_000000000001),
            agent_name: "echo".into(),
            run_id: uuid::Uuid::from_u128(1),
            status: TaskStatus::Success,
            result: Some("\nfirst\nsecond".into()),
            error: None,
            interrupts: Vec::new(),
        };
        assert_eq!(notice_line(&event), "[task 00000001 echo] success: first");
    }
}
