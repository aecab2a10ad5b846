//! Resources of one task are bounded and released without risk to the
//! process: the memory limit is the total over every memory of an
//! instance; scratch directories are capped in bytes, entries and depth,
//! live in a private root of their own and are removed however deep they
//! are; wasq's own files are private to its user.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use wasq_tests::{ClusterProcess, eventually, run_wasq, wasm, wasq_in, wat_file};

use crate::service::Service;

/// A component of two core modules, each with its own memory. `run` grows
/// its own memory until refused, then the other module's, and fails with
/// `pages=NNNN`: the pages both hold together.
const TWO_MEMORY_COMPONENT: &str = r#"
(component
  (core module $side
    (memory (export "memory") 1)
    (func (export "grow") (result i32)
      (block $full (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
      (memory.size)))
  (core module $main
    (import "side" "grow" (func $grow_side (result i32)))
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 1024))
    (data (i32.const 256) "pages=")
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at (i32.and (i32.add (global.get $next) (i32.const 7)) (i32.const -8)))
      (global.set $next (i32.add (local.get $at) (local.get 3)))
      (local.get $at))
    (func $digit (param $at i32) (param $n i32) (param $div i32)
      (i32.store8 (local.get $at)
        (i32.add (i32.const 48)
          (i32.rem_u (i32.div_u (local.get $n) (local.get $div)) (i32.const 10)))))
    (func (export "run") (param i32 i32 i32 i32) (result i32)
      (local $pages i32)
      (block $full (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
      (local.set $pages (i32.add (memory.size) (call $grow_side)))
      (call $digit (i32.const 262) (local.get $pages) (i32.const 1000))
      (call $digit (i32.const 263) (local.get $pages) (i32.const 100))
      (call $digit (i32.const 264) (local.get $pages) (i32.const 10))
      (call $digit (i32.const 265) (local.get $pages) (i32.const 1))
      ;; result<string, string>: the error case, its string at 256.
      (i32.store8 (i32.const 0) (i32.const 1))
      (i32.store (i32.const 4) (i32.const 256))
      (i32.store (i32.const 8) (i32.const 10))
      (i32.const 0)))
  (core instance $side (instantiate $side))
  (core instance $main (instantiate $main (with "side" (instance $side))))
  (alias core export $main "memory" (core memory $mem))
  (alias core export $main "realloc" (core func $realloc))
  (alias core export $main "run" (core func $run))
  (func (export "run") (param "task" string) (param "args" string)
    (result (result string (error string)))
    (canon lift (core func $run) (memory $mem) (realloc $realloc))))
"#;

/// A command module with two memories, growing both until refused, then
/// trapping.
const TWO_MEMORY_MODULE: &str = r#"
(module
  (memory $a 1)
  (memory $b 1)
  (func (export "_start")
    (block $full (loop $more
      (br_if $full (i32.eq (memory.grow $a (i32.const 1)) (i32.const -1)))
      (br $more)))
    (block $full (loop $more
      (br_if $full (i32.eq (memory.grow $b (i32.const 1)) (i32.const -1)))
      (br $more)))
    unreachable))
"#;

const LIMIT: u64 = 4 << 20;

fn run_wat(name: &str, wat: &str, task: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = wat_file(dir.path(), name, wat);
    let run = run_wasq(&[
        "run",
        file.to_str().expect("a path"),
        task,
        "--memory",
        "4MiB",
        "--json",
    ]);
    let json = run.json();
    let expected = match json["outcome"].as_str() {
        Some("memory_limit") => 6,
        Some("invalid_module") => 8,
        _ => -1,
    };
    assert_eq!(run.code, expected, "{run:?}");
    json
}

#[test]
fn a_components_memories_share_one_limit() {
    let json = run_wat("two.wasm", TWO_MEMORY_COMPONENT, "run");
    assert_eq!(json["outcome"], "memory_limit", "{json}");
    // 64 pages of 64 KiB: the two memories hold the limit together, not
    // each.
    assert_eq!(json["stderr"], "pages=0064", "{json}");
    let peak = json["memory_peak_bytes"].as_u64().expect("a peak");
    assert_eq!(peak, LIMIT, "{json}");
}

#[test]
fn a_modules_memories_share_one_limit() {
    let json = run_wat("multi.wasm", TWO_MEMORY_MODULE, "run");
    let peak = json["memory_peak_bytes"].as_u64().expect("a peak");
    match json["outcome"].as_str() {
        // Held to the limit together.
        Some("memory_limit") => assert_eq!(peak, LIMIT, "{json}"),
        // The engine's pool gives a core module one memory (wasmtime's
        // default `max_memories_per_module`): refused before it runs.
        Some("invalid_module") => {
            let error = json["error"].as_str().unwrap_or_default();
            assert!(error.contains("memories"), "{json}");
            assert_eq!(peak, 0, "{json}");
        }
        _ => panic!("{json}"),
    }
}

/// A command module that nests directories `d` in `/scratch` as fast as
/// WASI lets it: from the descriptor of the last one, so no path grows
/// (the way past `PATH_MAX`), up to 1,000,000 levels or the first error.
const NEST_BY_DESCRIPTOR: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_create_directory"
    (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "d")
  (func (export "_start")
    (local $fd i32) (local $next i32) (local $n i32)
    ;; /scratch is the one preopened directory: descriptor 3.
    (local.set $fd (i32.const 3))
    (block $done (loop $deeper
      (br_if $done (i32.ge_u (local.get $n) (i32.const 1000000)))
      (br_if $done (call $mkdir (local.get $fd) (i32.const 16) (i32.const 1)))
      ;; oflags 2: O_DIRECTORY; every right but fd_write (a directory is not written).
      (br_if $done (call $open (local.get $fd) (i32.const 0) (i32.const 16) (i32.const 1)
        (i32.const 2) (i64.const 0x1fffffbf) (i64.const 0x1fffffbf) (i32.const 0) (i32.const 32)))
      (local.set $next (i32.load (i32.const 32)))
      (if (i32.ne (local.get $fd) (i32.const 3))
        (then (drop (call $close (local.get $fd)))))
      (local.set $fd (local.get $next))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $deeper)))))
"#;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The cluster roots (`wasq-scratch-*`) under `dir`.
fn roots(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("wasq-scratch-"))
            && !p.is_symlink()
    });
    found
}

/// Everything under `dir` but the lock file of a root.
fn contents(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".lock")
                .collect()
        })
        .unwrap_or_default()
}

/// Uploads `bytes` as module `name` of the tenant with `key`, and grants
/// it scratch.
async fn upload_with_scratch(service: &Service, key: &str, name: &str, bytes: Vec<u8>) {
    let response = reqwest::Client::new()
        .put(format!("{}/v1/modules/{name}", service.url))
        .bearer_auth(key)
        .body(bytes)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 201, "{name}");
    let (status, body) = service
        .put(
            key,
            &format!("/v1/modules/{name}/grants"),
            json!({"scratch": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn run(service: &Service, key: &str, module: &str, task: &str, args: Value) -> Value {
    let id = service
        .enqueue(key, json!({"module": module, "task": task, "args": args}))
        .await;
    service.result(key, &id).await
}

fn assert_stopped(result: &Value, quota: &str) {
    assert_eq!(result["outcome"], "scratch_limit", "{result}");
    let error = result["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("{quota} quota")), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scratch_quotas_stop_the_task_and_the_server_lives_on() {
    let scratch = tempfile::tempdir().expect("a temp dir");
    let root = scratch.path().to_str().expect("a path").to_owned();
    // Links planted at the names a guesser would try, to a directory that
    // must stay untouched.
    let victim = tempfile::tempdir().expect("a temp dir");
    for name in ["wasq-scratch", "wasq-scratch-0000000000000000"] {
        std::os::unix::fs::symlink(victim.path(), scratch.path().join(name)).expect("a link");
    }
    let service = Service::start(
        &["--workers", "2"],
        &[
            ("WASQ_SCRATCH_DIR", &root),
            ("WASQ_SCRATCH_BYTES", "8MiB"),
            ("WASQ_SCRATCH_ENTRIES", "500"),
        ],
    );
    let key = service.tenant("alpha", &["--allow-grant", "scratch"]);
    let small = service.tenant(
        "beta",
        &["--allow-grant", "scratch", "--quota", "scratch_entries=20"],
    );
    let escape = std::fs::read(wasm("escape")).expect("escape.wasm");
    upload_with_scratch(&service, &key, "escape", escape.clone()).await;
    upload_with_scratch(&service, &small, "escape", escape).await;
    let nest = wat::parse_str(NEST_BY_DESCRIPTOR).expect("WAT");
    upload_with_scratch(&service, &key, "nest", nest).await;

    // A guest nesting directories by descriptor, as deep as it can: stopped
    // at the depth quota; the server lives on.
    let started = std::time::Instant::now();
    let result = run(&service, &key, "nest", "nest", json!([])).await;
    assert_stopped(&result, "depth");
    eprintln!("nesting stopped and removed in {:?}", started.elapsed());
    let (status, _) = service.get("", "/v1/health").await;
    assert_eq!(status, 200, "the server survives: {}", service.logs());

    let result = run(&service, &key, "escape", "nest_dirs", json!([200])).await;
    assert_stopped(&result, "depth");
    let result = run(&service, &key, "escape", "fill_scratch", json!([64 << 20])).await;
    assert_stopped(&result, "bytes");
    let result = run(&service, &key, "escape", "many_files", json!([5000])).await;
    assert_stopped(&result, "entries");
    // A tenant's own quota is lower than the cluster's.
    let result = run(&service, &small, "escape", "many_files", json!([100])).await;
    assert_stopped(&result, "entries");
    // Within the quotas a task succeeds.
    let result = run(&service, &key, "escape", "many_files", json!([100])).await;
    assert_eq!(result["outcome"], "success", "{result}");
    let result = run(
        &service,
        &small,
        "escape",
        "write_file",
        json!(["/scratch/a"]),
    )
    .await;
    assert_eq!(result["outcome"], "success", "{result}");

    // One private root of this cluster, with nothing left in it; the
    // planted links are not followed.
    let found = roots(scratch.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(mode(&found[0]), 0o700);
    assert_eq!(contents(&found[0]), Vec::<String>::new());
    assert_eq!(contents(victim.path()), Vec::<String>::new());
    for name in ["wasq-scratch", "wasq-scratch-0000000000000000"] {
        assert!(
            scratch.path().join(name).is_symlink(),
            "{name} is left alone"
        );
    }
    let (status, _) = service.get("", "/v1/health").await;
    assert_eq!(status, 200);

    // wasq's own files are private.
    let wasq = service.path().join(".wasq");
    assert_eq!(mode(&wasq), 0o700);
    for name in ["wasq.db", "wasq.db-wal", "wasq.db-shm"] {
        let path = wasq.join(name);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{name}");
        }
    }
    // The compiled-artifact cache, when the compiles wrote there.
    let modules = wasq.join("modules");
    if modules.exists() {
        assert_eq!(mode(&modules), 0o700);
    }
    for entry in std::fs::read_dir(&modules).into_iter().flatten() {
        let path = entry.expect("an entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

/// Makes `levels` nested directories under `top` from descriptors (the
/// path is far past `PATH_MAX`), a file at the bottom.
fn deep_tree(top: &Path, levels: usize) {
    use rustix::fs::{Mode, OFlags};
    std::fs::create_dir_all(top).expect("the top");
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(top, flags, Mode::empty()).expect("the top");
    for _ in 0..levels {
        rustix::fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o700)).expect("a level");
        fd = rustix::fs::openat(&fd, "d", flags, Mode::empty()).expect("a level");
    }
    rustix::fs::openat(
        &fd,
        "bottom",
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .expect("a file");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_clusters_scratch_is_swept_at_the_next_start_however_deep() {
    let scratch = tempfile::tempdir().expect("a temp dir");
    let root = scratch.path().to_str().expect("a path").to_owned();
    let env = [("WASQ_SCRATCH_DIR", root.as_str())];
    // The API only; clusters run beside it.
    let service = Service::start(&[], &env);
    let key = service.tenant("alpha", &["--allow-grant", "scratch"]);
    let escape = std::fs::read(wasm("escape")).expect("escape.wasm");
    upload_with_scratch(&service, &key, "escape", escape).await;

    let mut cluster = ClusterProcess::start(service.path(), &["--workers", "1"], &env);
    let id = service
        .enqueue(
            &key,
            json!({"module": "escape", "task": "hold_scratch", "args": [60000]}),
        )
        .await;
    let held = eventually(
        Duration::from_secs(30),
        "the task to hold its scratch",
        || {
            roots(scratch.path()).into_iter().find_map(|r| {
                std::fs::read_dir(&r)
                    .ok()?
                    .filter_map(Result::ok)
                    .map(|e| e.path().join("held"))
                    .find(|p| p.exists())
                    .map(|_| r)
            })
        },
    );
    cluster.kill9();
    assert!(held.exists(), "a crash leaves its root behind");
    // What a crash may leave: a tree deeper than any stack.
    deep_tree(&held.join("deep"), 20_000);
    // A root of a cluster that is alive is not touched.
    let _alive = ClusterProcess::start(service.path(), &["--workers", "1"], &env);
    eventually(Duration::from_secs(60), "the dead root to be swept", || {
        (!held.exists()).then_some(())
    });
    let (status, _) = service.get("", "/v1/health").await;
    assert_eq!(status, 200);
    let found = roots(scratch.path());
    assert_eq!(found.len(), 1, "only the live cluster's root: {found:?}");
    let _ = id;
}

#[test]
fn the_embedded_store_is_private_after_enqueue() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let module = wasm("basics").display().to_string();
    let run = wasq_in(
        dir.path(),
        &["module", "upload", &module, "--name", "basics"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = wasq_in(dir.path(), &["enqueue", "basics", "fib", "--args", "[5]"]);
    assert_eq!(run.code, 0, "{run:?}");
    let wasq = dir.path().join(".wasq");
    assert_eq!(mode(&wasq), 0o700);
    for entry in std::fs::read_dir(&wasq).expect(".wasq") {
        let path = entry.expect("an entry").path();
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
}
