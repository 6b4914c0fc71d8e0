"""The job worker of one process: the bridge consumer and a Celery worker on threads."""

from typing import Any

from celery import Celery

from handlers import StageContext
from pipeline.bus.admission import Admission, Admitter
from pipeline.bus.bridge import Bridge
from pipeline.bus.topology import Topology
from pipeline.settings import Settings
from pipeline.worker.celery_app import create_celery, job_chain
from pipeline.worker.embedded import EmbeddedWorker
from pipeline.worker.loop import LoopRunner
from pipeline.worker.steps import run_step
from schemas import StageEnvelope

# Bridge-side waits: admission only touches the job store and the bus.
_ADMIT_TIMEOUT_S = 30.0


class JobWorker:
    """Celery tasks run the async stages on `runner`'s loop; the bridge feeds them."""

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        ctx: StageContext,
        admitter: Admitter,
        runner: LoopRunner,
    ) -> None:
        self._ctx = ctx
        self._runner = runner
        self._admitter = admitter
        self._step_timeout_s = settings.provider_timeout_s + 30
        self.celery: Celery = create_celery(settings, topology, self._run_step)
        self._bridge = Bridge(settings, topology, admit=self._admit, start_chain=self.start_chain)
        self._worker = EmbeddedWorker(self.celery, concurrency=settings.worker_concurrency)

    def start(self) -> None:
        """Start the Celery worker, then the bridge that feeds it."""
        self._worker.start()
        self._bridge.start()

    def stop(self) -> None:
        """Stop taking events, then let in-flight tasks finish."""
        self._bridge.stop()
        self._worker.stop()

    def start_chain(self, envelope: StageEnvelope) -> None:
        """Queue a job's chain of steps."""
        job_chain(self.celery, envelope).apply_async()

    def _admit(self, body: bytes) -> Admission:
        return self._runner.run(self._admitter.admit(body), _ADMIT_TIMEOUT_S)

    def _run_step(self, step: str, payload: dict[str, Any]) -> dict[str, Any]:
        envelope = StageEnvelope.model_validate(payload)
        result = self._runner.run(run_step(step, envelope, self._ctx), self._step_timeout_s)
        return result.model_dump(mode="json", exclude_none=True)
