//! What the fuzz targets share: the case count, JSON values of every kind, and byte-level
//! mutations. The protocol's targets use it, and so do the client's stream target and the
//! CLI's config target (through `#[path]`), so every target reads `PROPTEST_CASES` alike.

#![allow(dead_code, unreachable_pub)]

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value};

/// `PROPTEST_CASES` cases if set, else `default`; failures are saved beside the test file
/// (`tests/NAME.proptest-regressions`).
pub fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Short names mostly, any text sometimes, and the characters that need escaping.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_]{0,8}",
        2 => "\\PC{0,10}",
        1 => any::<String>(),
        1 => Just("\u{feff}\0\r\n\"\\".to_owned()),
    ]
}

/// Object keys, with a few that mean something to someone.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_]{1,10}",
        1 => any::<String>(),
        1 => prop::sample::select(vec!["__proto__", "$ref", "", " ", "extra", "type", "role"])
            .prop_map(str::to_owned),
    ]
}

/// Integers of every width and floats of every size.
pub fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u32..100).prop_map(Value::from),
    ]
}

pub fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ]
}

/// Arrays (and objects, if `objects`) nested `depth` deep around `leaf`.
pub fn nested(depth: usize, leaf: Value, objects: bool) -> Value {
    (0..depth).fold(leaf, |inner, level| {
        if objects && level % 2 == 0 {
            let mut object = Map::new();
            object.insert("k".into(), inner);
            Value::Object(object)
        } else {
            Value::Array(vec![inner])
        }
    })
}

/// Small JSON trees.
pub fn json_tree() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map(key(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Any JSON: small trees, and now and then one nested around serde_json's depth limit (128).
pub fn json_any() -> impl Strategy<Value = Value> {
    prop_oneof![
        12 => json_tree(),
        1 => (120usize..132, json_leaf(), any::<bool>())
            .prop_map(|(depth, leaf, objects)| nested(depth, leaf, objects)),
    ]
}

pub fn json_object() -> impl Strategy<Value = Value> {
    btree_map(key(), json_any(), 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A JSON object of small trees.
pub fn json_tree_object() -> impl Strategy<Value = Value> {
    btree_map(key(), json_tree(), 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A change to some bytes.
#[derive(Debug, Clone)]
pub enum ByteMutation {
    /// Left as they are.
    None,
    /// One byte replaced.
    Flip(Index, u8),
    /// Cut short.
    Truncate(Index),
    /// The head of these, then the tail of other bytes.
    Splice(Index, Vec<u8>, Index),
    /// Bytes put in.
    Insert(Index, Vec<u8>),
}

/// Mutations, weighted towards none; `other` gives the bytes to splice in, `inserts` the
/// bytes worth inserting besides random ones.
pub fn byte_mutation(
    other: impl Strategy<Value = Vec<u8>>,
    inserts: Vec<&'static [u8]>,
) -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        10 => Just(ByteMutation::None),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| ByteMutation::Flip(at, byte)),
        1 => any::<Index>().prop_map(ByteMutation::Truncate),
        1 => (any::<Index>(), other, any::<Index>())
            .prop_map(|(at, other, from)| ByteMutation::Splice(at, other, from)),
        2 => (
                any::<Index>(),
                prop_oneof![
                    vec(any::<u8>(), 1..4),
                    prop::sample::select(inserts).prop_map(<[u8]>::to_vec),
                ],
            )
            .prop_map(|(at, bytes)| ByteMutation::Insert(at, bytes)),
    ]
}

/// `bytes` with `mutation` applied.
pub fn mutate_bytes(mut bytes: Vec<u8>, mutation: ByteMutation) -> Vec<u8> {
    match mutation {
        ByteMutation::None => {}
        ByteMutation::Flip(at, byte) => {
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
        }
        ByteMutation::Truncate(at) => bytes.truncate(at.index(bytes.len() + 1)),
        ByteMutation::Splice(at, other, from) => {
            bytes.truncate(at.index(bytes.len() + 1));
            bytes.extend_from_slice(&other[from.index(other.len() + 1)..]);
        }
        ByteMutation::Insert(at, insert) => {
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, insert);
        }
    }
    bytes
}

/// `pieces` strung together, in any order and number: a soup of the tokens a parser looks for.
pub fn soup(pieces: Vec<String>, max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(prop::sample::select(pieces), 0..max).prop_map(|pieces| pieces.concat().into_bytes())
}
