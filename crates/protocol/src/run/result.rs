//! What `runs/wait` and `runs/{id}/join` answer: the final values, or the error the run ended
//! with.

use crate::Interrupt;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// An error a run ended with: the exception class and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunError {
    /// The error kind, e.g. `ValueError`.
    pub error: String,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// What `runs/wait` and `runs/{id}/join` answer: the final values, or the error.
///
/// ```
/// use errand_protocol::RunResult;
/// let failed: RunResult =
///     serde_json::from_str(r#"{"__error__": {"error": "ValueError", "message": "boom"}}"#).unwrap();
/// assert_eq!(failed.error().unwrap().message, "boom");
/// let done: RunResult = serde_json::from_str(r#"{"messages": []}"#).unwrap();
/// assert!(done.error().is_none() && done.interrupts().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    /// `{"__error__": {...}}`: the run failed.
    Error(RunError),
    /// The final state values; at an interrupt they hold `__interrupt__`.
    Values(Value),
}

impl RunResult {
    /// The error, if the run failed.
    pub fn error(&self) -> Option<&RunError> {
        match self {
            Self::Error(error) => Some(error),
            Self::Values(_) => None,
        }
    }

    /// The interrupts the run stopped at, if any.
    pub fn interrupts(&self) -> Vec<Interrupt> {
        match self {
            Self::Values(values) => values
                .get("__interrupt__")
                .and_then(|found| serde_json::from_value(found.clone()).ok())
                .unwrap_or_default(),
            Self::Error(_) => Vec::new(),
        }
    }
}

const ERROR_KEY: &str = "__error__";

impl Serialize for RunResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Error(error) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(ERROR_KEY, error)?;
                map.end()
            }
            Self::Values(values) => values.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for RunResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match value.as_object() {
            Some(object) if object.len() == 1 && object.contains_key(ERROR_KEY) => {
                serde_json::from_value(object[ERROR_KEY].clone())
                    .map(Self::Error)
                    .map_err(serde::de::Error::custom)
            }
            _ => Ok(Self::Values(value)),
        }
    }
}

impl JsonSchema for RunResult {
    fn schema_name() -> Cow<'static, str> {
        "RunResult".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let error = generator.subschema_for::<RunError>();
        json_schema!({
            "description": "The final state values of a run, or `{\"__error__\": RunError}` when it failed.",
            "anyOf": [
                { "type": "object", "properties": { "__error__": error }, "required": ["__error__"] },
                {}
            ]
        })
    }
}
