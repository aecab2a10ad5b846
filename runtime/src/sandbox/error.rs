//! Errors of the sandbox that happen before a task runs: loading and
//! compiling modules, and setting up the engine. What happens while a task
//! runs is an [`Outcome`](super::Outcome), not an error.

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

    /// The task's arguments could not be encoded.
    #[error("invalid task arguments: {0}")]
    InvalidArguments(String),

    /// The wasmtime engine could not be configured (for example the pool
    /// could not reserve its address space).
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}
