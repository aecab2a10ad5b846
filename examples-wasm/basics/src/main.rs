//! `basics.wasm`: small tasks that show the guest ABI and exercise each of the host's outcomes
//! (success, guest error, panic, timeout, fuel, memory).

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

use serde::Serialize;
use wasq_guest::task;

/// `"Hello, NAME!"`.
#[task]
fn hello(name: String) -> String {
    format!("Hello, {name}!")
}

/// `a + b` (wrapping on overflow).
#[task]
fn add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

/// The `n`th Fibonacci number, computed the slow (exponential, CPU-bound) way on purpose:
/// `fib(20)` = 6765, `fib(25)` = 75025.
#[task]
fn fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib(n - 1).wrapping_add(fib(n - 2))
    }
}

/// What [`wordcount`] returns.
#[derive(Debug, Serialize)]
struct WordCount {
    /// Whitespace-separated words.
    words: usize,
    /// Lines (`str::lines`: a final newline does not start a new line).
    lines: usize,
    /// Unicode scalar values.
    chars: usize,
    /// Distinct words, compared lowercased with leading/trailing punctuation removed.
    unique: usize,
}

/// Counts the words, lines, characters and distinct words of `text`.
#[task]
fn wordcount(text: String) -> WordCount {
    let unique: HashSet<String> = text
        .split_whitespace()
        .map(|word| {
            word.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|word| !word.is_empty())
        .collect();
    WordCount {
        words: text.split_whitespace().count(),
        lines: text.lines().count(),
        chars: text.chars().count(),
        unique: unique.len(),
    }
}

/// Sleeps `ms` milliseconds (a WASI `poll_oneoff` clock subscription) and returns `ms`.
#[task]
fn sleep(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Loops forever: ends only by the host's fuel or time limit.
#[task]
fn spin() -> ! {
    let mut counter = 0_u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Grows memory forever, 1 MiB at a time: ends only by the host's memory limit.
#[task]
fn alloc() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0_u8; CHUNK];
        // Touch every page so the memory is really used.
        for byte in chunk.iter_mut().step_by(4096) {
            *byte = 1;
        }
        chunks.push(black_box(chunk));
    }
}

/// Panics: the SDK reports "task `panic` panicked at ...: boom: ..." and exit code 101.
#[task]
fn panic() {
    panic!("boom: this task panics on purpose");
}

/// Always fails with a guest error (exit code 1).
#[task]
fn fail() -> Result<(), String> {
    Err("this task always fails".to_owned())
}

/// Fails (a guest error) until attempt `succeed_on`, then returns the
/// attempt: shows retries with backoff.
#[task]
fn flaky(succeed_on: u32) -> Result<u32, String> {
    let attempt = wasq_guest::attempt();
    if attempt < succeed_on {
        return Err(format!("attempt {attempt} of {succeed_on} fails on purpose"));
    }
    Ok(attempt)
}

/// A hook: receives a finished task's record and returns a summary of it.
#[task]
fn record(task: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "seen": task.get("id"),
        "outcome": task.get("outcome"),
        "result": task.get("result"),
    })
}

/// Does nothing and returns `null`: measures the per-task overhead.
#[task]
fn noop() {}

/// The wall clock when the task started, in microseconds since the Unix epoch: the latency
/// benchmark's enqueue-to-start time (the sandbox gives guests the host's clocks).
#[task]
fn stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

wasq_guest::main!(
    hello, add, fib, wordcount, sleep, spin, alloc, panic, fail, flaky, record, noop,
    stamp
);
