"""The soak's figures per broker, as printed, and the evidence for each lost or duplicated job."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from _common import Check, Errors
from _soak_deploy import LOG_MARKERS, Deployment, job_record, lines_about, redis_keys_about
from _soak_load import Submissions, Tally

EVIDENCE_JOBS: Final = 10
EVIDENCE_LINES: Final = 8


@dataclass
class Figures:
    """Everything one broker's phase measured."""

    broker: str
    record: Submissions
    tally: Tally
    emulator_calls: int
    submit_s: float
    wall_s: float
    completed_jobs: int
    total_s: float
    wait_ended: str
    stall_s: float
    grace_s: float
    leftovers: dict[str, int]
    log_hits: Errors
    chaos: list[str] = field(default_factory=list)

    def checks(self) -> list[Check]:
        """This broker's targets: nothing lost, nothing duplicated."""
        lost, twice = len(self.tally.lost), len(self.tally.duplicated)
        accepted = len(self.record.accepted)
        return [
            Check(f"{self.broker}: lost", f"{lost} of {accepted}", "0", lost == 0),
            Check(f"{self.broker}: duplicated", f"{twice} jobs", "0", twice == 0),
        ]


def show(figures: Figures) -> None:
    """Print one phase's figures, one per line."""
    record, tally = figures.record, figures.tally
    accepted = len(record.accepted)
    paths = record.paths()
    bus = paths.pop("bus", 0)
    by_ingress = ", ".join(f"{k} {v}" for k, v in sorted(paths.items()))
    extra = sum(tally.duplicated.values()) - len(tally.duplicated)
    failed = ", ".join(f"{k} {v}" for k, v in tally.failed.most_common()) or "-"
    rate = figures.completed_jobs / figures.wall_s if figures.wall_s > 0 else 0.0
    rows = [
        ("submitted", record.submitted, f"in {figures.submit_s:.1f} s"),
        ("accepted", accepted, f"HTTP 202: {by_ingress}; published on the bus: {bus}"),
        ("refused", record.refused.count, ""),
        ("completed once", tally.completed_once, ""),
        ("lost", len(tally.lost), "accepted, no completion event"),
        ("duplicated", len(tally.duplicated), f"jobs with more than one event ({extra} extra)"),
        ("failed events", sum(tally.failed.values()), f"error types: {failed}"),
        ("other events", tally.strangers, f"for ids not accepted; unreadable {tally.unreadable}"),
        (
            "emulator calls",
            figures.emulator_calls,
            f"{figures.emulator_calls / max(1, accepted):.3f} per job",
        ),
        (
            "jobs/s",
            f"{rate:.1f}",
            f"{figures.completed_jobs} jobs in {figures.wall_s:.1f} s (first submit to last event)",
        ),
        (
            "phase time",
            f"{figures.total_s:.1f} s",
            f"with the wait and {figures.grace_s:g} s grace",
        ),
        ("wait ended", "", f"{figures.wait_ended} (stall bound {figures.stall_s:g} s)"),
        ("left on broker", "", ", ".join(f"{k} {v}" for k, v in figures.leftovers.items())),
        *(("chaos", "", line) for line in figures.chaos),
        ("worker log lines", figures.log_hits.count, "with " + " / ".join(map(repr, LOG_MARKERS))),
    ]
    for name, value, note in rows:
        print(f"  {name:<17}{value!s:>8}   {note}".rstrip())
        if name == "refused":
            record.refused.show()
    figures.log_hits.show()


async def show_evidence(deployment: Deployment, figures: Figures) -> None:
    """For the first lost and duplicated jobs: their record on an ingress and their log lines."""
    tally = figures.tally
    suspects = [*tally.lost[:EVIDENCE_JOBS], *list(tally.duplicated)[:EVIDENCE_JOBS]]
    for job_id in suspects:
        kind = "lost" if job_id in tally.lost else f"{tally.duplicated[job_id]} completions"
        print(f"    {kind}: {job_id} (via {figures.record.accepted[job_id]})")
        record = await job_record(deployment.session, deployment.ingress_urls[0], job_id)
        print(f"      GET /v1/jobs/{job_id}: {record}")
        keys = await asyncio.to_thread(redis_keys_about, deployment.prefix, job_id)
        print(f"      redis keys: {', '.join(keys) or 'none'}")
        logs = deployment.logs()
        for line in await asyncio.to_thread(lines_about, logs, job_id, EVIDENCE_LINES):
            print(f"      {line}")
