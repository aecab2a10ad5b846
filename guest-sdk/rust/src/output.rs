//! A task's outcome as the guest ABI encodes it: result bytes for stdout, or a [`Failure`]
//! (exit code + message for stderr).

use std::fmt;

use serde::Serialize;

/// The exit codes a module built with this crate uses (see `guest-sdk/ABI.md`).
pub mod exit_code {
    /// The task succeeded: stdout holds its result.
    pub const SUCCESS: u8 = 0;
    /// The task failed: it returned `Err`, or its input (stdin, arguments) was invalid.
    pub const TASK_ERROR: u8 = 1;
    /// Unknown or missing task name; stderr lists the module's tasks.
    pub const USAGE: u8 = 2;
    /// The task panicked (Rust's conventional panic exit code).
    pub const PANIC: u8 = 101;
}

/// Why a task did not produce a result: the exit code and the message written to stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The process exit code, one of [`exit_code`] (never 0).
    pub code: u8,
    /// The error message, written to stderr.
    pub message: String,
}

impl Failure {
    /// A task error (exit code 1).
    pub fn task(message: impl Into<String>) -> Self {
        Self {
            code: exit_code::TASK_ERROR,
            message: message.into(),
        }
    }

    /// A usage error: unknown or missing task name (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: exit_code::USAGE,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The stdout of a task that returned `value`: its JSON and a newline.
pub(crate) fn value_output<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Failure> {
    let mut bytes = serde_json::to_vec(value)
        .map_err(|err| Failure::task(format!("could not serialize the result as JSON: {err}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The stdout of a task that returned `Result<T, E>`: `Ok` is serialized, `Err` fails the task
/// with its `Display` message.
pub(crate) fn result_output<T: Serialize, E: fmt::Display>(
    result: Result<T, E>,
) -> Result<Vec<u8>, Failure> {
    match result {
        Ok(value) => value_output(&value),
        Err(err) => Err(Failure::task(err.to_string())),
    }
}

/// The stdout of a task that returned `()`: `null`.
pub(crate) fn unit_output() -> Result<Vec<u8>, Failure> {
    Ok(b"null\n".to_vec())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn values_are_json_lines() {
        assert_eq!(value_output(&75025_u64).unwrap(), b"75025\n");
        assert_eq!(value_output("hi").unwrap(), b"\"hi\"\n");
        assert_eq!(unit_output().unwrap(), b"null\n");
    }

    #[test]
    fn results() {
        assert_eq!(result_output::<_, String>(Ok(3)).unwrap(), b"3\n");
        assert_eq!(
            result_output::<(), _>(Err("this task always fails")).unwrap_err(),
            Failure::task("this task always fails")
        );
    }

    #[test]
    fn unserializable_results_fail() {
        let map: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
        let failure = value_output(&map).unwrap_err();
        assert_eq!(failure.code, exit_code::TASK_ERROR);
        assert!(failure.message.starts_with("could not serialize"));
    }
}
