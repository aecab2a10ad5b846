//! The compilers of the non-Rust example guests, installed under `target/` from a package
//! registry when missing: Zig from PyPI (the `ziglang` package, into `target/guest-venv`) and
//! AssemblyScript from npm (`assemblyscript` and `@assemblyscript/wasi-shim`, into
//! `target/assemblyscript`, from the lock file in `guest-sdk/assemblyscript/`). Each is pinned in
//! a file of the SDK it builds, so a fresh machine gets the same compiler.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::guests::{capture, run};

/// A command that runs the Zig compiler (`python -m ziglang`), installing it when missing.
pub(crate) fn zig(root: &Path) -> Result<Command> {
    let python = wasq_testkit::ensure_venv_requirements(
        &root.join("target/guest-venv"),
        &root.join("guest-sdk/zig/requirements.txt"),
        "the Zig example guest needs the Zig compiler",
    )
    .context("installing Zig from PyPI (the `ziglang` package)")?;
    let mut zig = Command::new(python);
    zig.args(["-m", "ziglang"]);
    // Zig's caches live with the build, not in the home directory.
    zig.env("ZIG_GLOBAL_CACHE_DIR", root.join("target/zig-cache/global"))
        .env("ZIG_LOCAL_CACHE_DIR", root.join("target/zig-cache/local"));
    Ok(zig)
}

/// The AssemblyScript compiler (`asc`, to run in its own directory, so give it absolute paths)
/// and the wasi-shim's `asconfig.json`, installed with `npm ci` when missing or when the lock
/// file changed.
pub(crate) fn assemblyscript(root: &Path) -> Result<(Command, PathBuf)> {
    let sdk = root.join("guest-sdk/assemblyscript");
    let home = root.join("target/assemblyscript");
    let asc = home.join("node_modules/.bin/asc");
    let shim = home.join(SHIM_CONFIG);
    let lock = fs::read_to_string(sdk.join("package-lock.json"))
        .with_context(|| format!("reading {}/package-lock.json", sdk.display()))?;
    let installed = home.join("installed-package-lock.json");
    let current = asc.is_file()
        && shim.is_file()
        && fs::read_to_string(&installed).is_ok_and(|have| have == lock);
    if !current {
        ensure_npm()?;
        fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
        for file in ["package.json", "package-lock.json"] {
            fs::copy(sdk.join(file), home.join(file))
                .with_context(|| format!("copying {file} to {}", home.display()))?;
        }
        println!(
            "installing AssemblyScript (npm ci, into {}): the AssemblyScript example guest needs it",
            home.display()
        );
        run(Command::new("npm").current_dir(&home).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]))
        .context(
            "npm could not install AssemblyScript: check network access to the npm registry",
        )?;
        fs::write(&installed, lock).with_context(|| format!("writing {}", installed.display()))?;
    }
    // The shim's config names its library relative to the directory asc runs in.
    let mut command = Command::new(asc);
    command.current_dir(&home);
    Ok((command, PathBuf::from(SHIM_CONFIG)))
}

/// The wasi-shim's config, relative to the AssemblyScript toolchain's directory.
const SHIM_CONFIG: &str = "node_modules/@assemblyscript/wasi-shim/asconfig.json";

/// Makes sure `npm` (and Node.js) are there, installing Debian's packages when not.
fn ensure_npm() -> Result<()> {
    if capture(Command::new("npm").arg("--version")).is_ok() {
        return Ok(());
    }
    println!("installing Node.js and npm with apt-get (needed for the AssemblyScript example)");
    crate::guests::apt_get(&["install", "-y"], &["nodejs", "npm"])
        .or_else(|_| {
            crate::guests::apt_get(&["update"], &[])?;
            crate::guests::apt_get(&["install", "-y"], &["nodejs", "npm"])
        })
        .context("Node.js and npm are missing and apt-get could not install them")
}
