//! Structural checks of a module before any compile: what it imports, that
//! it has the export a task needs, and how many functions, how large and
//! how deeply nested they are. They read the binary once, in linear time
//! and a few milliseconds, so a module wasq cannot run, or one shaped to
//! make the compiler take minutes (thousands of nested loops under one
//! `br_table`), is refused with a message naming what is wrong before a
//! compile slot is spent on it.
//!
//! Nothing here recurses: nesting is counted with an integer, nested
//! modules of a component with wasmparser's own heap stack.

use std::collections::HashSet;

use wasmparser::{Encoding, ExternalKind, Operator, Parser, Payload, TypeRef};

use crate::SandboxError;

/// Caps on a module's shape, from [`SandboxConfig`](crate::SandboxConfig).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShapeLimits {
    pub(crate) max_functions: u32,
    pub(crate) max_function_size: usize,
    pub(crate) max_nesting: u32,
}

/// What the bytes are, once they passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A WASI preview 1 command module.
    Module,
    /// A component (of the `wasq:task` world, checked after compiling).
    Component,
}

/// The imports wasq provides to command modules: `(module, name)` pairs.
pub(crate) type Provided = HashSet<(String, String)>;

/// Checks `bytes` (a wasm binary) against `limits` and `provided`.
pub(crate) fn inspect(
    bytes: &[u8],
    limits: &ShapeLimits,
    provided: &Provided,
) -> Result<Kind, SandboxError> {
    let invalid = SandboxError::InvalidModule;
    let mut kind = None;
    // How deep in nested modules and components the parser is now: 1 is
    // the top level.
    let mut level = 0u32;
    let mut functions = 0u64;
    let mut has_entry = false;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| invalid(format!("malformed WebAssembly: {e}")))?;
        match payload {
            Payload::Version { encoding, .. } => {
                level += 1;
                if level == 1 {
                    kind = Some(match encoding {
                        Encoding::Module => Kind::Module,
                        Encoding::Component => Kind::Component,
                    });
                }
            }
            Payload::End(_) => level = level.saturating_sub(1),
            Payload::ImportSection(reader) if level == 1 => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| invalid(format!("malformed imports: {e}")))?;
                    check_import(import.module, import.name, import.ty, provided)?;
                }
            }
            Payload::ExportSection(reader) if level == 1 => {
                for export in reader {
                    let export = export.map_err(|e| invalid(format!("malformed exports: {e}")))?;
                    if export.name == "_start" && export.kind == ExternalKind::Func {
                        has_entry = true;
                    }
                }
            }
            Payload::ComponentImportSection(reader) if level == 1 => {
                for import in reader {
                    let import = import.map_err(|e| invalid(format!("malformed imports: {e}")))?;
                    let name = import.name.name;
                    if !name.starts_with("wasi:") {
                        return Err(invalid(format!(
                            "the component imports `{name}`, which wasq does not provide \
                             (components get only WASI preview 2, `wasi:…`)"
                        )));
                    }
                }
            }
            Payload::ComponentExportSection(reader) if level == 1 => {
                for export in reader {
                    let export = export.map_err(|e| invalid(format!("malformed exports: {e}")))?;
                    if export.name.name == "run" {
                        has_entry = true;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                functions += 1;
                if functions > u64::from(limits.max_functions) {
                    return Err(invalid(format!(
                        "the module has more than {} functions, the most wasq compiles \
                         (max_functions)",
                        limits.max_functions
                    )));
                }
                let size = body.range().len();
                if size > limits.max_function_size {
                    return Err(invalid(format!(
                        "function {} is {size} bytes, over the limit of {} (max_function_size)",
                        functions - 1,
                        limits.max_function_size
                    )));
                }
                check_nesting(&body, functions - 1, limits.max_nesting)?;
            }
            _ => {}
        }
    }
    let kind = kind.ok_or_else(|| invalid("empty module".into()))?;
    if !has_entry {
        return Err(invalid(match kind {
            Kind::Module => "the module has no `_start` function: a wasq task must be a WASI \
                             command module or a `wasq:task` component (see guest-sdk/ABI.md)"
                .into(),
            Kind::Component => "the component does not export `run` (the `wasq:task` world, \
                                see guest-sdk/ABI.md)"
                .into(),
        }));
    }
    Ok(kind)
}

/// A command module may import only functions wasq provides.
fn check_import(
    module: &str,
    name: &str,
    ty: TypeRef,
    provided: &Provided,
) -> Result<(), SandboxError> {
    let what = match ty {
        TypeRef::Func(_) | TypeRef::FuncExact(_) => "function",
        TypeRef::Memory(_) => "memory",
        TypeRef::Table(_) => "table",
        TypeRef::Global(_) => "global",
        TypeRef::Tag(_) => "tag",
    };
    let known = what == "function" && provided.contains(&(module.to_owned(), name.to_owned()));
    if known {
        return Ok(());
    }
    Err(SandboxError::InvalidModule(format!(
        "the module imports the {what} `{module}::{name}`, which wasq does not provide \
         (it provides only the functions of `wasi_snapshot_preview1`)"
    )))
}

/// Refuses a function whose blocks, loops and ifs nest deeper than `max`.
fn check_nesting(
    body: &wasmparser::FunctionBody<'_>,
    index: u64,
    max: u32,
) -> Result<(), SandboxError> {
    let mut reader = body
        .get_operators_reader()
        .map_err(|e| SandboxError::InvalidModule(format!("malformed function {index}: {e}")))?;
    // Blocks and ifs nest deep in real code (a `switch` lowers to one block
    // per case); loops nested deep are what make Cranelift's loop analysis
    // blow up. So loops count against `max`, everything against ten times it.
    let all_max = max.saturating_mul(10);
    // Whether each open construct is a loop, innermost last.
    let mut open: Vec<bool> = Vec::new();
    let mut loops = 0u32;
    while !reader.eof() {
        let op = reader
            .read()
            .map_err(|e| SandboxError::InvalidModule(format!("malformed function {index}: {e}")))?;
        let is_loop = match op {
            Operator::Loop { .. } => true,
            Operator::Block { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => false,
            Operator::End => {
                if open.pop() == Some(true) {
                    loops -= 1;
                }
                continue;
            }
            _ => continue,
        };
        open.push(is_loop);
        loops += u32::from(is_loop);
        if loops > max || open.len() as u64 > u64::from(all_max) {
            return Err(SandboxError::InvalidModule(format!(
                "function {index} nests loops more than {max} deep (or blocks more than \
                 {all_max}), the most wasq compiles (max_nesting)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ShapeLimits {
        ShapeLimits {
            max_functions: 10,
            max_function_size: 1 << 16,
            max_nesting: 50,
        }
    }

    fn provided() -> Provided {
        [("wasi_snapshot_preview1".to_owned(), "fd_write".to_owned())]
            .into_iter()
            .collect()
    }

    fn check(wat: &str) -> Result<Kind, SandboxError> {
        let bytes = wat::parse_str(wat).expect("valid text");
        inspect(&bytes, &limits(), &provided())
    }

    fn refusal(wat: &str) -> String {
        check(wat).expect_err("refused").to_string()
    }

    #[test]
    fn a_command_module_passes() {
        let ok = check(
            r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
                (func (export "_start")))"#,
        );
        assert_eq!(ok.expect("passes"), Kind::Module);
    }

    #[test]
    fn foreign_imports_are_named() {
        let message =
            refusal(r#"(module (import "env" "host_call" (func)) (func (export "_start")))"#);
        assert!(message.contains("`env::host_call`"), "{message}");
        let message = refusal(
            r#"(module (import "wasi_snapshot_preview1" "fd_write" (memory 1)) (func (export "_start")))"#,
        );
        assert!(message.contains("memory"), "{message}");
    }

    #[test]
    fn a_missing_start_is_refused() {
        assert!(refusal("(module (func (export \"main\")))").contains("_start"));
    }

    #[test]
    fn deep_nesting_and_many_functions_are_refused() {
        let nested = format!(
            "(module (func (export \"_start\") {} {}))",
            "(loop ".repeat(51),
            ")".repeat(51)
        );
        assert!(refusal(&nested).contains("max_nesting"));
        let fine = format!(
            "(module (func (export \"_start\") {} {}))",
            "(block ".repeat(400),
            ")".repeat(400)
        );
        assert!(check(&fine).is_ok());
        let blocks = format!(
            "(module (func (export \"_start\") {} {}))",
            "(block ".repeat(501),
            ")".repeat(501)
        );
        assert!(refusal(&blocks).contains("max_nesting"));
        let many = format!(
            "(module (func (export \"_start\")) {})",
            "(func)".repeat(10)
        );
        assert!(refusal(&many).contains("max_functions"));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let refused = inspect(b"\0asm\x01\0\0\0\x01\xff\xff", &limits(), &provided());
        assert!(refused.is_err());
        assert!(inspect(b"", &limits(), &provided()).is_err());
    }

    #[test]
    fn components_must_import_only_wasi() {
        let message =
            refusal(r#"(component (import "evil:host/api" (instance)) (export "run" (func 0)))"#);
        assert!(message.contains("evil:host/api"), "{message}");
    }
}
