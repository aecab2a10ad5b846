//! Bad input to `wasq run` gets one line on stderr and a non-zero exit,
//! never a panic or a backtrace.

use wasq_tests::{run_wasq, wasm, wat_file};

#[test]
fn a_file_that_is_not_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.wasm");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x01, 0x02]).unwrap();
    let run = run_wasq(&["run", path.to_str().unwrap(), "hello"]);
    assert_eq!(run.code, 8, "{run:?}");
    let line = run.one_line_error();
    assert!(line.contains("not a WebAssembly module"), "{line}");
    assert!(line.contains("notes.wasm"), "{line}");
}

#[test]
fn a_text_file_that_is_not_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readme.wasm");
    std::fs::write(&path, "hello, I am not a module\n").unwrap();
    let run = run_wasq(&["run", path.to_str().unwrap(), "hello", "--json"]);
    assert_eq!(run.code, 8, "{run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "invalid_module");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly binary"),
        "{json}"
    );
}

#[test]
fn a_missing_file() {
    let run = run_wasq(&["run", "/nonexistent/task.wasm", "hello"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.one_line_error()
            .contains("cannot read /nonexistent/task.wasm")
    );
}

#[test]
fn an_import_we_do_not_provide_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat_file(
        dir.path(),
        "imports.wasm",
        r#"(module
            (import "env" "launch_missiles" (func))
            (memory (export "memory") 1)
            (func (export "_start")))"#,
    );
    let run = run_wasq(&["run", module.to_str().unwrap(), "any"]);
    assert_eq!(run.code, 8, "{run:?}");
    let line = run.one_line_error();
    assert!(line.contains("env::launch_missiles"), "{line}");
}

#[test]
fn a_module_without_start() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat_file(dir.path(), "lib.wasm", r#"(module (func (export "add")))"#);
    let run = run_wasq(&["run", module.to_str().unwrap(), "add"]);
    assert_eq!(run.code, 8, "{run:?}");
    assert!(run.one_line_error().contains("_start"), "{run:?}");
}

#[test]
fn an_unknown_task_lists_the_tasks() {
    let basics = wasm("basics");
    let run = run_wasq(&["run", basics.to_str().unwrap(), "nope"]);
    assert_ne!(run.code, 0, "{run:?}");
    let line = run.one_line_error();
    assert!(line.contains("unknown task `nope`"), "{line}");
    for task in ["hello", "add", "fib", "spin"] {
        assert!(line.contains(task), "{line} does not list {task}");
    }
}

#[test]
fn args_that_are_not_json() {
    let basics = wasm("basics");
    let run = run_wasq(&["run", basics.to_str().unwrap(), "fib", "--args", "[25"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.one_line_error().contains("--args is not valid JSON"),
        "{run:?}"
    );

    let run = run_wasq(&["run", basics.to_str().unwrap(), "fib", "--args", "25"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.one_line_error().contains("JSON array"), "{run:?}");

    let run = run_wasq(&[
        "run",
        basics.to_str().unwrap(),
        "hello",
        "--kwargs",
        "name=Ada",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.one_line_error().contains("--kwargs is not valid JSON"),
        "{run:?}"
    );
}

#[test]
fn args_of_the_wrong_type_name_the_argument() {
    let basics = wasm("basics");
    let run = run_wasq(&["run", basics.to_str().unwrap(), "fib", "--args", r#"["x"]"#]);
    assert_eq!(run.code, 1, "{run:?}");
    let line = run.one_line_error();
    assert!(line.contains("`n`"), "{line}");
}

#[test]
fn bad_limits_are_usage_errors() {
    let basics = wasm("basics");
    let basics = basics.to_str().unwrap();
    for flags in [
        ["--timeout", "soon"],
        ["--memory", "lots"],
        ["--fuel", "many"],
    ] {
        let mut args = vec!["run", basics, "fib", "--args", "[1]"];
        args.extend(flags);
        let run = run_wasq(&args);
        assert_eq!(run.code, 2, "{flags:?}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{run:?}");
    }
}

#[test]
fn a_component_outside_the_wasq_task_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A component, but its `run` takes one string instead of two.
    let component = wat_file(
        dir.path(),
        "wrong.wasm",
        r#"(component
            (core module $m
              (memory (export "memory") 1)
              (func (export "run") (param i32 i32) (result i32) unreachable)
              (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable))
            (core instance $i (instantiate $m))
            (func (export "run") (param "task" string) (result string)
              (canon lift (core func $i "run") (memory $i "memory") (realloc (func $i "realloc")))))"#,
    );
    let run = run_wasq(&["run", component.to_str().unwrap(), "any"]);
    assert_eq!(run.code, 8, "{run:?}");
    let line = run.one_line_error();
    assert!(
        line.contains("does not export `run: func(task: string, args: string)"),
        "{line}"
    );

    // A component importing something other than WASI.
    let importing = wat_file(
        dir.path(),
        "importing.wasm",
        r#"(component
            (import "acme:rockets/launch" (instance (export "fire" (func)))))"#,
    );
    let run = run_wasq(&["run", importing.to_str().unwrap(), "any"]);
    assert_eq!(run.code, 8, "{run:?}");
    let line = run.one_line_error();
    assert!(line.contains("acme:rockets/launch"), "{line}");
}
