//! Where Cranelift runs. Compiling a hostile module can take minutes and
//! gigabytes (wasmtime does not treat compile-time blow-ups as security
//! problems), and a compile on a thread cannot be stopped. So a sandbox
//! set to [`CompileIsolation::Subprocess`] compiles in a child process —
//! the `wasq` binary run as `wasq __compile-worker` — under CPU-time and
//! address-space limits that it sets on itself before it reads the module,
//! and kills it when its time is up: a refused compile frees its slot at
//! once. The child writes the serialized artifact on stdout; this process
//! loads it into its own engine, whose settings it shares.
//!
//! [`CompileIsolation::InProcess`] compiles on a blocking thread, as a
//! library embedding the sandbox without the `wasq` binary must; a compile
//! past its cap is then abandoned, not stopped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::SandboxError;
use crate::engine::EngineSettings;
use crate::inspect::Kind;

/// The argument that makes the `wasq` binary a compile worker.
pub const COMPILE_WORKER_ARG: &str = "__compile-worker";

/// Longest error message read from a compile worker.
const MAX_WORKER_MESSAGE: u64 = 4096;

/// Where modules are compiled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CompileIsolation {
    /// On a blocking thread of this process. A compile past
    /// `compile_timeout` is abandoned and keeps its thread (and compile
    /// slot) until it ends on its own.
    #[default]
    InProcess,
    /// In a child process: `program __compile-worker …`, where `program`
    /// is the `wasq` binary (or any program whose `main` calls
    /// [`compile_worker_main`] for that argument). Killed at
    /// `compile_timeout`, limited to `compile_memory` of address space
    /// and `compile_timeout` of CPU time.
    Subprocess {
        /// The program to run.
        program: PathBuf,
    },
}

impl CompileIsolation {
    /// A subprocess of the running executable (the `wasq` binary calls
    /// this for itself).
    pub fn current_exe() -> Result<Self, SandboxError> {
        std::env::current_exe()
            .map(|program| Self::Subprocess { program })
            .map_err(|e| SandboxError::Engine(format!("cannot find the wasq executable: {e}")))
    }
}

/// A module compiled but not yet linked.
pub(crate) enum Compiled {
    Module(Module),
    Component(Component),
}

/// What a compile needs to know of the sandbox.
#[derive(Debug, Clone)]
pub(crate) struct CompileSettings {
    pub(crate) isolation: CompileIsolation,
    pub(crate) engine: EngineSettings,
    pub(crate) timeout: Duration,
    pub(crate) memory: u64,
}

/// Compiles `binary` (already checked by `inspect`) of `kind`.
pub(crate) async fn compile(
    engine: &Engine,
    settings: &CompileSettings,
    binary: Vec<u8>,
    kind: Kind,
    permit: OwnedSemaphorePermit,
) -> Result<Compiled, SandboxError> {
    match &settings.isolation {
        CompileIsolation::InProcess => {
            let engine = engine.clone();
            // The permit moves into the thread: a compile abandoned at its
            // cap still holds its slot until it really ends.
            let job = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                match kind {
                    Kind::Module => Module::new(&engine, &binary).map(Compiled::Module),
                    Kind::Component => Component::new(&engine, &binary).map(Compiled::Component),
                }
            });
            match tokio::time::timeout(settings.timeout, job).await {
                Err(_) => Err(SandboxError::CompileTimeout(settings.timeout)),
                Ok(Err(join)) => Err(SandboxError::InvalidModule(format!(
                    "the compiler stopped unexpectedly: {join}"
                ))),
                Ok(Ok(compiled)) => {
                    compiled.map_err(|e| SandboxError::InvalidModule(crate::error::one_line(&e)))
                }
            }
        }
        CompileIsolation::Subprocess { program } => {
            // Held until the child is gone (killed at the cap at the latest).
            let artifact = compile_in_child(program, settings, &binary, kind).await;
            drop(permit);
            let artifact = artifact?;
            let engine = engine.clone();
            tokio::task::spawn_blocking(move || load_artifact(&engine, &artifact, kind))
                .await
                .map_err(|e| SandboxError::Engine(format!("cannot load a compiled module: {e}")))?
        }
    }
}

/// Loads what a compile worker wrote.
fn load_artifact(engine: &Engine, artifact: &[u8], kind: Kind) -> Result<Compiled, SandboxError> {
    // SAFETY: the bytes come from a child process running this same
    // program, which compiled them with an engine of the same settings
    // (wasmtime still checks the header, version and settings and refuses
    // a mismatch). The child is trusted code: the wasm it compiled is
    // untrusted input to Cranelift exactly as it would be in this process.
    #[allow(unsafe_code, reason = "loading what our own compile worker produced")]
    let loaded = unsafe {
        match kind {
            Kind::Module => Module::deserialize(engine, artifact).map(Compiled::Module),
            Kind::Component => Component::deserialize(engine, artifact).map(Compiled::Component),
        }
    };
    loaded.map_err(|e| {
        SandboxError::Engine(format!(
            "the compile worker's output does not load (is it the same wasq build?): {}",
            crate::error::one_line(&e)
        ))
    })
}

async fn compile_in_child(
    program: &PathBuf,
    settings: &CompileSettings,
    binary: &[u8],
    kind: Kind,
) -> Result<Vec<u8>, SandboxError> {
    let cpu_secs = settings.timeout.as_secs().max(1) + 1;
    let mut child = tokio::process::Command::new(program)
        .arg(COMPILE_WORKER_ARG)
        .arg(match kind {
            Kind::Module => "module",
            Kind::Component => "component",
        })
        .arg(settings.engine.to_arg())
        .arg(settings.memory.to_string())
        .arg(cpu_secs.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            SandboxError::Engine(format!(
                "cannot start the compile worker {}: {e}",
                program.display()
            ))
        })?;
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(SandboxError::Engine(
            "the compile worker has no pipes".into(),
        ));
    };
    let work = async {
        // Written while the output is read, so neither pipe fills up.
        let input = async {
            let _ = stdin.write_all(binary).await;
            drop(stdin);
        };
        let mut artifact = Vec::new();
        let mut message = String::new();
        let output = async {
            let _ = stdout.read_to_end(&mut artifact).await;
        };
        let errors = async {
            let _ = stderr
                .take(MAX_WORKER_MESSAGE)
                .read_to_string(&mut message)
                .await;
        };
        tokio::join!(input, output, errors);
        let status = child.wait().await;
        (status, artifact, message)
    };
    let (status, artifact, message) = match tokio::time::timeout(settings.timeout, work).await {
        Ok(done) => done,
        // Dropping `work` drops the child, which kills it (kill_on_drop).
        Err(_) => return Err(SandboxError::CompileTimeout(settings.timeout)),
    };
    let status =
        status.map_err(|e| SandboxError::Engine(format!("the compile worker vanished: {e}")))?;
    if status.success() {
        return Ok(artifact);
    }
    let message = message.trim();
    use std::os::unix::process::ExitStatusExt as _;
    Err(match (status.code(), status.signal()) {
        (Some(WORKER_REFUSED), _) => SandboxError::InvalidModule(message.to_owned()),
        (Some(WORKER_OUT_OF_MEMORY), _) => SandboxError::CompileOutOfMemory(settings.memory),
        // SIGXCPU: past its CPU-time limit.
        (_, Some(24)) | (_, Some(9)) => SandboxError::CompileTimeout(settings.timeout),
        // An allocation that failed under the address-space limit aborts.
        (_, Some(6)) => SandboxError::CompileOutOfMemory(settings.memory),
        _ => SandboxError::InvalidModule(format!(
            "the compiler stopped unexpectedly ({status}){}",
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        )),
    })
}

/// Exit code of a worker whose module did not compile (the reason is on stderr).
const WORKER_REFUSED: i32 = 3;
/// Exit code of a worker that could not get memory.
const WORKER_OUT_OF_MEMORY: i32 = 4;

/// The compile worker: `wasq __compile-worker module|component SETTINGS
/// MEMORY CPU_SECS`, the module's binary on stdin, the artifact on stdout.
///
/// Limits itself first (address space, CPU time, no core dumps), then
/// reads and compiles. Returns the process's exit code: 0, or 3 with the
/// reason on stderr when the module does not compile, or 2 on bad
/// arguments.
pub fn compile_worker_main(args: &[String]) -> u8 {
    use std::io::{Read as _, Write as _};
    let [kind, engine, memory, cpu] = args else {
        eprintln!("usage: wasq {COMPILE_WORKER_ARG} module|component SETTINGS MEMORY CPU_SECS");
        return 2;
    };
    let (Some(engine), Ok(memory), Ok(cpu)) = (
        EngineSettings::from_arg(engine),
        memory.parse::<u64>(),
        cpu.parse::<u64>(),
    ) else {
        eprintln!("wasq {COMPILE_WORKER_ARG}: bad arguments");
        return 2;
    };
    if let Err(error) = limit_self(memory, cpu) {
        eprintln!("cannot limit the compile worker: {error}");
        return 1;
    }
    let mut binary = Vec::new();
    if let Err(error) = std::io::stdin().read_to_end(&mut binary) {
        eprintln!("cannot read the module: {error}");
        return 1;
    }
    let engine = match crate::engine::compile_only_engine(&engine) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("{error}");
            return WORKER_OUT_OF_MEMORY as u8;
        }
    };
    let compiled = match kind.as_str() {
        "component" => engine.precompile_component(&binary),
        _ => engine.precompile_module(&binary),
    };
    match compiled {
        Ok(artifact) => match std::io::stdout().write_all(&artifact) {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Err(error) => {
            eprintln!("{}", crate::error::one_line(&error));
            WORKER_REFUSED as u8
        }
    }
}

/// Sets this process's address-space and CPU-time limits (soft and hard:
/// the compiler cannot raise them again) and turns off core dumps.
fn limit_self(memory: u64, cpu_secs: u64) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let cap = |n: u64| Rlimit {
        current: Some(n),
        maximum: Some(n),
    };
    setrlimit(Resource::Core, cap(0))?;
    setrlimit(Resource::Cpu, cap(cpu_secs))?;
    setrlimit(Resource::As, cap(memory))?;
    Ok(())
}
