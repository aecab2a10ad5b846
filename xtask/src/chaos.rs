//! `cargo xtask chaos [--quick] [ARGS]`: the chaos suite (`wasq-chaos`, in `bench/src/chaos/`):
//! real `wasq cluster` processes against private Redis, PostgreSQL and SQLite, faults at random
//! moments, and an audit that every task ended with exactly one successful result. The full
//! form writes the Reliability section of BENCHMARKS.md; `--quick` (a few minutes) is what
//! `cargo xtask test` runs.

use std::path::Path;
use std::process::Command;

use crate::{WASQ_FEATURES, cargo, guests, step};

/// The arguments of one `wasq-chaos` run: the full form documents its table, unless it runs
/// one scenario or writes somewhere else.
fn chaos_args(rest: &[String]) -> Vec<String> {
    let mut args = rest.to_vec();
    let quick = rest.iter().any(|a| a == "--quick");
    let chosen = rest
        .iter()
        .any(|a| a == "--only" || a == "--document" || a == "--list" || a == "--json");
    if !quick && !chosen {
        args.extend(["--document".into(), "BENCHMARKS.md".into()]);
    }
    args
}

/// `chaos`: the guests, `wasq` and `wasq-chaos` in one release build, Redis and PostgreSQL
/// (installed when missing), then the suite.
pub(crate) fn chaos(root: &Path, rest: &[String]) -> anyhow::Result<()> {
    guests::build_guests(root)?;
    let mut build = cargo(root);
    build.args(["build", "--release", "--package", "wasq", "--bin", "wasq"]);
    build.args(WASQ_FEATURES);
    build.args(["--package", "wasq-bench", "--bin", "wasq-chaos"]);
    step("build wasq and wasq-chaos (release)", build)?;
    // Only the two servers the scenarios start privately; the suite needs none of the test
    // tools `servers::ensure` also installs.
    let redis = wasq_testkit::ensure_redis()?;
    let pg_bin = wasq_testkit::ensure_postgres()?;
    let mut run = Command::new(root.join("target/release/wasq-chaos"));
    run.current_dir(root)
        .env(wasq_testkit::REDIS_SERVER_VAR, redis)
        .env(wasq_testkit::PG_BIN_VAR, pg_bin)
        .args(chaos_args(rest));
    step("chaos: faults injected into real clusters and servers", run)
}

/// The `wasq-chaos --quick` step of `cargo xtask test`, with the test servers' environment
/// (which names the Redis and PostgreSQL binaries); `wasq-chaos` is built with the release
/// `wasq` binary.
pub(crate) fn quick_step(root: &Path, env: &[(&'static str, String)]) -> anyhow::Result<()> {
    let mut run = Command::new(root.join("target/release/wasq-chaos"));
    run.current_dir(root)
        .arg("--quick")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    step("chaos --quick", run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_whole_full_run_writes_the_document() {
        let args =
            |list: &[&str]| chaos_args(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(args(&[]), ["--document", "BENCHMARKS.md"]);
        assert_eq!(args(&["--quick"]), ["--quick"]);
        assert_eq!(args(&["--only", "kill9-redis"]), ["--only", "kill9-redis"]);
    }
}
