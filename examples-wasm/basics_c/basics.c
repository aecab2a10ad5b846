/*
 * basics_c.wasm: the tasks of `basics` (hello, add, fib, wordcount, noop, fail) in C, with
 * the header-only SDK guest-sdk/c/wasq.h. Built by `cargo xtask build`:
 *
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -I guest-sdk/c -o basics_c.wasm basics.c
 */
#include <ctype.h>

#include "wasq.h"

/* hello(name) -> "Hello, NAME!" */
static int hello(wasq_input *in) {
    char *name = wasq_arg_string(in, 0, "name", NULL);
    size_t size = strlen(name) + 16;
    char *greeting = malloc(size);
    if (!greeting) wasq_fail("out of memory");
    snprintf(greeting, size, "Hello, %s!", name);
    wasq_return_string(greeting);
    free(greeting);
    free(name);
    return 0;
}

/* add(a, b) -> a + b, wrapping on overflow like the Rust task. */
static int add(wasq_input *in) {
    unsigned long long a = (unsigned long long)wasq_arg_i64(in, 0, "a");
    unsigned long long b = (unsigned long long)wasq_arg_i64(in, 1, "b");
    wasq_return_i64((long long)(a + b));
    return 0;
}

static unsigned long long fib_of(unsigned long long n) {
    return n < 2 ? n : fib_of(n - 1) + fib_of(n - 2);
}

/* fib(n): the slow, exponential way on purpose (CPU-bound). */
static int fib(wasq_input *in) {
    long long n = wasq_arg_i64(in, 0, "n");
    if (n < 0) wasq_fail("argument `n`: expected a non-negative integer, got %lld", n);
    wasq_return_i64((long long)fib_of((unsigned long long)n));
    return 0;
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * wordcount(text) -> {"words", "lines", "chars", "unique"}: as the Rust task, with ASCII rules
 * for case and punctuation (non-ASCII letters count as letters and are compared as they are).
 */
static int wordcount(wasq_input *in) {
    size_t len;
    char *text = wasq_arg_string(in, 0, "text", &len);
    size_t words = 0, lines = 0, chars = 0, unique = 0;
    char **seen = malloc((len / 2 + 1) * sizeof *seen);
    if (!seen) wasq_fail("out of memory");
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)text[i] & 0xC0) != 0x80) chars++;
        if (text[i] == '\n' || i + 1 == len) lines++;
    }
    for (char *word = strtok(text, " \t\n\r\f\v"); word; word = strtok(NULL, " \t\n\r\f\v")) {
        words++;
        char *start = word, *stop = word + strlen(word);
        while (start < stop && (unsigned char)*start < 0x80 && !isalnum((unsigned char)*start)) start++;
        while (stop > start && (unsigned char)stop[-1] < 0x80 && !isalnum((unsigned char)stop[-1])) stop--;
        if (start == stop) continue;
        *stop = '\0';
        for (char *c = start; *c; c++) *c = (char)tolower((unsigned char)*c);
        seen[unique++] = start;
    }
    qsort(seen, unique, sizeof *seen, by_string);
    size_t distinct = 0;
    for (size_t i = 0; i < unique; i++)
        if (i == 0 || strcmp(seen[i - 1], seen[i]) != 0) distinct++;
    printf("{\"words\":%zu,\"lines\":%zu,\"chars\":%zu,\"unique\":%zu}\n", words, lines, chars,
           distinct);
    free(seen);
    free(text);
    return 0;
}

/* noop() -> null */
static int noop(wasq_input *in) {
    (void)in;
    wasq_return_null();
    return 0;
}

/* fail(message): fails with the message (exit 1). */
static int fail(wasq_input *in) {
    char *message = wasq_arg_string(in, 0, "message", NULL);
    wasq_fail("%s", message);
}

WASQ_MAIN({"hello", hello}, {"add", add}, {"fib", fib}, {"wordcount", wordcount}, {"noop", noop},
          {"fail", fail})
