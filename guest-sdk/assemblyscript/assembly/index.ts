// wasq: the wasq guest SDK for AssemblyScript (compiled with @assemblyscript/wasi-shim to a
// WASI preview 1 command). It does what guest-sdk/ABI.md asks of a task module, so a task is a
// plain function:
//
//   import { Input, returnInt, run } from "wasq";
//
//   function add(input: Input): void {
//     returnInt(input.int(0, "a") + input.int(1, "b"));   // args[0], else kwargs["a"]
//   }
//
//   run([new Task("add", add)]);
//
// - argv[1] picks the task; an unknown or missing name exits 2 with
//   "unknown task `x`; this module has: add, ..." (names sorted).
// - stdin ({"args":[...],"kwargs":{...}}) is read to end of file and parsed (a small JSON
//   parser, below; AssemblyScript has none built in).
// - Input.int, .float, .string, .boolean map parameter i to args[i], else kwargs[name]; a
//   missing or mistyped argument ends the task with exit code 1 and a message naming it.
// - fail(message) ends the task with exit code 1 and the message on stderr.
// - return* write one JSON value to stdout.

// ---- WASI preview 1, the few calls the SDK needs ----------------------------------------------

@external("wasi_snapshot_preview1", "fd_read")
declare function fd_read(fd: u32, iovs: usize, iovsLen: u32, nread: usize): u16;
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, iovsLen: u32, nwritten: usize): u16;
@external("wasi_snapshot_preview1", "args_sizes_get")
declare function args_sizes_get(argc: usize, argvBufSize: usize): u16;
@external("wasi_snapshot_preview1", "args_get")
declare function args_get(argv: usize, argvBuf: usize): u16;
@external("wasi_snapshot_preview1", "proc_exit")
declare function proc_exit(code: u32): void;

/** Ends the module with this exit code. */
export function exit(code: u32): void {
  proc_exit(code);
}

function writeFd(fd: u32, text: string): void {
  const bytes = String.UTF8.encode(text);
  const iov = memory.data(16);
  const written = memory.data(8);
  let offset: usize = 0;
  const total = <usize>bytes.byteLength;
  while (offset < total) {
    store<usize>(iov, changetype<usize>(bytes) + offset);
    store<usize>(iov, total - offset, sizeof<usize>());
    if (fd_write(fd, iov, 1, written) != 0) return;
    offset += load<usize>(written);
  }
}

function readStdin(): string {
  let buffer = new ArrayBuffer(4096);
  let length = 0;
  const iov = memory.data(16);
  const got = memory.data(8);
  while (true) {
    if (length == buffer.byteLength) {
      const bigger = new ArrayBuffer(buffer.byteLength * 2);
      memory.copy(changetype<usize>(bigger), changetype<usize>(buffer), <usize>length);
      buffer = bigger;
    }
    store<usize>(iov, changetype<usize>(buffer) + <usize>length);
    store<usize>(iov, <usize>(buffer.byteLength - length), sizeof<usize>());
    if (fd_read(0, iov, 1, got) != 0) fail("cannot read stdin");
    const n = <i32>load<usize>(got);
    if (n == 0) break;
    length += n;
  }
  return String.UTF8.decodeUnsafe(changetype<usize>(buffer), <usize>length);
}

function argv(): string[] {
  const sizes = memory.data(16);
  args_sizes_get(sizes, sizes + 8);
  const argc = <i32>load<usize>(sizes);
  const bufSize = <i32>load<usize>(sizes + 8);
  const pointers = new ArrayBuffer(argc * 4 + 4);
  const buf = new ArrayBuffer(bufSize + 1);
  args_get(changetype<usize>(pointers), changetype<usize>(buf));
  const out = new Array<string>();
  for (let i = 0; i < argc; i++) {
    const start = load<u32>(changetype<usize>(pointers) + <usize>(i * 4));
    let end = start;
    while (load<u8>(end) != 0) end++;
    out.push(String.UTF8.decodeUnsafe(start, end - start));
  }
  return out;
}

// ---- failing, logging, results ----------------------------------------------------------------

/** Ends the task as failed: the message on stderr, exit code 1. */
export function fail(message: string): void {
  writeFd(2, message + "\n");
  proc_exit(1);
}

/** Writes a line to stderr: the task's log. */
export function log(message: string): void {
  writeFd(2, message + "\n");
}

/** `s` as a JSON string, quotes and escapes included. */
export function jsonString(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x0d) out += "\\r";
    else if (c == 0x09) out += "\\t";
    else if (c < 0x20) out += "\\u00" + (c < 0x10 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

/** The result: JSON text written by the task (an object, an array...). */
export function returnJson(json: string): void {
  writeFd(1, json + "\n");
}
export function returnInt(n: i64): void {
  returnJson(n.toString());
}
export function returnFloat(x: f64): void {
  returnJson(x.toString());
}
export function returnString(s: string): void {
  returnJson(jsonString(s));
}
export function returnBool(b: bool): void {
  returnJson(b ? "true" : "false");
}
export function returnNull(): void {
  returnJson("null");
}

// ---- JSON values ------------------------------------------------------------------------------

export enum Kind {
  Null,
  Bool,
  Int,
  Float,
  String,
  Array,
  Object,
}

/** A parsed JSON value. */
export class Value {
  kind: Kind = Kind.Null;
  bool: bool = false;
  int: i64 = 0;
  float: f64 = 0;
  string: string = "";
  items: Value[] = [];
  keys: string[] = [];

  /** Member `key` of an object, or null. */
  get(key: string): Value | null {
    if (this.kind != Kind.Object) return null;
    for (let i = this.keys.length - 1; i >= 0; i--) {
      if (this.keys[i] == key) return this.items[i];
    }
    return null;
  }

  describe(): string {
    switch (this.kind) {
      case Kind.Null: return "null";
      case Kind.Bool: return "a boolean";
      case Kind.Int: return "an integer";
      case Kind.Float: return "a number";
      case Kind.String: return "a string";
      case Kind.Array: return "an array";
      default: return "an object";
    }
  }
}

/** Parses JSON text; null when it is not valid JSON. */
export function parseJson(text: string): Value | null {
  const parser = new Parser(text);
  const value = parser.value(0);
  if (value == null || parser.failed) return null;
  parser.ws();
  return parser.pos == text.length ? value : null;
}

class Parser {
  pos: i32 = 0;
  failed: bool = false;
  constructor(public text: string) {}

  ws(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) break;
      this.pos++;
    }
  }

  error(): Value | null {
    this.failed = true;
    return null;
  }

  literal(word: string): bool {
    if (this.text.substr(this.pos, word.length) != word) return false;
    this.pos += word.length;
    return true;
  }

  value(depth: i32): Value | null {
    if (depth > 512) return this.error();
    this.ws();
    if (this.pos >= this.text.length) return this.error();
    const c = this.text.charCodeAt(this.pos);
    const v = new Value();
    if (c == 0x7b /* { */) {
      v.kind = Kind.Object;
      this.pos++;
      this.ws();
      if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x7d) {
        this.pos++;
        return v;
      }
      while (true) {
        this.ws();
        if (this.pos >= this.text.length || this.text.charCodeAt(this.pos) != 0x22) return this.error();
        const key = this.str();
        if (this.failed) return null;
        this.ws();
        if (this.pos >= this.text.length || this.text.charCodeAt(this.pos) != 0x3a) return this.error();
        this.pos++;
        const item = this.value(depth + 1);
        if (item == null) return null;
        v.keys.push(key);
        v.items.push(item);
        this.ws();
        if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x2c) {
          this.pos++;
          continue;
        }
        if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x7d) {
          this.pos++;
          return v;
        }
        return this.error();
      }
    }
    if (c == 0x5b /* [ */) {
      v.kind = Kind.Array;
      this.pos++;
      this.ws();
      if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x5d) {
        this.pos++;
        return v;
      }
      while (true) {
        const item = this.value(depth + 1);
        if (item == null) return null;
        v.items.push(item);
        this.ws();
        if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x2c) {
          this.pos++;
          continue;
        }
        if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x5d) {
          this.pos++;
          return v;
        }
        return this.error();
      }
    }
    if (c == 0x22) {
      v.kind = Kind.String;
      v.string = this.str();
      return this.failed ? null : v;
    }
    if (this.literal("true")) {
      v.kind = Kind.Bool;
      v.bool = true;
      return v;
    }
    if (this.literal("false")) {
      v.kind = Kind.Bool;
      return v;
    }
    if (this.literal("null")) return v;
    return this.number(v);
  }

  number(v: Value): Value | null {
    const start = this.pos;
    let integer = true;
    if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x2d) this.pos++;
    const digits = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c >= 0x30 && c <= 0x39) {
        this.pos++;
      } else if (c == 0x2e || c == 0x65 || c == 0x45 || c == 0x2b || c == 0x2d) {
        integer = false;
        this.pos++;
      } else {
        break;
      }
    }
    if (this.pos == digits) return this.error();
    const text = this.text.substring(start, this.pos);
    // Integers that do not fit an i64 are kept as floats.
    const count = this.pos - digits;
    const negative = digits > start;
    const limit = negative ? "9223372036854775808" : "9223372036854775807";
    if (integer && (count < 19 || (count == 19 && this.text.substring(digits, this.pos) <= limit))) {
      v.kind = Kind.Int;
      v.int = I64.parseInt(text, 10);
    } else {
      v.kind = Kind.Float;
      v.float = parseFloat(text);
      if (isNaN(v.float)) return this.error();
    }
    return v;
  }

  hex4(): i32 {
    if (this.pos + 4 > this.text.length) {
      this.failed = true;
      return 0;
    }
    const n = I32.parseInt(this.text.substr(this.pos, 4), 16);
    this.pos += 4;
    return n;
  }

  str(): string {
    this.pos++; // the opening quote
    let out = "";
    let run = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c == 0x22) {
        out += this.text.substring(run, this.pos);
        this.pos++;
        return out;
      }
      if (c == 0x5c) {
        out += this.text.substring(run, this.pos);
        this.pos++;
        const e = this.text.charCodeAt(this.pos);
        this.pos++;
        if (e == 0x6e) out += "\n";
        else if (e == 0x74) out += "\t";
        else if (e == 0x72) out += "\r";
        else if (e == 0x62) out += "\b";
        else if (e == 0x66) out += "\f";
        else if (e == 0x75) out += String.fromCharCode(this.hex4()); // surrogates pair up in UTF-16
        else out += String.fromCharCode(e);
        run = this.pos;
        continue;
      }
      if (c < 0x20) break;
      this.pos++;
    }
    this.failed = true;
    return "";
  }
}

// ---- tasks and arguments ----------------------------------------------------------------------

/** A task's arguments. */
export class Input {
  constructor(public args: Value[], public kwargs: Value | null) {}

  /** Parameter `i` called `name`: args[i] if present, else kwargs[name], else null. */
  arg(i: i32, name: string): Value | null {
    if (i < this.args.length) return this.args[i];
    const kwargs = this.kwargs;
    return kwargs == null ? null : kwargs.get(name);
  }

  private need(i: i32, name: string, what: string): Value {
    const v = this.arg(i, name);
    if (v == null) {
      fail("missing argument `" + name + "` (position " + i.toString() + "): expected " + what);
      unreachable();
    }
    return v!;
  }

  /** An integer argument; a missing or mistyped one fails the task, naming it. */
  int(i: i32, name: string): i64 {
    const v = this.need(i, name, "an integer");
    if (v.kind != Kind.Int) fail("argument `" + name + "`: expected an integer, got " + v.describe());
    return v.int;
  }

  /** A number argument (an integer or a float). */
  float(i: i32, name: string): f64 {
    const v = this.need(i, name, "a number");
    if (v.kind == Kind.Int) return <f64>v.int;
    if (v.kind != Kind.Float) fail("argument `" + name + "`: expected a number, got " + v.describe());
    return v.float;
  }

  /** A string argument. */
  string(i: i32, name: string): string {
    const v = this.need(i, name, "a string");
    if (v.kind != Kind.String) fail("argument `" + name + "`: expected a string, got " + v.describe());
    return v.string;
  }

  /** A boolean argument. */
  boolean(i: i32, name: string): bool {
    const v = this.need(i, name, "true or false");
    if (v.kind != Kind.Bool) fail("argument `" + name + "`: expected true or false, got " + v.describe());
    return v.bool;
  }
}

/** One task: its name and its function. */
export class Task {
  constructor(public name: string, public run: (input: Input) => void) {}
}

/** Picks the task by argv[1], reads the input and runs the task. */
export function run(tasks: Task[]): void {
  const args = argv();
  const name = args.length > 1 ? args[1] : "";
  let task: Task | null = null;
  for (let i = 0; i < tasks.length; i++) {
    if (tasks[i].name == name) task = tasks[i];
  }
  if (task == null) {
    const names = tasks.map<string>((t: Task) => t.name);
    names.sort();
    writeFd(2, "unknown task `" + name + "`; this module has: " + names.join(", ") + "\n");
    proc_exit(2);
    return;
  }
  const text = readStdin();
  let input = new Input([], null);
  if (text.trim().length > 0) {
    const root = parseJson(text);
    if (root == null || root.kind != Kind.Object) {
      fail("stdin is not a JSON object like {\"args\":[...],\"kwargs\":{...}}");
      return;
    }
    const a = root.get("args");
    const k = root.get("kwargs");
    let positional: Value[] = [];
    if (a != null && a.kind == Kind.Array) positional = a.items;
    else if (a != null && a.kind != Kind.Null) fail("`args` must be an array");
    if (k != null && k.kind != Kind.Object && k.kind != Kind.Null) fail("`kwargs` must be an object");
    input = new Input(positional, k != null && k.kind == Kind.Object ? k : null);
  }
  task.run(input);
}
