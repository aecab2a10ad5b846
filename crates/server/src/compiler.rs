//! Uploads off the request threads. A module upload is read, checked and
//! compiled here, never on the threads that answer requests:
//!
//! - at most [`UPLOADS_AT_ONCE`] uploads are read and checked at a time,
//!   and as many compiled in the background (so memory holds at most that
//!   many bodies and parses); the others wait for a turn, uploads after
//!   [`TURN_WAIT`] are answered 503;
//! - the check (WebAssembly text to binary, validation) runs on a
//!   blocking thread;
//! - after the module is stored, it compiles in the background in the
//!   sandbox, whose compiles are bounded in number, time and memory and
//!   run in a worker process that is killed at the cap (see
//!   [`CompileIsolation`](wasq_sandbox::CompileIsolation)). The module's
//!   `compile` field says `compiling`, `compiled` or `refused` (with why).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use utoipa::ToSchema;

use super::error::ApiError;
use wasq_core::Digest;
use wasq_sandbox::Sandbox;

/// Uploads read and checked at once, and uploads compiled at once in the
/// background: a 20 MB text module takes some 400 MB to parse.
pub const UPLOADS_AT_ONCE: usize = 1;
/// How long an upload waits for its turn before it is answered 503.
pub const TURN_WAIT: Duration = Duration::from_secs(60);

/// Where a module's compile stands.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct CompileView {
    /// `compiling`, `compiled`, `refused`, or `not_compiled` (not yet
    /// compiled by this server; a cluster compiles it at its first task).
    pub state: String,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The background compiler of a service.
#[derive(Debug, Clone)]
pub struct Compiler {
    sandbox: Option<Sandbox>,
    turns: Arc<Semaphore>,
    compile_turns: Arc<Semaphore>,
    compiling: Arc<Mutex<HashSet<Digest>>>,
}

impl Compiler {
    /// A compiler that compiles in `sandbox` (none: uploads are only
    /// checked).
    pub fn new(sandbox: Option<Sandbox>) -> Self {
        Self {
            sandbox,
            turns: Arc::new(Semaphore::new(UPLOADS_AT_ONCE)),
            compile_turns: Arc::new(Semaphore::new(UPLOADS_AT_ONCE)),
            compiling: Arc::default(),
        }
    }

    fn compiling(&self) -> MutexGuard<'_, HashSet<Digest>> {
        self.compiling
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for an upload's turn (at most [`TURN_WAIT`]).
    pub async fn turn(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        match tokio::time::timeout(TURN_WAIT, self.turns.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::unavailable(format!(
                "other uploads are being checked ({UPLOADS_AT_ONCE} at a time) and none finished within {TURN_WAIT:?}: retry later"
            ))),
        }
    }

    /// Checks that `bytes` are WebAssembly, on a blocking thread.
    pub async fn check(&self, bytes: bytes::Bytes) -> Result<(), ApiError> {
        tokio::task::spawn_blocking(move || wasq_client::validate_module(&bytes))
            .await
            .map_err(|e| ApiError::internal(format!("the module check stopped: {e}")))?
            .map_err(ApiError::from)
    }

    /// Starts compiling a stored module in the background.
    pub fn start(&self, digest: Digest, bytes: bytes::Bytes) {
        let Some(sandbox) = self.sandbox.clone() else {
            return;
        };
        if sandbox.cached(&digest).is_some() || !self.compiling().insert(digest) {
            return;
        }
        let compiling = self.compiling.clone();
        let turns = self.compile_turns.clone();
        tokio::spawn(async move {
            // One upload's compile at a time (the semaphore is never closed).
            let _turn = turns.acquire_owned().await.ok();
            match sandbox.load(&bytes).await {
                Ok(_) => tracing::debug!(%digest, "uploaded module compiled"),
                Err(error) => tracing::info!(%digest, %error, "uploaded module refused"),
            }
            compiling
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&digest);
        });
    }

    /// Where the compile of `digest` stands.
    pub fn state(&self, digest: &Digest) -> CompileView {
        let view = |state: &str, reason: Option<String>| CompileView {
            state: state.to_owned(),
            reason,
        };
        let Some(sandbox) = &self.sandbox else {
            return view("not_compiled", None);
        };
        if sandbox.cached(digest).is_some() {
            return view("compiled", None);
        }
        if self.compiling().contains(digest) {
            return view("compiling", None);
        }
        match sandbox.refusal(digest) {
            Some(wasq_sandbox::SandboxError::Refused(reason)) => view("refused", Some(reason)),
            Some(other) => view("refused", Some(other.to_string())),
            None => view("not_compiled", None),
        }
    }
}
