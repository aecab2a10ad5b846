//! `wasq run` ends with each outcome, exit code and JSON report.

use std::time::{Duration, Instant};

use wasq_tests::{run_wasq, wasm};

fn basics() -> String {
    wasm("basics").display().to_string()
}

#[test]
fn fib_succeeds_with_its_result_and_usage() {
    let run = run_wasq(&["run", &basics(), "fib", "--args", "[25]", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "success");
    assert_eq!(json["result"], 75025);
    assert!(json["fuel_consumed"].as_u64().unwrap() > 100_000, "{json}");
    assert!(
        json["memory_peak_bytes"].as_u64().unwrap() >= 65536,
        "{json}"
    );
    assert!(json["duration_us"].as_u64().is_some());
    assert!(json["cpu_us"].as_u64().is_some());
}

#[test]
fn plain_output_is_the_result() {
    let run = run_wasq(&["run", &basics(), "hello", "--kwargs", r#"{"name":"Ada"}"#]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim(), r#""Hello, Ada!""#);
    let run = run_wasq(&["run", &basics(), "add", "--args", "[2, 40]"]);
    assert_eq!(run.stdout.trim(), "42", "{run:?}");
}

#[test]
fn no_fuel_reports_no_fuel() {
    let run = run_wasq(&[
        "run",
        &basics(),
        "fib",
        "--args",
        "[20]",
        "--no-fuel",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["result"], 6765);
    assert!(run.json()["fuel_consumed"].is_null());
}

#[test]
fn spin_times_out_with_exit_code_4() {
    let started = Instant::now();
    let run = run_wasq(&["run", &basics(), "spin", "--timeout", "1s", "--json"]);
    let elapsed = started.elapsed();
    assert_eq!(run.code, 4, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "timeout");
    // The epoch trap keeps the store's figures exact: a second of spinning
    // burns far more than start-up fuel.
    assert!(
        json["fuel_consumed"].as_u64().unwrap() > 100_000_000,
        "{json}"
    );
    // The bound the issue sets (under 2 s), with room for a loaded CI box;
    // the precise figure belongs in the benchmark.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[test]
fn spin_runs_out_of_fuel_with_exit_code_5() {
    let run = run_wasq(&["run", &basics(), "spin", "--fuel", "10000000", "--json"]);
    assert_eq!(run.code, 5, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "fuel_exhausted");
    assert_eq!(json["fuel_consumed"], 10_000_000);
}

#[test]
fn alloc_hits_the_memory_limit_with_exit_code_6() {
    let run = run_wasq(&["run", &basics(), "alloc", "--memory", "32MiB", "--json"]);
    assert_eq!(run.code, 6, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "memory_limit");
    let peak = json["memory_peak_bytes"].as_u64().unwrap();
    assert!(peak <= 32 << 20, "peak {peak} over the limit");
    assert!(
        peak > 16 << 20,
        "peak {peak}: the task should have grown close to the limit"
    );
}

#[test]
fn memory_limit_is_explained_without_json() {
    let run = run_wasq(&["run", &basics(), "alloc", "--memory", "32MiB"]);
    assert_eq!(run.code, 6, "{run:?}");
    assert!(run.stderr.contains("memory limit of 32 MiB"), "{run:?}");
    assert!(run.stderr.contains("--memory"), "{run:?}");
}

#[test]
fn panic_is_a_guest_error_with_its_message() {
    let run = run_wasq(&["run", &basics(), "panic", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "guest_error");
    let stderr = json["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("boom: this task panics on purpose"),
        "{stderr}"
    );
    assert!(stderr.contains("panicked"), "{stderr}");
}

#[test]
fn fail_is_a_guest_error_with_its_message() {
    let run = run_wasq(&["run", &basics(), "fail", "--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "guest_error");
    assert_eq!(json["exit_code"], 1);
    assert!(
        json["stderr"]
            .as_str()
            .unwrap()
            .contains("this task always fails")
    );

    let plain = run_wasq(&["run", &basics(), "fail"]);
    assert_eq!(plain.code, 1);
    assert!(
        plain.one_line_error().contains("this task always fails"),
        "{plain:?}"
    );
}

#[test]
fn a_trap_has_exit_code_3() {
    let dir = tempfile::tempdir().unwrap();
    let module = wasq_tests::wat_file(
        dir.path(),
        "trap.wasm",
        r#"(module (memory (export "memory") 1) (func (export "_start") unreachable))"#,
    );
    let run = run_wasq(&["run", module.to_str().unwrap(), "any", "--json"]);
    assert_eq!(run.code, 3, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "trap");
    assert!(
        json["error"].as_str().unwrap().contains("unreachable"),
        "{json}"
    );
}

#[test]
fn output_over_its_limit_has_exit_code_7() {
    // Writes 64 KiB to stdout 32 times: 2 MiB, over the 1 MiB default.
    let dir = tempfile::tempdir().unwrap();
    let module = wasq_tests::wat_file(
        dir.path(),
        "chatty.wasm",
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write"
                (func $fd_write (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 2)
            (func (export "_start") (local $i i32)
                (i32.store (i32.const 0) (i32.const 1024))
                (i32.store (i32.const 4) (i32.const 65536))
                (loop $again
                    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br_if $again (i32.lt_u (local.get $i) (i32.const 32))))))"#,
    );
    let run = run_wasq(&["run", module.to_str().unwrap(), "any", "--json"]);
    assert_eq!(run.code, 7, "{run:?}");
    assert_eq!(run.json()["outcome"], "output_limit");
}

#[test]
fn help_documents_the_exit_codes() {
    let run = run_wasq(&["run", "--help"]);
    assert_eq!(run.code, 0);
    for line in [
        "4  timeout",
        "5  fuel_exhausted",
        "6  memory_limit",
        "8  invalid_module",
    ] {
        assert!(run.stdout.contains(line), "--help lacks `{line}`");
    }
}
