//! What a task is called with: its module's and task's names, its input,
//! and what its grants let it see (environment, scratch directory).

use crate::error::SandboxError;

/// What to run: a task name of a module and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCall {
    /// The module's name, the guest's `argv[0]`.
    pub module: String,
    /// The task's name, the guest's `argv[1]`.
    pub task: String,
    /// The guest's stdin: `{"args":[…],"kwargs":{…}}`.
    pub input: Vec<u8>,
    /// Environment variables the guest sees: none unless granted.
    pub env: Vec<(String, String)>,
    /// A host directory the guest sees, read-write, as `/scratch`: none
    /// unless granted. The caller makes it (empty, and where no one else
    /// can write) and removes it; while the task runs it is held to
    /// [`Limits::scratch`](crate::Limits::scratch).
    pub scratch: Option<std::path::PathBuf>,
}

impl TaskCall {
    /// A call with positional `args` (a JSON array) and named `kwargs` (a
    /// JSON object; `null` means none).
    pub fn new(
        module: impl Into<String>,
        task: impl Into<String>,
        args: &serde_json::Value,
        kwargs: &serde_json::Value,
    ) -> Result<Self, SandboxError> {
        let input = wasq_core::input::task_input(args, kwargs)
            .map_err(|e| SandboxError::InvalidArguments(e.0))?
            .into_bytes();
        Ok(Self {
            module: module.into(),
            task: task.into(),
            input,
            env: Vec::new(),
            scratch: None,
        })
    }
}
