//! The sandbox: one wasmtime engine per process, a cache of compiled
//! modules, and [`Sandbox::run`], which runs one task in a fresh instance
//! under its [`Limits`] and reports an [`Execution`].
//!
//! What a task can reach is WASI (preview 1 for command modules, preview 2
//! for `wasq:task` components) with no preopened directories, no
//! environment, no sockets: only its arguments, its result, its log, clocks
//! and random numbers.

mod cache;
mod cancel;
mod config;
mod cpu;
mod engine;
mod error;
mod limiter;
mod outcome;
mod pipe;
mod run;

use std::fmt;
use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime::component::Component;
use wasmtime::{Engine, ExternType, Linker, Module};

use cache::{ArtifactDir, Compiled, ModuleCache};
use engine::EpochTicker;
use run::{ComponentState, TaskState, one_line};

pub use cache::TaskModule;
pub use cancel::CancelToken;
pub use config::{Limits, SandboxConfig};
pub use cpu::CpuMetering;
pub use error::SandboxError;
pub use outcome::{Execution, Outcome, OutcomeKind, OutputStream, Usage};
pub use run::TaskCall;

use crate::Digest;

/// Runs WebAssembly tasks. Cheap to clone; clones share the engine, the
/// module cache and the pool.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    engine: Engine,
    linker: Linker<TaskState>,
    component_linker: wasmtime::component::Linker<ComponentState>,
    cache: ModuleCache,
    artifacts: Option<ArtifactDir>,
    /// One permit per pool slot: a burst waits here instead of failing to
    /// instantiate.
    slots: Semaphore,
    /// Bounds the compiles running at once.
    compiles: Arc<Semaphore>,
    _ticker: EpochTicker,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.inner.config)
            .field("cached_modules", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Builds the engine (reserving the pool's address space) and starts the
    /// epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let engine = engine::build_engine(&config)?;
        let linker = engine::build_linker(&engine)?;
        let component_linker = engine::build_component_linker(&engine)?;
        let ticker = EpochTicker::start(&engine, config.epoch_tick)?;
        let artifacts = config
            .cache_dir
            .clone()
            .map(|dir| ArtifactDir::new(dir, &engine));
        Ok(Self {
            inner: Arc::new(Inner {
                cache: ModuleCache::new(config.cache_capacity),
                slots: Semaphore::new(config.slots as usize),
                compiles: Arc::new(Semaphore::new(config.compile_concurrency.max(1))),
                artifacts,
                linker,
                component_linker,
                engine,
                config,
                _ticker: ticker,
            }),
        })
    }

    /// The settings this sandbox was made with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Compiles and links `bytes` (a wasm binary, or WebAssembly text), or
    /// returns the cached module with the same digest. Concurrent loads of
    /// one module compile it once. Compiling runs on a blocking thread,
    /// bounded in number, size and time.
    pub async fn load(&self, bytes: &[u8]) -> Result<TaskModule, SandboxError> {
        let limit = self.inner.config.max_module_size;
        if bytes.len() > limit {
            return Err(SandboxError::ModuleTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let digest = Digest::of(bytes);
        let cell = self.inner.cache.cell(digest);
        cell.get_or_try_init(|| self.compile(digest, bytes.to_vec()))
            .await
            .cloned()
    }

    /// Pool slots taken by running tasks now.
    pub fn slots_in_use(&self) -> u64 {
        let total = self.inner.config.slots as usize;
        total.saturating_sub(self.inner.slots.available_permits()) as u64
    }

    /// The compiled module with this digest, if it is in memory.
    pub fn cached(&self, digest: &Digest) -> Option<TaskModule> {
        self.inner.cache.get(digest)
    }

    /// Drops every compiled module held in memory (the on-disk artifacts
    /// stay). The next load of a module reads its artifact or recompiles.
    pub fn forget_compiled(&self) {
        self.inner.cache.clear();
    }

    async fn compile(&self, digest: Digest, bytes: Vec<u8>) -> Result<TaskModule, SandboxError> {
        // The permit moves into the compile thread: a compile abandoned for
        // its timeout still holds its place until it really ends.
        let permit = self
            .inner
            .compiles
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SandboxError::Engine("the compile pool is closed".into()))?;
        let inner = self.inner.clone();
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            inner.compile_blocking(digest, &bytes)
        });
        let timeout = self.inner.config.compile_timeout;
        match tokio::time::timeout(timeout, job).await {
            Err(_) => Err(SandboxError::CompileTimeout(timeout)),
            Ok(Err(join)) => Err(SandboxError::InvalidModule(format!(
                "the compiler stopped unexpectedly: {join}"
            ))),
            Ok(Ok(result)) => result,
        }
    }
}

impl Inner {
    fn compile_blocking(&self, digest: Digest, bytes: &[u8]) -> Result<TaskModule, SandboxError> {
        if is_component(bytes) {
            return self.compile_component(digest, bytes);
        }
        let module = self.load_or_compile(
            |dir| dir.load(&self.engine, &digest),
            || {
                Module::new(&self.engine, bytes)
                    .map_err(|e| SandboxError::InvalidModule(describe_compile_error(bytes, &e)))
            },
            |dir, module| dir.store(&digest, module),
        )?;
        match module.get_export("_start") {
            Some(ExternType::Func(ty)) if ty.params().len() == 0 && ty.results().len() == 0 => {}
            _ => {
                return Err(SandboxError::InvalidModule(
                    "the module has no `_start` function: a wasq task must be a WASI command \
                     module or a `wasq:task` component (see guest-sdk/ABI.md)"
                        .into(),
                ));
            }
        }
        let pre = self.linker.instantiate_pre(&module).map_err(|e| {
            SandboxError::InvalidModule(format!(
                "{} (wasq provides only `wasi_snapshot_preview1`)",
                one_line(&e)
            ))
        })?;
        Ok(TaskModule::new(digest, bytes.len(), Compiled::Module(pre)))
    }

    /// A component: it must export `run: func(task: string, args: string)
    /// -> result<string, string>` and import nothing but WASI preview 2.
    fn compile_component(&self, digest: Digest, bytes: &[u8]) -> Result<TaskModule, SandboxError> {
        let component = self.load_or_compile(
            |dir| dir.load_component(&self.engine, &digest),
            || {
                Component::new(&self.engine, bytes)
                    .map_err(|e| SandboxError::InvalidModule(one_line(&e)))
            },
            |dir, component| dir.store_component(&digest, component),
        )?;
        let pre = self
            .component_linker
            .instantiate_pre(&component)
            .map_err(|e| {
                SandboxError::InvalidModule(format!(
                    "{} (wasq provides only WASI preview 2 to components)",
                    one_line(&e)
                ))
            })?;
        let component_type = component.component_type();
        let run = component_type
            .get_export(&self.engine, "run")
            .map(|export| export.ty);
        let signature_fits = match run {
            Some(wasmtime::component::types::ComponentItem::ComponentFunc(func)) => {
                use wasmtime::component::types::Type;
                let params: Vec<Type> = func.params().map(|(_, ty)| ty).collect();
                let results: Vec<Type> = func.results().collect();
                params.len() == 2
                    && params.iter().all(|ty| matches!(ty, Type::String))
                    && matches!(results.as_slice(), [Type::Result(r)]
                        if matches!(r.ok(), Some(Type::String)) && matches!(r.err(), Some(Type::String)))
            }
            _ => false,
        };
        if !signature_fits {
            return Err(SandboxError::InvalidModule(
                "the component does not export `run: func(task: string, args: string) -> \
                 result<string, string>` (the `wasq:task` world, see guest-sdk/ABI.md)"
                    .into(),
            ));
        }
        Ok(TaskModule::new(
            digest,
            bytes.len(),
            Compiled::Component(pre),
        ))
    }

    /// The compiled artifact from the on-disk cache, or a fresh compile,
    /// which is then saved there.
    fn load_or_compile<T>(
        &self,
        load: impl FnOnce(&ArtifactDir) -> Option<T>,
        compile: impl FnOnce() -> Result<T, SandboxError>,
        save: impl FnOnce(&ArtifactDir, &T),
    ) -> Result<T, SandboxError> {
        if let Some(found) = self.artifacts.as_ref().and_then(load) {
            return Ok(found);
        }
        let compiled = compile()?;
        if let Some(dir) = &self.artifacts {
            save(dir, &compiled);
        }
        Ok(compiled)
    }
}

/// Whether `bytes` is a component (binary, or text starting with `(component`).
fn is_component(bytes: &[u8]) -> bool {
    // A component's preamble: the magic, version 0x0d and layer 1.
    if bytes.starts_with(b"\0asm") {
        return bytes.get(4..8) == Some(&[0x0d, 0x00, 0x01, 0x00]);
    }
    std::str::from_utf8(bytes).is_ok_and(|text| {
        text.lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with(";;"))
            .is_some_and(|line| line.starts_with("(component"))
    })
}

/// Says in one line why bytes did not compile, starting with the likeliest
/// mistake: not a wasm file at all.
fn describe_compile_error(bytes: &[u8], error: &wasmtime::Error) -> String {
    if !bytes.starts_with(b"\0asm") && std::str::from_utf8(bytes).is_err() {
        return "not a WebAssembly module: the file does not start with the `\\0asm` magic bytes"
            .into();
    }
    if !bytes.starts_with(b"\0asm") {
        return format!(
            "not a WebAssembly binary, and not valid WebAssembly text: {}",
            one_line(error)
        );
    }
    one_line(error)
}
