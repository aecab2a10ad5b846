//! A task's input: what its guest reads on stdin, `{"args":[…],"kwargs":{…}}`,
//! built once from the caller's arguments and checked on the way.

/// Arguments that are not a JSON array, or keyword arguments that are not a
/// JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The input of a task called with positional `args` (a JSON array) and named
/// `kwargs` (a JSON object; `null` means none), as JSON text.
pub fn task_input(
    args: &serde_json::Value,
    kwargs: &serde_json::Value,
) -> Result<String, InputError> {
    if !args.is_array() {
        return Err(InputError(format!(
            "args must be a JSON array, like [1, \"two\"], not {args}"
        )));
    }
    let empty = serde_json::Value::Object(serde_json::Map::new());
    let kwargs = if kwargs.is_null() { &empty } else { kwargs };
    if !kwargs.is_object() {
        return Err(InputError(format!(
            "kwargs must be a JSON object, like {{\"name\": \"Ada\"}}, not {kwargs}"
        )));
    }
    serde_json::to_string(&serde_json::json!({ "args": args, "kwargs": kwargs }))
        .map_err(|e| InputError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_and_kwargs_make_one_object_and_null_kwargs_are_none() {
        let input = task_input(&json!([1, "two"]), &json!(null)).unwrap();
        assert_eq!(input, r#"{"args":[1,"two"],"kwargs":{}}"#);
    }

    #[test]
    fn args_that_are_not_an_array_and_kwargs_that_are_not_an_object_are_refused() {
        let error = task_input(&json!({"a": 1}), &json!({})).unwrap_err();
        assert!(error.0.contains("args must be a JSON array"), "{error}");
        let error = task_input(&json!([]), &json!([1])).unwrap_err();
        assert!(error.0.contains("kwargs must be a JSON object"), "{error}");
    }
}
