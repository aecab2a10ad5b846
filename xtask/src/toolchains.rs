//! The compilers of the non-Rust example guests, installed under `target/` from a package
//! registry when missing: Zig and componentize-py from PyPI (`guest-sdk/requirements.txt`, into
//! `target/guest-venv`), AssemblyScript from npm (`assemblyscript` and
//! `@assemblyscript/wasi-shim`, into `target/assemblyscript`, from the lock file in
//! `guest-sdk/assemblyscript/`), and a wasi-sdk-shaped directory of Debian's clang for the
//! JavaScript guest's QuickJS. Each is pinned, so a fresh machine gets the same compiler.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::steps::{apt_get, capture, clang_major, run};

/// The Python of `target/guest-venv`, with the compilers of `guest-sdk/requirements.txt`.
fn guest_venv(root: &Path) -> Result<PathBuf> {
    wasq_testkit::ensure_venv_requirements(
        &root.join("target/guest-venv"),
        &root.join("guest-sdk/requirements.txt"),
        "the Zig and Python example guests need Zig and componentize-py",
    )
    .context("installing Zig and componentize-py from PyPI")
}

/// A command that runs the Zig compiler (`python -m ziglang`), installing it when missing.
pub(crate) fn zig(root: &Path) -> Result<Command> {
    let mut zig = Command::new(guest_venv(root)?);
    zig.args(["-m", "ziglang"]);
    // Zig's caches live with the build, not in the home directory.
    zig.env("ZIG_GLOBAL_CACHE_DIR", root.join("target/zig-cache/global"))
        .env("ZIG_LOCAL_CACHE_DIR", root.join("target/zig-cache/local"));
    Ok(zig)
}

/// A command that runs componentize-py, installing it when missing.
pub(crate) fn componentize_py(root: &Path) -> Result<Command> {
    let python = guest_venv(root)?;
    let bin = python.parent().map(|dir| dir.join("componentize-py"));
    Ok(Command::new(
        bin.unwrap_or_else(|| "componentize-py".into()),
    ))
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
    apt_get(&["install", "-y"], &["nodejs", "npm"])
        .or_else(|_| {
            apt_get(&["update"], &[])?;
            apt_get(&["install", "-y"], &["nodejs", "npm"])
        })
        .context("Node.js and npm are missing and apt-get could not install them")
}

/// A directory shaped like a wasi-sdk (`bin/clang`, `bin/ar`, `share/wasi-sysroot`) made of
/// Debian's clang, llvm-ar and wasi-libc, for crates whose build script wants one (rquickjs-sys
/// reads `WASI_SDK`, and would download a wasi-sdk from GitHub without it). `bin/clang` renames
/// the `wasm32-wasip1` triple, which clang 14 does not know, to `wasm32-wasi`.
pub(crate) fn wasi_sdk(sdk: &Path, sysroot: &Path) -> Result<()> {
    let bin = sdk.join("bin");
    fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    let clang = bin.join("clang");
    fs::write(
        &clang,
        "#!/bin/sh\n\
         # Debian's clang for wasm32-wasip1, a triple clang 14 knows as wasm32-wasi.\n\
         for arg do\n\
         \x20 shift\n\
         \x20 case \"$arg\" in\n\
         \x20   --target=wasm32-wasip1) arg=--target=wasm32-wasi ;;\n\
         \x20   wasm32-wasip1) arg=wasm32-wasi ;;\n\
         \x20 esac\n\
         \x20 set -- \"$@\" \"$arg\"\n\
         done\n\
         exec clang \"$@\"\n",
    )
    .with_context(|| format!("writing {}", clang.display()))?;
    make_executable(&clang)?;
    let ar = llvm_ar()?;
    link(&ar, &bin.join("ar"))?;
    fs::create_dir_all(sdk.join("share"))?;
    link(sysroot, &sdk.join("share/wasi-sysroot"))
}

/// `llvm-ar` (or `llvm-ar-N` for the installed clang), installing Debian's llvm when missing:
/// archives of wasm objects need its symbol index.
fn llvm_ar() -> Result<PathBuf> {
    let find = || {
        let major = clang_major();
        let names = [
            Some("llvm-ar".to_string()),
            major.map(|m| format!("llvm-ar-{m}")),
        ];
        names.into_iter().flatten().find_map(|name| {
            capture(Command::new(&name).arg("--version"))
                .ok()
                .map(|_| PathBuf::from(name))
        })
    };
    if let Some(ar) = find() {
        return Ok(ar);
    }
    println!("installing llvm with apt-get (llvm-ar, needed for the JavaScript guest)");
    apt_get(&["install", "-y"], &["llvm"])?;
    find().context("llvm-ar is still missing after apt-get install llvm")
}

/// Points `link` at `target` (a symbolic link), replacing what is there.
fn link(target: &Path, link: &Path) -> Result<()> {
    let target = if target.is_absolute() || target.components().count() > 1 {
        target.to_path_buf()
    } else {
        // A bare command name: the symbolic link needs its path.
        which(target).unwrap_or_else(|| target.to_path_buf())
    };
    let _ = fs::remove_file(link);
    std::os::unix::fs::symlink(&target, link)
        .with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

/// The full path of a command on `PATH`.
fn which(command: &Path) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(command))
        .find(|path| path.is_file())
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}
