//! wasq-js: a wasq task module (guest-sdk/ABI.md) that runs JavaScript tasks in QuickJS.
//!
//! The task file, embedded at build time (`WASQ_JS_TASK`), is an ES module whose exported
//! functions are the tasks. `runner.js` picks the one `argv[1]` names, maps `args` and
//! `kwargs` onto its parameters by position and by name, awaits it if it returns a promise and
//! writes its result as JSON; a thrown error fails the task (exit code 1, the message on
//! stderr). `console.log` and friends write to stderr, the task's log.

use std::io::{Read as _, Write as _};

use rquickjs::{CatchResultExt as _, Context, Ctx, Function, Module, Object, Runtime};

/// The task file.
const TASK: &str = include_str!(concat!(env!("OUT_DIR"), "/task.js"));

/// The glue that calls a task.
const RUNNER: &str = include_str!("runner.js");

/// `console`, writing to stderr.
const PRELUDE: &str = r#"
globalThis.console = (() => {
  const write = (...values) =>
    __wasq_print(values.map((v) => (typeof v === "string" ? v : JSON.stringify(v) ?? String(v))).join(" "));
  return { log: write, info: write, warn: write, error: write, debug: write };
})();
"#;

fn main() {
    let task = std::env::args().nth(1).unwrap_or_default();
    let mut input = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut input) {
        fail(1, &format!("cannot read stdin: {error}"));
    }
    let (code, stdout, stderr) =
        run(&task, &input).unwrap_or_else(|message| (1, None, Some(message)));
    if let Some(stdout) = stdout {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{stdout}");
        let _ = out.flush();
    }
    if let Some(stderr) = stderr {
        eprintln!("{stderr}");
    }
    std::process::exit(code);
}

fn fail(code: i32, message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(code);
}

/// Runs the task; `(exit code, stdout, stderr)`, or the message of an error outside the task
/// (the task file does not load, QuickJS fails).
fn run(task: &str, input: &str) -> Result<(i32, Option<String>, Option<String>), String> {
    let runtime = Runtime::new().map_err(|e| format!("cannot start QuickJS: {e}"))?;
    let context = Context::full(&runtime).map_err(|e| format!("cannot start QuickJS: {e}"))?;
    context.with(|ctx| {
        let caught = |ctx: &Ctx<'_>, what: &str, e: rquickjs::Error| -> String {
            let caught = Err::<(), _>(e).catch(ctx);
            match caught {
                Err(error) => format!("{what}: {error}"),
                Ok(()) => what.to_owned(),
            }
        };
        let globals = ctx.globals();
        let wasq = Object::new(ctx.clone()).map_err(|e| caught(&ctx, "QuickJS", e))?;
        wasq.set("task", task)
            .map_err(|e| caught(&ctx, "QuickJS", e))?;
        wasq.set("input", input)
            .map_err(|e| caught(&ctx, "QuickJS", e))?;
        globals
            .set("__wasq", wasq)
            .map_err(|e| caught(&ctx, "QuickJS", e))?;
        let print = Function::new(ctx.clone(), |line: String| eprintln!("{line}"))
            .map_err(|e| caught(&ctx, "QuickJS", e))?;
        globals
            .set("__wasq_print", print)
            .map_err(|e| caught(&ctx, "QuickJS", e))?;
        ctx.eval::<(), _>(PRELUDE)
            .map_err(|e| caught(&ctx, "QuickJS prelude", e))?;

        Module::declare(ctx.clone(), "task", TASK)
            .map_err(|e| caught(&ctx, "the task file does not load", e))?;
        let done = Module::evaluate(ctx.clone(), "wasq-runner", RUNNER)
            .map_err(|e| caught(&ctx, "the task file does not load", e))?;
        done.finish::<()>()
            .map_err(|e| caught(&ctx, "the task file does not load", e))?;

        let result: Object = globals
            .get("__wasq_result")
            .map_err(|e| caught(&ctx, "the task did not finish", e))?;
        let code: i32 = result.get("code").map_err(|e| caught(&ctx, "QuickJS", e))?;
        let stdout: Option<String> = result
            .get("stdout")
            .map_err(|e| caught(&ctx, "QuickJS", e))?;
        let stderr: Option<String> = result
            .get("stderr")
            .map_err(|e| caught(&ctx, "QuickJS", e))?;
        Ok((code, stdout, stderr))
    })
}
