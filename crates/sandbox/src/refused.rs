//! Digests that failed to compile, remembered so a module that was refused
//! (malformed, over a shape limit, past its compile time or memory) is
//! refused again at once instead of compiling again for every task.
//!
//! In memory, bounded in entries (the oldest refusal is forgotten first);
//! beside the compiled artifacts on disk when the sandbox has a cache
//! directory, so a restart, or another process sharing the directory,
//! remembers too. Remove a `*.refused` file to let wasq try again (after
//! raising `compile_timeout`, say).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::SandboxError;
use wasq_core::Digest;

/// Refusals kept in memory.
const REMEMBERED: usize = 4096;
/// Longest reason read back from a marker file.
const MAX_REASON: usize = 2048;

#[derive(Debug, Default)]
struct Memory {
    reasons: HashMap<Digest, SandboxError>,
    order: VecDeque<Digest>,
}

/// The refused digests.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    memory: Mutex<Memory>,
}

impl Refusals {
    fn lock(&self) -> MutexGuard<'_, Memory> {
        // Only map updates happen under the lock.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Why `digest` was refused, if it was (here, or in `marker`).
    pub(crate) fn get(&self, digest: &Digest, marker: Option<PathBuf>) -> Option<SandboxError> {
        if let Some(reason) = self.lock().reasons.get(digest) {
            return Some(reason.clone());
        }
        let text = std::fs::read(marker?).ok()?;
        let text = String::from_utf8_lossy(&text[..text.len().min(MAX_REASON)]).into_owned();
        let reason = SandboxError::Refused(text.trim().to_owned());
        self.remember_in_memory(*digest, reason.clone());
        Some(reason)
    }

    /// Remembers that `digest` was refused for `reason`, on disk too when
    /// `marker` names where.
    pub(crate) fn remember(&self, digest: Digest, reason: &SandboxError, marker: Option<PathBuf>) {
        let remembered = SandboxError::Refused(reason.to_string());
        if let Some(path) = marker {
            let write = || -> std::io::Result<()> {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&path, reason.to_string())
            };
            if let Err(error) = write() {
                tracing::warn!(%error, path = %path.display(), "cannot record a refused module");
            }
        }
        self.remember_in_memory(digest, remembered);
    }

    fn remember_in_memory(&self, digest: Digest, reason: SandboxError) {
        let mut memory = self.lock();
        if memory.reasons.insert(digest, reason).is_none() {
            memory.order.push_back(digest);
        }
        while memory.order.len() > REMEMBERED {
            if let Some(oldest) = memory.order.pop_front() {
                memory.reasons.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_remembered_on_disk_and_bounded_in_memory() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let refusals = Refusals::default();
        let digest = Digest::of(b"bomb");
        let marker = dir.path().join("bomb.refused");
        assert!(refusals.get(&digest, Some(marker.clone())).is_none());
        refusals.remember(
            digest,
            &SandboxError::CompileTimeout(std::time::Duration::from_secs(1)),
            Some(marker.clone()),
        );
        let again = Refusals::default().get(&digest, Some(marker));
        let message = again.expect("remembered on disk").to_string();
        assert!(message.contains("took longer than"), "{message}");

        for i in 0..(REMEMBERED + 10) {
            let d = Digest::of(format!("m{i}").as_bytes());
            refusals.remember(d, &SandboxError::InvalidModule("x".into()), None);
        }
        assert!(refusals.lock().reasons.len() <= REMEMBERED);
        assert!(refusals.get(&Digest::of(b"m0"), None).is_none());
    }
}
