//! The guest SDKs beyond Rust: the `basics` tasks written in C (with `wasq.h`), Zig,
//! AssemblyScript, JavaScript (QuickJS) and Python (a `wasq:task` component made by
//! componentize-py) give the same results as the Rust module, through `wasq run` (arguments by
//! position and by name, errors, unknown tasks) and through a cluster.

use std::path::Path;

use serde_json::{Value, json};
use wasq_tests::{ClusterProcess, run_wasq_shared_cache, wasm, wasq_in};

/// The example modules of the other languages, by file name under target/wasm/.
const MODULES: [&str; 5] = [
    "basics_c",
    "basics_zig",
    "basics_as",
    "basics_js",
    "basics_py",
];

/// The modules that are `wasq:task` components: an error has no exit code of its own (1).
const COMPONENTS: [&str; 1] = ["basics_py"];

fn run_task(module: &str, task: &str, args: &str, kwargs: &str) -> wasq_tests::Run {
    let path = wasm(module);
    run_wasq_shared_cache(&[
        "run",
        path.to_str().unwrap(),
        task,
        "--args",
        args,
        "--kwargs",
        kwargs,
        "--json",
    ])
}

fn result(module: &str, task: &str, args: &str, kwargs: &str) -> Value {
    let run = run_task(module, task, args, kwargs);
    assert_eq!(run.code, 0, "{module} {task}: {run:?}");
    run.json()["result"].clone()
}

#[test]
fn every_language_runs_the_basics_tasks() {
    for module in MODULES {
        assert_eq!(
            result(module, "hello", r#"["wasq"]"#, "{}"),
            "Hello, wasq!",
            "{module}"
        );
        // Escapes and characters beyond ASCII survive the round trip.
        assert_eq!(
            result(module, "hello", "[]", r#"{"name": "\"é\" 😀\n"}"#),
            "Hello, \"é\" 😀\n!",
            "{module}"
        );
        assert_eq!(result(module, "add", "[40, 2]", "{}"), 42, "{module}");
        assert_eq!(
            result(module, "add", "[40]", r#"{"b": -2}"#),
            38,
            "{module}"
        );
        assert_eq!(
            result(module, "add", "[]", r#"{"a": 1, "b": 5}"#),
            6,
            "{module}"
        );
        assert_eq!(result(module, "fib", "[20]", "{}"), 6765, "{module}");
        assert_eq!(result(module, "noop", "[]", "{}"), Value::Null, "{module}");
    }
}

#[test]
fn wordcount_agrees_with_the_rust_module() {
    let text = r#"["One two, two!\nthree   One\n\nfour é"]"#;
    let rust = result("basics", "wordcount", text, "{}");
    assert_eq!(rust["words"], 7, "{rust}");
    assert_eq!(rust["lines"], 4, "{rust}");
    assert_eq!(rust["unique"], 5, "{rust}");
    for module in MODULES {
        assert_eq!(
            result(module, "wordcount", text, "{}"),
            rust,
            "{module} against basics"
        );
    }
}

/// A failed run's outcome, exit code and stderr, from `wasq run --json`.
fn failure(module: &str, task: &str, args: &str, kwargs: &str) -> (String, i64, String) {
    let run = run_task(module, task, args, kwargs);
    assert_ne!(run.code, 0, "{module} {task} succeeded: {run:?}");
    let json = run.json();
    (
        json["outcome"].as_str().unwrap_or_default().to_owned(),
        json["exit_code"].as_i64().unwrap_or_default(),
        json["stderr"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn errors_follow_the_abi_conventions() {
    for module in MODULES {
        // A missing argument: exit code 1, the argument named.
        let (outcome, code, stderr) = failure(module, "add", "[1]", "{}");
        assert_eq!(
            (outcome.as_str(), code),
            ("guest_error", 1),
            "{module}: {stderr}"
        );
        assert!(stderr.contains("argument `b`"), "{module}: {stderr}");
        // A mistyped argument.
        let (_, code, stderr) = failure(module, "fib", r#"["ten"]"#, "{}");
        assert_eq!(code, 1, "{module}: {stderr}");
        assert!(
            stderr.contains("argument `n`") && stderr.contains("integer"),
            "{module}: {stderr}"
        );
        // The task's own failure.
        let (_, code, stderr) = failure(module, "fail", r#"["out of coffee"]"#, "{}");
        assert_eq!(code, 1, "{module}: {stderr}");
        assert!(stderr.contains("out of coffee"), "{module}: {stderr}");
        // An unknown task: exit code 2 (1 from a component), the tasks listed, sorted.
        let (_, code, stderr) = failure(module, "sub", "[]", "{}");
        let want = if COMPONENTS.contains(&module) { 1 } else { 2 };
        assert_eq!(code, want, "{module}: {stderr}");
        assert!(
            stderr.contains(
                "unknown task `sub`; this module has: add, fail, fib, hello, noop, wordcount"
            ),
            "{module}: {stderr}"
        );
    }
}

/// A temp dir with the modules uploaded under their file names.
fn uploaded() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for module in MODULES {
        let path = wasm(module);
        let run = wasq_in(
            dir.path(),
            &["module", "upload", path.to_str().unwrap(), "--name", module],
        );
        assert_eq!(run.code, 0, "{run:?}");
    }
    dir
}

fn enqueue(dir: &Path, module: &str, task: &str, args: &Value) -> String {
    let args = args.to_string();
    let run = wasq_in(dir, &["enqueue", module, task, "--args", &args, "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    run.json()["id"].as_str().unwrap().to_owned()
}

#[test]
fn every_language_runs_through_a_cluster() {
    let dir = uploaded();
    let mut expected = Vec::new();
    for module in MODULES {
        for (task, args, want) in [
            ("hello", json!(["cluster"]), json!("Hello, cluster!")),
            ("add", json!([2, 3]), json!(5)),
            ("fib", json!([25]), json!(75025)),
        ] {
            expected.push((module, task, enqueue(dir.path(), module, task, &args), want));
        }
    }
    let failing = enqueue(dir.path(), "basics_py", "fail", &json!(["no coffee today"]));
    let _cluster = ClusterProcess::start(dir.path(), &["--workers", "2"], &[]);
    for (module, task, id, want) in expected {
        let run = wasq_in(
            dir.path(),
            &["result", &id, "--wait", "--timeout", "60s", "--json"],
        );
        let got = run.json();
        assert_eq!(got["outcome"], "success", "{module} {task}: {got}");
        assert_eq!(got["result"], want, "{module} {task}: {got}");
    }
    let run = wasq_in(
        dir.path(),
        &["result", &failing, "--wait", "--timeout", "60s", "--json"],
    );
    let got = run.json();
    assert_eq!(got["outcome"], "guest_error", "{got}");
    assert!(
        got["stderr"]
            .as_str()
            .unwrap_or("")
            .contains("no coffee today"),
        "{got}"
    );
}
