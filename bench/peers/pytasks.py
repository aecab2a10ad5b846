"""The tasks every Python peer runs: the same work as wasq's basics and markdown guests."""

import time

import markdown


def noop():
    """Does nothing: measures the per-task overhead."""
    return None


def stamp():
    """The wall clock when the task started, in seconds since the epoch."""
    return time.time()


def fib(n):
    """The nth Fibonacci number, the slow (exponential) way on purpose: fib(25) = 75025."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def render(text):
    """Markdown to HTML, with tables and footnotes like the wasq guest."""
    return markdown.markdown(text, extensions=["tables", "footnotes"])
