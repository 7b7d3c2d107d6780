//! The table of calls: DESIGN.md's wire contract in the LangGraph form the official clients
//! send, each with what errand answers. The refusals every call of a kind has (401, and for a
//! body 400, 413 and 422, for a path id 422, for a write 503) are added by the document; a
//! call lists only its own.

use super::{Wire, wire};
use errand_protocol as protocol;

/// What a call answers with on success.
#[derive(Debug, Clone, Copy)]
pub(super) enum Answer {
    /// 200 with JSON of a component type.
    Json(Wire),
    /// 200 with a JSON array of a component type.
    JsonList(Wire),
    /// 200 with JSON of the component type, or `null`.
    JsonOrNull(Wire),
    /// 200 with a run just accepted, and where to read it.
    Run(Wire),
    /// 200 with a run's result, once it has ended.
    Joined(Wire),
    /// 200 with a stream of server-sent events.
    EventStream,
    /// No body, with this status.
    Empty(u16),
    /// A cancel: 202 at once, or 200 `{}` with `wait` once the run has stopped.
    Cancelled,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy)]
pub(super) enum ParamKind {
    Uuid,
    Text,
    /// Text that is not empty.
    NonEmpty,
    /// `true`, `yes` or `1` in any case is true, anything else false.
    Flag,
    /// A whole number that fits 32 bits.
    Count,
    OneOf(&'static [&'static str]),
    Wire(Wire),
    /// The values of a repeated key.
    ListOf(Wire),
}

/// A query, header or path parameter.
#[derive(Debug)]
pub(super) struct Param {
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    pub(super) kind: ParamKind,
    pub(super) required: bool,
}

const fn optional(name: &'static str, description: &'static str, kind: ParamKind) -> Param {
    Param {
        name,
        description,
        kind,
        required: false,
    }
}

/// One call of the API.
#[derive(Debug)]
pub(super) struct Call {
    pub(super) method: &'static str,
    pub(super) path: &'static str,
    pub(super) summary: &'static str,
    pub(super) body: Option<Wire>,
    pub(super) query: &'static [Param],
    pub(super) headers: &'static [Param],
    pub(super) answer: Answer,
    /// Refusals of this call beside the common ones: status code and when.
    pub(super) refusals: &'static [(u16, &'static str)],
    /// Needs the API key when the server has one.
    pub(super) authenticated: bool,
    /// Writes to storage, so it is refused while the server stops or its disk is full.
    pub(super) writes: bool,
}

const fn call(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<Wire>,
    answer: Answer,
    refusals: &'static [(u16, &'static str)],
) -> Call {
    Call {
        method,
        path,
        summary,
        body,
        query: &[],
        headers: &[],
        answer,
        refusals,
        authenticated: true,
        writes: false,
    }
}

/// A call that writes to storage.
const fn write(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    body: Option<Wire>,
    answer: Answer,
    refusals: &'static [(u16, &'static str)],
) -> Call {
    Call {
        writes: true,
        ..call(method, path, summary, body, answer, refusals)
    }
}

use Answer::{Cancelled, Empty, EventStream, Joined, Json, JsonList, JsonOrNull, Run};

pub(super) const ERROR_BODY: Wire = wire::<protocol::ErrorBody>();
const RUN: Wire = wire::<protocol::Run>();
const RUN_CREATE: Wire = wire::<protocol::RunCreate>();
const RUN_RESULT: Wire = wire::<protocol::RunResult>();
const THREAD: Wire = wire::<protocol::Thread>();
const THREAD_STATE: Wire = wire::<protocol::ThreadState>();

const NO_THREAD: (u16, &str) = (404, "no thread has this id");
const NO_RUN: (u16, &str) = (404, "no run has these ids");

/// What every run create may be refused for, on a thread.
const THREAD_RUN_REFUSALS: &[(u16, &str)] = &[
    (
        400,
        "`config.configurable` and `context` are both given: prefer `context` alone",
    ),
    (
        404,
        "no thread has this id (and `if_not_exists` is not `create`), or no assistant has this id or graph name",
    ),
    (
        409,
        "the thread has a pending or running run and `multitask_strategy` is `reject`",
    ),
    (
        422,
        "a `webhook` is given (errand does not call webhooks), or `after_seconds` is out of its range",
    ),
];

/// What every stateless run create may be refused for.
const STATELESS_RUN_REFUSALS: &[(u16, &str)] = &[
    (
        400,
        "`config.configurable` and `context` are both given: prefer `context` alone",
    ),
    (404, "no assistant has this id or graph name"),
    (
        422,
        "a `webhook` is given (errand does not call webhooks), or `after_seconds` is out of its range",
    ),
];

const CANCEL_ACTION: Param = optional(
    "action",
    "`interrupt` (the run ends `interrupted` and keeps what it wrote; the default) or `rollback` (the run and what it wrote are deleted)",
    ParamKind::OneOf(&["interrupt", "rollback"]),
);

/// The calls errand serves.
pub(super) const CALLS: &[Call] = &[
    Call {
        authenticated: false,
        ..call(
            "get",
            "/ok",
            "Health check",
            None,
            Json(wire::<protocol::Health>()),
            &[],
        )
    },
    call(
        "get",
        "/info",
        "Server version and features",
        None,
        Json(wire::<protocol::ServerInfo>()),
        &[],
    ),
    call(
        "post",
        "/assistants/search",
        "Search assistants: one per hosted graph",
        Some(wire::<protocol::AssistantSearchRequest>()),
        JsonList(wire::<protocol::Assistant>()),
        &[],
    ),
    call(
        "get",
        "/assistants/{assistant_id}",
        "Get an assistant",
        None,
        Json(wire::<protocol::Assistant>()),
        &[(404, "no assistant has this id")],
    ),
    write(
        "post",
        "/threads",
        "Create a thread",
        Some(wire::<protocol::ThreadCreate>()),
        Json(THREAD),
        &[
            (
                409,
                "a thread with this id exists and `if_exists` is not `do_nothing`",
            ),
            (
                422,
                "`supersteps` is not empty (errand does not apply supersteps)",
            ),
        ],
    ),
    call(
        "post",
        "/threads/search",
        "Search threads",
        Some(wire::<protocol::ThreadSearchRequest>()),
        JsonList(THREAD),
        &[],
    ),
    write(
        "post",
        "/threads/prune",
        "Prune threads that have no pending or running run: delete them, or keep only their latest state",
        Some(wire::<protocol::ThreadPruneRequest>()),
        Json(wire::<protocol::ThreadPruneResponse>()),
        &[],
    ),
    call(
        "get",
        "/threads/{thread_id}",
        "Get a thread",
        None,
        Json(THREAD),
        &[NO_THREAD],
    ),
    write(
        "patch",
        "/threads/{thread_id}",
        "Merge metadata into a thread's",
        Some(wire::<protocol::ThreadPatch>()),
        Json(THREAD),
        &[NO_THREAD],
    ),
    write(
        "delete",
        "/threads/{thread_id}",
        "Delete a thread, after stopping its runs",
        None,
        Empty(204),
        &[NO_THREAD],
    ),
    call(
        "get",
        "/threads/{thread_id}/state",
        "Get a thread's state",
        None,
        Json(THREAD_STATE),
        &[NO_THREAD],
    ),
    write(
        "post",
        "/threads/{thread_id}/state",
        "Update a thread's state",
        Some(wire::<protocol::ThreadStateUpdate>()),
        Json(wire::<protocol::ThreadStateUpdateResponse>()),
        &[
            NO_THREAD,
            (
                422,
                "`values.messages` holds something that is not a message",
            ),
        ],
    ),
    call(
        "post",
        "/threads/{thread_id}/history",
        "A thread's past states, newest first",
        Some(wire::<protocol::HistoryRequest>()),
        JsonList(THREAD_STATE),
        &[NO_THREAD],
    ),
    write(
        "post",
        "/threads/{thread_id}/runs",
        "Start a run in the background",
        Some(RUN_CREATE),
        Run(RUN),
        THREAD_RUN_REFUSALS,
    ),
    Call {
        query: &[
            optional(
                "limit",
                "At most this many runs (10 when absent)",
                ParamKind::Count,
            ),
            optional("offset", "Skip this many runs", ParamKind::Count),
            optional(
                "status",
                "Only runs with this status",
                ParamKind::Wire(wire::<protocol::RunStatus>()),
            ),
        ],
        ..call(
            "get",
            "/threads/{thread_id}/runs",
            "List a thread's runs, newest first",
            None,
            JsonList(RUN),
            &[
                NO_THREAD,
                (
                    422,
                    "`limit` or `offset` is not a whole number, or `status` is not a run status",
                ),
            ],
        )
    },
    write(
        "post",
        "/threads/{thread_id}/runs/stream",
        "Start a run and stream its output",
        Some(RUN_CREATE),
        EventStream,
        THREAD_RUN_REFUSALS,
    ),
    write(
        "post",
        "/threads/{thread_id}/runs/wait",
        "Start a run and wait for its result",
        Some(RUN_CREATE),
        Joined(RUN_RESULT),
        THREAD_RUN_REFUSALS,
    ),
    call(
        "get",
        "/threads/{thread_id}/runs/{run_id}",
        "Get a run",
        None,
        Json(RUN),
        &[NO_RUN],
    ),
    write(
        "delete",
        "/threads/{thread_id}/runs/{run_id}",
        "Delete a run, after stopping it",
        None,
        Empty(204),
        &[NO_RUN],
    ),
    Call {
        query: &[
            optional(
                "wait",
                "Answer once the run has stopped (`true`, `yes` or `1`)",
                ParamKind::Flag,
            ),
            CANCEL_ACTION,
        ],
        ..write(
            "post",
            "/threads/{thread_id}/runs/{run_id}/cancel",
            "Cancel a run",
            None,
            Cancelled,
            &[
                (404, "no run has these ids, or it has ended already"),
                (422, "`action` is neither `interrupt` nor `rollback`"),
            ],
        )
    },
    call(
        "get",
        "/threads/{thread_id}/runs/{run_id}/join",
        "Wait for a run's result",
        None,
        Joined(RUN_RESULT),
        &[NO_RUN],
    ),
    Call {
        query: &[
            optional(
                "stream_mode",
                "Only these modes (repeated key, or one JSON list); the run's own modes when absent",
                ParamKind::ListOf(wire::<protocol::StreamMode>()),
            ),
            optional(
                "cancel_on_disconnect",
                "Cancel the run when this client goes away (`true`, `yes` or `1`)",
                ParamKind::Flag,
            ),
        ],
        headers: &[optional(
            "Last-Event-ID",
            "Send only the events after this one; an id that is not one of errand's sends them all",
            ParamKind::Text,
        )],
        ..call(
            "get",
            "/threads/{thread_id}/runs/{run_id}/stream",
            "Join a run's stream, from its first event or after `Last-Event-ID`",
            None,
            EventStream,
            &[NO_RUN, (422, "`stream_mode` holds an unknown mode")],
        )
    },
    write(
        "post",
        "/runs",
        "Start a stateless run in the background",
        Some(RUN_CREATE),
        Run(RUN),
        STATELESS_RUN_REFUSALS,
    ),
    write(
        "post",
        "/runs/stream",
        "Start a stateless run and stream its output",
        Some(RUN_CREATE),
        EventStream,
        STATELESS_RUN_REFUSALS,
    ),
    write(
        "post",
        "/runs/wait",
        "Start a stateless run and wait for its result",
        Some(RUN_CREATE),
        Joined(RUN_RESULT),
        STATELESS_RUN_REFUSALS,
    ),
    Call {
        query: &[CANCEL_ACTION],
        ..write(
            "post",
            "/runs/cancel",
            "Cancel many runs: by status, or by ids",
            Some(wire::<protocol::RunCancelManyRequest>()),
            Empty(204),
            &[(
                422,
                "neither `status` alone nor `thread_id` with `run_ids` is given, or `action` is unknown",
            )],
        )
    },
    write(
        "put",
        "/store/items",
        "Put an item",
        Some(wire::<protocol::StorePutRequest>()),
        Empty(204),
        &[(422, "a namespace label is empty or holds a `.`")],
    ),
    Call {
        query: &[
            optional(
                "namespace",
                "The namespace, its labels joined with `.`",
                ParamKind::Text,
            ),
            Param {
                required: true,
                ..optional("key", "The item's key", ParamKind::NonEmpty)
            },
        ],
        ..call(
            "get",
            "/store/items",
            "Get an item; `null` when there is none",
            None,
            JsonOrNull(wire::<protocol::StoreItem>()),
            &[(400, "`key` is missing or empty")],
        )
    },
    write(
        "delete",
        "/store/items",
        "Delete an item, if there is one",
        Some(wire::<protocol::StoreDeleteRequest>()),
        Empty(204),
        &[],
    ),
    call(
        "post",
        "/store/items/search",
        "Search items",
        Some(wire::<protocol::StoreSearchRequest>()),
        Json(wire::<protocol::SearchItemsResponse>()),
        &[(422, "`query` is given: errand's store has no search index")],
    ),
    call(
        "post",
        "/store/namespaces",
        "List namespaces",
        Some(wire::<protocol::StoreListNamespacesRequest>()),
        Json(wire::<protocol::ListNamespacesResponse>()),
        &[],
    ),
];
