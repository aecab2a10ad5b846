//! The sandbox through its library API: many sleeping tasks share a few
//! threads, a full pool makes tasks wait instead of failing, instances do
//! not share state, and compiled modules are cached in memory and on disk.

use std::time::{Duration, Instant};

use serde_json::json;
use wasq::{Limits, Outcome, Sandbox, SandboxConfig, TaskCall};
use wasq_tests::wasm;

fn basics_bytes() -> Vec<u8> {
    std::fs::read(wasm("basics")).unwrap()
}

fn call(task: &str, args: serde_json::Value) -> TaskCall {
    TaskCall::new("basics", task, &args, &json!({})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sleeping_tasks_do_not_hold_a_thread_each() {
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let module = sandbox.load(&basics_bytes()).await.unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (sandbox, module) = (sandbox.clone(), module.clone());
            tokio::spawn(async move {
                sandbox
                    .run(&module, &call("sleep", json!([1000])), &Limits::default())
                    .await
            })
        })
        .collect();
    for task in tasks {
        let execution = task.await.unwrap();
        assert_eq!(
            execution.outcome,
            Outcome::Success,
            "{}",
            execution.stderr_text()
        );
        assert_eq!(execution.result_json(), 1000);
    }
    // 100 one-second sleeps on two threads: serially they would take 50 s.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_makes_tasks_wait_not_fail() {
    let sandbox = Sandbox::new(SandboxConfig {
        slots: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let module = sandbox.load(&basics_bytes()).await.unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (sandbox, module) = (sandbox.clone(), module.clone());
            tokio::spawn(async move {
                sandbox
                    .run(&module, &call("add", json!([i, 1])), &Limits::default())
                    .await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let execution = task.await.unwrap();
        assert_eq!(
            execution.outcome,
            Outcome::Success,
            "{}",
            execution.stderr_text()
        );
        assert_eq!(execution.result_json(), json!(i + 1));
    }
}

#[tokio::test]
async fn every_task_gets_a_fresh_instance() {
    // Each run increments a global and prints it: a shared instance would
    // print 1, then 2.
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let module = sandbox
        .load(
            br#"(module
                (import "wasi_snapshot_preview1" "fd_write"
                    (func $fd_write (param i32 i32 i32 i32) (result i32)))
                (memory (export "memory") 1)
                (global $runs (mut i32) (i32.const 0))
                (func (export "_start")
                    (global.set $runs (i32.add (global.get $runs) (i32.const 1)))
                    (i32.store8 (i32.const 100) (i32.add (i32.const 48) (global.get $runs)))
                    (i32.store (i32.const 0) (i32.const 100))
                    (i32.store (i32.const 4) (i32.const 1))
                    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        )
        .await
        .unwrap();
    for _ in 0..3 {
        let execution = sandbox
            .run(&module, &call("count", json!([])), &Limits::default())
            .await;
        assert_eq!(execution.outcome, Outcome::Success);
        assert_eq!(execution.stdout, b"1");
    }
}

#[tokio::test]
async fn loads_of_one_module_share_one_compile() {
    let sandbox = Sandbox::new(SandboxConfig::default()).unwrap();
    let bytes = basics_bytes();
    let a = sandbox.load(&bytes).await.unwrap();
    let b = sandbox.load(&bytes).await.unwrap();
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.digest(), wasq::Digest::of(&bytes));
    assert!(sandbox.cached(&a.digest()).is_some());
    sandbox.forget_compiled();
    assert!(sandbox.cached(&a.digest()).is_none());
}

#[tokio::test]
async fn compiled_modules_survive_a_restart_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = SandboxConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..SandboxConfig::default()
    };
    let bytes = basics_bytes();
    let first = Sandbox::new(config.clone()).unwrap();
    first.load(&bytes).await.unwrap();
    let artifacts: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(artifacts.len(), 1, "one artifact per module");
    drop(first);

    // A new sandbox (a restart) loads the artifact and runs it.
    let second = Sandbox::new(config.clone()).unwrap();
    let module = second.load(&bytes).await.unwrap();
    let execution = second
        .run(&module, &call("fib", json!([10])), &Limits::default())
        .await;
    assert_eq!(execution.result_json(), 55);

    // A damaged artifact is discarded and the module recompiled.
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&path, b"garbage").unwrap();
    let third = Sandbox::new(config).unwrap();
    let module = third.load(&bytes).await.unwrap();
    let execution = third
        .run(&module, &call("fib", json!([10])), &Limits::default())
        .await;
    assert_eq!(execution.result_json(), 55);
}

#[tokio::test]
async fn a_module_over_the_size_cap_is_refused_before_compiling() {
    let sandbox = Sandbox::new(SandboxConfig {
        max_module_size: 1024,
        ..SandboxConfig::default()
    })
    .unwrap();
    let error = sandbox.load(&basics_bytes()).await.unwrap_err();
    assert!(
        matches!(
            error,
            wasq::SandboxError::ModuleTooLarge { limit: 1024, .. }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn fuel_off_stops_a_runaway_task_by_its_deadline() {
    let sandbox = Sandbox::new(SandboxConfig {
        fuel: false,
        ..SandboxConfig::default()
    })
    .unwrap();
    let module = sandbox.load(&basics_bytes()).await.unwrap();
    let limits = Limits {
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let execution = sandbox
        .run(&module, &call("spin", json!([])), &limits)
        .await;
    assert_eq!(execution.outcome, Outcome::Timeout);
    assert_eq!(execution.usage.fuel_consumed, None);
    assert!(execution.usage.cpu > Duration::ZERO);
}

#[tokio::test]
async fn arguments_must_be_an_array_and_an_object() {
    assert!(TaskCall::new("m", "t", &json!({"a": 1}), &json!({})).is_err());
    assert!(TaskCall::new("m", "t", &json!([1]), &json!([2])).is_err());
    let call = TaskCall::new("m", "t", &json!([1]), &json!(null)).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&call.input).unwrap(),
        json!({"args": [1], "kwargs": {}})
    );
}
