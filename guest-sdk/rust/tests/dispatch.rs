//! `#[task]` functions driven through `dispatch`, as the generated `main` runs them (without
//! the process I/O and exit).

use serde::Serialize;
use wasq_guest::{Failure, Task, dispatch, exit_code, task, tasks};

#[task]
fn hello(name: String) -> String {
    format!("Hello, {name}!")
}

#[task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[task]
fn noop() {}

#[task(name = "greet")]
fn greeting(name: String, greeting: Option<String>) -> String {
    format!("{}, {name}!", greeting.as_deref().unwrap_or("Hi"))
}

#[derive(Serialize)]
struct Halves {
    half: u64,
    rest: u64,
}

#[task]
fn halve(n: u64) -> Result<Halves, String> {
    if n.is_multiple_of(2) {
        Ok(Halves {
            half: n / 2,
            rest: 0,
        })
    } else {
        Err(format!("{n} is odd"))
    }
}

#[task]
fn io_result(ok: bool) -> std::io::Result<u8> {
    if ok {
        Ok(7)
    } else {
        Err(std::io::Error::other("disk on fire"))
    }
}

#[task]
fn r#type(r#in: u8) -> u8 {
    r#in
}

mod nested {
    #[wasq_guest::task]
    pub(crate) fn double(x: i32) -> i32 {
        x * 2
    }
}

const TASKS: [Task; 9] = tasks![
    hello,
    add,
    noop,
    greeting,
    halve,
    io_result,
    r#type,
    nested::double,
    panics
];

#[task]
fn panics() -> u8 {
    panic!("boom")
}

fn ok(name: &str, stdin: &str) -> String {
    let out = dispatch(&TASKS, name, stdin.as_bytes()).unwrap_or_else(|f| panic!("{f}"));
    String::from_utf8(out).unwrap()
}

fn err(name: &str, stdin: &str) -> Failure {
    dispatch(&TASKS, name, stdin.as_bytes()).expect_err("expected the task to fail")
}

#[test]
fn functions_stay_callable() {
    assert_eq!(add(2, 3), 5);
    assert_eq!(hello("x".into()), "Hello, x!");
    assert_eq!(nested::double(4), 8);
}

#[test]
fn descriptors() {
    assert_eq!(TASKS[0].name(), "hello");
    assert_eq!(TASKS[1].params(), ["a", "b"]);
    assert_eq!(TASKS[3].name(), "greet");
    assert_eq!(TASKS[6].name(), "type");
    assert_eq!(TASKS[6].params(), ["in"]);
}

#[test]
fn positional_and_keyword_arguments() {
    assert_eq!(
        ok("hello", r#"{"args":["wasq"],"kwargs":{}}"#),
        "\"Hello, wasq!\"\n"
    );
    assert_eq!(
        ok("hello", r#"{"kwargs":{"name":"kw"}}"#),
        "\"Hello, kw!\"\n"
    );
    assert_eq!(ok("add", r#"{"args":[40],"kwargs":{"b":2}}"#), "42\n");
    assert_eq!(ok("double", r#"{"args":[21]}"#), "42\n");
    assert_eq!(ok("type", r#"{"kwargs":{"in":3}}"#), "3\n");
}

#[test]
fn unit_and_empty_stdin() {
    assert_eq!(ok("noop", ""), "null\n");
    assert_eq!(ok("noop", r#"{"args":[],"kwargs":{}}"#), "null\n");
}

#[test]
fn renamed_task_and_optional_argument() {
    assert_eq!(ok("greet", r#"{"args":["a"]}"#), "\"Hi, a!\"\n");
    assert_eq!(ok("greet", r#"{"args":["a","Yo"]}"#), "\"Yo, a!\"\n");
    assert_eq!(ok("greet", r#"{"args":["a",null]}"#), "\"Hi, a!\"\n");
    assert_eq!(err("greeting", "").code, exit_code::USAGE);
}

#[test]
fn argument_errors() {
    let cases = [
        (
            "add",
            r#"{"args":[1]}"#,
            "missing argument `b` (position 1)",
        ),
        ("add", "", "missing argument `a` (position 0)"),
        (
            "add",
            r#"{"args":[1,2,3]}"#,
            "task `add` takes 2 arguments but 3 were given",
        ),
        (
            "add",
            r#"{"args":[1,2],"kwargs":{"c":3}}"#,
            "unexpected keyword argument `c`: task `add` takes a, b",
        ),
        (
            "add",
            r#"{"args":[1,2],"kwargs":{"a":3}}"#,
            "argument `a` given both by position (0) and by name",
        ),
        (
            "add",
            r#"{"args":["x",2]}"#,
            "argument `a`: invalid type: string \"x\", expected i64",
        ),
        (
            "noop",
            r#"{"args":[1]}"#,
            "task `noop` takes no arguments but 1 was given",
        ),
    ];
    for (name, stdin, message) in cases {
        assert_eq!(err(name, stdin), Failure::task(message), "{name} {stdin}");
    }
}

#[test]
fn bad_stdin() {
    let failure = err("add", "{not json");
    assert_eq!(failure.code, exit_code::TASK_ERROR);
    assert!(failure.message.starts_with("stdin is not valid JSON"));
    let failure = err("add", "[1, 2]");
    assert_eq!(failure.code, exit_code::TASK_ERROR);
}

#[test]
fn result_returns() {
    assert_eq!(ok("halve", r#"{"args":[10]}"#), "{\"half\":5,\"rest\":0}\n");
    assert_eq!(err("halve", r#"{"args":[3]}"#), Failure::task("3 is odd"));
    assert_eq!(ok("io_result", r#"{"args":[true]}"#), "7\n");
    assert_eq!(
        err("io_result", r#"{"args":[false]}"#),
        Failure::task("disk on fire")
    );
}

#[test]
fn unknown_task_lists_tasks_sorted() {
    assert_eq!(
        err("nope", ""),
        Failure::usage(
            "unknown task `nope`; this module has: add, double, greet, halve, hello, io_result, noop, panics, type"
        )
    );
}

#[test]
fn duplicate_names_are_reported() {
    let failure = dispatch(&tasks![add, add], "add", b"").unwrap_err();
    assert_eq!(failure.code, exit_code::USAGE);
}

#[test]
#[should_panic(expected = "boom")]
fn panics_propagate_from_dispatch() {
    let _ = dispatch(&TASKS, "panics", b"");
}
