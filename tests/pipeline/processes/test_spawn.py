"""The port a supervisor holds for its children, and a child's command line."""

import os
import socket
import sys
from pathlib import Path

import pytest

import pipeline
from pipeline.processes.spawn import child_argv, child_env, reserve_port


def listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    sock.settimeout(5)
    return sock


def test_a_reserved_port_takes_reuse_port_listeners_and_keeps_others_out():
    # Given a port 0 reservation
    with reserve_port("127.0.0.1", 0) as held:
        port = held.getsockname()[1]
        assert port != 0

        # Then SO_REUSEPORT listeners (the children) bind it, and a plain socket cannot
        with listener(port) as child, socket.socket() as intruder:
            with pytest.raises(OSError, match="Address already in use"):
                intruder.bind(("127.0.0.1", port))

            # And a connection goes to the listener, never to the reservation
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                accepted, _ = child.accept()
                accepted.close()


def test_a_port_in_use_cannot_be_reserved():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="Address already in use"):
            reserve_port("127.0.0.1", taken.getsockname()[1])


def test_a_child_runs_this_interpreter_on_the_shared_port_without_the_working_directory():
    argv = child_argv("127.0.0.1", 8080, 3, 2, worker=False)

    assert argv[:4] == [sys.executable, "-P", "-m", "pipeline.cli"]
    assert argv[4:] == [
        "serve", "--host", "127.0.0.1", "--port", "8080", "--processes", "3",
        "--child", "2", "--parent-pid", str(os.getpid()), "--no-worker",
    ]  # fmt: skip
    assert "--no-worker" not in child_argv("127.0.0.1", 8080, 3, 2, worker=True)


def test_a_child_imports_the_supervisors_code_first():
    env = child_env({"PYTHONPATH": "/elsewhere", "PROMPTBUS_PORT": "1"})

    first, *rest = env["PYTHONPATH"].split(os.pathsep)
    assert Path(first) == Path(pipeline.__file__).resolve().parent.parent
    assert rest == ["/elsewhere"]
    assert env["PROMPTBUS_PORT"] == "1"
