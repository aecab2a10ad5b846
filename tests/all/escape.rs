//! Every task of escape.wasm tries to leave the sandbox; each must fail
//! inside the guest, and none may see what it looked for.

use wasq_tests::{run_wasq, wasm};

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
