// basics_js.wasm: the tasks of `basics` (hello, add, fib, wordcount, noop, fail) in
// JavaScript, run by QuickJS in guest-sdk/js. Each exported function is a task; arguments
// arrive by position (`args`) or by parameter name (`kwargs`). Built by `cargo xtask build`:
//
//   WASQ_JS_TASK=$PWD/examples-wasm/basics_js/basics.js \
//     cargo build --release --target wasm32-wasip1 --manifest-path guest-sdk/js/Cargo.toml

/** hello(name) -> "Hello, NAME!" */
export function hello(name) {
  if (typeof name !== "string") throw new TypeError("argument `name`: expected a string");
  return `Hello, ${name}!`;
}

function integer(value, name) {
  if (!Number.isInteger(value)) {
    throw new TypeError(`argument \`${name}\`: expected an integer, got ${JSON.stringify(value) ?? "nothing"}`);
  }
  return value;
}

/** add(a, b) -> a + b */
export function add(a, b) {
  return integer(a, "a") + integer(b, "b");
}

function fibOf(n) {
  return n < 2 ? n : fibOf(n - 1) + fibOf(n - 2);
}

/** fib(n): the slow, exponential way on purpose (CPU-bound). */
export function fib(n) {
  if (integer(n, "n") < 0) throw new RangeError("argument `n`: expected a non-negative integer");
  return fibOf(n);
}

/**
 * wordcount(text) -> {words, lines, chars, unique}: as the Rust task, with ASCII rules for case
 * and punctuation.
 */
export function wordcount(text) {
  if (typeof text !== "string") throw new TypeError("argument `text`: expected a string");
  const words = text.split(/[ \t\n\r\f\v]+/).filter((w) => w !== "");
  const unique = new Set();
  for (const word of words) {
    const trimmed = word.replace(/^[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+|[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+$/g, "");
    if (trimmed !== "") unique.add(trimmed.replace(/[A-Z]/g, (c) => c.toLowerCase()));
  }
  let lines = text.split("\n").length;
  if (text === "" || text.endsWith("\n")) lines -= 1;
  return { words: words.length, lines, chars: [...text].length, unique: unique.size };
}

/** noop() -> null */
export function noop() {}

/** fail(message): fails with the message (exit 1). */
export function fail(message) {
  throw new Error(message);
}
