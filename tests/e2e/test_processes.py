"""`promptbus serve --processes N` as OS processes: one port, restarts, stopping, sharing."""

import json
import os
import signal
import socket
import threading
import urllib.request
from pathlib import Path

from tests.support.processes import PROMPTBUS
from tests.support.supervised import (
    REDIS_URL,
    Pinned,
    events,
    gone,
    log_lines,
    one_per_child,
    process_set,
    redis_prefix,
    start_serve,
    wait_until,
)
from tests.support.unique import free_port

# Every route that needs a job store or webhook registry all processes share.
UNSHARED_ROUTES = [
    ("POST", "/v1/jobs", {"model": "flash", "prompt": "a job"}),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/job_123", None),
    ("GET", "/v1/jobs/job_123/events", None),
    ("DELETE", "/v1/jobs/job_123", None),
    ("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/"}),
    ("GET", "/v1/webhooks", None),
]


def healthz_pid(url: str) -> int:
    """The pid of the child that answers `/healthz` on a fresh connection."""
    with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
        assert response.status == 200
        return int(json.loads(response.read())["pid"])


def calls(emulator_url: str) -> int:
    with urllib.request.urlopen(f"{emulator_url}/stats", timeout=10) as response:
        return int(json.loads(response.read())["calls"])


def test_two_processes_share_a_free_port_and_refuse_jobs_without_redis(tmp_path: Path) -> None:
    with process_set(tmp_path) as procs:
        # Given `serve --processes 2` on port 0, with no Redis
        serve = start_serve(procs, "2")

        # Then its first line says where it listens, how many processes and what they share,
        # and the next one warns what having no Redis means
        first, second = log_lines(serve)[:2]
        assert first["event"].startswith("promptbus supervisor: 2 processes on http://127.0.0.1:")
        assert (first["listen"], first["processes"], first["shared"]) == (serve.url, 2, ["port"])
        assert not str(serve.url).endswith(":0")
        assert second["level"] == "warning"
        assert "PROMPTBUS_REDIS_URL is unset" in second["event"]
        assert "jobs_unavailable" in second["event"]

        # And both children answer on that one port
        with one_per_child(str(serve.url), 2) as pinned:
            assert set(pinned) == set(serve.children())
            for pid, conn in pinned.items():
                status, answer = conn.call(
                    "POST", "/v1/generate", {"model": "flash", "prompt": f"from {pid}"}
                )
                assert status == 200, answer
                assert f"from {pid}" in answer["text"]

                # And every job and webhook route says why it cannot work, rather than a 404
                for method, path, body in UNSHARED_ROUTES:
                    status, reply = conn.call(method, path, body)
                    assert status == 503, (method, path, reply)
                    error = reply["error"]
                    assert (error["type"], error["retryable"]) == ("jobs_unavailable", False)
                    assert "PROMPTBUS_REDIS_URL" in error["message"]
                assert conn.same_child()


def test_a_killed_child_is_restarted_and_children_die_with_a_killed_supervisor(
    tmp_path: Path,
) -> None:
    with process_set(tmp_path) as procs:
        # Given two children on a fixed free port
        serve = start_serve(procs, "2", port=free_port())
        victim, survivor = serve.children()

        # When one of them is killed
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in serve.children(), 10, "the killed child is reaped")

        # Then the port keeps answering meanwhile, on fresh connections
        answered = {healthz_pid(str(serve.url)) for _ in range(20)}
        assert victim not in answered

        # And the supervisor starts a new child in its place, after a short pause
        wait_until(lambda: events(serve, "restarted"), 60, "the child is restarted")
        crashed = events(serve, "was killed by SIGKILL")
        assert [line["pid"] for line in crashed] == [victim]
        assert "restarting it in 0.5 s" in crashed[0]["event"]
        children = serve.children()
        assert survivor in children
        assert len(children) == 2
        assert victim not in children

        # And both answer again
        with one_per_child(str(serve.url), 2) as pinned:
            assert set(pinned) == set(children)

        # When the supervisor itself is killed outright, with no chance to stop its children
        serve.send(signal.SIGKILL)

        # Then the kernel tells them (die-with-parent) and they stop by themselves
        wait_until(lambda: all(gone(pid) for pid in children), 30, "the orphans stop")


def test_sigterm_stops_every_child_and_the_supervisor_exits_0(tmp_path: Path) -> None:
    with process_set(tmp_path) as procs:
        serve = start_serve(procs, "2")
        children = serve.children()
        port = int(str(serve.url).rsplit(":", 1)[1])

        # When the supervisor gets SIGTERM
        serve.send(signal.SIGTERM)

        # Then it stops every child and exits 0, leaving no process and nothing on the port
        assert serve.exited_within(30), serve.log()[-2000:]
        assert serve.popen.returncode == 0
        assert len(children) == 2
        assert all(gone(pid) for pid in children)
        assert len(events(serve, "promptbus stopping")) == 2
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))


def test_a_child_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    with process_set(tmp_path, PROMPTBUS_CONFIG_DIR=str(tmp_path / "missing")) as procs:
        # Given a configuration no child can start with
        serve = procs.spawn("serve", [PROMPTBUS, "serve", "--processes", "2"])

        # Then the supervisor does not restart them in a loop: it stops and fails
        assert serve.exited_within(60), serve.log()[-2000:]
        assert serve.popen.returncode == 1
        assert events(serve, "before it listened; stopping")
        assert not events(serve, "restarting it")


def test_a_port_taken_by_another_program_stops_the_supervisor_at_once(tmp_path: Path) -> None:
    with process_set(tmp_path) as procs, socket.socket() as taken:
        # Given a port another program listens on (without SO_REUSEPORT)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When serve --processes 2 is asked to listen there
        serve = procs.spawn("serve", [PROMPTBUS, "serve", "--port", str(port), "--processes", "2"])

        # Then it says so and exits 1 without starting a child
        assert serve.exited_within(30), serve.log()[-2000:]
        assert serve.popen.returncode == 1
        assert events(serve, f"cannot listen on 127.0.0.1:{port}")
        assert not events(serve, "listening on")


def test_with_redis_every_child_reads_the_jobs_and_answers_of_the_other(tmp_path: Path) -> None:
    with (
        redis_prefix() as prefix,
        process_set(
            tmp_path, PROMPTBUS_REDIS_URL=REDIS_URL, PROMPTBUS_REDIS_PREFIX=prefix
        ) as procs,
    ):
        emulator = procs.emulator()
        procs.env["PROMPTBUS_GEMINI_BASE_URL"] = str(emulator.url)
        procs.env["PROMPTBUS_OPENAI_BASE_URL"] = f"{emulator.url}/v1"
        # Given two children sharing Redis (each with its embedded worker on its own bus)
        serve = start_serve(procs, "2")
        shared = ["port", "l2_cache", "coalescing", "rate_limits", "jobs", "webhooks"]
        assert log_lines(serve)[0]["shared"] == shared
        assert not events(serve, "PROMPTBUS_REDIS_URL is unset")
        run = os.urandom(4).hex()

        with one_per_child(str(serve.url), 2) as pinned:
            a, b = pinned.values()

            # When A takes a job, B reads it and long-polls it to its end, and so does A
            status, job = a.call("POST", "/v1/jobs", {"model": "flash", "prompt": f"job {run}"})
            assert status == 202, job
            for conn in (b, a):
                status, read = conn.call("GET", f"/v1/jobs/{job['id']}?wait=20")
                assert (status, read["state"]) == (200, "succeeded"), read

            # When A answers a request, B answers it from Redis (L2) with no upstream call
            before = calls(str(emulator.url))
            body = {"model": "flash", "prompt": f"cached {run}"}
            _, miss, miss_headers = a.call_with_headers("POST", "/v1/generate", body)
            _, hit, hit_headers = b.call_with_headers("POST", "/v1/generate", body)
            assert (miss_headers["X-Cache"], hit_headers["X-Cache"]) == ("MISS", "HIT")
            assert hit["cache"]["tier"] == "l2"
            assert hit["text"] == miss["text"]
            assert calls(str(emulator.url)) == before + 1

            # When both get the same slow request at once, one upstream call answers both
            body = {"model": "flash", "prompt": f"together {run} [[emulator:delay=500]]"}
            answers: dict[int, tuple[int, dict[str, str]]] = {}

            def post(conn: Pinned) -> None:
                answers[conn.pid] = conn.call("POST", "/v1/generate", body)

            threads = [threading.Thread(target=post, args=(conn,)) for conn in (a, b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert [status for status, _ in answers.values()] == [200, 200], answers
            assert len({answer["text"] for _, answer in answers.values()}) == 1
            assert calls(str(emulator.url)) == before + 2
            assert a.same_child()
            assert b.same_child()
