//! Fuzz target: every request body the server parses, read into its wire type.
//!
//! Inputs are arbitrary bytes, soups of JSON tokens and field names, and valid documents of
//! each body (fields present or not, `null`, wrongly typed, in any order, with unknown keys,
//! deep nesting and huge numbers) written compactly or pretty with LF or CRLF, then mutated:
//! bytes flipped, truncated, spliced with another document, bytes inserted (non-UTF-8, BOMs,
//! quotes), keys duplicated, numbers swapped for huge or tiny ones.
//!
//! For each input, reading it as the body's type
//!
//! - never panics (an error is an answer);
//! - when it succeeds, writes JSON that reads back to an equal value (the round trip);
//! - and that JSON means what the input meant: every key the type does not know is kept as
//!   given (in `extra`), every known key is kept, changed only in spelling (a UUID in canonical
//!   form); the only keys that may go are known optional ones whose `null` means "absent", and
//!   the only ones that may appear are defaults (`limit`, `offset`).
//!
//! Each body's fields are listed below, from the type's definition; the list both generates the
//! valid documents and says which keys may be dropped or defaulted. A field added to a type
//! without being listed here is an unknown key to this test, so a `null` for it that the type
//! drops is reported.
//!
//! The number of cases is set for a bounded `cargo test`; `PROPTEST_CASES=100000` fuzzes
//! longer.

mod fuzz_support;

use errand_protocol::*;
use fuzz_support::{
    ByteMutation, byte_mutation, config, json_any, json_object, key, mutate_bytes, number, soup,
    text,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt::Debug;

// ---- the bodies ---------------------------------------------------------------------------

/// What a field holds.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Any JSON, kept as given.
    Any,
    /// A JSON object, kept as given.
    Object,
    /// A list of any JSON.
    List,
    Str,
    Strs,
    /// An object of strings.
    StrMap,
    Bool,
    U32,
    /// A JSON number, kept as given.
    Number,
    Uuid,
    Uuids,
    /// One of these names.
    Enum(&'static [&'static str]),
    /// A stream mode or a list of them.
    Modes,
    /// `"*"` or a list of node names.
    Nodes,
    /// A nested object with fields of its own.
    Struct(&'static Body),
}

/// What an absent or `null` field means.
#[derive(Debug, Clone, Copy)]
enum Presence {
    /// Must be there.
    Required,
    /// May be absent; `null` means absent (`Option<T>`), so it may be dropped.
    Optional,
    /// May be absent; `null` is kept (`Nullable<T>`).
    Nullable,
    /// Absent means this JSON value, which the type writes out.
    Default(&'static str),
}

#[derive(Debug)]
struct Field {
    name: &'static str,
    kind: Kind,
    presence: Presence,
}

#[derive(Debug)]
struct Body {
    fields: &'static [Field],
}

impl Body {
    fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

const fn field(name: &'static str, kind: Kind, presence: Presence) -> Field {
    Field {
        name,
        kind,
        presence,
    }
}

use Kind::*;
use Presence::*;

const SORT_ORDERS: &[&str] = &["asc", "desc"];

const CHECKPOINT: Body = Body {
    fields: &[
        field("checkpoint_id", Str, Optional),
        field("thread_id", Uuid, Optional),
        field("checkpoint_ns", Str, Optional),
        field("checkpoint_map", Object, Nullable),
    ],
};

const COMMAND: Body = Body {
    fields: &[
        field("update", Any, Optional),
        field("resume", Any, Optional),
        field("goto", Any, Optional),
    ],
};

const RUN_CONFIG: Body = Body {
    fields: &[
        field("tags", Strs, Optional),
        field("recursion_limit", U32, Optional),
        field("configurable", Object, Optional),
    ],
};

const TTL: Body = Body {
    fields: &[
        field("strategy", Enum(&["delete", "keep_latest"]), Optional),
        field("ttl", Number, Optional),
    ],
};

const RUN_CREATE: Body = Body {
    fields: &[
        field("assistant_id", Str, Required),
        field("input", Any, Nullable),
        field("command", Struct(&COMMAND), Optional),
        field("config", Struct(&RUN_CONFIG), Optional),
        field("context", Object, Optional),
        field("metadata", Object, Optional),
        field("checkpoint", Struct(&CHECKPOINT), Optional),
        field("checkpoint_id", Str, Optional),
        field("checkpoint_during", Bool, Optional),
        field("durability", Enum(&["sync", "async", "exit"]), Optional),
        field("interrupt_before", Nodes, Optional),
        field("interrupt_after", Nodes, Optional),
        field("feedback_keys", Strs, Optional),
        field("webhook", Str, Optional),
        field(
            "multitask_strategy",
            Enum(&["reject", "interrupt", "rollback", "enqueue"]),
            Optional,
        ),
        field("if_not_exists", Enum(&["create", "reject"]), Optional),
        field("on_disconnect", Enum(&["cancel", "continue"]), Optional),
        field("on_completion", Enum(&["delete", "keep"]), Optional),
        field("after_seconds", Number, Optional),
        field("stream_mode", Modes, Optional),
        field("stream_subgraphs", Bool, Optional),
        field("stream_resumable", Bool, Optional),
        field("langsmith_tracer", Any, Optional),
        field("strict_resume", Bool, Optional),
    ],
};

const THREAD_CREATE: Body = Body {
    fields: &[
        field("thread_id", Uuid, Optional),
        field("metadata", Object, Optional),
        field("if_exists", Enum(&["raise", "do_nothing"]), Optional),
        field("ttl", Struct(&TTL), Optional),
        field("supersteps", List, Optional),
    ],
};

const THREAD_PATCH: Body = Body {
    fields: &[
        field("metadata", Object, Optional),
        field("ttl", Struct(&TTL), Optional),
    ],
};

const THREAD_SEARCH: Body = Body {
    fields: &[
        field("ids", Uuids, Optional),
        field("metadata", Object, Optional),
        field("values", Object, Optional),
        field(
            "status",
            Enum(&["idle", "busy", "interrupted", "error"]),
            Optional,
        ),
        field("limit", U32, Default("10")),
        field("offset", U32, Default("0")),
        field("sort_by", Str, Optional),
        field("sort_order", Enum(SORT_ORDERS), Optional),
        field("select", Strs, Optional),
        field("extract", StrMap, Optional),
    ],
};

const HISTORY: Body = Body {
    fields: &[
        field("limit", U32, Default("10")),
        field("before", Any, Optional),
        field("metadata", Object, Optional),
        field("checkpoint", Struct(&CHECKPOINT), Optional),
    ],
};

const STATE_UPDATE: Body = Body {
    fields: &[
        field("values", Any, Nullable),
        field("as_node", Str, Optional),
        field("checkpoint", Struct(&CHECKPOINT), Optional),
        field("checkpoint_id", Str, Optional),
    ],
};

const ASSISTANT_SEARCH: Body = Body {
    fields: &[
        field("metadata", Object, Optional),
        field("graph_id", Str, Optional),
        field("name", Str, Optional),
        field("limit", U32, Default("10")),
        field("offset", U32, Default("0")),
        field("sort_by", Str, Optional),
        field("sort_order", Enum(SORT_ORDERS), Optional),
        field("select", Strs, Optional),
    ],
};

const CANCEL_MANY: Body = Body {
    fields: &[
        field("thread_id", Uuid, Optional),
        field("run_ids", Uuids, Optional),
        field("status", Enum(&["pending", "running", "all"]), Optional),
    ],
};

const STORE_PUT: Body = Body {
    fields: &[
        field("namespace", Strs, Required),
        field("key", Str, Required),
        field("value", Object, Required),
        field("index", Any, Optional),
        field("ttl", Number, Optional),
    ],
};

const STORE_DELETE: Body = Body {
    fields: &[
        field("namespace", Strs, Default("[]")),
        field("key", Str, Required),
    ],
};

const STORE_SEARCH: Body = Body {
    fields: &[
        field("namespace_prefix", Strs, Optional),
        field("filter", Object, Optional),
        field("limit", U32, Default("10")),
        field("offset", U32, Default("0")),
        field("query", Str, Optional),
        field("refresh_ttl", Bool, Optional),
    ],
};

const STORE_NAMESPACES: Body = Body {
    fields: &[
        field("prefix", Strs, Optional),
        field("suffix", Strs, Optional),
        field("max_depth", U32, Optional),
        field("limit", U32, Default("100")),
        field("offset", U32, Default("0")),
    ],
};

// ---- what a document means ----------------------------------------------------------------

/// `value` as `body` understands it: unknown keys as given, known ones with `null` for
/// "absent" dropped, defaults filled in, UUIDs in canonical form.
fn meaning(body: &Body, value: &Value) -> Value {
    let Value::Object(object) = value else {
        return value.clone();
    };
    let mut out = Map::new();
    for (key, value) in object {
        let Some(field) = body.field(key) else {
            out.insert(key.clone(), value.clone());
            continue;
        };
        if value.is_null() && matches!(field.presence, Optional) {
            continue;
        }
        out.insert(key.clone(), kind_meaning(field.kind, value));
    }
    for field in body.fields {
        if let Default(text) = field.presence {
            out.entry(field.name)
                .or_insert_with(|| serde_json::from_str(text).expect("a JSON default"));
        }
    }
    Value::Object(out)
}

fn kind_meaning(kind: Kind, value: &Value) -> Value {
    let uuid = |value: &Value| match value.as_str().map(uuid::Uuid::parse_str) {
        Some(Ok(id)) => Value::String(id.to_string()),
        _ => value.clone(),
    };
    match (kind, value) {
        (Struct(body), _) => meaning(body, value),
        (Uuid, _) => uuid(value),
        (Uuids, Value::Array(ids)) => Value::Array(ids.iter().map(uuid).collect()),
        _ => value.clone(),
    }
}

// ---- the property -------------------------------------------------------------------------

/// Checks one input; answers whether it was accepted.
fn check<T>(body: &Body, bytes: &[u8]) -> Result<bool, TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(parsed) = serde_json::from_slice::<T>(bytes) else {
        return Ok(false);
    };
    let shown = String::from_utf8_lossy(bytes);
    let text = serde_json::to_string(&parsed)
        .map_err(|error| TestCaseError::fail(format!("{error} writing {parsed:?}")))?;
    let again: T = serde_json::from_str(&text).map_err(|error| {
        TestCaseError::fail(format!(
            "written form does not read back: {error}\n{text}\nfrom {shown}"
        ))
    })?;
    prop_assert_eq!(&again, &parsed, "changed in a round trip through {}", text);
    let input: Value = serde_json::from_slice(bytes).map_err(|error| {
        TestCaseError::fail(format!("accepted, but not JSON: {error}\n{shown}"))
    })?;
    let written: Value = serde_json::from_str(&text).expect("just written");
    prop_assert_eq!(
        meaning(body, &written),
        meaning(body, &input),
        "the written body means something else\n input: {}\nwritten: {}",
        shown,
        text
    );
    Ok(true)
}

/// Runs `check` on the inputs of `body`, and fails if too few were accepted to say anything
/// about what comes after the syntax check.
fn fuzz<T>(body: &'static Body)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let config = ProptestConfig {
        source_file: Some(file!()),
        ..config(1000)
    };
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let accepted = Cell::new(0u32);
    let outcome = runner.run(&input(body), |bytes| {
        if check::<T>(body, &bytes)? {
            accepted.set(accepted.get() + 1);
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let accepted = accepted.get();
    // A floor well below what each target accepts (a fifth to two fifths of its inputs), so
    // that the random inputs of one run do not fail it: it catches a target that accepts
    // (almost) nothing, whose fuzzing would stop at the syntax check.
    assert!(
        accepted >= cases / 10,
        "only {accepted} of {cases} inputs were accepted"
    );
    eprintln!("accepted {accepted} of {cases}");
}

// ---- inputs -------------------------------------------------------------------------------

/// A UUID in every spelling the parser takes, or something that is not one.
fn uuid_text() -> impl Strategy<Value = Value> {
    (any::<u128>(), 0..6u8).prop_map(|(bits, spelling)| {
        let id = uuid::Uuid::from_u128(bits);
        let text = match spelling {
            0 | 1 => id.to_string(),
            2 => id.to_string().to_uppercase(),
            3 => id.simple().to_string(),
            4 => id.braced().to_string(),
            _ => id.urn().to_string(),
        };
        Value::String(text)
    })
}

fn names(names: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        30 => prop::sample::select(names).prop_map(Value::from),
        1 => prop::sample::select(names).prop_map(|name| Value::from(name.to_uppercase())),
        1 => text().prop_map(Value::String),
    ]
}

const MODES: &[&str] = &[
    "values",
    "updates",
    "messages",
    "messages-tuple",
    "custom",
    "tasks",
    "checkpoints",
    "events",
    "debug",
];

/// A valid value of `kind`, mostly; sometimes a wrong one.
fn value_of(kind: Kind) -> BoxedStrategy<Value> {
    let valid: BoxedStrategy<Value> = match kind {
        Any => json_any().boxed(),
        Object => json_object().boxed(),
        List => vec(json_any(), 0..3).prop_map(Value::Array).boxed(),
        Str => text().prop_map(Value::String).boxed(),
        Strs => vec(text().prop_map(Value::String), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        StrMap => btree_map(key(), text().prop_map(Value::String), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
            .boxed(),
        Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        U32 => prop_oneof![
            30 => any::<u32>().prop_map(Value::from),
            1 => number(),
        ]
        .boxed(),
        Number => number().boxed(),
        Uuid => uuid_text().boxed(),
        Uuids => vec(uuid_text(), 0..3).prop_map(Value::Array).boxed(),
        Enum(choices) => names(choices).boxed(),
        Modes => prop_oneof![names(MODES), vec(names(MODES), 0..4).prop_map(Value::Array),].boxed(),
        Nodes => prop_oneof![
            Just(Value::from("*")),
            vec(text().prop_map(Value::String), 0..3).prop_map(Value::Array),
        ]
        .boxed(),
        Struct(body) => document(body).boxed(),
    };
    prop_oneof![
        40 => valid,
        1 => Just(Value::Null),
        1 => json_any(),
    ]
    .boxed()
}

/// A document of `body`: each field present or not, unknown keys beside them, in any order.
fn document(body: &'static Body) -> impl Strategy<Value = Value> {
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = body
        .fields
        .iter()
        .map(|field| {
            let chance = if matches!(field.presence, Required) {
                0.95
            } else {
                0.4
            };
            prop::option::weighted(chance, value_of(field.kind))
                .prop_map(move |value| value.map(|value| (field.name.to_owned(), value)))
                .boxed()
        })
        .collect();
    let extra = vec((key(), json_any()), 0..3);
    (fields, extra)
        .prop_map(|(fields, extra)| {
            let mut members: Vec<(String, Value)> = fields.into_iter().flatten().collect();
            members.extend(extra);
            members
        })
        .prop_shuffle()
        .prop_map(|members| Value::Object(members.into_iter().collect()))
}

/// How a document is written out.
#[derive(Debug, Clone)]
enum Layout {
    Compact,
    Pretty,
    PrettyCrlf,
    Bom,
}

fn write(value: &Value, layout: &Layout) -> Vec<u8> {
    let compact = serde_json::to_string(value).expect("writes");
    let pretty = || serde_json::to_string_pretty(value).expect("writes");
    match layout {
        Layout::Compact => compact.into_bytes(),
        Layout::Pretty => pretty().into_bytes(),
        Layout::PrettyCrlf => pretty().replace('\n', "\r\n").into_bytes(),
        Layout::Bom => format!("\u{feff}{compact}").into_bytes(),
    }
}

/// A change to a written document.
#[derive(Debug, Clone)]
enum Mutation {
    Bytes(ByteMutation),
    /// The key again, before the closing brace, with another value.
    Duplicate(String, Value),
    /// The first number replaced by this text.
    Number(&'static str),
}

fn mutation(body: &'static Body) -> impl Strategy<Value = Mutation> {
    let names: Vec<&'static str> = body.fields.iter().map(|field| field.name).collect();
    let other = document(body).prop_map(|other| write(&other, &Layout::Compact));
    let inserts = vec![
        &b"\xff"[..],
        b"\xef\xbb\xbf",
        b"\"",
        b"\\",
        b"\\u0000",
        b"\\ud800",
        b",",
        b"}",
        b"\r\n",
        b"\r",
    ];
    prop_oneof![
        16 => byte_mutation(other, inserts).prop_map(Mutation::Bytes),
        2 => (prop::sample::select(names), json_any())
            .prop_map(|(name, value)| Mutation::Duplicate(name.to_owned(), value)),
        1 => prop::sample::select(vec![
                "1e400", "-1e400", "1e-400", "-0", "-0.0", "18446744073709551616",
                "-9223372036854775809", "123456789012345678901234567890", "0.1e1", "1E2", "01",
            ]).prop_map(Mutation::Number),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutation: Mutation) -> Vec<u8> {
    match mutation {
        Mutation::Bytes(mutation) => return mutate_bytes(bytes, mutation),
        Mutation::Duplicate(name, value) => {
            if let Some(end) = bytes.iter().rposition(|&b| b == b'}') {
                let member = format!(",{}:{value}", Value::from(name));
                bytes.splice(end..end, member.into_bytes());
            }
        }
        Mutation::Number(text) => {
            if let Some(start) = bytes.iter().position(u8::is_ascii_digit) {
                let len = bytes[start..]
                    .iter()
                    .take_while(|&&b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'-')
                    .count();
                bytes.splice(start..start + len, text.bytes());
            }
        }
    }
    bytes
}

/// JSON tokens and the body's field names, strung together.
fn token_soup(body: &'static Body) -> impl Strategy<Value = Vec<u8>> {
    let mut tokens: Vec<String> = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1.5",
        "1e400",
        "\"\\ud800\"",
        "\"\\u0000\"",
        "\"x\"",
        " ",
        "\r\n",
        "\u{feff}",
        "\"*\"",
        "\"values\"",
    ]
    .map(str::to_owned)
    .to_vec();
    tokens.extend(
        body.fields
            .iter()
            .map(|field| format!("\"{}\"", field.name)),
    );
    soup(tokens, 24)
}

fn input(body: &'static Body) -> impl Strategy<Value = Vec<u8>> {
    let written = (
        document(body),
        prop_oneof![
            4 => Just(Layout::Compact),
            1 => Just(Layout::Pretty),
            1 => Just(Layout::PrettyCrlf),
            1 => Just(Layout::Bom),
        ],
        mutation(body),
    )
        .prop_map(|(document, layout, mutation)| mutate(write(&document, &layout), mutation));
    prop_oneof![
        1 => vec(any::<u8>(), 0..64),
        2 => token_soup(body),
        12 => written,
    ]
}

// ---- the targets --------------------------------------------------------------------------

macro_rules! targets {
    ($($test:ident: $type:ty = $body:expr;)*) => {
        $(
            #[test]
            fn $test() {
                fuzz::<$type>(&$body);
            }
        )*
    };
}

targets! {
    run_create: RunCreate = RUN_CREATE;
    thread_create: ThreadCreate = THREAD_CREATE;
    thread_patch: ThreadPatch = THREAD_PATCH;
    thread_search: ThreadSearchRequest = THREAD_SEARCH;
    thread_state_update: ThreadStateUpdate = STATE_UPDATE;
    history: HistoryRequest = HISTORY;
    assistant_search: AssistantSearchRequest = ASSISTANT_SEARCH;
    cancel_many: RunCancelManyRequest = CANCEL_MANY;
    store_put: StorePutRequest = STORE_PUT;
    store_delete: StoreDeleteRequest = STORE_DELETE;
    store_search: StoreSearchRequest = STORE_SEARCH;
    store_namespaces: StoreListNamespacesRequest = STORE_NAMESPACES;
}

proptest! {
    #![proptest_config(ProptestConfig { source_file: Some(file!()), ..config(2000) })]

    /// The `stream_mode` query value, read as JSON by the run routes: any text reads or fails,
    /// and what reads writes back the same.
    #[test]
    fn stream_modes_from_a_query(text in prop_oneof![
        any::<String>(),
        vec(prop_oneof![
            prop::sample::select(MODES).prop_map(|mode| format!("\"{mode}\"")),
            prop::sample::select(vec!["[", "]", ",", " ", "\"", "null", "1", "\"\\u0000\"", "\"Values\""])
                .prop_map(str::to_owned),
        ], 0..12).prop_map(|pieces| pieces.concat()),
    ]) {
        if let Ok(modes) = serde_json::from_str::<StreamModes>(&text) {
            let written = serde_json::to_string(&modes).expect("writes");
            let again: StreamModes = serde_json::from_str(&written).expect("reads back");
            prop_assert_eq!(&again, &modes);
            let input: Value = serde_json::from_str(&text).expect("accepted, so JSON");
            prop_assert_eq!(serde_json::from_str::<Value>(&written).expect("JSON"), input);
        }
    }
}
