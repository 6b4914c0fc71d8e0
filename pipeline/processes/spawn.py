"""Starting supervised children: the port they share, their command line, their readiness."""

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pipeline

# The directory holding the `pipeline` package this supervisor runs, for the children.
_CODE_ROOT = str(Path(pipeline.__file__).resolve().parent.parent)


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, non-listening SO_REUSEPORT socket on host:port that holds the port for children.

    It joins the port's SO_REUSEPORT group without ever accepting, so the kernel hands every
    connection to the children's listening sockets; with port 0 it picks the port they share.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # As asyncio binds its IPv6 listeners: IPv6 only, so IPv4 stays apart.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def child_argv(host: str, port: int, processes: int, index: int, *, worker: bool) -> list[str]:
    """The command line of child `index`: `promptbus serve` on the shared port, supervised."""
    # -P: the working directory must not shadow the package (bench/pipeline.py would).
    argv = [sys.executable, "-P", "-m", "pipeline.cli", "serve", "--host", host]
    argv += ["--port", str(port), "--processes", str(processes)]
    argv += ["--child", str(index), "--parent-pid", str(os.getpid())]
    if not worker:
        argv.append("--no-worker")
    return argv


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with this supervisor's code first on the import path."""
    paths = [_CODE_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


@dataclass
class Child:
    """One running child and whether it has said it listens."""

    index: int
    process: asyncio.subprocess.Process
    ready: "asyncio.Future[bool]"

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the child has not been reaped yet."""
        return self.process.returncode is None

    def signal(self, sig: int) -> None:
        """Send `sig` to this child alone, unless it has already been reaped."""
        if self.running:
            with suppress(ProcessLookupError):
                self.process.send_signal(sig)


async def spawn(argv: list[str], env: Mapping[str, str], index: int) -> Child:
    """Start `argv` with a readiness pipe, in a session of its own (no terminal signals)."""
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            "--ready-fd",
            str(write_fd),
            stdin=subprocess.DEVNULL,
            pass_fds=(write_fd,),
            env=dict(env),
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return Child(index, process, _readiness(read_fd))


def _readiness(read_fd: int) -> "asyncio.Future[bool]":
    """True once the child writes to the pipe; False when it closes it first (it exited)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[bool] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            data = b""
        if not ready.done():
            ready.set_result(bool(data))

    def close(_: "asyncio.Future[bool]") -> None:
        loop.remove_reader(read_fd)
        os.close(read_fd)

    loop.add_reader(read_fd, readable)
    ready.add_done_callback(close)
    return ready
