//! Builds the example task modules (`examples-wasm/`) into `target/wasm/`: the Rust ones with
//! cargo for `wasm32-wasip1`, the C ones with clang and wasi-libc, the Zig one with Zig, the
//! AssemblyScript one with asc. Installs the missing pieces first: the rustup target,
//! clang/lld/wasi-libc through apt-get, Zig and AssemblyScript as `toolchains.rs` says.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result};

use crate::steps::{apt_get, capture, clang_major, run};
use crate::toolchains;

/// The wasm target of task modules (WASI preview 1).
const TARGET: &str = "wasm32-wasip1";

/// The Rust example binaries, each built to `<name>.wasm`.
const RUST_MODULES: [&str; 3] = ["basics", "markdown", "escape"];

/// Where a wasi-libc sysroot may be: Debian's `wasi-libc` package puts it under `/usr`
/// (`/usr/include/wasm32-wasi`, `/usr/lib/wasm32-wasi`); wasi-sdk under its `share/`.
const SYSROOT_CANDIDATES: [&str; 3] = [
    "/usr",
    "/usr/share/wasi-sysroot",
    "/opt/wasi-sdk/share/wasi-sysroot",
];

/// Builds every example module into `<root>/target/wasm/` and returns their paths.
pub(crate) fn build_guests(root: &Path) -> Result<Vec<PathBuf>> {
    ensure_wasm_target()?;
    let sysroot = ensure_c_toolchain()?;

    let target_dir = root.join("target");
    let out_dir = target_dir.join("wasm");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    // The examples are a workspace of their own; sharing the target directory is safe because
    // their artifacts live under target/wasm32-wasip1/.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(&cargo)
        .current_dir(root.join("examples-wasm"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .args(["build", "--release", "--target", TARGET]))
    .context("building the Rust example modules")?;

    let release_dir = target_dir.join(TARGET).join("release");
    let mut modules = Vec::new();
    for name in RUST_MODULES {
        let built = release_dir.join(format!("{name}.wasm"));
        let dest = out_dir.join(format!("{name}.wasm"));
        fs::copy(&built, &dest)
            .with_context(|| format!("copying {} to {}", built.display(), dest.display()))?;
        modules.push(dest);
    }

    let hello_c = out_dir.join("hello_c.wasm");
    run(clang_wasm(&sysroot)
        .arg("-o")
        .arg(&hello_c)
        .arg(root.join("examples-wasm/hello_c/hello.c")))
    .context("building the C example module")?;
    modules.push(hello_c);

    let basics_c = out_dir.join("basics_c.wasm");
    run(clang_wasm(&sysroot)
        .args(["-Werror", "-I"])
        .arg(root.join("guest-sdk/c"))
        .arg("-o")
        .arg(&basics_c)
        .arg(root.join("examples-wasm/basics_c/basics.c")))
    .context("building the C SDK example module")?;
    modules.push(basics_c);

    let basics_zig = out_dir.join("basics_zig.wasm");
    let [zig_root, zig_sdk] = [
        root.join("examples-wasm/basics_zig/basics.zig"),
        root.join("guest-sdk/zig/wasq.zig"),
    ];
    if !up_to_date(&basics_zig, &[zig_root.clone(), zig_sdk.clone()]) {
        run(toolchains::zig(root)?
            .args([
                "build-exe",
                "-target",
                "wasm32-wasi",
                "-O",
                "ReleaseSmall",
                "-fstrip",
            ])
            .args(["--dep", "wasq"])
            .arg(format!("-Mroot={}", zig_root.display()))
            .arg(format!("-Mwasq={}", zig_sdk.display()))
            .arg(format!("-femit-bin={}", basics_zig.display())))
        .context("building the Zig example module")?;
    }
    modules.push(basics_zig);

    // Python: `wasq:task` components (WASI preview 2) made by componentize-py.
    for name in ["basics_py", "escape_py"] {
        modules.push(build_python(root, name, &out_dir)?);
    }

    // JavaScript: QuickJS (rquickjs) built for wasm32-wasip1 with the task file embedded.
    let wasi_sdk = wasi_sdk_dir(root);
    if std::env::var_os("WASI_SDK").is_none() {
        toolchains::wasi_sdk(&wasi_sdk, &sysroot)?;
    }
    run(Command::new(&cargo)
        .current_dir(root.join("guest-sdk/js"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("WASI_SDK", &wasi_sdk)
        .env(
            "WASQ_JS_TASK",
            root.join("examples-wasm/basics_js/basics.js"),
        )
        .args(["build", "--release", "--target", TARGET]))
    .context("building the JavaScript example module (QuickJS)")?;
    let basics_js = out_dir.join("basics_js.wasm");
    let built = release_dir.join("wasq-js.wasm");
    fs::copy(&built, &basics_js)
        .with_context(|| format!("copying {} to {}", built.display(), basics_js.display()))?;
    modules.push(basics_js);

    let basics_as = out_dir.join("basics_as.wasm");
    let as_sources = [
        root.join("examples-wasm/basics_as/basics.ts"),
        root.join("guest-sdk/assemblyscript/assembly/index.ts"),
        root.join("guest-sdk/assemblyscript/package-lock.json"),
    ];
    if !up_to_date(&basics_as, &as_sources) {
        let (mut asc, shim_config) = toolchains::assemblyscript(root)?;
        run(asc
            .arg(root.join("examples-wasm/basics_as/basics.ts"))
            .arg("--config")
            .arg(&shim_config)
            .args(["-O3", "--noAssert", "--outFile"])
            .arg(&basics_as))
        .context("building the AssemblyScript example module")?;
    }
    modules.push(basics_as);

    for module in &modules {
        let size = fs::metadata(module)
            .with_context(|| format!("reading {}", module.display()))?
            .len();
        let name = module.file_name().unwrap_or_default().to_string_lossy();
        println!("  {name:<16} {:>6.1} KB", size as f64 / 1024.0);
    }
    Ok(modules)
}

/// clang for wasm32-wasi with the wasi-libc `sysroot`, optimising, warning and stripping.
fn clang_wasm(sysroot: &Path) -> Command {
    let mut clang = Command::new("clang");
    clang
        .arg("--target=wasm32-wasi")
        .arg(format!("--sysroot={}", sysroot.display()))
        .args(["-O2", "-Wall", "-Wextra", "-Wl,--strip-all"]);
    clang
}

/// Builds `examples-wasm/<name>/app.py` with the Python SDK into `<out_dir>/<name>.wasm`,
/// unless it is newer than its sources.
fn build_python(root: &Path, name: &str, out_dir: &Path) -> Result<PathBuf> {
    let app = root.join("examples-wasm").join(name);
    let output = out_dir.join(format!("{name}.wasm"));
    let sources = [
        app.join("app.py"),
        root.join("guest-sdk/python/wasq.py"),
        root.join("guest-sdk/wit/task.wit"),
    ];
    if !up_to_date(&output, &sources) {
        run(toolchains::componentize_py(root)?
            .arg("-d")
            .arg(root.join("guest-sdk/wit"))
            .args(["-w", "task", "componentize", "app", "-p"])
            .arg(&app)
            .arg("-p")
            .arg(root.join("guest-sdk/python"))
            .arg("-o")
            .arg(&output))
        .with_context(|| format!("building the Python component {name}"))?;
    }
    Ok(output)
}

/// The wasi-sdk the JavaScript guest builds with: `WASI_SDK`, or the one `build_guests` makes
/// of Debian's clang under `target/`.
pub(crate) fn wasi_sdk_dir(root: &Path) -> PathBuf {
    std::env::var_os("WASI_SDK").map_or_else(|| root.join("target/wasi-sdk-debian"), PathBuf::from)
}

/// Whether `output` exists and is newer than every one of `inputs`.
fn up_to_date(output: &Path, inputs: &[PathBuf]) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(built) = modified(output) else {
        return false;
    };
    inputs
        .iter()
        .all(|input| modified(input).is_some_and(|changed| changed < built))
}

/// Runs `rustup target add wasm32-wasip1` unless the target is already installed.
fn ensure_wasm_target() -> Result<()> {
    let installed = capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("listing the installed Rust targets (is rustup installed?)")?;
    if installed.lines().any(|line| line.trim() == TARGET) {
        return Ok(());
    }
    println!("installing the Rust target {TARGET} with rustup");
    run(Command::new("rustup").args(["target", "add", TARGET]))
}

/// Makes sure clang, wasm-ld, the wasm32 compiler-rt builtins and a wasi-libc sysroot are
/// there, installing them with apt-get if not, and returns the sysroot.
fn ensure_c_toolchain() -> Result<PathBuf> {
    if let Some(sysroot) = c_toolchain() {
        return Ok(sysroot);
    }
    println!("installing clang/lld/wasi-libc with apt-get (needed for the C example)");
    let rt = format!("libclang-rt-{}-dev-wasm32", clang_major().unwrap_or(14));
    let packages = ["clang", "lld", "wasi-libc", rt.as_str()];
    if apt_get(&["install", "-y"], &packages).is_err() {
        // A stale or missing package list is the usual cause: refresh it and retry once.
        apt_get(&["update"], &[])?;
        apt_get(&["install", "-y"], &packages)?;
    }
    c_toolchain().context(
        "clang, wasm-ld or the wasi-libc sysroot is still missing after apt-get install \
         (set WASI_SYSROOT to a wasi-libc sysroot to use another one)",
    )
}

/// The wasi-libc sysroot if clang, wasm-ld, the builtins and the sysroot are all present.
fn c_toolchain() -> Option<PathBuf> {
    capture(Command::new("clang").arg("--version")).ok()?;
    capture(Command::new("wasm-ld").arg("--version")).ok()?;
    // clang links libclang_rt.builtins-wasm32.a into every module; it tells where it expects it.
    let builtins =
        capture(Command::new("clang").args(["--target=wasm32-wasi", "-print-libgcc-file-name"]))
            .ok()?;
    if !Path::new(builtins.trim()).is_file() {
        return None;
    }
    let from_env = std::env::var_os("WASI_SYSROOT").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(SYSROOT_CANDIDATES.iter().map(PathBuf::from))
        .find(|sysroot| sysroot.join("lib/wasm32-wasi/libc.a").is_file())
}
