//! Compiling is isolated from running, black box: a module importing what
//! wasq does not provide, or shaped to make the compiler take minutes, is
//! refused by the structural checks before any compile; a compile bomb
//! within those checks is stopped at its cap (its worker process killed),
//! refused at once the second time, and never holds up tasks of modules
//! already compiled; uploads compile in the background and say how it went.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use wasq_tests::{eventually, wasq};

use crate::service::Service;

/// A module of `functions` small functions that imports `env::host_call`.
fn foreign_import_module(functions: usize) -> String {
    let mut wat = String::from(
        "(module (import \"env\" \"host_call\" (func))\n(func (export \"_start\") call 0)\n",
    );
    for i in 0..functions {
        wat.push_str(&format!(
            "(func (param i32) (result i32) local.get 0 i32.const {i} i32.add)\n"
        ));
    }
    wat.push(')');
    wat
}

/// `depth` nested loops under one `br_table` that can jump to any of them,
/// in each of `functions` functions: cheap to check, slow to compile.
fn nested_loops(depth: usize, functions: usize) -> String {
    let mut wat = String::from("(module\n");
    for f in 0..functions {
        let export = if f == 0 { "(export \"_start\")" } else { "" };
        wat.push_str(&format!("(func {export} (local i32)\n"));
        for i in 0..depth {
            wat.push_str(&format!("(loop $l{i} "));
        }
        wat.push_str("(br_table");
        for i in 0..depth {
            wat.push_str(&format!(" $l{i}"));
        }
        wat.push_str(" (local.get 0))");
        wat.push_str(&")".repeat(depth));
        wat.push_str(")\n");
    }
    wat.push(')');
    wat
}

/// A compile bomb within the default shape limits (nesting 500).
fn bomb(salt: u32) -> String {
    // A comment changes the digest, not the code.
    format!(
        ";; bomb {salt}\n{}",
        nested_loops(BOMB_DEPTH, BOMB_FUNCTIONS)
    )
}

const BOMB_DEPTH: usize = 400;
const BOMB_FUNCTIONS: usize = 150;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("written");
    path.to_str().expect("a path").to_owned()
}

/// Files the artifact cache holds, by extension.
fn artifacts(dir: &Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == ext))
        .count()
}

#[test]
fn an_import_wasq_does_not_provide_is_refused_before_compiling_naming_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let module = write(dir.path(), "foreign.wat", &foreign_import_module(20_000));
    let cache = dir.path().join("cache");
    let run = wasq(&cache)
        .args(["run", &module, "noop"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("`env::host_call`"), "{stderr}");
    assert!(stderr.contains("wasi_snapshot_preview1"), "{stderr}");
    // Refused by the check: nothing was compiled.
    assert_eq!(artifacts(&cache, "cwasm"), 0);
}

#[test]
fn shapes_that_blow_up_the_compiler_are_refused_before_compiling() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let deep = write(dir.path(), "deep.wat", &nested_loops(4000, 1));
    let cache = dir.path().join("cache");
    let run = wasq(&cache)
        .args(["run", &deep, "noop"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("max_nesting"), "{stderr}");
    assert_eq!(artifacts(&cache, "cwasm"), 0);
}

#[test]
fn wasq_run_stops_a_compile_at_its_cap_and_refuses_the_module_at_once_after() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let module = write(dir.path(), "bomb.wat", &bomb(0));
    let cache = dir.path().join("cache");
    let args = ["run", module.as_str(), "noop", "--compile-timeout", "1s"];
    let run = wasq(&cache).args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("took longer than 1s"), "{stderr}");
    // Remembered beside the artifacts: refused at once, without compiling.
    assert_eq!(artifacts(&cache, "refused"), 1);
    let again = wasq(&cache).args(args).output().expect("runs");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(8), "{stderr}");
    assert!(stderr.contains("refused before"), "{stderr}");
}

/// Compile workers whose parent is `pid`.
fn compile_workers_of(pid: u32) -> usize {
    let mut found = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …: the command may hold spaces.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(pid) && cmdline.windows(16).any(|w| w == b"__compile-worker") {
            found += 1;
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compile_bombs_are_refused_at_the_cap_and_never_hold_up_compiled_modules() {
    let service = Service::start(&["--workers", "2"], &[("WASQ_COMPILE_TIMEOUT", "\"3s\"")]);
    let key = service.tenant("acme", &[]);
    assert_eq!(service.upload(&key, "basics", "basics").await.0, 201);
    // The ordinary module compiled: tasks of it run from the cache.
    let first = service
        .enqueue(
            &key,
            json!({"module": "basics", "task": "add", "args": [1, 2]}),
        )
        .await;
    assert_eq!(service.result(&key, &first).await["value"], 3);

    // Two bombs: accepted at once (compiling in the background).
    for (name, salt) in [("bomb1", 1), ("bomb2", 2)] {
        let (status, body) = service
            .send(
                reqwest::Client::new()
                    .put(format!("{}/v1/modules/{name}", service.url))
                    .body(bomb(salt)),
                &key,
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["compile"]["state"], "compiling", "{body}");
    }
    // Tasks of both bombs and ordinary tasks, all at once, on 2 workers.
    let mut bombs = Vec::new();
    for name in ["bomb1", "bomb2", "bomb1", "bomb2"] {
        bombs.push(
            service
                .enqueue(&key, json!({"module": name, "task": "noop"}))
                .await,
        );
    }
    let mut ordinary = Vec::new();
    for i in 0..40 {
        ordinary.push(
            service
                .enqueue(
                    &key,
                    json!({"module": "basics", "task": "add", "args": [i, 1]}),
                )
                .await,
        );
    }
    let mut ordinary_done = Vec::new();
    for (i, id) in ordinary.iter().enumerate() {
        let result = service.result(&key, id).await;
        assert_eq!(result["value"], i + 1, "{result}");
        ordinary_done.push(result["stopped_at_ms"].as_i64().expect("a time"));
    }
    let mut bomb_results = Vec::new();
    for id in &bombs {
        let result = service.result(&key, id).await;
        assert_eq!(result["outcome"], "invalid_module", "{result}");
        bomb_results.push(result);
    }
    // Every ordinary task finished before the first bomb was given up:
    // none waited behind a compile.
    let first_bomb_end = bomb_results
        .iter()
        .filter_map(|r| r["stopped_at_ms"].as_i64())
        .min()
        .expect("times");
    let last_ordinary = ordinary_done.iter().copied().max().expect("times");
    assert!(
        last_ordinary <= first_bomb_end,
        "ordinary tasks waited for the bombs: last ordinary at {last_ordinary}, first bomb at {first_bomb_end}"
    );
    let errors: Vec<&str> = bomb_results
        .iter()
        .filter_map(|r| r["error"].as_str())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("took longer than 3s")),
        "{errors:?}"
    );
    // The uploads say so too, and the compile workers are gone.
    for name in ["bomb1", "bomb2"] {
        let module: Value = eventually(Duration::from_secs(30), "the verdict", || {
            let (_, module) = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(service.get(&key, &format!("/v1/modules/{name}")))
            });
            (module["compile"]["state"] == "refused").then_some(module)
        });
        let reason = module["compile"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("took longer than"), "{module}");
    }
    assert_eq!(
        compile_workers_of(service.pid()),
        0,
        "a compile worker outlived its cap"
    );

    // A new task of a refused bomb is refused at once, without compiling.
    let again = service
        .enqueue(&key, json!({"module": "bomb1", "task": "noop"}))
        .await;
    let result = service.result(&key, &again).await;
    assert_eq!(result["outcome"], "invalid_module", "{result}");
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused before")),
        "{result}"
    );
    let (_, basics) = service.get(&key, "/v1/modules/basics").await;
    assert_eq!(basics["compile"]["state"], "compiled", "{basics}");
}

/// About 20 MB of WebAssembly text: more functions than wasq compiles, so
/// the background compile refuses it at once after the upload was read.
fn big_text_module(salt: u32) -> String {
    let mut wat = format!(";; upload {salt}\n(module (func (export \"_start\"))\n");
    for i in 0..210_000 {
        wat.push_str(&format!(
            "(func (param i32) (result i32) local.get 0 i32.const {i} i32.add i32.const 7 i32.mul)\n"
        ));
    }
    wat.push(')');
    wat
}

/// The peak resident memory of process `pid`, bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_large_uploads_keep_the_server_answering_and_memory_bounded() {
    let service = std::sync::Arc::new(Service::start(&[], &[]));
    let key = service.tenant("acme", &["--quota", "max_modules=10"]);
    let uploads: Vec<_> = (0..6)
        .map(|i| {
            let service = service.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let body = big_text_module(i);
                let (status, answer) = service
                    .send(
                        reqwest::Client::new()
                            .put(format!("{}/v1/modules/big{i}", service.url))
                            .body(body),
                        &key,
                    )
                    .await;
                (status, answer, std::time::Instant::now())
            })
        })
        .collect();
    // Health checks while the uploads are read and checked.
    let http = reqwest::Client::new();
    let mut answered = Vec::new();
    while !uploads.iter().all(|u| u.is_finished()) {
        let response = http
            .get(format!("{}/v1/health", service.url))
            .send()
            .await
            .expect("health answers");
        assert_eq!(response.status(), 200);
        answered.push(std::time::Instant::now());
        if answered.len() > 10_000 {
            break;
        }
    }
    let mut last_upload = None;
    for upload in uploads {
        let (status, answer, at) = upload.await.expect("the upload task");
        assert_eq!(status, 201, "{answer}");
        last_upload = last_upload.max(Some(at));
    }
    let last_upload = last_upload.expect("uploads");
    let during = answered.iter().filter(|at| **at < last_upload).count();
    assert!(
        during >= 3,
        "the server answered health only {during} times while uploads were checked"
    );
    let peak = peak_memory(service.pid());
    // Unbounded, six parses at once of 20 MB of text would take over 2 GiB.
    assert!(
        peak < 5 << 28,
        "the server peaked at {} MiB for six 20 MB uploads",
        peak >> 20
    );
    eprintln!(
        "health answered {during} times during the uploads; server peak {} MiB",
        peak >> 20
    );
}
