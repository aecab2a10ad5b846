//! Compiled modules: an in-memory LRU of ready-to-instantiate modules keyed
//! by digest, and an optional directory of serialized artifacts so a restart
//! does not recompile.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OnceCell;
use wasmtime::component::{self, Component};
use wasmtime::{Engine, InstancePre, Module};

use super::run::{ComponentState, TaskState};
use crate::Digest;

/// A compiled module, linked and ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct TaskModule {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    digest: Digest,
    size: usize,
    compiled: Compiled,
}

/// The two kinds of task module (guest-sdk/ABI.md).
pub(crate) enum Compiled {
    /// A WASI preview 1 command: `_start`, argv, stdin and stdout.
    Module(InstancePre<TaskState>),
    /// A component of the `wasq:task` world: `run(task, args)` on WASI preview 2.
    Component(component::InstancePre<ComponentState>),
}

impl TaskModule {
    pub(crate) fn new(digest: Digest, size: usize, compiled: Compiled) -> Self {
        Self {
            inner: Arc::new(ModuleInner {
                digest,
                size,
                compiled,
            }),
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

    pub(crate) fn compiled(&self) -> &Compiled {
        &self.inner.compiled
    }

    /// Whether this is a component (of the `wasq:task` world) rather than a command module.
    pub fn is_component(&self) -> bool {
        matches!(self.inner.compiled, Compiled::Component(_))
    }
}

impl fmt::Debug for TaskModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskModule")
            .field("digest", &self.inner.digest)
            .field("size", &self.inner.size)
            .field("component", &self.is_component())
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

    fn path(&self, digest: &Digest, kind: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{}.{kind}", self.tag))
    }

    /// Loads the module artifact of `digest`, if one is there and still loads.
    pub(crate) fn load(&self, engine: &Engine, digest: &Digest) -> Option<Module> {
        // SAFETY: see `load_with`.
        #[allow(unsafe_code, reason = "loading our own precompiled artifact")]
        let loaded = self.load_with(digest, "cwasm", |bytes| unsafe {
            Module::deserialize(engine, bytes)
        });
        loaded
    }

    /// Loads the component artifact of `digest`, if one is there and still loads.
    pub(crate) fn load_component(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        // SAFETY: see `load_with`.
        #[allow(unsafe_code, reason = "loading our own precompiled artifact")]
        let loaded = self.load_with(digest, "ccwasm", |bytes| unsafe {
            Component::deserialize(engine, bytes)
        });
        loaded
    }

    /// Reads an artifact and deserializes it, dropping a file that no longer loads.
    ///
    /// The file is read into memory rather than mapped: a mapped artifact
    /// that something truncates on disk would crash the process (SIGBUS).
    ///
    /// Deserializing is unsafe in wasmtime: the artifact directory holds only
    /// files this process (or an earlier run with the same engine settings)
    /// wrote from modules it compiled itself; it must be writable only by the
    /// user running wasq (documented on `SandboxConfig::cache_dir`). wasmtime
    /// still checks the header, version and settings and refuses a mismatch.
    fn load_with<T>(
        &self,
        digest: &Digest,
        kind: &str,
        deserialize: impl FnOnce(&[u8]) -> wasmtime::Result<T>,
    ) -> Option<T> {
        let path = self.path(digest, kind);
        let bytes = std::fs::read(&path).ok()?;
        match deserialize(&bytes) {
            Ok(loaded) => Some(loaded),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable compiled module");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes the artifact of a module.
    pub(crate) fn store(&self, digest: &Digest, module: &Module) {
        self.store_bytes(digest, "cwasm", module.serialize());
    }

    /// Writes the artifact of a component.
    pub(crate) fn store_component(&self, digest: &Digest, component: &Component) {
        self.store_bytes(digest, "ccwasm", component.serialize());
    }

    /// Writes an artifact; a failure only costs a recompile later, so it is
    /// logged, not returned.
    fn store_bytes(&self, digest: &Digest, kind: &str, serialized: wasmtime::Result<Vec<u8>>) {
        let write = || -> std::io::Result<()> {
            let bytes = serialized.map_err(std::io::Error::other)?;
            std::fs::create_dir_all(&self.dir)?;
            let path = self.path(digest, kind);
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(error) = write() {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot save compiled module");
        }
    }
}
