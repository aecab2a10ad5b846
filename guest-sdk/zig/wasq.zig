//! wasq.zig: the wasq guest SDK for Zig (target wasm32-wasi), one file.
//!
//! It does what guest-sdk/ABI.md asks of a task module, so a task is a plain function:
//!
//!     const wasq = @import("wasq");
//!
//!     fn add(in: wasq.Input) !void {
//!         const a = in.int(0, "a"); // args[0], else kwargs["a"]
//!         const b = in.int(1, "b");
//!         wasq.returnInt(a +% b); // stdout: the JSON result
//!     }
//!
//!     pub fn main() void {
//!         wasq.run(&.{.{ .name = "add", .run = add }});
//!     }
//!
//! - argv[1] picks the task; an unknown or missing name exits 2 with
//!   "unknown task `x`; this module has: add, ..." (names sorted).
//! - stdin ({"args":[...],"kwargs":{...}}) is read to end of file and parsed with std.json.
//! - `Input.int`, `.string`, ... map parameter i to args[i], else kwargs[name]; a missing or
//!   mistyped argument ends the task with exit code 1 and a message naming it.
//! - `fail` ends the task with exit code 1 and its message on stderr; a task returning an
//!   error does the same with the error's name.
//! - `return*` write one JSON value to stdout.
//!
//! Build: zig build-exe -target wasm32-wasi -O ReleaseSmall --dep wasq -Mroot=main.zig -Mwasq=wasq.zig

const std = @import("std");

/// Memory for the whole run: a task runs once in a fresh instance, so nothing is freed.
pub const allocator = std.heap.wasm_allocator;

/// One task: its name and its function.
pub const Task = struct {
    name: []const u8,
    run: *const fn (Input) anyerror!void,
};

/// A task's arguments.
pub const Input = struct {
    args: []const std.json.Value,
    kwargs: ?std.json.ObjectMap,

    /// Parameter `i` called `name`: args[i] if present, else kwargs[name], else null.
    pub fn arg(self: Input, i: usize, name: []const u8) ?std.json.Value {
        if (i < self.args.len) return self.args[i];
        if (self.kwargs) |kwargs| return kwargs.get(name);
        return null;
    }

    fn need(self: Input, i: usize, name: []const u8, what: []const u8) std.json.Value {
        return self.arg(i, name) orelse
            fail("missing argument `{s}` (position {d}): expected {s}", .{ name, i, what });
    }

    /// An integer argument; a missing or mistyped one fails the task, naming it.
    pub fn int(self: Input, i: usize, name: []const u8) i64 {
        return switch (self.need(i, name, "an integer")) {
            .integer => |n| n,
            else => |v| fail("argument `{s}`: expected an integer, got {s}", .{ name, kind(v) }),
        };
    }

    /// A number argument (an integer or a float).
    pub fn float(self: Input, i: usize, name: []const u8) f64 {
        return switch (self.need(i, name, "a number")) {
            .integer => |n| @floatFromInt(n),
            .float => |x| x,
            else => |v| fail("argument `{s}`: expected a number, got {s}", .{ name, kind(v) }),
        };
    }

    /// A string argument.
    pub fn string(self: Input, i: usize, name: []const u8) []const u8 {
        return switch (self.need(i, name, "a string")) {
            .string => |s| s,
            else => |v| fail("argument `{s}`: expected a string, got {s}", .{ name, kind(v) }),
        };
    }

    /// A boolean argument.
    pub fn boolean(self: Input, i: usize, name: []const u8) bool {
        return switch (self.need(i, name, "true or false")) {
            .bool => |b| b,
            else => |v| fail("argument `{s}`: expected true or false, got {s}", .{ name, kind(v) }),
        };
    }
};

fn kind(value: std.json.Value) []const u8 {
    return switch (value) {
        .null => "null",
        .bool => "a boolean",
        .integer => "an integer",
        .float, .number_string => "a number",
        .string => "a string",
        .array => "an array",
        .object => "an object",
    };
}

fn writeTo(file: std.fs.File, bytes: []const u8) void {
    file.writeAll(bytes) catch std.process.exit(1);
}

/// Ends the task as failed: the message on stderr, exit code 1.
pub fn fail(comptime format: []const u8, args: anytype) noreturn {
    const message = std.fmt.allocPrint(allocator, format ++ "\n", args) catch "out of memory\n";
    writeTo(std.fs.File.stderr(), message);
    std.process.exit(1);
}

/// Writes text to stderr: the task's log.
pub fn log(comptime format: []const u8, args: anytype) void {
    const message = std.fmt.allocPrint(allocator, format ++ "\n", args) catch return;
    writeTo(std.fs.File.stderr(), message);
}

/// `s` as a JSON string, quotes and escapes included.
pub fn jsonString(s: []const u8) []const u8 {
    var out = allocator.alloc(u8, s.len * 6 + 2) catch fail("out of memory", .{});
    var n: usize = 0;
    out[n] = '"';
    n += 1;
    for (s) |c| {
        const escaped: ?[]const u8 = switch (c) {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            else => null,
        };
        if (escaped) |e| {
            @memcpy(out[n .. n + e.len], e);
            n += e.len;
        } else if (c < 0x20) {
            const hex = "0123456789abcdef";
            @memcpy(out[n .. n + 6], &[_]u8{ '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] });
            n += 6;
        } else {
            out[n] = c;
            n += 1;
        }
    }
    out[n] = '"';
    return out[0 .. n + 1];
}

/// The result: a JSON text written by the task (an object, an array...).
pub fn returnJson(json: []const u8) void {
    writeTo(std.fs.File.stdout(), json);
    writeTo(std.fs.File.stdout(), "\n");
}

pub fn returnInt(n: i64) void {
    returnJson(std.fmt.allocPrint(allocator, "{d}", .{n}) catch fail("out of memory", .{}));
}

pub fn returnString(s: []const u8) void {
    returnJson(jsonString(s));
}

pub fn returnBool(b: bool) void {
    returnJson(if (b) "true" else "false");
}

pub fn returnNull() void {
    returnJson("null");
}

fn readStdin() []u8 {
    const stdin = std.fs.File.stdin();
    var buf = allocator.alloc(u8, 4096) catch fail("out of memory reading stdin", .{});
    var len: usize = 0;
    while (true) {
        if (len == buf.len) {
            buf = allocator.realloc(buf, buf.len * 2) catch fail("out of memory reading stdin", .{});
        }
        const got = stdin.read(buf[len..]) catch |e| fail("cannot read stdin: {s}", .{@errorName(e)});
        if (got == 0) return buf[0..len];
        len += got;
    }
}

fn lessThan(_: void, a: []const u8, b: []const u8) bool {
    return std.mem.lessThan(u8, a, b);
}

/// Picks the task by argv[1], reads the input, runs the task and exits with its code.
pub fn run(tasks: []const Task) noreturn {
    const argv = std.process.argsAlloc(allocator) catch fail("out of memory", .{});
    const name: []const u8 = if (argv.len > 1) argv[1] else "";
    const task = for (tasks) |t| {
        if (std.mem.eql(u8, t.name, name)) break t;
    } else {
        const names = allocator.alloc([]const u8, tasks.len) catch fail("out of memory", .{});
        for (tasks, names) |t, *n| n.* = t.name;
        std.mem.sort([]const u8, names, {}, lessThan);
        const list = std.mem.join(allocator, ", ", names) catch fail("out of memory", .{});
        const message = std.fmt.allocPrint(allocator, "unknown task `{s}`; this module has: {s}\n", .{ name, list }) catch "unknown task\n";
        writeTo(std.fs.File.stderr(), message);
        std.process.exit(2);
    };

    const text = readStdin();
    var input = Input{ .args = &.{}, .kwargs = null };
    if (std.mem.trim(u8, text, " \t\r\n").len > 0) {
        const parsed = std.json.parseFromSliceLeaky(std.json.Value, allocator, text, .{}) catch
            fail("stdin is not JSON like {{\"args\":[...],\"kwargs\":{{...}}}}", .{});
        const root = switch (parsed) {
            .object => |o| o,
            else => fail("stdin is not a JSON object like {{\"args\":[...],\"kwargs\":{{...}}}}", .{}),
        };
        if (root.get("args")) |args| switch (args) {
            .array => |a| input.args = a.items,
            .null => {},
            else => fail("`args` must be an array", .{}),
        };
        if (root.get("kwargs")) |kwargs| switch (kwargs) {
            .object => |o| input.kwargs = o,
            .null => {},
            else => fail("`kwargs` must be an object", .{}),
        };
    }
    task.run(input) catch |e| fail("task `{s}` failed: {s}", .{ name, @errorName(e) });
    std.process.exit(0);
}
