"""escape_py.wasm: a Python component that tries to reach outside the sandbox. Every task
should fail or find nothing (tests/all/escape.rs); built by `cargo xtask build`."""

import os
import socket

from wasq import WitWorld, task  # noqa: F401  (componentize-py looks for WitWorld here)


@task
def read_file(path: str) -> str:
    with open(path) as file:
        return file.read()


@task
def write_file(path: str) -> int:
    with open(path, "w") as file:
        return file.write("escaped")


@task
def list_dir(path: str) -> list:
    return os.listdir(path)


@task
def environment() -> dict:
    return dict(os.environ)


@task
def connect(host: str, port: int) -> str:
    # An IP address, not a name: a name lookup would stop earlier, in the idna codec.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as conn:
        conn.settimeout(2)
        conn.connect((host, port))
        return f"connected to {conn.getpeername()}"
