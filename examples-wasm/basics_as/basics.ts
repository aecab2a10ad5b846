// basics_as.wasm: the tasks of `basics` (hello, add, fib, wordcount, noop, fail) in
// AssemblyScript, with the SDK guest-sdk/assemblyscript. Built by `cargo xtask build`
// (asc with @assemblyscript/wasi-shim's config, -O3).
import {
  Input,
  Task,
  fail as failTask,
  returnInt,
  returnJson,
  returnNull,
  returnString,
  run,
} from "../../guest-sdk/assemblyscript/assembly/index";

/** hello(name) -> "Hello, NAME!" */
function hello(input: Input): void {
  returnString("Hello, " + input.string(0, "name") + "!");
}

/** add(a, b) -> a + b, wrapping on overflow like the Rust task. */
function add(input: Input): void {
  returnInt(input.int(0, "a") + input.int(1, "b"));
}

function fibOf(n: u64): u64 {
  return n < 2 ? n : fibOf(n - 1) + fibOf(n - 2);
}

/** fib(n): the slow, exponential way on purpose (CPU-bound). */
function fib(input: Input): void {
  const n = input.int(0, "n");
  if (n < 0) failTask("argument `n`: expected a non-negative integer, got " + n.toString());
  returnInt(<i64>fibOf(<u64>n));
}

function isAsciiAlphanumeric(c: i32): bool {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isSpace(c: i32): bool {
  return c == 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * wordcount(text) -> {"words", "lines", "chars", "unique"}: as the Rust task, with ASCII rules
 * for case and punctuation.
 */
function wordcount(input: Input): void {
  const text = input.string(0, "text");
  let words = 0;
  let lines = 0;
  let chars = 0;
  const seen = new Set<string>();
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c < 0xdc00 || c > 0xdfff) chars++; // a low surrogate ends a pair counted already
    if (c == 0x0a || i + 1 == text.length) lines++;
    i++;
  }
  i = 0;
  while (i < text.length) {
    while (i < text.length && isSpace(text.charCodeAt(i))) i++;
    if (i >= text.length) break;
    let stop = i;
    while (stop < text.length && !isSpace(text.charCodeAt(stop))) stop++;
    words++;
    let a = i;
    let b = stop;
    while (a < b && text.charCodeAt(a) < 0x80 && !isAsciiAlphanumeric(text.charCodeAt(a))) a++;
    while (b > a && text.charCodeAt(b - 1) < 0x80 && !isAsciiAlphanumeric(text.charCodeAt(b - 1))) b--;
    if (a < b) seen.add(text.substring(a, b).toLowerCase());
    i = stop;
  }
  returnJson(
    "{\"words\":" + words.toString() +
    ",\"lines\":" + lines.toString() +
    ",\"chars\":" + chars.toString() +
    ",\"unique\":" + seen.size.toString() + "}",
  );
}

/** noop() -> null */
function noop(input: Input): void {
  returnNull();
}

/** fail(message): fails with the message (exit 1). */
function fail(input: Input): void {
  failTask(input.string(0, "message"));
}

run([
  new Task("hello", hello),
  new Task("add", add),
  new Task("fib", fib),
  new Task("wordcount", wordcount),
  new Task("noop", noop),
  new Task("fail", fail),
]);
