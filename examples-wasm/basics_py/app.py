"""basics_py.wasm: the tasks of `basics` (hello, add, fib, wordcount, noop, fail) in Python,
a `wasq:task` component built by componentize-py with the SDK guest-sdk/python/wasq.py
(`cargo xtask build`)."""

import re

from wasq import WitWorld, task  # noqa: F401  (componentize-py looks for WitWorld here)


@task
def hello(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError("argument `name`: expected a string")
    return f"Hello, {name}!"


def _integer(value, name):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"argument `{name}`: expected an integer, got {value!r}")
    return value


@task
def add(a: int, b: int) -> int:
    return _integer(a, "a") + _integer(b, "b")


def _fib(n):
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)


@task
def fib(n: int) -> int:
    if _integer(n, "n") < 0:
        raise ValueError("argument `n`: expected a non-negative integer")
    return _fib(n)


_EDGE = re.compile(r"^[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+|[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+$")


@task
def wordcount(text: str) -> dict:
    """As the Rust task, with ASCII rules for case and punctuation."""
    if not isinstance(text, str):
        raise TypeError("argument `text`: expected a string")
    words = text.split()
    unique = set()
    for word in words:
        trimmed = _EDGE.sub("", word)
        if trimmed:
            unique.add(re.sub("[A-Z]", lambda m: m.group(0).lower(), trimmed))
    lines = text.split("\n")
    count = len(lines) - (1 if text == "" or text.endswith("\n") else 0)
    return {"words": len(words), "lines": count, "chars": len(text), "unique": len(unique)}


@task
def noop():
    return None


@task
def fail(message: str):
    raise Exception(message)
