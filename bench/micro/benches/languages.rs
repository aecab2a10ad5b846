//! The example guests of each language side by side (`cargo xtask bench micro languages`, or
//! `cargo bench -p wasq-micro-benches --bench languages`): the same `basics` tasks written in Rust, C, Zig,
//! AssemblyScript, JavaScript and Python, through the same sandbox. Needs `target/wasm/`
//! (`cargo xtask build`).
//!
//! - `languages/noop/<module>`: a fresh instance that reads its arguments and writes `null`:
//!   the cold-start cost each language's runtime adds (every task gets a fresh instance).
//! - `languages/fib25/<module>`: fib(25), the exponential way: compiled code quality under fuel.
//! - `languages/compile/<module>`: compiling the module from scratch (once per module and
//!   machine; the on-disk cache serves the rest).
//!
//! Module sizes are printed before the runs.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use wasq_sandbox::{Limits, Sandbox, SandboxConfig, TaskCall};

/// The modules compared, by file name under target/wasm/.
const MODULES: [&str; 6] = [
    "basics",
    "basics_c",
    "basics_zig",
    "basics_as",
    "basics_js",
    "basics_py",
];

fn module_bytes(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm")
        .join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask build` first", path.display()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn languages(c: &mut Criterion) {
    let rt = runtime();
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let limits = Limits::default();
    for name in MODULES {
        println!("{name}.wasm: {} bytes", module_bytes(name).len());
    }
    for (task, args) in [("noop", json!([])), ("fib25", json!([25]))] {
        let mut group = c.benchmark_group(format!("languages/{task}"));
        if task == "fib25" {
            group.sample_size(20);
        }
        for name in MODULES {
            let module = rt
                .block_on(sandbox.load(&module_bytes(name)))
                .expect("the module loads");
            let call =
                TaskCall::new(name, task.trim_end_matches("25"), &args, &json!({})).expect("call");
            group.bench_function(name, |b| {
                b.iter(|| {
                    let execution = rt.block_on(sandbox.run(&module, &call, &limits));
                    assert!(execution.outcome.is_success(), "{name}: {execution:?}");
                })
            });
        }
        group.finish();
    }
    let mut group = c.benchmark_group("languages/compile");
    group.sample_size(10);
    for name in MODULES {
        let bytes = module_bytes(name);
        group.bench_function(name, |b| {
            b.iter(|| {
                sandbox.forget_compiled();
                rt.block_on(sandbox.load(&bytes)).expect("compile")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, languages);
criterion_main!(benches);
