//! Checking a model's tool arguments against the tool's JSON schema.
//!
//! Models get arguments wrong: a missing key, a number as a string, an unknown option. The
//! check covers the parts of JSON Schema that tool schemas use (types, required and unknown
//! properties, enums, arrays, `$ref` into `$defs`, `anyOf`/`oneOf`, numeric and length bounds)
//! and names the first problem by its path, so the model can correct itself.

use serde_json::{Map, Value};

/// Checks `args` against `schema`; the error names the first argument that does not fit.
///
/// ```
/// use errand_runtime::tool::check_arguments;
/// use serde_json::json;
/// let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
/// assert!(check_arguments(&schema, &json!({"n": 3})).is_ok());
/// assert_eq!(
///     check_arguments(&schema, &json!({"n": "3"})).unwrap_err(),
///     "`n` must be an integer, not a string"
/// );
/// ```
pub fn check_arguments(schema: &Value, args: &Value) -> Result<(), String> {
    Checker { root: schema }.check(schema, args, "", 0)
}

/// Deep enough for any real tool schema; stops a `$ref` cycle from looping.
const MAX_DEPTH: usize = 32;

struct Checker<'a> {
    root: &'a Value,
}

impl<'a> Checker<'a> {
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        reference
            .strip_prefix("#/")
            .and_then(|pointer| self.root.pointer(&format!("/{pointer}")))
            .unwrap_or(schema)
    }

    fn check(
        &self,
        schema: &'a Value,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let schema = self.resolve(schema);
        let Some(schema) = schema.as_object() else {
            // `true`, `{}` and anything else unreadable accept every value.
            return Ok(());
        };
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = schema.get(key)
                && !options
                    .iter()
                    .any(|option| self.check(option, value, path, depth + 1).is_ok())
            {
                return match options.as_slice() {
                    [only] => self.check(only, value, path, depth + 1),
                    _ => Err(format!("{} does not match any allowed form", name(path))),
                };
            }
        }
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for part in all {
                self.check(part, value, path, depth + 1)?;
            }
        }
        if let Some(expected) = schema.get("type") {
            check_type(expected, value, path)?;
        }
        if let Some(Value::Array(allowed)) = schema.get("enum")
            && !allowed.contains(value)
        {
            return Err(format!(
                "{} must be one of {}, not {value}",
                name(path),
                list(allowed)
            ));
        }
        if let Some(constant) = schema.get("const")
            && constant != value
        {
            return Err(format!("{} must be {constant}", name(path)));
        }
        match value {
            Value::Object(object) => self.check_object(schema, object, path, depth),
            Value::Array(items) => self.check_array(schema, items, path, depth),
            Value::Number(number) => check_bounds(schema, number.as_f64().unwrap_or(0.0), path),
            Value::String(text) => check_length(schema, text.chars().count(), path),
            _ => Ok(()),
        }
    }

    fn check_object(
        &self,
        schema: &'a Map<String, Value>,
        object: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    return Err(format!("{} is required", name(&join(path, key))));
                }
            }
        }
        for (key, value) in object {
            let child = join(path, key);
            match properties.and_then(|properties| properties.get(key)) {
                Some(property) => self.check(property, value, &child, depth + 1)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        let known = properties
                            .map(|p| p.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>())
                            .unwrap_or_default();
                        return Err(format!(
                            "{} is not an argument of this tool (it takes {})",
                            name(&child),
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ));
                    }
                    Some(extra @ Value::Object(_)) => {
                        self.check(extra, value, &child, depth + 1)?;
                    }
                    _ => {}
                },
            }
        }
        Ok(())
    }

    fn check_array(
        &self,
        schema: &'a Map<String, Value>,
        items: &[Value],
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        check_count(schema, items.len(), path)?;
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{path}[{index}]"), depth + 1)?;
            }
        }
        Ok(())
    }
}

fn check_type(expected: &Value, value: &Value, path: &str) -> Result<(), String> {
    let allowed: Vec<&str> = match expected {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    if allowed.iter().any(|kind| is_of_type(kind, value)) {
        return Ok(());
    }
    let wanted: Vec<String> = allowed.iter().map(|kind| article(kind)).collect();
    Err(format!(
        "{} must be {}, not {}",
        name(path),
        wanted.join(" or "),
        article(type_of(value))
    ))
}

fn is_of_type(kind: &str, value: &Value) -> bool {
    match kind {
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "number" => value.is_number(),
        other => type_of(value) == other,
    }
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn article(kind: &str) -> String {
    match kind {
        "null" => "null".into(),
        "integer" | "array" | "object" => format!("an {kind}"),
        other => format!("a {other}"),
    }
}

fn check_bounds(schema: &Map<String, Value>, number: f64, path: &str) -> Result<(), String> {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(minimum) = bound("minimum").filter(|&minimum| number < minimum) {
        return Err(format!("{} must be at least {minimum}", name(path)));
    }
    if let Some(maximum) = bound("maximum").filter(|&maximum| number > maximum) {
        return Err(format!("{} must be at most {maximum}", name(path)));
    }
    Ok(())
}

fn check_length(schema: &Map<String, Value>, length: usize, path: &str) -> Result<(), String> {
    let bound = |key: &str| schema.get(key).and_then(Value::as_u64);
    if let Some(minimum) = bound("minLength").filter(|&minimum| (length as u64) < minimum) {
        return Err(format!(
            "{} must have at least {minimum} characters",
            name(path)
        ));
    }
    if let Some(maximum) = bound("maxLength").filter(|&maximum| (length as u64) > maximum) {
        return Err(format!(
            "{} must have at most {maximum} characters",
            name(path)
        ));
    }
    Ok(())
}

fn check_count(schema: &Map<String, Value>, count: usize, path: &str) -> Result<(), String> {
    let bound = |key: &str| schema.get(key).and_then(Value::as_u64);
    if let Some(minimum) = bound("minItems").filter(|&minimum| (count as u64) < minimum) {
        return Err(format!("{} must have at least {minimum} items", name(path)));
    }
    if let Some(maximum) = bound("maxItems").filter(|&maximum| (count as u64) > maximum) {
        return Err(format!("{} must have at most {maximum} items", name(path)));
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn name(path: &str) -> String {
    if path.is_empty() {
        "the arguments".into()
    } else {
        format!("`{path}`")
    }
}

fn list(values: &[Value]) -> String {
    values
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1},
                "limit": {"type": ["integer", "null"], "minimum": 1},
                "mode": {"$ref": "#/$defs/Mode"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
            },
            "required": ["path"],
            "additionalProperties": false,
            "$defs": {"Mode": {"type": "string", "enum": ["fast", "slow"]}}
        })
    }

    #[test]
    fn names_the_first_argument_that_does_not_fit() {
        let check = |args: Value| check_arguments(&schema(), &args);
        assert_eq!(
            check(json!({"path": "a", "limit": null, "mode": "fast", "tags": ["x"]})),
            Ok(())
        );
        assert_eq!(check(json!({})).unwrap_err(), "`path` is required");
        assert_eq!(
            check(json!({"path": ""})).unwrap_err(),
            "`path` must have at least 1 characters"
        );
        assert_eq!(
            check(json!({"path": "a", "limit": 0})).unwrap_err(),
            "`limit` must be at least 1"
        );
        assert_eq!(
            check(json!({"path": "a", "limit": 1.5})).unwrap_err(),
            "`limit` must be an integer or null, not a number"
        );
        assert_eq!(
            check(json!({"path": "a", "mode": "medium"})).unwrap_err(),
            "`mode` must be one of \"fast\", \"slow\", not \"medium\""
        );
        assert_eq!(
            check(json!({"path": "a", "tags": ["x", 1]})).unwrap_err(),
            "`tags[1]` must be a string, not a number"
        );
        assert_eq!(
            check(json!({"path": "a", "tags": ["x", "y", "z"]})).unwrap_err(),
            "`tags` must have at most 2 items"
        );
        assert!(
            check(json!({"path": "a", "colour": "red"}))
                .unwrap_err()
                .starts_with("`colour` is not an argument")
        );
        assert_eq!(
            check(json!("a")).unwrap_err(),
            "the arguments must be an object, not a string"
        );
    }

    #[test]
    fn a_reference_cycle_does_not_loop() {
        let schema = json!({"$ref": "#/$defs/A", "$defs": {"A": {"$ref": "#/$defs/A"}}});
        assert_eq!(check_arguments(&schema, &json!({"x": 1})), Ok(()));
    }
}
