//! Settings of the sandbox: engine-wide ones ([`SandboxConfig`], fixed when
//! the [`Sandbox`](crate::Sandbox) is made) and per-task [`Limits`].

use std::path::PathBuf;
use std::time::Duration;

use crate::{CompileIsolation, CpuMetering};

/// The default of [`SandboxConfig::cache_bytes`].
pub(crate) const DEFAULT_CACHE_BYTES: usize = 512 << 20;

/// Engine-wide settings of a [`Sandbox`](crate::Sandbox).
///
/// These shape the one wasmtime `Engine` of a process and cannot change
/// without making a new sandbox. Per-task budgets are [`Limits`]; the caps
/// here bound what any task's limits may ask for.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Count fuel: a deterministic CPU budget per task ([`Limits::fuel`]).
    ///
    /// Default: `true`. Fuel is an engine-wide switch. It is nearly free on
    /// short tasks but costs about +120–130% on call-heavy code with
    /// wasmtime 48 (fib(25): 0.35 ms without, 0.81 ms with). Deployments that
    /// trust the wall-clock deadline alone can turn it off; tasks are then
    /// stopped only by [`Limits::timeout`], and `fuel_consumed` is `None`.
    pub fuel: bool,

    /// Number of instance slots in the pooling allocator: the most tasks that
    /// can be instantiated at once in this process.
    ///
    /// Default: 512. A semaphore of this size stands in front of
    /// instantiation, so a burst past it waits for a slot instead of failing.
    /// Each slot reserves address space (not memory) for one linear memory.
    pub slots: u32,

    /// The most linear memory any task may have, in bytes; per-task
    /// [`Limits::memory`] is clamped to it.
    ///
    /// Default: 1 GiB. This sizes the pool's memory slots.
    pub max_memory: u64,

    /// The most table elements any task may have; [`Limits::table_elements`]
    /// is clamped to it. Default: 100,000.
    pub max_table_elements: usize,

    /// Bytes of each memory slot kept resident (zeroed with `memset`, not
    /// returned to the kernel with `madvise`) when a task ends, so the next
    /// task in that slot does not page-fault its memory back in.
    ///
    /// Default: 2 MiB. Measured with wasmtime 48 on a 2-core machine: with
    /// wasmtime's default (0) a no-op task costs about 28 µs and two threads
    /// run fewer tasks than one, because page faults and `madvise` contend in
    /// the kernel; with 2 MiB plus `pagemap_scan` it costs about 8 µs. The
    /// cost is up to this much resident memory per slot that has been used.
    pub keep_resident: usize,

    /// How often the epoch ticker advances, which is also how often a running
    /// task yields to the async runtime and how precisely
    /// [`Limits::timeout`] is enforced. Default: 2 ms.
    pub epoch_tick: Duration,

    /// How each task's CPU time ([`Usage::cpu`](crate::Usage::cpu)) is
    /// measured. Default: [`CpuMetering::PollTime`], time inside the task's
    /// polls, nearly free; [`CpuMetering::ThreadClock`] is exact on an
    /// oversubscribed machine but costs two system calls per poll.
    pub cpu_metering: CpuMetering,

    /// Directory for compiled modules, so a restart does not recompile.
    ///
    /// Default: `None` (compile in memory only). Artifacts are named by the
    /// module's sha256 and a hash of the engine's configuration and wasmtime
    /// version, so upgrading wasmtime or changing settings recompiles.
    /// Artifacts are trusted native code: the directory must be writable only
    /// by the user that runs wasq.
    pub cache_dir: Option<PathBuf>,

    /// Compiled modules kept in memory (least recently used are dropped).
    /// Default: 256.
    pub cache_capacity: usize,

    /// Bytes of compiled modules kept in memory, estimated per module from
    /// its compiled image and wasm size (`TaskModule::footprint`); least
    /// recently used are dropped past it, as past
    /// [`cache_capacity`](Self::cache_capacity), whichever comes first.
    ///
    /// Default: 512 MiB. A module that alone exceeds it is still kept (the
    /// one most recently used), so memory is bounded by this plus one
    /// module of at most [`max_module_size`](Self::max_module_size)'s
    /// compiled size, plus the modules compiling at once. Dropping only
    /// costs a reload from [`cache_dir`](Self::cache_dir) or a recompile.
    pub cache_bytes: usize,

    /// Largest module accepted, in bytes. Default: 64 MiB.
    ///
    /// Compiling hostile modules can take far longer than running them; this
    /// and [`compile_timeout`](Self::compile_timeout) bound that work.
    pub max_module_size: usize,

    /// Longest a compile may take before the module is refused, and
    /// longest a load waits for a compile slot.
    ///
    /// Default: 60 s. With [`CompileIsolation::Subprocess`] the compile
    /// worker is killed at this time (and limited to it in CPU time), so
    /// its slot frees at once; in process, Cranelift cannot be
    /// interrupted, so the compile is abandoned and finishes on its
    /// thread. Either way the caller gets
    /// [`SandboxError::CompileTimeout`](crate::SandboxError), and the
    /// digest is refused at once afterwards. A load that waited this long
    /// for a slot gets `CompileBusy` (the module is not blamed).
    pub compile_timeout: Duration,

    /// Compiles that may run at once. Default: the number of CPUs.
    pub compile_concurrency: usize,

    /// Where modules are compiled. Default: [`CompileIsolation::InProcess`]
    /// (a library has no worker program to run); the `wasq` binary uses
    /// [`CompileIsolation::Subprocess`] of itself.
    pub compile_isolation: CompileIsolation,

    /// Address space a compile worker may map, in bytes (`RLIMIT_AS`);
    /// a compile that needs more is refused with `CompileOutOfMemory`.
    /// Default: 4 GiB. Only with [`CompileIsolation::Subprocess`].
    pub compile_memory: u64,

    /// Most functions a module (or all modules of a component together)
    /// may define. Checked before compiling. Default: 200,000.
    pub max_functions: u32,

    /// Largest function body, in bytes. Checked before compiling.
    /// Default: 4 MiB.
    pub max_function_size: usize,

    /// Deepest nesting of loops in a function, and a tenth of the deepest
    /// nesting of blocks, ifs and loops together. Checked before compiling:
    /// a few thousand nested loops under one `br_table` take Cranelift
    /// minutes (500 take about 0.3 s here), while real code nests blocks
    /// deep (a `switch` is one block per case; CPython's interpreter loop
    /// nests over 500). Default: 500.
    pub max_nesting: u32,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            fuel: true,
            slots: 512,
            max_memory: 1 << 30,
            max_table_elements: 100_000,
            keep_resident: 2 << 20,
            epoch_tick: Duration::from_millis(2),
            cpu_metering: CpuMetering::PollTime,
            cache_dir: None,
            cache_capacity: 256,
            cache_bytes: DEFAULT_CACHE_BYTES,
            max_module_size: 64 << 20,
            compile_timeout: Duration::from_secs(60),
            compile_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            compile_isolation: CompileIsolation::InProcess,
            compile_memory: 4 << 30,
            max_functions: 200_000,
            max_function_size: 4 << 20,
            max_nesting: 500,
        }
    }
}

/// Budgets of one task. A task that exceeds one ends with the matching
/// [`Outcome`](crate::Outcome); the worker is unharmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time from instantiation to exit, including time spent in
    /// host calls such as WASI sleeps. Default: 30 s.
    ///
    /// Enforced by the epoch deadline (checked every
    /// [`SandboxConfig::epoch_tick`]) and by a timer around the whole call.
    pub timeout: Duration,

    /// Fuel units the task may burn, roughly one per wasm instruction.
    /// Default: one trillion, over a minute of CPU even for a tight loop
    /// (which burns about 12 billion a second here), so by default the
    /// [`timeout`](Self::timeout) ends a runaway task; set a smaller budget
    /// to bound CPU deterministically. Ignored when [`SandboxConfig::fuel`]
    /// is off.
    pub fuel: u64,

    /// Linear memory in bytes, clamped to [`SandboxConfig::max_memory`]:
    /// the total over every memory of the instance (a component holds
    /// several). Default: 128 MiB. A `memory.grow` past it fails inside the
    /// guest; if the task then fails, its outcome is `memory_limit`.
    pub memory: u64,

    /// Table elements, clamped to [`SandboxConfig::max_table_elements`].
    /// Default: 10,000.
    pub table_elements: usize,

    /// Bytes the task may write to stdout (its result). Default: 1 MiB.
    pub stdout: usize,

    /// Bytes the task may write to stderr (its log). Default: 64 KiB.
    pub stderr: usize,

    /// Quotas of the task's scratch directory, when it has one
    /// ([`TaskCall::scratch`](crate::TaskCall::scratch)).
    pub scratch: ScratchLimits,
}

/// Quotas of a task's scratch directory. A task over one is stopped with
/// [`Outcome::ScratchLimit`](crate::Outcome::ScratchLimit).
///
/// WASI gives no hook on writes, so a watcher walks the directory every
/// few tens of milliseconds (and once more when the task ends): a fast
/// writer can go past a quota by what it writes in that time before it is
/// stopped. The walk itself is bounded by these quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScratchLimits {
    /// Bytes of its files (each counted at its length or its allocated
    /// blocks, whichever is larger). Default: 64 MiB.
    pub bytes: u64,
    /// Files, directories and links. Default: 10,000.
    pub entries: u64,
    /// How deep directories may nest (an entry of `/scratch` is at depth
    /// 1). The watcher holds a descriptor per level, so keep it small.
    /// Default: 32.
    pub depth: u32,
}

impl Default for ScratchLimits {
    fn default() -> Self {
        Self {
            bytes: 64 << 20,
            entries: 10_000,
            depth: 32,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            fuel: 1_000_000_000_000,
            memory: 128 << 20,
            table_elements: 10_000,
            stdout: 1 << 20,
            stderr: 64 << 10,
            scratch: ScratchLimits::default(),
        }
    }
}

impl Limits {
    /// These limits with memory and tables clamped to the engine's caps.
    pub(crate) fn clamped(&self, config: &SandboxConfig) -> Self {
        Self {
            memory: self.memory.min(config.max_memory),
            table_elements: self.table_elements.min(config.max_table_elements),
            ..self.clone()
        }
    }
}
