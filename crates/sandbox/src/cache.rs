//! Compiled modules: an in-memory LRU of ready-to-instantiate modules keyed
//! by digest, bounded in entries and in bytes, and an optional directory of
//! serialized artifacts so a restart does not recompile.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OnceCell;
use wasmtime::component::{self, Component};
use wasmtime::{Engine, InstancePre, Module};

use crate::state::{ComponentState, TaskState};
use wasq_core::Digest;

/// A compiled module, linked and ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct TaskModule {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    digest: Digest,
    size: usize,
    /// What it holds in memory, roughly: see [`TaskModule::footprint`].
    footprint: usize,
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
        let image = match &compiled {
            Compiled::Module(pre) => pre.module().image_range(),
            Compiled::Component(pre) => pre.component().image_range(),
        };
        let image = (image.end as usize).saturating_sub(image.start as usize);
        Self {
            inner: Arc::new(ModuleInner {
                digest,
                size,
                footprint: estimate_footprint(size, image),
                compiled,
            }),
        }
    }

    /// Bytes this module holds in memory, estimated: its compiled image
    /// (code, data, metadata) plus its wasm size again for the rest of
    /// wasmtime's bookkeeping (types, linked imports), and never less than
    /// `FOOTPRINT_FACTOR` times its wasm size.
    pub fn footprint(&self) -> usize {
        self.inner.footprint
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

/// The least a compiled module is taken to hold, per byte of its wasm:
/// Cranelift's code is usually larger than the wasm it came from.
pub(crate) const FOOTPRINT_FACTOR: usize = 2;

fn estimate_footprint(wasm_size: usize, image: usize) -> usize {
    image
        .saturating_add(wasm_size)
        .max(wasm_size.saturating_mul(FOOTPRINT_FACTOR))
}

type Cell = Arc<OnceCell<TaskModule>>;

/// The in-memory cache. Each digest gets a cell that is filled once, so
/// concurrent loads of one module compile it once.
///
/// Bounded by `capacity` entries and by `max_bytes` of compiled modules'
/// [footprints](TaskModule::footprint): past either, least recently used
/// modules are dropped (a dropped module stays alive while a task still
/// holds it). The entry just asked for is never dropped, so one module
/// larger than `max_bytes` is kept alone; cells still compiling count
/// nothing until filled and are counted on the next lookup, so the cache may
/// exceed `max_bytes` by the modules compiling at once
/// (`compile_concurrency`) until then.
#[derive(Debug)]
pub(crate) struct ModuleCache {
    capacity: usize,
    max_bytes: usize,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    clock: u64,
    entries: HashMap<Digest, (Cell, u64)>,
}

impl ModuleCache {
    /// A cache of `capacity` modules and the default byte bound
    /// ([`SandboxConfig::cache_bytes`](crate::SandboxConfig::cache_bytes)).
    #[allow(
        dead_code,
        reason = "the count-only constructor, kept for callers that predate cache_bytes"
    )]
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with_bytes(capacity, crate::config::DEFAULT_CACHE_BYTES)
    }

    /// A cache of at most `capacity` modules and `max_bytes` of them.
    pub(crate) fn with_bytes(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes,
            state: Mutex::default(),
        }
    }

    /// Drops least recently used filled entries other than `keep` while the
    /// filled ones hold more than `max_bytes`.
    fn shrink(&self, state: &mut CacheState, keep: &Digest) {
        let footprint = |cell: &Cell| cell.get().map_or(0, TaskModule::footprint);
        let mut total: usize = state
            .entries
            .values()
            .map(|(cell, _)| footprint(cell))
            .fold(0, usize::saturating_add);
        while total > self.max_bytes {
            let oldest = state
                .entries
                .iter()
                .filter(|(d, (cell, _))| *d != keep && cell.initialized())
                .min_by_key(|(_, (_, used))| *used)
                .map(|(d, _)| *d);
            let Some(oldest) = oldest else { break };
            if let Some((cell, _)) = state.entries.remove(&oldest) {
                total = total.saturating_sub(footprint(&cell));
            }
        }
    }

    /// Bytes of the compiled modules held (their footprints).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter_map(|(cell, _)| cell.get().map(TaskModule::footprint))
            .fold(0, usize::saturating_add)
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
            let cell = cell.clone();
            self.shrink(&mut state, &digest);
            return cell;
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
        self.shrink(&mut state, &digest);
        cell
    }

    /// The compiled module for `digest`, if it is in memory.
    pub(crate) fn get(&self, digest: &Digest) -> Option<TaskModule> {
        let mut state = self.lock();
        state.clock += 1;
        let now = state.clock;
        let (cell, used) = state.entries.get_mut(digest)?;
        *used = now;
        let found = cell.get().cloned();
        self.shrink(&mut state, digest);
        found
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

    /// Where the refusal of `digest` under these engine settings and the
    /// compile limits hashed in `limits` is kept (other limits try again).
    pub(crate) fn refused_path(&self, digest: &Digest, limits: u64) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}-{limits:016x}.refused", self.tag))
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
        use std::io::Write as _;
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let write = || -> std::io::Result<()> {
            let bytes = serialized.map_err(std::io::Error::other)?;
            // Artifacts are native code wasq will run: private to its user
            // (0700 directory, 0600 files) whatever the umask.
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(&self.dir)?;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
            let path = self.path(digest, kind);
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            file.write_all(&bytes)?;
            drop(file);
            std::fs::rename(&tmp, &path)
        };
        if let Err(error) = write() {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot save compiled module");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A linked module of about `data` bytes of wasm, unique per `seed`.
    fn module(engine: &Engine, seed: u8, data: usize) -> TaskModule {
        let bytes = "\\00".repeat(data);
        let wat = format!(
            "(module (memory 1) (global i32 (i32.const {seed})) (data (i32.const 0) \"{bytes}\"))"
        );
        let wasm = wat::parse_str(&wat).expect("valid wat");
        let compiled = Module::new(engine, &wasm).expect("compiles");
        let linker = wasmtime::Linker::<TaskState>::new(engine);
        let pre = linker.instantiate_pre(&compiled).expect("links");
        TaskModule::new(Digest::of(&wasm), wasm.len(), Compiled::Module(pre))
    }

    fn fill(cache: &ModuleCache, module: &TaskModule) {
        cache
            .cell(module.digest())
            .set(module.clone())
            .expect("an empty cell");
    }

    #[test]
    fn the_cache_is_bounded_in_bytes_dropping_the_least_recently_used() {
        let engine = Engine::default();
        let [a, b, c] = [1, 2, 3].map(|seed| module(&engine, seed, 64 << 10));
        for m in [&a, &b, &c] {
            assert!(m.footprint() >= FOOTPRINT_FACTOR * m.size(), "{m:?}");
            assert!(m.size() >= 64 << 10);
        }
        // Room for two of the three, and entries for all of them.
        let room = a.footprint() + b.footprint().max(c.footprint());
        let cache = ModuleCache::with_bytes(100, room);
        fill(&cache, &a);
        fill(&cache, &b);
        assert_eq!(cache.len(), 2);
        // `a` is used, so `b` is the least recently used when `c` arrives.
        assert!(cache.get(&a.digest()).is_some());
        fill(&cache, &c);
        assert!(cache.get(&c.digest()).is_some(), "the newest stays");
        assert!(cache.bytes() <= room, "{} > {room}", cache.bytes());
        assert!(cache.get(&a.digest()).is_some(), "recently used stays");
        assert!(cache.get(&b.digest()).is_none(), "least recently used goes");
    }

    #[test]
    fn one_module_over_the_bound_is_kept_alone() {
        let engine = Engine::default();
        let small = module(&engine, 1, 16);
        let big = module(&engine, 2, 64 << 10);
        let cache = ModuleCache::with_bytes(100, big.footprint() - 1);
        fill(&cache, &small);
        fill(&cache, &big);
        assert!(cache.get(&big.digest()).is_some());
        assert!(
            cache.get(&small.digest()).is_none(),
            "dropped for the big one"
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_entry_count_still_bounds_the_cache() {
        let engine = Engine::default();
        let cache = ModuleCache::new(2);
        for seed in 0..5 {
            fill(&cache, &module(&engine, seed, 16));
        }
        assert_eq!(cache.len(), 2);
    }
}
