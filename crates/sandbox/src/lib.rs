//! The sandbox: one wasmtime engine per process, a cache of compiled
//! modules, and [`Sandbox::run`], which runs one task in a fresh instance
//! under its [`Limits`] and reports an [`Execution`].
//!
//! What a task can reach is WASI (preview 1 for command modules, preview 2
//! for `wasq:task` components) with no preopened directories, no
//! environment, no sockets: only its arguments, its result, its log, clocks
//! and random numbers.

mod cache;
mod call;
mod cancel;
mod compile;
mod config;
mod cpu;
mod engine;
mod error;
mod inspect;
mod limiter;
mod pipe;
mod refused;
mod run;
pub mod scratch;
mod state;
mod watch;

use std::fmt;
use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime::{Engine, ExternType, Linker};

use cache::{ArtifactDir, Compiled, ModuleCache};
use engine::EpochTicker;
use error::one_line;
use inspect::{Kind, Provided, ShapeLimits};
use refused::Refusals;
use state::{ComponentState, TaskState};

pub use cache::TaskModule;
pub use call::TaskCall;
pub use cancel::CancelToken;
pub use compile::{COMPILE_WORKER_ARG, CompileIsolation, compile_worker_main};
pub use config::{Limits, SandboxConfig, ScratchLimits};
pub use cpu::CpuMetering;
pub use error::SandboxError;
pub use wasq_core::outcome::{Execution, Outcome, OutcomeKind, OutputStream, ScratchQuota, Usage};

use wasq_core::Digest;

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
    /// Digests that failed to compile.
    refused: Refusals,
    /// The imports command modules may have.
    provided: Provided,
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
        let provided = engine::provided_imports(&engine)?;
        let ticker = EpochTicker::start(&engine, config.epoch_tick)?;
        let artifacts = config
            .cache_dir
            .clone()
            .map(|dir| ArtifactDir::new(dir, &engine));
        Ok(Self {
            inner: Arc::new(Inner {
                cache: ModuleCache::with_bytes(config.cache_capacity, config.cache_bytes),
                slots: Semaphore::new(config.slots as usize),
                compiles: Arc::new(Semaphore::new(config.compile_concurrency.max(1))),
                refused: Refusals::default(),
                provided,
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
    /// one module compile it once.
    ///
    /// Before any compile the module's shape is checked (imports, the
    /// task's export, function count, size and nesting), in milliseconds.
    /// The compile itself waits at most `compile_timeout` for one of
    /// `compile_concurrency` slots and then runs where
    /// [`SandboxConfig::compile_isolation`] says, at most `compile_timeout`.
    /// A module that fails is remembered by digest and refused at once
    /// afterwards ([`SandboxError::Refused`]).
    pub async fn load(&self, bytes: &[u8]) -> Result<TaskModule, SandboxError> {
        let limit = self.inner.config.max_module_size;
        if bytes.len() > limit {
            return Err(SandboxError::ModuleTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let digest = Digest::of(bytes);
        if let Some(module) = self.inner.cache.get(&digest) {
            return Ok(module);
        }
        if let Some(reason) = self.inner.refused.get(&digest, self.inner.marker(&digest)) {
            return Err(reason);
        }
        let cell = self.inner.cache.cell(digest);
        let loaded = cell
            .get_or_try_init(|| self.compile(digest, bytes.to_vec()))
            .await
            .cloned();
        if let Err(error) = &loaded
            && error.is_module_at_fault()
            && !matches!(error, SandboxError::Refused(_))
        {
            self.inner
                .refused
                .remember(digest, error, self.inner.marker(&digest));
        }
        loaded
    }

    /// Why the module with this digest was refused, if it was (in this
    /// process, or as recorded in the artifact directory).
    pub fn refusal(&self, digest: &Digest) -> Option<SandboxError> {
        self.inner.refused.get(digest, self.inner.marker(digest))
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
        // Text to binary, the shape checks and the on-disk artifact: quick,
        // but not for the async threads.
        let size = bytes.len();
        let inner = self.inner.clone();
        let prepared = tokio::task::spawn_blocking(move || inner.prepare(digest, bytes))
            .await
            .map_err(|e| SandboxError::Engine(format!("the module check stopped: {e}")))??;
        let (binary, kind) = match prepared {
            Prepared::Ready(module) => return Ok(module),
            Prepared::Compile { binary, kind } => (binary, kind),
        };
        let timeout = self.inner.config.compile_timeout;
        let permit = match tokio::time::timeout(
            timeout,
            self.inner.compiles.clone().acquire_owned(),
        )
        .await
        {
            Err(_) => return Err(SandboxError::CompileBusy(timeout)),
            Ok(Err(_)) => return Err(SandboxError::Engine("the compile pool is closed".into())),
            Ok(Ok(permit)) => permit,
        };
        let compiled = compile::compile(
            &self.inner.engine,
            &self.inner.compile_settings(),
            binary,
            kind,
            permit,
        )
        .await?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.link(digest, size, compiled, true))
            .await
            .map_err(|e| SandboxError::Engine(format!("linking the module stopped: {e}")))?
    }
}

/// A module ready to run, or the binary that must be compiled first.
enum Prepared {
    Ready(TaskModule),
    Compile { binary: Vec<u8>, kind: Kind },
}

impl Inner {
    fn compile_settings(&self) -> compile::CompileSettings {
        compile::CompileSettings {
            isolation: self.config.compile_isolation.clone(),
            engine: engine::EngineSettings::of(&self.config),
            timeout: self.config.compile_timeout,
            memory: self.config.compile_memory,
        }
    }

    /// Where the refusal of `digest` is recorded on disk, if anywhere.
    fn marker(&self, digest: &Digest) -> Option<std::path::PathBuf> {
        use std::hash::{Hash as _, Hasher as _};
        let config = &self.config;
        let mut limits = std::hash::DefaultHasher::new();
        (
            config.compile_timeout,
            config.compile_memory,
            config.max_functions,
            config.max_function_size,
            config.max_nesting,
        )
            .hash(&mut limits);
        let limits = limits.finish();
        self.artifacts
            .as_ref()
            .map(|dir| dir.refused_path(digest, limits))
    }

    /// The module from its on-disk artifact, or its binary after the shape
    /// checks.
    fn prepare(&self, digest: Digest, bytes: Vec<u8>) -> Result<Prepared, SandboxError> {
        if let Some(dir) = &self.artifacts {
            let found = if is_component(&bytes) {
                dir.load_component(&self.engine, &digest)
                    .map(compile::Compiled::Component)
            } else {
                dir.load(&self.engine, &digest)
                    .map(compile::Compiled::Module)
            };
            if let Some(compiled) = found {
                return self
                    .link(digest, bytes.len(), compiled, false)
                    .map(Prepared::Ready);
            }
        }
        let binary = if bytes.starts_with(b"\0asm") {
            bytes
        } else {
            wat::parse_bytes(&bytes)
                .map(|b| b.into_owned())
                .map_err(|e| SandboxError::InvalidModule(describe_text_error(&bytes, &e)))?
        };
        let limits = ShapeLimits {
            max_functions: self.config.max_functions,
            max_function_size: self.config.max_function_size,
            max_nesting: self.config.max_nesting,
        };
        let kind = inspect::inspect(&binary, &limits, &self.provided)?;
        Ok(Prepared::Compile { binary, kind })
    }

    /// Checks a compiled module's entry point and links it against what
    /// wasq provides; saves its artifact when `save`.
    fn link(
        &self,
        digest: Digest,
        size: usize,
        compiled: compile::Compiled,
        save: bool,
    ) -> Result<TaskModule, SandboxError> {
        match compiled {
            compile::Compiled::Module(module) => {
                if save && let Some(dir) = &self.artifacts {
                    dir.store(&digest, &module);
                }
                self.link_module(digest, size, &module)
            }
            compile::Compiled::Component(component) => {
                if save && let Some(dir) = &self.artifacts {
                    dir.store_component(&digest, &component);
                }
                self.link_component(digest, size, &component)
            }
        }
    }

    fn link_module(
        &self,
        digest: Digest,
        size: usize,
        module: &wasmtime::Module,
    ) -> Result<TaskModule, SandboxError> {
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
        let pre = self.linker.instantiate_pre(module).map_err(|e| {
            SandboxError::InvalidModule(format!(
                "{} (wasq provides only `wasi_snapshot_preview1`)",
                one_line(&e)
            ))
        })?;
        Ok(TaskModule::new(digest, size, Compiled::Module(pre)))
    }

    /// A component: it must export `run: func(task: string, args: string)
    /// -> result<string, string>` and import nothing but WASI preview 2.
    fn link_component(
        &self,
        digest: Digest,
        size: usize,
        component: &wasmtime::component::Component,
    ) -> Result<TaskModule, SandboxError> {
        let pre = self
            .component_linker
            .instantiate_pre(component)
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
        Ok(TaskModule::new(digest, size, Compiled::Component(pre)))
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

/// Says in one line why bytes that are not a wasm binary are not valid
/// WebAssembly text either, starting with the likeliest mistake: not a
/// wasm file at all.
fn describe_text_error(bytes: &[u8], error: &wat::Error) -> String {
    if std::str::from_utf8(bytes).is_err() {
        return "not a WebAssembly module: the file does not start with the `\\0asm` magic bytes"
            .into();
    }
    format!(
        "not a WebAssembly binary, and not valid WebAssembly text: {}",
        error.to_string().replace('\n', " ")
    )
}
