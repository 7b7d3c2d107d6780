//! Checks of the OpenAPI document as a whole: its references, errors, answers and streams.

use super::*;

fn doc() -> Value {
    document().expect("the document builds")
}

/// Every call of the table is in the document once, and every `$ref` has its component.
#[test]
fn every_reference_resolves() {
    let document = doc();
    let mut operations = 0;
    for item in document["paths"].as_object().expect("paths").values() {
        operations += item.as_object().expect("a path item").len();
    }
    assert_eq!(operations, CALLS.len());
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let target = reference.split('"').next().expect("a ref target");
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a ref outside the components: {target}"));
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "no component {name}"
        );
    }
}

/// Answers are described as errand writes them: a key it always writes is required.
#[test]
fn answers_require_what_errand_always_writes() {
    let document = doc();
    let run_required = &document["components"]["schemas"]["Run"]["required"];
    for key in ["run_id", "metadata", "kwargs", "multitask_strategy"] {
        assert!(
            run_required
                .as_array()
                .expect("Run has required keys")
                .contains(&json!(key)),
            "{key} is not required in Run: {run_required}"
        );
    }
    // A request body keeps its defaults optional.
    let search = &document["components"]["schemas"]["ThreadSearchRequest"];
    assert!(search.get("required").is_none(), "{search}");
    // An answer without a place for unknown keys has none; one with it may have more.
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["SearchItemsResponse"]["additionalProperties"],
        json!(false)
    );
    assert_eq!(schemas["Run"]["additionalProperties"], json!(true));
}

/// Every operation but `/ok` may answer 401, and every error answer has `detail`.
#[test]
fn errors_are_listed_with_their_body() {
    let document = doc();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let responses = &operation["responses"];
            assert_eq!(
                responses.get("401").is_some(),
                path != "/ok",
                "{method} {path}"
            );
            for (status, response) in responses.as_object().expect("responses") {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"],
                        component(ERROR_ANSWER),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    let run_create = &document["paths"]["/threads/{thread_id}/runs"]["post"]["responses"];
    for status in ["400", "404", "409", "413", "422", "503"] {
        assert!(
            run_create.get(status).is_some(),
            "run create lacks {status}"
        );
    }
    assert_eq!(
        document["components"]["schemas"][ERROR_ANSWER]["required"],
        json!(["detail"])
    );
    let store_get = &document["paths"]["/store/items"]["get"];
    assert!(store_get["responses"].get("400").is_some());
    assert!(store_get["responses"].get("413").is_none());
}

/// `after_seconds` is bounded by the protocol's constant.
#[test]
fn after_seconds_is_bounded() {
    let document = doc();
    let after = &document["components"]["schemas"]["RunCreate"]["properties"]["after_seconds"];
    assert_eq!(after["minimum"], json!(0));
    assert_eq!(
        after["maximum"],
        json!(errand_protocol::MAX_AFTER_SECONDS),
        "{after}"
    );
}

/// Streams are described event by event, each event's data by its schema.
#[test]
fn streams_describe_their_events() {
    let document = doc();
    let stream = &document["paths"]["/threads/{thread_id}/runs/stream"]["post"]["responses"]["200"]
        ["content"]["text/event-stream"]["schema"];
    assert_eq!(stream, &component(events::EVENT_COMPONENT));
    let event = &document["components"]["schemas"][events::EVENT_COMPONENT];
    let kinds = event["oneOf"].as_array().expect("one schema per event");
    assert!(kinds.len() >= 10, "{event}");
    let metadata = &document["components"]["schemas"]["MetadataEvent"];
    assert_eq!(
        metadata["properties"]["data"]["contentSchema"],
        component("RunMetadata")
    );
    assert_eq!(
        metadata["properties"]["data"]["contentMediaType"],
        "application/json"
    );
}
