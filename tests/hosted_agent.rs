//! A runtime agent hosted by errand-server and driven through the typed client: its messages
//! land in the thread's values in the LangChain wire form, and a second run continues the
//! conversation.

use anyhow::Context;
use errand_client::Client;
use errand_protocol::{
    RunCreate, RunResult, RunStatus, StreamMode, StreamModes, StreamPart, ThreadCreate,
};
use errand_runtime::agent::Agent;
use errand_runtime::model::{ScriptedModel, Turn};
use errand_runtime::tool::FunctionTool;
use errand_server::Server;
use errand_server::storage::SqliteStorage;
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[derive(Deserialize, JsonSchema)]
struct Weather {
    /// The city.
    city: String,
}

#[tokio::test]
async fn a_hosted_agent_writes_langchain_messages_into_the_thread() -> anyhow::Result<()> {
    let model = ScriptedModel::new([
        Turn::tool_call("weather", json!({"city": "Lisbon"})),
        Turn::text("It is sunny in Lisbon."),
        Turn::text("You asked about Lisbon."),
    ]);
    let weather = FunctionTool::new(
        "weather",
        "Today's weather in a city.",
        |args: Weather, _| async move { Ok(format!("sunny in {}", args.city).into()) },
    );
    let agent = Agent::builder(Arc::new(model.clone()))
        .name("forecaster")
        .description("Answers weather questions.")
        .system_prompt("You report the weather.")
        .tool(weather)
        .build()?;
    let server = Server::builder()
        .graph("forecaster", agent)
        .storage(Arc::new(SqliteStorage::in_memory()?))
        .start()
        .await?;
    let client = Client::in_process(server.router())?;

    let assistants = client.assistants().search(&Default::default()).await?;
    let assistant = assistants
        .iter()
        .find(|a| a.graph_id == "forecaster")
        .context("hosted")?;
    assert_eq!(
        assistant.description.as_option().map(String::as_str),
        Some("Answers weather questions.")
    );

    let thread = client.threads().create(&ThreadCreate::default()).await?;
    let input = json!({"messages": [{"role": "user", "content": "Weather in Lisbon?"}]});
    let run = client
        .runs()
        .create(thread.thread_id, &RunCreate::new("forecaster", input))
        .await?;
    let RunResult::Values(values) = client.runs().join(thread.thread_id, run.run_id).await? else {
        anyhow::bail!("the run failed");
    };
    let messages = values["messages"].as_array().context("messages")?;
    let kinds: Vec<_> = messages
        .iter()
        .map(|m| m["type"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(kinds, ["human", "ai", "tool", "ai"]);
    for message in messages {
        assert!(
            message["id"].is_string(),
            "every message has an id: {message}"
        );
        for key in ["content", "additional_kwargs", "response_metadata", "name"] {
            assert!(message.get(key).is_some(), "`{key}` is written: {message}");
        }
    }
    let call = &messages[1]["tool_calls"][0];
    assert_eq!(call["name"], "weather");
    assert_eq!(call["args"], json!({"city": "Lisbon"}));
    assert_eq!(call["type"], "tool_call");
    assert_eq!(messages[2]["tool_call_id"], call["id"]);
    assert_eq!(messages[2]["content"], "sunny in Lisbon");
    assert_eq!(messages[2]["name"], "weather");
    assert_eq!(messages[3]["content"], "It is sunny in Lisbon.");
    assert_eq!(messages[3]["response_metadata"]["model_name"], "scripted");

    let stored = client.threads().get(thread.thread_id).await?;
    assert_eq!(
        stored.values.as_option().map(|v| v["messages"].clone()),
        Some(values["messages"].clone())
    );

    // A second run on the thread sees the history and streams its answer token by token.
    let mut follow_up = RunCreate::new(
        "forecaster",
        json!({"messages": [{"role": "user", "content": "What did I ask?"}]}),
    );
    follow_up.stream_mode = Some(StreamModes::Many(vec![
        StreamMode::Values,
        StreamMode::MessagesTuple,
    ]));
    let mut events = client.runs().stream(thread.thread_id, &follow_up).await?;
    let (mut chunks, mut last_values) = (Vec::new(), None);
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), events.next()).await? {
        match event?.part {
            StreamPart::Messages(chunk) => chunks.push(chunk.0.text().into_owned()),
            StreamPart::Values(values) => last_values = Some(values),
            _ => {}
        }
    }
    assert_eq!(chunks.concat(), "You asked about Lisbon.");
    assert!(chunks.len() > 1, "the answer streams in pieces: {chunks:?}");
    let last_values = last_values.context("values streamed")?;
    assert_eq!(last_values["messages"].as_array().map(Vec::len), Some(6));
    let asked = &model.requests()[2];
    assert_eq!(asked.messages.len(), 5, "the model saw the whole history");
    assert_eq!(asked.system.as_deref(), Some("You report the weather."));

    let runs = client
        .runs()
        .list(thread.thread_id, Default::default())
        .await?;
    assert!(runs.iter().all(|run| run.status == RunStatus::Success));
    server.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

#[tokio::test]
async fn a_failing_model_fails_the_run_with_its_error_kind() -> anyhow::Result<()> {
    let model = ScriptedModel::new([]);
    let agent = Agent::builder(Arc::new(model)).build()?;
    let server = Server::builder()
        .graph("agent", agent)
        .storage(Arc::new(SqliteStorage::in_memory()?))
        .start()
        .await?;
    let client = Client::in_process(server.router())?;
    let thread = client.threads().create(&ThreadCreate::default()).await?;
    let run = client
        .runs()
        .create(
            thread.thread_id,
            &RunCreate::new("agent", json!({"messages": "hi"})),
        )
        .await?;
    let result = client.runs().join(thread.thread_id, run.run_id).await?;
    let RunResult::Error(error) = result else {
        anyhow::bail!("the run should fail: {result:?}");
    };
    assert_eq!(error.error, "ScriptExhausted");
    assert!(error.message.contains("turn 1"), "{}", error.message);
    let run = client.runs().get(thread.thread_id, run.run_id).await?;
    assert_eq!(run.status, RunStatus::Error);
    server.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
