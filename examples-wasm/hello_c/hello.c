/*
 * hello_c.wasm: a wasq task module in plain C, with no SDK: just wasi-libc.
 * It shows the whole guest ABI (guest-sdk/ABI.md) in one file:
 *   argv[1] = the task name,
 *   stdin   = {"args":[...],"kwargs":{...}},
 *   stdout  = the result as JSON, exit 0;  stderr + exit 1 = task error,
 *   stderr + exit 2 = unknown task.
 *
 * Tasks:
 *   hello  args ["NAME"] or kwargs {"name":"NAME"}  ->  "Hello, NAME!"
 *   add    args [A, B] (integers)                  ->  A + B
 *
 * Build (Debian's clang, lld and wasi-libc):
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -Wl,--strip-all -o hello_c.wasm hello.c
 *
 * The JSON "parsing" below is a tiny hand-written scan, enough for the shape the wasq host
 * sends; a real task would use a JSON library (e.g. cJSON compiles unchanged for wasm32-wasi).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads all of stdin into a NUL-terminated heap buffer. */
static char *read_stdin(void) {
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += n;
        if (cap - len <= 1) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) free(buf);
            buf = grown;
        }
    }
    if (buf) buf[len] = '\0';
    return buf;
}

static const char *skip_ws(const char *p) {
    while (isspace((unsigned char)*p)) p++;
    return p;
}

/* Returns a pointer just after `"key":` (and whitespace) in json, or NULL. */
static const char *find_key(const char *json, const char *key) {
    size_t klen = strlen(key);
    for (const char *p = strchr(json, '"'); p; p = strchr(p + 1, '"')) {
        if (strncmp(p + 1, key, klen) == 0 && p[1 + klen] == '"') {
            const char *q = skip_ws(p + 2 + klen);
            if (*q == ':') return skip_ws(q + 1);
        }
    }
    return NULL;
}

/*
 * If p points at a JSON string, stores its raw contents (escapes kept as they are, which is
 * what we want: they go straight back into a JSON string) and returns 1.
 */
static int json_string(const char *p, const char **start, int *len) {
    if (!p || *p != '"') return 0;
    const char *q = p + 1;
    while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
    if (*q != '"') return 0;
    *start = p + 1;
    *len = (int)(q - p - 1);
    return 1;
}

static int task_hello(const char *input) {
    const char *name;
    int len;
    const char *args = find_key(input, "args");
    /* args[0] if it is a string, else kwargs "name". */
    if (!(args && *args == '[' && json_string(skip_ws(args + 1), &name, &len))) {
        const char *kwargs = find_key(input, "kwargs");
        if (!(kwargs && json_string(find_key(kwargs, "name"), &name, &len))) {
            fputs("missing argument `name` (position 0): expected a string\n", stderr);
            return 1;
        }
    }
    printf("\"Hello, %.*s!\"\n", len, name);
    return 0;
}

static int task_add(const char *input) {
    const char *p = find_key(input, "args");
    long long a, b;
    char *end;
    if (!p || *p != '[') goto usage;
    a = strtoll(p + 1, &end, 10);
    if (end == p + 1) goto usage;
    p = skip_ws(end);
    if (*p != ',') goto usage;
    b = strtoll(p + 1, &end, 10);
    if (end == p + 1) goto usage;
    printf("%lld\n", a + b);
    return 0;
usage:
    fputs("add expects two integers: {\"args\":[A,B]}\n", stderr);
    return 1;
}

int main(int argc, char **argv) {
    const char *task = argc > 1 ? argv[1] : NULL;
    if (!task || (strcmp(task, "hello") != 0 && strcmp(task, "add") != 0)) {
        fprintf(stderr, "unknown task `%s`; this module has: add, hello\n", task ? task : "");
        return 2;
    }
    char *input = read_stdin();
    if (!input) {
        fputs("out of memory reading stdin\n", stderr);
        return 1;
    }
    int code = strcmp(task, "hello") == 0 ? task_hello(input) : task_add(input);
    free(input);
    return code;
}
