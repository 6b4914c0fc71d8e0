"""Metrics of many processes on one /metrics: a prefork worker's children, supervised serves.

prometheus_client's multiprocess mode: each process writes its series to files of its own
in the run's directory, and a scrape of any of them sums every process's files.
"""

import os
import signal
from pathlib import Path

from tests.e2e.test_topology_prefork import CHILDREN, PREFORK_ENV, pool_of
from tests.support.bus_tap import BusTap
from tests.support.deployment import completed_once, deployment
from tests.support.metrics import parse, scrape
from tests.support.supervised import one_per_child, process_set, start_serve
from tests.support.unique import free_port, new_id

JOBS = 6
JOBS_TOTAL = "promptbus_jobs_total"


async def test_a_prefork_worker_sums_its_childrens_job_counts_on_its_metrics_port(
    tmp_path: Path,
) -> None:
    # Given a multiprocess directory holding a file of an earlier run
    files = tmp_path / "metrics"
    files.mkdir()
    stale = files / "counter_1.db"
    stale.write_bytes(b"an earlier run's file")
    async with deployment("redis") as d:
        # And a prefork worker of two children serving its metrics on a port of its own
        port = free_port()
        env = {**PREFORK_ENV, "PROMPTBUS_METRICS_PORT": str(port)}
        env["PROMETHEUS_MULTIPROC_DIR"] = str(files)
        (worker,) = await d.workers(1, env)
        (ingress,) = await d.ingresses(1)
        children = await pool_of(worker)
        url = f"http://127.0.0.1:{port}/metrics"
        assert f"metrics on {url}" in worker.log()
        # Then the earlier run's file is gone
        assert not stale.exists()

        # When jobs run (their steps in the children, their dispatch in the parent)
        async with BusTap.completions(d.bus) as tap:
            ids = [await d.submit(ingress, new_id(f"mp{i}")) for i in range(JOBS)]
            assert await completed_once(tap, ids, timeout_s=30) == {"succeeded": JOBS}

        # Then the worker's /metrics counts every job: the children's steps summed
        after = await scrape(d.session, url)
        assert after.value(JOBS_TOTAL, state="succeeded") == JOBS
        assert after.value("promptbus_job_stages_total", stage="generate") == JOBS
        assert after.value("promptbus_upstream_calls_total", outcome="ok") == JOBS
        # And the parent's own series too: each job's cache lookup at dispatch
        assert after.value("promptbus_cache_lookups_total", result="miss") == JOBS
        # And the children wrote files of their own
        writers = {int(f.stem.rpartition("_")[2]) for f in files.glob("counter_*.db")}
        assert writers & set(children), (writers, children)

        # When a child is killed outright, its counts still count
        os.kill(children[0], signal.SIGKILL)
        await pool_of(worker)
        again = await scrape(d.session, url)
        assert again.value(JOBS_TOTAL, state="succeeded") == JOBS
        assert len(children) == CHILDREN


def test_supervised_processes_each_export_every_processs_metrics(tmp_path: Path) -> None:
    with process_set(tmp_path) as procs:
        # Given `serve --processes 2`
        serve = start_serve(procs, "2")
        with one_per_child(str(serve.url), 2) as pinned:
            # When each child answers one request that misses the cache
            for pid, conn in pinned.items():
                status, answer = conn.call(
                    "POST", "/v1/generate", {"model": "flash", "prompt": f"{new_id('s')} {pid}"}
                )
                assert status == 200, answer

            # Then the /metrics of either child counts both requests and both upstream calls
            for conn in pinned.values():
                scraped = parse(conn.text("/metrics"))
                generate = {"route": "/v1/generate", "status": "200"}
                count = "promptbus_http_request_duration_seconds_count"
                assert scraped.value(count, **generate) == 2
                assert scraped.value("promptbus_upstream_calls_total", outcome="ok") == 2
                assert scraped.value("promptbus_cache_lookups_total", result="miss") == 2
