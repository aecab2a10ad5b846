"""wasq: write wasq tasks in Python, built into a `wasq:task` component by componentize-py.

A task is a function marked with ``@task``::

    from wasq import task

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @task
    def hello(name, greeting="Hello"):
        return f"{greeting}, {name}!"

Build the component (WASI preview 2) with the world in ``guest-sdk/wit``::

    componentize-py -d guest-sdk/wit -w task componentize app -o app.wasm \\
        -p . -p guest-sdk/python

where ``app.py`` defines the tasks and ends with ``from wasq import WitWorld``, the class
componentize-py looks for. Arguments map onto parameters by position (``args``) and by name
(``kwargs``), as in guest-sdk/ABI.md; the return value is serialised with ``json.dumps``; an
exception fails the task with its message; ``print`` writes to the task's log.
"""

import inspect
import json

from componentize_py_types import Err

import wit_world

_TASKS = {}


def task(fn):
    """Registers ``fn`` as a task under its name."""
    _TASKS[fn.__name__] = fn
    return fn


def _call(fn, args, kwargs):
    """Calls ``fn`` with ``args`` by position and ``kwargs`` by parameter name, naming the
    argument in the error when they do not fit (guest-sdk/ABI.md, section 5)."""
    params = list(inspect.signature(fn).parameters.values())
    kinds = inspect.Parameter
    positional = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    takes_varargs = any(p.kind == kinds.VAR_POSITIONAL for p in params)
    takes_varkw = any(p.kind == kinds.VAR_KEYWORD for p in params)
    if len(args) > len(positional) and not takes_varargs:
        raise _TaskError(f"task `{fn.__name__}` takes {len(positional)} arguments, got {len(args)}")
    names = {p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)}
    for i, name in enumerate(p.name for p in positional[: len(args)]):
        if name in kwargs:
            raise _TaskError(f"argument `{name}` given by position and by name")
    for name in kwargs:
        if name not in names and not takes_varkw:
            raise _TaskError(f"unknown argument `{name}`")
    for i, p in enumerate(params):
        if p.default is not p.empty or p.kind in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD):
            continue
        given = (p in positional and positional.index(p) < len(args)) or p.name in kwargs
        if not given:
            raise _TaskError(f"missing argument `{p.name}` (position {i})")
    return fn(*args, **kwargs)


class _TaskError(Exception):
    pass


def _describe(error):
    if isinstance(error, _TaskError) or type(error) is Exception:
        return str(error)
    return f"{type(error).__name__}: {error}"


class WitWorld(wit_world.WitWorld):
    """The `wasq:task` world's `run`, dispatching to the registered tasks."""

    def run(self, task: str, args: str) -> str:
        fn = _TASKS.get(task)
        if fn is None:
            names = ", ".join(sorted(_TASKS))
            raise Err(f"unknown task `{task}`; this module has: {names}")
        try:
            data = json.loads(args) if args.strip() else {}
        except ValueError as error:
            raise Err(f'the input is not JSON like {{"args":[...],"kwargs":{{...}}}}: {error}')
        if not isinstance(data, dict):
            raise Err('the input is not a JSON object like {"args":[...],"kwargs":{...}}')
        positional = data.get("args") or []
        named = data.get("kwargs") or {}
        if not isinstance(positional, list):
            raise Err("`args` must be an array")
        if not isinstance(named, dict):
            raise Err("`kwargs` must be an object")
        try:
            result = _call(fn, positional, named)
        except Exception as error:  # the task failed: its message is the error
            raise Err(_describe(error))
        try:
            return json.dumps(result)
        except (TypeError, ValueError) as error:
            raise Err(f"the result of `{task}` is not JSON: {error}")
