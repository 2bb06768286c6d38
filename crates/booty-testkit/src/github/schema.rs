//! A validator for the JSON Schema subset GitHub's descriptions use for the operations booty calls: `type`
//! (one or a list), `nullable`, `enum`, `required`, `properties`, `additionalProperties`, `items`,
//! `oneOf`/`anyOf`/`allOf`, and the bounds `minimum`, `maximum`, `minLength`, `maxLength`, `minItems`,
//! `maxItems`. `format` and `default` are annotations here. Any other keyword is refused when the fixture is
//! loaded ([`unsupported_keywords`]), so a schema this cannot check is noticed instead of passing.

use serde_json::Value;

/// The keywords [`validate`] understands or deliberately ignores.
const KNOWN: &[&str] = &[
    "type",
    "nullable",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "oneOf",
    "anyOf",
    "allOf",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "format",
    "default",
];

/// Checks `value` against `schema`, adding one message per violation (with its JSON path) to `errors`.
pub(crate) fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !allowed.iter().any(|kind| is_type(value, kind)) {
            errors.push(format!(
                "{path}: {} is not of type {}",
                show(value),
                allowed.join(" or ")
            ));
            return;
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        errors.push(format!(
            "{path}: {} is not one of {}",
            show(value),
            Value::Array(options.clone())
        ));
    }
    bounds(schema, value, path, errors);
    if let Some(object) = value.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                errors.push(format!("{path}: required property {name:?} is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, inner) in object {
            let inner_path = format!("{path}.{name}");
            match properties.and_then(|properties| properties.get(name)) {
                Some(property) => validate(property, inner, &inner_path, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{path}: property {name:?} is not allowed"));
                    }
                    Some(extra @ Value::Object(_)) => validate(extra, inner, &inner_path, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            validate(items, item, &format!("{path}[{index}]"), errors);
        }
    }
    if let Some(Value::Array(all)) = schema.get("allOf") {
        for inner in all {
            validate(inner, value, path, errors);
        }
    }
    for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(Value::Array(options)) = schema.get(keyword) {
            let matching = options
                .iter()
                .filter(|option| {
                    let mut inner = Vec::new();
                    validate(option, value, path, &mut inner);
                    inner.is_empty()
                })
                .count();
            if matching == 0 || (exactly_one && matching > 1) {
                errors.push(format!(
                    "{path}: {} matches {matching} of the {keyword} schemas",
                    show(value)
                ));
            }
        }
    }
}

fn bounds(
    schema: &serde_json::Map<String, Value>,
    value: &Value,
    path: &str,
    errors: &mut Vec<String>,
) {
    let limit = |key: &str| schema.get(key).and_then(Value::as_f64);
    #[allow(
        clippy::cast_precision_loss,
        reason = "lengths of test requests are small"
    )]
    let length = match value {
        Value::String(text) => Some(text.chars().count() as f64),
        Value::Array(items) => Some(items.len() as f64),
        _ => None,
    };
    let checks = [
        ("minimum", value.as_f64(), true),
        ("maximum", value.as_f64(), false),
        ("minLength", length.filter(|_| value.is_string()), true),
        ("maxLength", length.filter(|_| value.is_string()), false),
        ("minItems", length.filter(|_| value.is_array()), true),
        ("maxItems", length.filter(|_| value.is_array()), false),
    ];
    for (key, actual, is_min) in checks {
        if let (Some(bound), Some(actual)) = (limit(key), actual)
            && (if is_min {
                actual < bound
            } else {
                actual > bound
            })
        {
            errors.push(format!("{path}: {} breaks {key} {bound}", show(value)));
        }
    }
}

fn is_type(value: &Value, kind: &str) -> bool {
    match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "null" => value.is_null(),
        _ => false,
    }
}

/// A value in a message, cut short.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

/// Keywords in `schema` (at any depth) that [`validate`] does not know, as `path: keyword`.
pub(crate) fn unsupported_keywords(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    for (key, inner) in object {
        if !KNOWN.contains(&key.as_str()) {
            out.push(format!("{path}: {key}"));
        }
        match key.as_str() {
            "properties" => {
                for (name, property) in inner.as_object().into_iter().flatten() {
                    unsupported_keywords(property, &format!("{path}.{name}"), out);
                }
            }
            "items" | "additionalProperties" => {
                unsupported_keywords(inner, &format!("{path}[]"), out);
            }
            "oneOf" | "anyOf" | "allOf" => {
                for option in inner.as_array().into_iter().flatten() {
                    unsupported_keywords(option, path, out);
                }
            }
            _ => {}
        }
    }
}

/// Objects whose keys are data, not fields: a permissions map, a webhook payload, HTTP headers. Only their
/// type is compared.
const FREE_FORM: &[&str] = &["permissions", "payload", "headers"];

/// Whether `actual` has the shape of `example`: the same keys at every level (except inside the
/// [`FREE_FORM`] objects), and values of the same JSON type wherever both are not null (arrays compared by
/// their first items). One message per difference.
pub(crate) fn same_shape(example: &Value, actual: &Value, path: &str, errors: &mut Vec<String>) {
    let free = path
        .rsplit('.')
        .next()
        .is_some_and(|key| FREE_FORM.contains(&key));
    match (example, actual) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(_), Value::Object(_)) if free => {}
        (Value::Object(expected), Value::Object(got)) => {
            for key in expected.keys() {
                if !got.contains_key(key) {
                    errors.push(format!("{path}: {key:?} is missing"));
                }
            }
            for (key, value) in got {
                match expected.get(key) {
                    Some(expected) => same_shape(expected, value, &format!("{path}.{key}"), errors),
                    None => errors.push(format!("{path}: {key:?} is not in the example")),
                }
            }
        }
        (Value::Array(expected), Value::Array(got)) => {
            if let (Some(expected), Some(got)) = (expected.first(), got.first()) {
                same_shape(expected, got, &format!("{path}[0]"), errors);
            }
        }
        (expected, got) => {
            let kind = |value: &Value| match value {
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                Value::Null => "null",
            };
            if kind(expected) != kind(got) {
                errors.push(format!(
                    "{path}: a {} where the example has a {}",
                    kind(got),
                    kind(expected)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        validate(schema, value, "$", &mut errors);
        errors
    }

    #[test]
    fn the_subset_is_enforced() {
        let schema = json!({
            "type": "object",
            "required": ["body"],
            "properties": {
                "body": {"type": "string", "maxLength": 5},
                "state": {"type": "string", "enum": ["open", "closed"]},
                "ids": {"type": "array", "items": {"type": "integer"}},
                "draft": {"type": "boolean"},
                "note": {"type": "string", "nullable": true},
                "value": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "additionalProperties": false
        });
        assert!(errors(&schema, &json!({"body": "hi", "note": null, "value": 3})).is_empty());
        let all = errors(
            &schema,
            &json!({"state": "merged", "ids": [1, "2"], "draft": "yes", "extra": 1, "value": true}),
        );
        let all = all.join("\n");
        for expected in [
            "$: required property \"body\" is missing",
            "$.state: \"merged\" is not one of",
            "$.ids[1]: \"2\" is not of type integer",
            "$.draft: \"yes\" is not of type boolean",
            "$: property \"extra\" is not allowed",
            "$.value: true matches 0 of the oneOf schemas",
        ] {
            assert!(all.contains(expected), "{expected} not in:\n{all}");
        }
        assert_eq!(errors(&schema, &json!({"body": "too long"})).len(), 1);
        assert_eq!(errors(&json!({"type": "integer"}), &json!(1.5)).len(), 1);
    }

    #[test]
    fn unknown_keywords_are_reported() {
        let mut out = Vec::new();
        unsupported_keywords(
            &json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}),
            "$",
            &mut out,
        );
        assert_eq!(out, ["$.a: pattern"]);
    }

    #[test]
    fn shapes_compare_keys_and_types() {
        let example = json!({"id": 1, "user": {"login": "x"}, "body": "a", "labels": [{"name": "b"}], "closed_at": null});
        let mut errors = Vec::new();
        same_shape(
            &example,
            &json!({"id": 2, "user": {"login": "y"}, "body": null, "labels": [], "closed_at": "2020"}),
            "$",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        same_shape(
            &example,
            &json!({"id": "2", "user": {}, "body": "a", "labels": [{"name": 1}], "extra": 1}),
            "$",
            &mut errors,
        );
        assert_eq!(errors.len(), 5, "{errors:#?}");
    }
}
