//! A field that may be absent, `null`, or set.
//!
//! The Python server tells these apart: a new thread has no `interrupts` key and `"error"` only
//! appears once a run has finished, as `null` or an object. `Option<T>` folds absent and `null`
//! into one, so a value read and written back would gain or lose keys. [`Nullable`] keeps the
//! difference, so what errand echoes is what it was given.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// A JSON object member that is either missing, explicitly `null`, or holds a value.
///
/// Use it with `#[serde(default, skip_serializing_if = "Nullable::is_absent")]`.
///
/// ```
/// use errand_protocol::Nullable;
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Doc {
///     #[serde(default, skip_serializing_if = "Nullable::is_absent")]
///     error: Nullable<String>,
/// }
/// for text in [r#"{}"#, r#"{"error":null}"#, r#"{"error":"boom"}"#] {
///     let doc: Doc = serde_json::from_str(text).unwrap();
///     assert_eq!(serde_json::to_string(&doc).unwrap(), text);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Nullable<T> {
    /// The key is not in the object.
    #[default]
    Absent,
    /// The key is present with the value `null`.
    Null,
    /// The key is present with a value.
    Present(T),
}

impl<T> Nullable<T> {
    /// True when the key is missing; the `skip_serializing_if` predicate.
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// The value, if there is one.
    pub fn as_option(&self) -> Option<&T> {
        match self {
            Self::Present(value) => Some(value),
            Self::Absent | Self::Null => None,
        }
    }

    /// The value, if there is one, by value.
    pub fn into_option(self) -> Option<T> {
        match self {
            Self::Present(value) => Some(value),
            Self::Absent | Self::Null => None,
        }
    }
}

impl<T> From<Option<T>> for Nullable<T> {
    /// `None` becomes an explicit `null`: a value built in code is written out, not dropped.
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Self::Present)
    }
}

impl<T: Serialize> Serialize for Nullable<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Present(value) => value.serialize(serializer),
            Self::Absent | Self::Null => serializer.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(deserializer).map(Self::from)
    }
}

impl<T: JsonSchema> JsonSchema for Nullable<T> {
    fn schema_name() -> Cow<'static, str> {
        Option::<T>::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        Option::<T>::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        Option::<T>::json_schema(generator)
    }

    fn inline_schema() -> bool {
        Option::<T>::inline_schema()
    }
}
