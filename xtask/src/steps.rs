//! How xtask runs cargo and the other commands: one line per step with
//! its time, and the one feature set every build of `wasq` uses.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

/// `cargo` as cargo itself was invoked, without the variables `cargo run` set for xtask
/// (`CARGO_PKG_NAME=xtask`, `CARGO_MANIFEST_DIR`…): some build scripts (ring's) rerun when
/// those change, so with them every xtask step would rebuild ring and everything above it
/// (rustls, sqlx, reqwest, the AWS SDK) after a `cargo` typed by hand, and the other way round.
pub(crate) fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Whether `cargo run` sets variable `name` for the program it runs (about that program).
fn set_by_cargo_run(name: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_",
        "CARGO_CRATE_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        || matches!(
            name,
            "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR"
        )
}

/// Runs a step, printing its name and how long it took.
pub(crate) fn step(name: &str, mut cmd: Command) -> anyhow::Result<()> {
    println!("==> {name}");
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{name} failed ({status}): {cmd:?}");
    }
    println!(
        "    {name}: done in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The features of the `wasq` binary xtask builds: the defaults plus `otel`, which the tests
/// exercise (the tests crate asks for it too, so every step shares one build).
pub(crate) const WASQ_FEATURES: [&str; 2] = ["--features", "otel"];

/// The major version of the installed clang ("Debian clang version 14.0.6" -> 14).
pub(crate) fn clang_major() -> Option<u32> {
    let version = capture(Command::new("clang").arg("--version")).ok()?;
    let rest = version.split("version ").nth(1)?;
    rest.split(['.', ' ']).next()?.parse().ok()
}

/// Runs `apt-get <args> <packages>`, through sudo unless we are root.
pub(crate) fn apt_get(args: &[&str], packages: &[&str]) -> Result<()> {
    let is_root = capture(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    let mut command = if is_root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    command
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(args)
        .args(packages);
    run(&mut command)
}

/// Runs `command` with inherited stdio; fails (naming the command) unless it exits 0.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// Runs `command` and returns its stdout; fails (naming the command, with its stderr) unless it
/// exits 0.
pub(crate) fn capture(command: &mut Command) -> Result<String> {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .output()
        .with_context(|| format!("could not start {command:?}"))?;
    if !status.success() {
        bail!(
            "{command:?} failed ({status}): {}",
            String::from_utf8_lossy(&stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}
