//! Every task of escape.wasm (a command module) and escape_py.wasm (a
//! Python component) tries to leave the sandbox; each must fail inside the
//! guest, and none may see what it looked for.

use wasq_tests::{run_wasq, run_wasq_shared_cache, wasm};

fn escape(task: &str) -> serde_json::Value {
    let module = wasm("escape");
    let run = run_wasq(&["run", module.to_str().unwrap(), task, "--json"]);
    assert_eq!(run.code, 1, "{task}: {run:?}");
    let json = run.json();
    assert_eq!(json["outcome"], "guest_error", "{task}: {json}");
    assert!(json["result"].is_null());
    json
}

#[test]
fn cannot_read_host_files() {
    let json = escape("read_file");
    let log = json["stderr"].as_str().unwrap();
    assert!(!log.contains("root:"), "read /etc/passwd: {log}");
}

#[test]
fn cannot_list_host_directories() {
    let json = escape("list_dir");
    let log = json["stderr"].as_str().unwrap();
    for entry in ["etc", "usr", "proc"] {
        assert!(!log.contains(&format!("\"{entry}\"")), "listed /: {log}");
    }
}

#[test]
fn cannot_read_the_host_environment() {
    // SAFETY-free check: the test process has a PATH; the guest must not.
    let path = std::env::var("PATH").unwrap_or_default();
    let json = escape("env");
    let log = json["stderr"].as_str().unwrap();
    assert!(path.is_empty() || !log.contains(&path), "saw PATH: {log}");
}

#[test]
fn cannot_open_sockets() {
    escape("connect");
}

/// A task of escape_py.wasm, a Python component: the same sandbox through WASI preview 2.
fn python(task: &str, args: &str) -> serde_json::Value {
    let module = wasm("escape_py");
    let run = run_wasq_shared_cache(&[
        "run",
        module.to_str().unwrap(),
        task,
        "--args",
        args,
        "--json",
    ]);
    run.json()
}

#[test]
fn a_python_component_cannot_reach_files_the_environment_or_the_network() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("escaped.txt");
    let target = target.to_str().unwrap();
    // No directory is preopened, so no path exists; sockets are denied.
    for (task, args, why) in [
        ("read_file", r#"["/etc/passwd"]"#.to_owned(), "No such file"),
        ("list_dir", r#"["/"]"#.to_owned(), "No such file"),
        (
            "write_file",
            format!("[{}]", serde_json::json!(target)),
            "No such file",
        ),
        (
            "connect",
            r#"["127.0.0.1", 22]"#.to_owned(),
            "Permission denied",
        ),
    ] {
        let json = python(task, &args);
        assert_eq!(json["outcome"], "guest_error", "{task}: {json}");
        let log = json["stderr"].as_str().unwrap_or_default();
        assert!(log.contains(why), "{task} failed for another reason: {log}");
        assert!(!log.contains("root:"), "{task}: {log}");
    }
    assert!(
        !std::path::Path::new(target).exists(),
        "the component wrote a host file"
    );
    let env = python("environment", "[]");
    assert_eq!(env["outcome"], "success", "{env}");
    assert_eq!(
        env["result"],
        serde_json::json!({}),
        "saw the host environment"
    );
}
