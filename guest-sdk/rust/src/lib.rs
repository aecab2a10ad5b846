//! Write [wasq](https://github.com/wasq/wasq) tasks in Rust.
//!
//! A wasq task module is a WASI preview 1 command module: it gets the task name as `argv[1]`
//! and its arguments as JSON on stdin, writes its JSON result to stdout and exits 0, or writes
//! an error to stderr and exits non-zero. `guest-sdk/ABI.md` is the full contract; this crate
//! implements it so that a task is an ordinary function:
//!
//! ```no_run
//! use serde::Serialize;
//!
//! #[wasq_guest::task]
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! /// `greeting` is optional: a missing argument deserializes from `null`.
//! #[wasq_guest::task(name = "hello")]
//! fn greet(name: String, greeting: Option<String>) -> String {
//!     format!("{}, {name}!", greeting.as_deref().unwrap_or("Hello"))
//! }
//!
//! #[derive(Serialize)]
//! struct Stats {
//!     words: usize,
//! }
//!
//! /// `Err` fails the task (exit code 1) with the error's message on stderr.
//! #[wasq_guest::task]
//! fn stats(text: String) -> Result<Stats, String> {
//!     if text.is_empty() {
//!         return Err("empty text".to_owned());
//!     }
//!     Ok(Stats { words: text.split_whitespace().count() })
//! }
//!
//! // Registers the tasks and generates `fn main()`.
//! wasq_guest::main!(add, greet, stats);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip1 --release`; then
//! `echo '{"args":[1,2],"kwargs":{}}' | wasmtime module.wasm add` prints `3`.
//!
//! # Arguments
//!
//! Parameter `i` (which must be a plain identifier) takes `args[i]` if present, else
//! `kwargs["<parameter name>"]`, else JSON `null`: `Option<T>` parameters are optional, any
//! other missing one fails with "missing argument `n` (position 0)". Too many positional
//! arguments, unknown keyword arguments and an argument given both ways are errors too. Types
//! go through serde: any `T: DeserializeOwned`; a mismatch fails with
//! "argument `n`: invalid type: string \"x\", expected u64".
//!
//! # Results and errors
//!
//! | the task function returns | stdout | exit code |
//! | --- | --- | --- |
//! | `T: Serialize` | `T` as JSON, then `\n` | 0 |
//! | `()` (or nothing) | `null` | 0 |
//! | `Result<T, E: Display>` (any type whose last path segment is `Result`) | `Ok`: `T` as JSON | `Ok`: 0, `Err`: 1 with the message on stderr |
//! | `!` | — | whatever the function does |
//!
//! Bad stdin or arguments exit with 1, an unknown task name with 2 (stderr lists the module's
//! tasks), a panic with 101 and "task `NAME` panicked at FILE:LINE:COL: MESSAGE" on stderr.
//! See [`exit_code`].
//!
//! stdout is the result: log with `eprintln!` (stderr), never `println!`.

mod input;
mod output;
mod task;

pub use input::attempt;
pub use output::{Failure, exit_code};
pub use task::{Task, dispatch, run};
pub use wasq_guest_macros::{main, task, tasks};

/// What the macros' generated code calls. Not a public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::input::Args;

    use crate::output::{self, Failure};
    use crate::task::Task;

    pub const fn new_task(
        name: &'static str,
        params: &'static [&'static str],
        call: fn(Args) -> Result<Vec<u8>, Failure>,
    ) -> Task {
        Task::new(name, params, call)
    }

    pub fn value_output<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Failure> {
        output::value_output(value)
    }

    pub fn result_output<T: serde::Serialize, E: std::fmt::Display>(
        result: Result<T, E>,
    ) -> Result<Vec<u8>, Failure> {
        output::result_output(result)
    }

    pub fn unit_output() -> Result<Vec<u8>, Failure> {
        output::unit_output()
    }
}
