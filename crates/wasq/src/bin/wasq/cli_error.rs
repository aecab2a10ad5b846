//! The command line's error: a one-line message and the exit code it maps to.

use wasq::{OutcomeKind, SandboxError};

/// Exit code of a usage error: bad flags, bad JSON, a file that cannot be read.
pub(crate) const USAGE: u8 = 2;

/// An error that ends a command.
#[derive(Debug)]
pub(crate) struct CliError {
    code: u8,
    error: anyhow::Error,
}

impl CliError {
    /// Bad input from the user: exit code 2.
    pub(crate) fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: USAGE,
            error: error.into(),
        }
    }

    /// An error with a chosen exit code.
    pub(crate) fn with_code(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
        }
    }

    /// Anything else that stops the command: exit code 1.
    pub(crate) fn other(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: 1,
            error: error.into(),
        }
    }

    /// Adds the file the error is about in front of the message.
    pub(crate) fn context(self, path: &std::path::Path) -> Self {
        Self {
            code: self.code,
            error: self.error.context(path.display().to_string()),
        }
    }

    /// The exit code.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }

    /// The error and its causes, on one line.
    pub(crate) fn message(&self) -> String {
        format!("{:#}", self.error).replace('\n', " ")
    }
}

impl From<SandboxError> for CliError {
    fn from(error: SandboxError) -> Self {
        let code = match error {
            SandboxError::InvalidArguments(_) => USAGE,
            SandboxError::Engine(_) | SandboxError::CompileBusy(_) => 1,
            _ => OutcomeKind::InvalidModule.exit_code(),
        };
        Self {
            code,
            error: error.into(),
        }
    }
}
