//! Errors of the sandbox that happen before a task runs: loading and
//! compiling modules, and setting up the engine. What happens while a task
//! runs is an [`Outcome`](crate::Outcome), not an error.

use std::time::Duration;

/// Why a module could not be loaded, or the sandbox not built.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The bytes are not a module wasq can run: not wasm, malformed, an
    /// import wasq does not provide, or no `_start` export.
    #[error("invalid module: {0}")]
    InvalidModule(String),

    /// The module is larger than `SandboxConfig::max_module_size`.
    #[error("module is {size} bytes, over the limit of {limit} bytes")]
    ModuleTooLarge {
        /// Size of the module.
        size: usize,
        /// The configured cap.
        limit: usize,
    },

    /// Compiling took longer than `SandboxConfig::compile_timeout`.
    #[error("compiling the module took longer than {0:?}; it was refused")]
    CompileTimeout(Duration),

    /// Compiling needed more address space than
    /// `SandboxConfig::compile_memory` (bytes).
    #[error(
        "compiling the module needed more than its memory limit of {} MiB; it was refused",
        .0 >> 20
    )]
    CompileOutOfMemory(u64),

    /// No compile slot came free within `SandboxConfig::compile_timeout`
    /// (other modules are compiling); nothing is wrong with the module.
    #[error("no compile slot came free within {0:?}; the module was not compiled, try again")]
    CompileBusy(Duration),

    /// The module was refused before (the reason is that refusal's): it is
    /// not compiled again.
    #[error("refused before, not compiled again: {0}")]
    Refused(String),

    /// The task's arguments could not be encoded.
    #[error("invalid task arguments: {0}")]
    InvalidArguments(String),

    /// The wasmtime engine could not be configured (for example the pool
    /// could not reserve its address space).
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

impl SandboxError {
    /// Whether the module itself is at fault, so that compiling it again
    /// would fail again: such digests are remembered and refused at once.
    pub fn is_module_at_fault(&self) -> bool {
        matches!(
            self,
            Self::InvalidModule(_)
                | Self::ModuleTooLarge { .. }
                | Self::CompileTimeout(_)
                | Self::CompileOutOfMemory(_)
                | Self::Refused(_)
        )
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(error: &wasmtime::Error) -> String {
    error
        .chain()
        .map(|cause| cause.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join(": ")
}
