//! Each example guest gives the right results through `wasq run`: the Rust
//! SDK's argument mapping, a real dependency (pulldown-cmark), and a C task
//! built without any SDK.

use wasq_tests::{run_wasq, wasm};

fn result(module: &str, task: &str, args: &str, kwargs: &str) -> serde_json::Value {
    let path = wasm(module);
    let run = run_wasq(&[
        "run",
        path.to_str().unwrap(),
        task,
        "--args",
        args,
        "--kwargs",
        kwargs,
        "--json",
    ]);
    assert_eq!(run.code, 0, "{module} {task}: {run:?}");
    run.json()["result"].clone()
}

#[test]
fn rust_sdk_maps_positional_and_named_arguments() {
    assert_eq!(result("basics", "add", "[2, 3]", "{}"), 5);
    assert_eq!(result("basics", "add", "[2]", r#"{"b": 5}"#), 7);
    assert_eq!(result("basics", "add", "[]", r#"{"a": 1, "b": 5}"#), 6);
    assert_eq!(
        result("basics", "hello", r#"["wasq"]"#, "{}"),
        "Hello, wasq!"
    );
    assert_eq!(result("basics", "fib", "[20]", "{}"), 6765);
    assert_eq!(
        result("basics", "noop", "[]", "{}"),
        serde_json::Value::Null
    );
}

#[test]
fn wordcount_counts() {
    let counts = result("basics", "wordcount", r#"["one two two\nthree"]"#, "{}");
    assert_eq!(counts["words"], 4);
    assert_eq!(counts["lines"], 2);
    assert_eq!(counts["unique"], 3);
}

#[test]
fn sleep_sleeps_through_wasi() {
    let path = wasm("basics");
    let run = run_wasq(&[
        "run",
        path.to_str().unwrap(),
        "sleep",
        "--args",
        "[200]",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let json = run.json();
    assert_eq!(json["result"], 200);
    assert!(json["duration_us"].as_u64().unwrap() >= 200_000, "{json}");
}

#[test]
fn markdown_renders_with_a_real_crate() {
    let html = result(
        "markdown",
        "render",
        r##"["# Title\n\nSome *emphasis*."]"##,
        "{}",
    );
    let html = html.as_str().unwrap();
    assert!(html.contains("<h1>Title</h1>"), "{html}");
    assert!(html.contains("<em>emphasis</em>"), "{html}");
}

#[test]
fn c_task_follows_the_abi_without_an_sdk() {
    assert_eq!(result("hello_c", "hello", r#"["C"]"#, "{}"), "Hello, C!");
    assert_eq!(result("hello_c", "add", "[40, 2]", "{}"), 42);
    let path = wasm("hello_c");
    let run = run_wasq(&["run", path.to_str().unwrap(), "nope"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("hello"), "{run:?}");
}
