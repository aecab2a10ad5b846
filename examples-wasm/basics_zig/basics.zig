//! basics_zig.wasm: the tasks of `basics` (hello, add, fib, wordcount, noop, fail) in Zig, with
//! the SDK guest-sdk/zig/wasq.zig. Built by `cargo xtask build`:
//!
//!     python-zig build-exe -target wasm32-wasi -O ReleaseSmall --dep wasq \
//!         -Mroot=examples-wasm/basics_zig/basics.zig -Mwasq=guest-sdk/zig/wasq.zig

const std = @import("std");
const wasq = @import("wasq");

/// hello(name) -> "Hello, NAME!"
fn hello(in: wasq.Input) !void {
    const name = in.string(0, "name");
    wasq.returnString(try std.fmt.allocPrint(wasq.allocator, "Hello, {s}!", .{name}));
}

/// add(a, b) -> a + b, wrapping on overflow like the Rust task.
fn add(in: wasq.Input) !void {
    wasq.returnInt(in.int(0, "a") +% in.int(1, "b"));
}

fn fibOf(n: u64) u64 {
    return if (n < 2) n else fibOf(n - 1) +% fibOf(n - 2);
}

/// fib(n): the slow, exponential way on purpose (CPU-bound).
fn fib(in: wasq.Input) !void {
    const n = in.int(0, "n");
    if (n < 0) wasq.fail("argument `n`: expected a non-negative integer, got {d}", .{n});
    wasq.returnInt(@intCast(fibOf(@intCast(n))));
}

/// wordcount(text) -> {"words", "lines", "chars", "unique"}: as the Rust task, with ASCII
/// rules for case and punctuation.
fn wordcount(in: wasq.Input) !void {
    const text = in.string(0, "text");
    var words: usize = 0;
    var seen = std.StringHashMap(void).init(wasq.allocator);
    var it = std.mem.tokenizeAny(u8, text, " \t\n\r\x0b\x0c");
    while (it.next()) |word| {
        words += 1;
        var start: usize = 0;
        var stop: usize = word.len;
        while (start < stop and word[start] < 0x80 and !std.ascii.isAlphanumeric(word[start])) start += 1;
        while (stop > start and word[stop - 1] < 0x80 and !std.ascii.isAlphanumeric(word[stop - 1])) stop -= 1;
        if (start == stop) continue;
        try seen.put(try std.ascii.allocLowerString(wasq.allocator, word[start..stop]), {});
    }
    var lines: usize = std.mem.count(u8, text, "\n");
    if (text.len > 0 and text[text.len - 1] != '\n') lines += 1;
    const chars = std.unicode.utf8CountCodepoints(text) catch text.len;
    wasq.returnJson(try std.fmt.allocPrint(
        wasq.allocator,
        "{{\"words\":{d},\"lines\":{d},\"chars\":{d},\"unique\":{d}}}",
        .{ words, lines, chars, seen.count() },
    ));
}

/// noop() -> null
fn noop(_: wasq.Input) !void {
    wasq.returnNull();
}

/// fail(message): fails with the message (exit 1).
fn fail(in: wasq.Input) !void {
    wasq.fail("{s}", .{in.string(0, "message")});
}

pub fn main() void {
    wasq.run(&.{
        .{ .name = "hello", .run = hello },
        .{ .name = "add", .run = add },
        .{ .name = "fib", .run = fib },
        .{ .name = "wordcount", .run = wordcount },
        .{ .name = "noop", .run = noop },
        .{ .name = "fail", .run = fail },
    });
}
