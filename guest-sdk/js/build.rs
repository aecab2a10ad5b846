//! Embeds the task file named by `WASQ_JS_TASK` (default: the basics example) in the module.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-env-changed=WASQ_JS_TASK");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let task = std::env::var_os("WASQ_JS_TASK")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../examples-wasm/basics_js/basics.js"));
    println!("cargo::rerun-if-changed={}", task.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("task.js");
    if let Err(error) = std::fs::copy(&task, &out) {
        println!(
            "cargo::error=cannot read the JavaScript task file {} (set WASQ_JS_TASK): {error}",
            task.display()
        );
    }
}
