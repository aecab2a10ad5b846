//! Helpers shared by the black-box tests: where the `wasq` binary and the
//! example modules are, and running the binary with a private cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// An example module built by `cargo xtask build` into `target/wasm/`.
pub fn wasm(name: &str) -> PathBuf {
    let path = root().join("target/wasm").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the examples with `cargo xtask build`",
        path.display()
    );
    path
}

/// The `wasq` binary: `$WASQ_BIN`, else the one built beside this test
/// (`target/<profile>/wasq`).
pub fn wasq_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WASQ_BIN") {
        // Absolute, so it still resolves from a test's working directory.
        let bin = PathBuf::from(bin);
        return std::fs::canonicalize(&bin).unwrap_or(bin);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/all-<hash> → target/<profile>/wasq
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let bin = profile_dir.join("wasq");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p wasq` (same profile as the tests) or set WASQ_BIN",
        bin.display()
    );
    bin
}

/// What a `wasq` invocation did.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Stdout parsed as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts stderr is exactly one line starting with `error:`, with no
    /// panic or backtrace, and returns it.
    pub fn one_line_error(&self) -> &str {
        let line = self.stderr.trim_end();
        assert!(
            !line.contains('\n'),
            "more than one line on stderr: {self:?}"
        );
        assert!(line.starts_with("error: "), "not an error line: {self:?}");
        assert!(!line.contains("panicked"), "a panic: {self:?}");
        line
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A `wasq` command whose compiled-module cache lives in `cache`.
pub fn wasq(cache: &Path) -> Command {
    let mut cmd = Command::new(wasq_bin());
    cmd.env("WASQ_CACHE_DIR", cache).env_remove("WASQ_LOG");
    cmd
}

/// Runs `wasq` with `args` and a throwaway cache directory.
pub fn run_wasq(args: &[&str]) -> Run {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
    let out = wasq(cache.path())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", wasq_bin().display()));
    out.into()
}

/// Runs `wasq` with `args` and a compiled-module cache shared by every test
/// (`target/test-cache`): for large modules, such as a Python component,
/// whose compile would otherwise dominate each run. Artifacts are keyed by
/// the module's digest and the engine's settings and written atomically, so
/// sharing is safe.
pub fn run_wasq_shared_cache(args: &[&str]) -> Run {
    let cache = root().join("target/test-cache");
    wasq(&cache)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", wasq_bin().display()))
        .into()
}

/// Writes WebAssembly text to a temp file as a binary module.
pub fn wat_file(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let bytes = wat::parse_str(wat).unwrap_or_else(|e| panic!("bad test WAT: {e}"));
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// A temporary directory whose embedded setup holds the example module
/// `module` (from `target/wasm/`), uploaded under its own name.
pub fn dir_with_module(module: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a temp dir: {e}"));
    let path = wasm(module);
    let run = wasq_in(
        dir.path(),
        &[
            "module",
            "upload",
            &path.display().to_string(),
            "--name",
            module,
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    dir
}

/// A `wasq cluster` process working in `dir` (so the default embedded
/// setup lands in `dir/.wasq/`). Killed when dropped.
#[derive(Debug)]
pub struct ClusterProcess {
    child: std::process::Child,
}

impl ClusterProcess {
    /// Starts `wasq cluster` in `dir` with extra arguments and environment.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_command(dir, "cluster", args, env)
    }

    /// Starts `wasq COMMAND` (`cluster`, `serve`) in `dir`, its log in
    /// `dir/COMMAND-*.log`.
    pub fn start_command(dir: &Path, command: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(dir.join(format!("{command}-{}.log", unique())))
            .unwrap_or_else(|e| panic!("cannot create the {command} log: {e}"));
        let child = wasq(&dir.join(".cache"))
            .current_dir(dir)
            .arg(command)
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start wasq {command}: {e}"));
        Self { child }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it with SIGTERM and waits for a graceful exit; returns its
    /// exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for ClusterProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Runs `wasq` in `dir` (its default embedded setup) with `args`.
pub fn wasq_in(dir: &Path, args: &[&str]) -> Run {
    wasq(&dir.join(".cache"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", wasq_bin().display()))
        .into()
}

/// Calls `check` until it returns `Some`, or panics after `limit`.
pub fn eventually<T>(
    limit: std::time::Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `wasq` in `dir` with `args` and extra environment (e.g.
/// `WASQ_BROKER`).
pub fn wasq_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    wasq(&dir.join(".cache"))
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", wasq_bin().display()))
        .into()
}

/// The URL of a test server `cargo xtask test` started, from the
/// environment variable `var` (`WASQ_TEST_REDIS_URL`,
/// `WASQ_TEST_POSTGRES_URL`, `WASQ_TEST_SQS_ENDPOINT`).
pub fn server_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{var} is not set: run the tests with `cargo xtask test`, which starts Redis, PostgreSQL and an SQS endpoint and sets it"
        ),
    }
}

/// The URL of a new, empty database on the test PostgreSQL server.
pub async fn postgres_database() -> String {
    create_database(&server_url("WASQ_TEST_POSTGRES_URL")).await
}

/// Creates a new, empty database on the server of `base` (a
/// `postgres://…/DB` URL) and returns its URL.
pub async fn create_database(base: &str) -> String {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(base)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"));
    let name = format!("wasq_test_{}", wasq::package::new_task_id());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
    let _ = admin.close().await;
    let (server, _db) = base
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("not a postgres://…/DB URL: {base}"));
    format!("{server}/{name}")
}

pub mod webdriver;
