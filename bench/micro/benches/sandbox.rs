//! Benchmarks of the sandbox hot path, run with `cargo xtask bench` (or
//! `cargo bench -p wasq-micro-benches --bench sandbox`). Needs `target/wasm/basics.wasm`
//! (`cargo xtask build`).
//!
//! 1. `overhead/noop/*`: the whole per-task path (WASI setup, limits, output
//!    capture, outcome) for a no-op task with a warm cache: one thread, two
//!    threads (time per task, so lower is better and the ratio is the
//!    speed-up), without CPU metering, and raw wasmtime for reference.
//! 2. `fib25/*`: a call-heavy task with fuel on and off.
//! 3. `load/*`: loading a module from the on-disk cache after a restart, and
//!    compiling it from scratch.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use wasq_sandbox::{CpuMetering, Limits, Sandbox, SandboxConfig, TaskCall, TaskModule};

fn basics() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm/basics.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask build` first", path.display()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn setup(config: SandboxConfig) -> (Sandbox, TaskModule) {
    let sandbox = Sandbox::new(config).expect("sandbox");
    let module = runtime()
        .block_on(sandbox.load(&basics()))
        .expect("basics.wasm loads");
    (sandbox, module)
}

fn call(task: &str, args: serde_json::Value) -> TaskCall {
    TaskCall::new("basics", task, &args, &json!({})).expect("call")
}

/// Runs `iters` tasks on `threads` OS threads (each with its own
/// single-threaded runtime) and returns the wall time for all of them.
fn run_on_threads(
    sandbox: &Sandbox,
    module: &TaskModule,
    task: &TaskCall,
    threads: u64,
    iters: u64,
) -> Duration {
    let limits = Limits::default();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let share = iters / threads + u64::from(t < iters % threads);
            let (sandbox, module, task, limits) = (sandbox.clone(), module.clone(), task, &limits);
            scope.spawn(move || {
                runtime().block_on(async {
                    for _ in 0..share {
                        let execution = sandbox.run(&module, task, limits).await;
                        assert!(execution.outcome.is_success(), "{execution:?}");
                    }
                });
            });
        }
    });
    started.elapsed()
}

fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("overhead/noop");
    let noop = call("noop", json!([]));
    let (sandbox, module) = setup(SandboxConfig::default());
    group.bench_function("1-thread", |b| {
        b.iter_custom(|iters| run_on_threads(&sandbox, &module, &noop, 1, iters))
    });
    group.bench_function("2-threads", |b| {
        b.iter_custom(|iters| run_on_threads(&sandbox, &module, &noop, 2, iters))
    });
    for (name, metering) in [
        ("1-thread-no-cpu-metering", CpuMetering::Off),
        ("1-thread-thread-clock-metering", CpuMetering::ThreadClock),
    ] {
        let (sandbox, module) = setup(SandboxConfig {
            cpu_metering: metering,
            ..SandboxConfig::default()
        });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run_on_threads(&sandbox, &module, &noop, 1, iters))
        });
    }
    group.finish();
    raw::bench(c);
}

fn fib(c: &mut Criterion) {
    let mut group = c.benchmark_group("fib25");
    let fib = call("fib", json!([25]));
    for (name, fuel) in [("fuel-on", true), ("fuel-off", false)] {
        let (sandbox, module) = setup(SandboxConfig {
            fuel,
            ..SandboxConfig::default()
        });
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run_on_threads(&sandbox, &module, &fib, 1, iters))
        });
    }
    group.finish();
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    let bytes = basics();
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = runtime();
    let cached = Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    rt.block_on(cached.load(&bytes))
        .expect("first load writes the artifact");
    group.bench_function("from-disk-cache", |b| {
        b.iter(|| {
            cached.forget_compiled();
            rt.block_on(cached.load(&bytes)).expect("load")
        })
    });
    let uncached = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    group.bench_function("compile", |b| {
        b.iter(|| {
            uncached.forget_compiled();
            rt.block_on(uncached.load(&bytes)).expect("compile")
        })
    });
    group.finish();
}

/// The same no-op task through bare wasmtime + wasmtime-wasi with the same
/// engine settings: the floor our sandbox path adds to.
mod raw {
    use super::*;
    use wasmtime::{
        Config, Enabled, Engine, InstanceAllocationStrategy, Linker, Module,
        PoolingAllocationConfig, Store,
    };
    use wasmtime_wasi::p1::WasiP1Ctx;
    use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};

    pub(super) fn bench(c: &mut Criterion) {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(64)
            .total_memories(64)
            .total_tables(64)
            .total_stacks(64)
            .linear_memory_keep_resident(2 << 20)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .consume_fuel(true);
        let engine = Engine::new(&config).expect("engine");
        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |cx| cx).expect("wasi");
        let module = Module::new(&engine, basics()).expect("module");
        let pre = linker.instantiate_pre(&module).expect("pre");
        let rt = runtime();
        c.bench_function("overhead/noop/raw-wasmtime", |b| {
            b.iter(|| {
                rt.block_on(async {
                    let wasi = wasmtime_wasi::WasiCtxBuilder::new()
                        .args(&["basics", "noop"])
                        .stdin(MemoryInputPipe::new(&br#"{"args":[],"kwargs":{}}"#[..]))
                        .stdout(MemoryOutputPipe::new(1 << 20))
                        .stderr(MemoryOutputPipe::new(1 << 16))
                        .build_p1();
                    let mut store = Store::new(&engine, wasi);
                    store.set_fuel(u64::MAX).expect("fuel");
                    store.set_epoch_deadline(1_000_000);
                    let instance = pre.instantiate_async(&mut store).await.expect("instance");
                    let start = instance
                        .get_typed_func::<(), ()>(&mut store, "_start")
                        .expect("_start");
                    if let Err(e) = start.call_async(&mut store, ()).await {
                        let code = e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|e| e.0);
                        assert_eq!(code, Some(0), "noop failed: {e:?}");
                    }
                })
            })
        });
    }
}

criterion_group!(benches, overhead, fib, load);
criterion_main!(benches);
