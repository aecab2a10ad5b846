//! The process-wide wasmtime engine, its linker, and the epoch ticker that
//! drives wall-clock deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig,
};

use wasmtime_wasi::I32Exit;

use crate::SandboxError;
use crate::config::SandboxConfig;
use crate::state::{ComponentState, TaskState};

/// Pool slots a component's run takes: it holds several core instances,
/// memories and tables (a Python component: the interpreter, its libraries
/// and adapters), a command module one of each.
pub(crate) const COMPONENT_SLOTS: u32 = 4;

/// Builds the one engine of a sandbox: pooling allocator sized to
/// `config.slots`, copy-on-write memory images, epoch interruption always
/// on, fuel as configured.
pub(crate) fn build_engine(config: &SandboxConfig) -> Result<Engine, SandboxError> {
    let mut pool = PoolingAllocationConfig::new();
    // Every run holds `COMPONENT_SLOTS` permits of `slots` if it is a
    // component, one if it is a module; the pools fit either mix.
    pool.total_core_instances(config.slots * COMPONENT_SLOTS * 4)
        .total_memories(config.slots * 2)
        .total_tables(config.slots * 2)
        .total_stacks(config.slots)
        .total_component_instances(config.slots / COMPONENT_SLOTS + 1)
        .max_core_instances_per_component(COMPONENT_SLOTS * 4)
        .max_memories_per_component(COMPONENT_SLOTS * 2)
        .max_tables_per_component(COMPONENT_SLOTS * 2)
        .max_memory_size(usize::try_from(config.max_memory).unwrap_or(usize::MAX))
        .table_elements(config.max_table_elements)
        .linear_memory_keep_resident(config.keep_resident)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);

    let mut wasm = wasm_config(&EngineSettings::of(config));
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| SandboxError::Engine(format!("{e:#}")))
}

/// The engine settings that shape compiled code: a compile worker builds
/// its engine from these, so what it compiles loads into the sandbox's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EngineSettings {
    pub(crate) fuel: bool,
}

impl EngineSettings {
    pub(crate) fn of(config: &SandboxConfig) -> Self {
        Self { fuel: config.fuel }
    }

    /// As one command-line argument of the compile worker.
    pub(crate) fn to_arg(self) -> String {
        format!("fuel={}", u8::from(self.fuel))
    }

    pub(crate) fn from_arg(arg: &str) -> Option<Self> {
        match arg {
            "fuel=1" => Some(Self { fuel: true }),
            "fuel=0" => Some(Self { fuel: false }),
            _ => None,
        }
    }
}

/// Everything of the engine's configuration but the instance allocator,
/// which does not change compiled code.
fn wasm_config(settings: &EngineSettings) -> Config {
    let mut wasm = Config::new();
    wasm.memory_init_cow(true)
        .epoch_interruption(true)
        .consume_fuel(settings.fuel);
    wasm
}

/// An engine that only compiles (the compile worker's): no pool to
/// reserve address space for.
pub(crate) fn compile_only_engine(settings: &EngineSettings) -> Result<Engine, SandboxError> {
    Engine::new(&wasm_config(settings)).map_err(|e| SandboxError::Engine(format!("{e:#}")))
}

/// The linker every command module instantiates against: WASI preview 1 and
/// nothing else. A module importing anything more is refused as invalid.
pub(crate) fn build_linker(engine: &Engine) -> Result<Linker<TaskState>, SandboxError> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut TaskState| &mut state.wasi)
        .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
    exit_with_any_code(&mut linker)?;
    Ok(linker)
}

/// Replaces WASI's `proc_exit`, which turns a code of 126 or more (a C
/// task's `exit(200)` or `return -1`, AssemblyScript's `abort`, 255) into a
/// trap: every code ends the task as the guest asked, so any code but 0 is
/// a `guest_error` carrying it (a negative `int` of C arrives as itself).
fn exit_with_any_code(linker: &mut Linker<TaskState>) -> Result<(), SandboxError> {
    linker.allow_shadowing(true);
    let defined = linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "proc_exit",
            |code: i32| -> wasmtime::Result<()> { Err(I32Exit(code).into()) },
        )
        .map(|_| ())
        .map_err(|e| SandboxError::Engine(format!("{e:#}")));
    linker.allow_shadowing(false);
    defined
}

/// The imports command modules may have: every function of the linker.
pub(crate) fn provided_imports(engine: &Engine) -> Result<crate::inspect::Provided, SandboxError> {
    let mut linker: Linker<wasmtime_wasi::p1::WasiP1Ctx> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |ctx| ctx)
        .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
    let mut store = wasmtime::Store::new(engine, wasmtime_wasi::WasiCtxBuilder::new().build_p1());
    Ok(linker
        .iter(&mut store)
        .map(|(module, name, _)| (module.to_owned(), name.to_owned()))
        .collect())
}

/// The linker of components: WASI preview 2 and nothing else. The sandbox
/// is the same: no preopened directory, no environment, no sockets.
pub(crate) fn build_component_linker(
    engine: &Engine,
) -> Result<wasmtime::component::Linker<ComponentState>, SandboxError> {
    let mut linker = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
    Ok(linker)
}

/// A thread that advances the engine's epoch every tick. Each task's
/// deadline callback runs on a tick: it yields to the async runtime, or
/// interrupts the task once its deadline has passed.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine, tick: Duration) -> Result<Self, SandboxError> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("wasq-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| SandboxError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
