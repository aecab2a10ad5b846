/*
 * wasq.h: the wasq guest SDK for C, header-only, for wasi-libc (wasm32-wasi).
 *
 * It does what guest-sdk/ABI.md asks of a task module, so a task is a plain function:
 *
 *     #include "wasq.h"
 *
 *     static int add(wasq_input *in) {
 *         long long a = wasq_arg_i64(in, 0, "a");     // args[0], else kwargs["a"]
 *         long long b = wasq_arg_i64(in, 1, "b");
 *         wasq_return_i64(a + b);                     // stdout: the JSON result
 *         return 0;
 *     }
 *
 *     WASQ_MAIN({"add", add})
 *
 * - argv[1] picks the task; an unknown or missing name exits 2 with
 *   "unknown task `x`; this module has: add, ..." (names sorted).
 * - stdin ({"args":[...],"kwargs":{...}}) is read to end of file and checked to be JSON.
 * - wasq_arg* map parameter i to args[i], else kwargs[name]. A missing or mistyped argument
 *   ends the task: exit 1, and stderr names the argument ("argument `a`: expected an integer").
 * - wasq_fail("...", ...) ends the task with exit 1 and the message on stderr.
 * - wasq_return_* write one JSON value to stdout.
 *
 * Values are views into the input text (no tree is built); strings are unescaped into memory
 * the caller frees. Build: clang --target=wasm32-wasi --sysroot=/usr -O2 -o m.wasm m.c
 */
#ifndef WASQ_H
#define WASQ_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every function is static (header-only) and may go unused. */
#define WASQ_API static __attribute__((unused))

/* ---- JSON values: views into the input ---------------------------------------------------- */

typedef enum {
    WASQ_MISSING = 0, /* not present (an absent argument, an index out of range) */
    WASQ_NULL,
    WASQ_BOOL,
    WASQ_NUMBER,
    WASQ_STRING,
    WASQ_ARRAY,
    WASQ_OBJECT
} wasq_kind;

/* One JSON value: `len` bytes of text at `text`. */
typedef struct {
    wasq_kind kind;
    const char *text;
    size_t len;
} wasq_value;

/* A task's input: the whole of stdin, and its args and kwargs. */
typedef struct {
    char *json;
    size_t len;
    wasq_value args;   /* an array (empty when absent or null) */
    wasq_value kwargs; /* an object (empty when absent or null) */
} wasq_input;

/* A task: 0 for success (after writing the result), anything else is the exit code. */
typedef int (*wasq_task_fn)(wasq_input *in);

typedef struct {
    const char *name;
    wasq_task_fn run;
} wasq_task;

/* ---- failing -------------------------------------------------------------------------------- */

/* Ends the task as failed: the message (printf format) on stderr, exit code 1. */
WASQ_API void wasq_fail(const char *format, ...) __attribute__((noreturn, format(printf, 1, 2)));
WASQ_API void wasq_fail(const char *format, ...) {
    va_list ap;
    fflush(stdout);
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---- parsing -------------------------------------------------------------------------------- */

WASQ_API const char *wasq__ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Skips one JSON value starting at p (after whitespace); returns the end or NULL if invalid. */
WASQ_API const char *wasq__skip(const char *p, const char *end, int depth) {
    if (depth > 512 || p >= end) return NULL;
    switch (*p) {
    case '"':
        for (p++; p < end; p++) {
            if (*p == '\\') {
                if (++p >= end) return NULL;
            } else if (*p == '"') {
                return p + 1;
            } else if ((unsigned char)*p < 0x20) {
                return NULL;
            }
        }
        return NULL;
    case '[':
    case '{': {
        char close = *p == '[' ? ']' : '}';
        int object = *p == '{';
        p = wasq__ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (object) {
                if (p >= end || *p != '"') return NULL;
                p = wasq__skip(p, end, depth + 1);
                if (!p) return NULL;
                p = wasq__ws(p, end);
                if (p >= end || *p != ':') return NULL;
                p = wasq__ws(p + 1, end);
            }
            p = wasq__skip(p, end, depth + 1);
            if (!p) return NULL;
            p = wasq__ws(p, end);
            if (p < end && *p == ',') {
                p = wasq__ws(p + 1, end);
                continue;
            }
            if (p < end && *p == close) return p + 1;
            return NULL;
        }
    }
    case 't':
        return (end - p >= 4 && !memcmp(p, "true", 4)) ? p + 4 : NULL;
    case 'f':
        return (end - p >= 5 && !memcmp(p, "false", 5)) ? p + 5 : NULL;
    case 'n':
        return (end - p >= 4 && !memcmp(p, "null", 4)) ? p + 4 : NULL;
    default: {
        const char *start = p;
        if (p < end && *p == '-') p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
                           *p == '+' || *p == '-'))
            p++;
        return p > start ? p : NULL;
    }
    }
}

WASQ_API wasq_kind wasq__kind(char c) {
    switch (c) {
    case 'n': return WASQ_NULL;
    case 't':
    case 'f': return WASQ_BOOL;
    case '"': return WASQ_STRING;
    case '[': return WASQ_ARRAY;
    case '{': return WASQ_OBJECT;
    default: return WASQ_NUMBER;
    }
}

/* Parses one value at p; kind WASQ_MISSING when the text there is not JSON. */
WASQ_API wasq_value wasq__value(const char *p, const char *end) {
    wasq_value v = {WASQ_MISSING, p, 0};
    p = wasq__ws(p, end);
    const char *after = wasq__skip(p, end, 0);
    if (after) {
        v.kind = wasq__kind(*p);
        v.text = p;
        v.len = (size_t)(after - p);
    }
    return v;
}

/* The number of elements of an array (or members of an object); 0 for anything else. */
WASQ_API size_t wasq_len(wasq_value v) {
    if (v.kind != WASQ_ARRAY && v.kind != WASQ_OBJECT) return 0;
    const char *end = v.text + v.len - 1, *p = wasq__ws(v.text + 1, end);
    size_t n = 0;
    while (p < end) {
        wasq_value item = wasq__value(p, end);
        if (item.kind == WASQ_MISSING) break;
        p = wasq__ws(item.text + item.len, end);
        if (v.kind == WASQ_OBJECT) { /* the key, then ':' and the value */
            item = wasq__value(p + 1, end);
            if (item.kind == WASQ_MISSING) break;
            p = wasq__ws(item.text + item.len, end);
        }
        n++;
        p = wasq__ws(p + 1, end); /* past ',' */
    }
    return n;
}

/* Element i of an array; WASQ_MISSING past its end or when v is not an array. */
WASQ_API wasq_value wasq_at(wasq_value v, size_t i) {
    wasq_value missing = {WASQ_MISSING, "", 0};
    if (v.kind != WASQ_ARRAY) return missing;
    const char *end = v.text + v.len - 1, *p = wasq__ws(v.text + 1, end);
    for (size_t n = 0; p < end; n++) {
        wasq_value element = wasq__value(p, end);
        if (element.kind == WASQ_MISSING) return missing;
        if (n == i) return element;
        p = wasq__ws(wasq__ws(element.text + element.len, end) + 1, end);
    }
    return missing;
}

/* Compares a JSON string's text (with its quotes) with a plain C string, escapes and all. */
WASQ_API int wasq__key_is(wasq_value key, const char *name) {
    const char *p = key.text + 1, *end = key.text + key.len - 1;
    size_t n = strlen(name);
    if (memchr(p, '\\', (size_t)(end - p)) == NULL)
        return (size_t)(end - p) == n && !memcmp(p, name, n);
    return 0; /* keys with escapes never match the plain names tasks use */
}

/* Member `name` of an object; WASQ_MISSING when absent or when v is not an object. */
WASQ_API wasq_value wasq_get(wasq_value v, const char *name) {
    wasq_value missing = {WASQ_MISSING, "", 0};
    if (v.kind != WASQ_OBJECT) return missing;
    const char *end = v.text + v.len - 1, *p = wasq__ws(v.text + 1, end);
    while (p < end) {
        wasq_value key = wasq__value(p, end);
        if (key.kind != WASQ_STRING) return missing;
        p = wasq__ws(key.text + key.len, end) + 1; /* past ':' */
        wasq_value value = wasq__value(p, end);
        if (value.kind == WASQ_MISSING) return missing;
        if (wasq__key_is(key, name)) return value;
        p = wasq__ws(wasq__ws(value.text + value.len, end) + 1, end);
    }
    return missing;
}

/* Writes the code point as UTF-8; returns the bytes written. */
WASQ_API size_t wasq__utf8(uint32_t c, char *out) {
    if (c < 0x80) { out[0] = (char)c; return 1; }
    if (c < 0x800) { out[0] = (char)(0xC0 | c >> 6); out[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | c >> 12);
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | c >> 18);
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

WASQ_API int wasq__hex4(const char *p, const char *end, uint32_t *out) {
    if (end - p < 4) return 0;
    uint32_t c = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        c <<= 4;
        if (h >= '0' && h <= '9') c |= (uint32_t)(h - '0');
        else if (h >= 'a' && h <= 'f') c |= (uint32_t)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') c |= (uint32_t)(h - 'A' + 10);
        else return 0;
    }
    *out = c;
    return 1;
}

/*
 * A JSON string, unescaped into a NUL-terminated buffer the caller frees (with free), or NULL
 * when v is not a string. `*len` (if not NULL) gets its length in bytes.
 */
WASQ_API char *wasq_string(wasq_value v, size_t *len) {
    if (v.kind != WASQ_STRING) return NULL;
    const char *p = v.text + 1, *end = v.text + v.len - 1;
    char *out = malloc(v.len + 1), *o = out;
    if (!out) wasq_fail("out of memory");
    while (p < end) {
        if (*p != '\\') { *o++ = *p++; continue; }
        p++;
        switch (*p++) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'u': {
            uint32_t c, low;
            if (!wasq__hex4(p, end, &c)) c = 0xFFFD;
            else p += 4;
            if (c >= 0xD800 && c < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                wasq__hex4(p + 2, end, &low) && low >= 0xDC00 && low < 0xE000) {
                c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
                p += 6;
            } else if (c >= 0xD800 && c < 0xE000) {
                c = 0xFFFD; /* a lone surrogate */
            }
            o += wasq__utf8(c, o);
            break;
        }
        default: *o++ = p[-1]; /* \" \\ \/ */
        }
    }
    *o = '\0';
    if (len) *len = (size_t)(o - out);
    return out;
}

/* A JSON number as an integer: 1 when v is an integer that fits a long long. */
WASQ_API int wasq_i64(wasq_value v, long long *out) {
    if (v.kind != WASQ_NUMBER) return 0;
    char buf[32];
    if (v.len >= sizeof buf) return 0;
    memcpy(buf, v.text, v.len);
    buf[v.len] = '\0';
    char *end;
    errno = 0;
    long long n = strtoll(buf, &end, 10);
    if (*end != '\0' || errno == ERANGE) return 0;
    *out = n;
    return 1;
}

/* A JSON number as a double: 1 when v is a number. */
WASQ_API int wasq_f64(wasq_value v, double *out) {
    if (v.kind != WASQ_NUMBER) return 0;
    char buf[64];
    if (v.len >= sizeof buf) return 0;
    memcpy(buf, v.text, v.len);
    buf[v.len] = '\0';
    *out = strtod(buf, NULL);
    return 1;
}

/* ---- arguments ------------------------------------------------------------------------------ */

/* Parameter i called `name`: args[i] if present, else kwargs[name], else WASQ_MISSING. */
WASQ_API wasq_value wasq_arg(const wasq_input *in, size_t i, const char *name) {
    wasq_value v = wasq_at(in->args, i);
    if (v.kind == WASQ_MISSING && name) v = wasq_get(in->kwargs, name);
    return v;
}

WASQ_API wasq_value wasq__need(const wasq_input *in, size_t i, const char *name, const char *what) {
    wasq_value v = wasq_arg(in, i, name);
    if (v.kind == WASQ_MISSING) wasq_fail("missing argument `%s` (position %zu): expected %s", name, i, what);
    return v;
}

/* An integer argument; a missing or mistyped one fails the task, naming it. */
WASQ_API long long wasq_arg_i64(const wasq_input *in, size_t i, const char *name) {
    long long n;
    wasq_value v = wasq__need(in, i, name, "an integer");
    if (!wasq_i64(v, &n)) wasq_fail("argument `%s`: expected an integer, got %.*s", name, (int)(v.len > 40 ? 40 : v.len), v.text);
    return n;
}

/* A number argument. */
WASQ_API double wasq_arg_f64(const wasq_input *in, size_t i, const char *name) {
    double x;
    wasq_value v = wasq__need(in, i, name, "a number");
    if (!wasq_f64(v, &x)) wasq_fail("argument `%s`: expected a number, got %.*s", name, (int)(v.len > 40 ? 40 : v.len), v.text);
    return x;
}

/* A string argument, unescaped; the caller frees it. */
WASQ_API char *wasq_arg_string(const wasq_input *in, size_t i, const char *name, size_t *len) {
    wasq_value v = wasq__need(in, i, name, "a string");
    char *s = wasq_string(v, len);
    if (!s) wasq_fail("argument `%s`: expected a string, got %.*s", name, (int)(v.len > 40 ? 40 : v.len), v.text);
    return s;
}

/* A boolean argument. */
WASQ_API int wasq_arg_bool(const wasq_input *in, size_t i, const char *name) {
    wasq_value v = wasq__need(in, i, name, "true or false");
    if (v.kind != WASQ_BOOL) wasq_fail("argument `%s`: expected true or false, got %.*s", name, (int)(v.len > 40 ? 40 : v.len), v.text);
    return v.text[0] == 't';
}

/* ---- results -------------------------------------------------------------------------------- */

/* Writes s (len bytes of UTF-8) as a JSON string. */
WASQ_API void wasq_write_string(FILE *out, const char *s, size_t len) {
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (c < 0x20) fprintf(out, "\\u%04x", c);
            else fputc(c, out);
        }
    }
    fputc('"', out);
}

WASQ_API void wasq_return_i64(long long n) { printf("%lld\n", n); }
WASQ_API void wasq_return_f64(double x) { printf("%.17g\n", x); }
WASQ_API void wasq_return_bool(int b) { puts(b ? "true" : "false"); }
WASQ_API void wasq_return_null(void) { puts("null"); }
WASQ_API void wasq_return_string(const char *s) {
    wasq_write_string(stdout, s, strlen(s));
    fputc('\n', stdout);
}
/* A result already written as JSON text by the task (an object, an array...). */
WASQ_API void wasq_return_json(const char *json) { puts(json); }

/* ---- the entry point ------------------------------------------------------------------------ */

WASQ_API int wasq__by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reads all of stdin into a NUL-terminated buffer. */
WASQ_API char *wasq__read_stdin(size_t *len) {
    size_t n = 0, cap = 4096, got;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    while ((got = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += got;
        if (cap - n <= 1) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) { free(buf); return NULL; }
            buf = grown;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Picks the task by argv[1], reads the input and runs it; the exit code of the module. */
WASQ_API int wasq_main(int argc, char **argv, const wasq_task *tasks, size_t count) {
    const char *name = argc > 1 ? argv[1] : "";
    const wasq_task *task = NULL;
    for (size_t i = 0; i < count; i++)
        if (!strcmp(tasks[i].name, name)) task = &tasks[i];
    if (!task) {
        const char **names = malloc(count * sizeof *names);
        for (size_t i = 0; names && i < count; i++) names[i] = tasks[i].name;
        if (names) qsort(names, count, sizeof *names, wasq__by_name);
        fprintf(stderr, "unknown task `%s`; this module has: ", name);
        for (size_t i = 0; names && i < count; i++) fprintf(stderr, "%s%s", i ? ", " : "", names[i]);
        fputc('\n', stderr);
        free(names);
        return 2;
    }
    wasq_input in;
    memset(&in, 0, sizeof in);
    in.json = wasq__read_stdin(&in.len);
    if (!in.json) wasq_fail("out of memory reading stdin");
    static const char empty_array[] = "[]", empty_object[] = "{}";
    wasq_value none_args = {WASQ_ARRAY, empty_array, 2}, none_kwargs = {WASQ_OBJECT, empty_object, 2};
    in.args = none_args;
    in.kwargs = none_kwargs;
    const char *end = in.json + in.len;
    if (wasq__ws(in.json, end) < end) {
        wasq_value root = wasq__value(in.json, end);
        if (root.kind != WASQ_OBJECT || wasq__ws(root.text + root.len, end) != end)
            wasq_fail("stdin is not a JSON object like {\"args\":[...],\"kwargs\":{...}}");
        wasq_value args = wasq_get(root, "args"), kwargs = wasq_get(root, "kwargs");
        if (args.kind == WASQ_ARRAY) in.args = args;
        else if (args.kind != WASQ_MISSING && args.kind != WASQ_NULL) wasq_fail("`args` must be an array");
        if (kwargs.kind == WASQ_OBJECT) in.kwargs = kwargs;
        else if (kwargs.kind != WASQ_MISSING && kwargs.kind != WASQ_NULL) wasq_fail("`kwargs` must be an object");
    }
    int code = task->run(&in);
    free(in.json);
    fflush(stdout);
    return code;
}

/* Defines main() over the tasks: WASQ_MAIN({"add", add}, {"hello", hello}) */
#define WASQ_MAIN(...)                                                                           \
    int main(int argc, char **argv) {                                                            \
        static const wasq_task wasq_tasks[] = {__VA_ARGS__};                                     \
        return wasq_main(argc, argv, wasq_tasks, sizeof wasq_tasks / sizeof wasq_tasks[0]);      \
    }

#endif /* WASQ_H */
