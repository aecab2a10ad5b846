//! Compiled modules: an in-memory LRU of ready-to-instantiate modules keyed
//! by digest, and an optional directory of serialized artifacts so a restart
//! does not recompile.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OnceCell;
use wasmtime::{Engine, InstancePre, Module};

use super::run::TaskState;
use crate::Digest;

/// A compiled module, linked and ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct TaskModule {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    digest: Digest,
    size: usize,
    pre: InstancePre<TaskState>,
}

impl TaskModule {
    pub(crate) fn new(digest: Digest, size: usize, pre: InstancePre<TaskState>) -> Self {
        Self {
            inner: Arc::new(ModuleInner { digest, size, pre }),
        }
    }

    /// The sha256 of the module's bytes.
    pub fn digest(&self) -> Digest {
        self.inner.digest
    }

    /// The size of the module's bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    pub(crate) fn pre(&self) -> &InstancePre<TaskState> {
        &self.inner.pre
    }
}

impl fmt::Debug for TaskModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskModule")
            .field("digest", &self.inner.digest)
            .field("size", &self.inner.size)
            .finish_non_exhaustive()
    }
}

type Cell = Arc<OnceCell<TaskModule>>;

/// The in-memory cache. Each digest gets a cell that is filled once, so
/// concurrent loads of one module compile it once.
#[derive(Debug)]
pub(crate) struct ModuleCache {
    capacity: usize,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    clock: u64,
    entries: HashMap<Digest, (Cell, u64)>,
}

impl ModuleCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // Only plain map updates happen under the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cell for `digest`, made if needed; evicts the least recently used
    /// entry when full.
    pub(crate) fn cell(&self, digest: Digest) -> Cell {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        if let Some((cell, used)) = state.entries.get_mut(&digest) {
            *used = now;
            return cell.clone();
        }
        if state.entries.len() >= self.capacity {
            let oldest = state
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(d, _)| *d);
            if let Some(oldest) = oldest {
                state.entries.remove(&oldest);
            }
        }
        let cell = Cell::default();
        state.entries.insert(digest, (cell.clone(), now));
        cell
    }

    /// The compiled module for `digest`, if it is in memory.
    pub(crate) fn get(&self, digest: &Digest) -> Option<TaskModule> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        let (cell, used) = state.entries.get_mut(digest)?;
        *used = now;
        cell.get().cloned()
    }

    pub(crate) fn clear(&self) {
        self.lock().entries.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Serialized compiled modules on disk, named `<digest>-<engine tag>.cwasm`.
/// The tag hashes wasmtime's version and every engine setting that affects
/// compiled code, so an upgrade or a settings change recompiles.
#[derive(Debug)]
pub(crate) struct ArtifactDir {
    dir: PathBuf,
    tag: String,
}

impl ArtifactDir {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            tag: format!("{:016x}", hasher.finish()),
        }
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{digest}-{}.cwasm", self.tag))
    }

    /// Loads the artifact of `digest`, if one is there and still loads.
    ///
    /// The file is read into memory rather than mapped: a mapped artifact
    /// that something truncates on disk would crash the process (SIGBUS).
    pub(crate) fn load(&self, engine: &Engine, digest: &Digest) -> Option<Module> {
        let path = self.path(digest);
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the artifact directory holds only files this process (or an
        // earlier run with the same engine settings) wrote from modules it
        // compiled itself; it must be writable only by the user running wasq
        // (documented on `SandboxConfig::cache_dir`). wasmtime still checks
        // the header, version and settings and refuses a mismatch.
        #[allow(unsafe_code, reason = "loading our own precompiled artifact")]
        let loaded = unsafe { Module::deserialize(engine, &bytes) };
        match loaded {
            Ok(module) => Some(module),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable compiled module");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes the artifact of `digest`; a failure only costs a recompile
    /// later, so it is logged, not returned.
    pub(crate) fn store(&self, digest: &Digest, module: &Module) {
        let write = || -> std::io::Result<()> {
            let bytes = module.serialize().map_err(std::io::Error::other)?;
            std::fs::create_dir_all(&self.dir)?;
            let path = self.path(digest);
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(error) = write() {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot save compiled module");
        }
    }
}
