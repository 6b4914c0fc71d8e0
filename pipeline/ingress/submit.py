"""Accepting jobs over HTTP: admitted here, recorded, then published as a request event.

The ingress admits a job (bad input is its 4xx and changes nothing), records it, and only
then publishes its request event, so a bridge that takes the event finds the admitted
request in the record. A publish the broker does not take in time undoes the record (a 503)
and spends the id. The job's first stage (its key and the cache lookup) runs where it is
dispatched.
"""

import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from celery import Celery
from pydantic import BaseModel

from handlers import CANCELLED, StageContext, finish
from pipeline.bus.admission import admit, new_job
from pipeline.bus.celery_app import chain_step_task
from pipeline.bus.dispatch import SPENT
from pipeline.bus.publisher import EventPublisher
from pipeline.chains import ChainVersion
from pipeline.chains.stepwise import input_text, known, new_run, next_step
from pipeline.errors import Conflict, JobNotFound
from pipeline.sessions import SessionWindow, own_turn, recall, with_history
from schemas import GenerateRequest, JobState, Message, RequestEvent, Role
from schemas.jobs import ChainJobSubmission, Job, JobSubmission, SessionTurn


@dataclass(frozen=True, slots=True)
class ChainSession:
    """A chain job's session: its kept turns and summary (for the chain's first llm step),
    and the turn the job keeps there once it succeeds."""

    turn: SessionTurn
    history: tuple[Message, ...] = ()
    summary: str | None = None


def new_job_id() -> str:
    """A fresh job id: time-ordered, then random."""
    return f"job_{time.time_ns():x}{os.urandom(6).hex()}"


def fingerprint(submission: BaseModel) -> str:
    """What an idempotency key is bound to: the canonical JSON of the submission."""
    canonical = orjson.dumps(
        submission.model_dump(mode="json", exclude_none=True), option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()


class JobSubmitter:
    """Turns submissions into recorded, published jobs, and cancels them."""

    def __init__(
        self,
        ctx: StageContext,
        publisher: EventPublisher,
        celery: Celery,
        *,
        idempotency_ttl_s: float,
        window: SessionWindow,
    ) -> None:
        self._ctx = ctx
        self._publisher = publisher
        self._celery = celery
        self._idempotency_ttl_s = idempotency_ttl_s
        self._window = window

    async def submit(
        self,
        submission: JobSubmission,
        *,
        tenant: str,
        correlation_id: str | None,
        idempotency_key: str | None,
        key_id: str | None = None,
    ) -> Job:
        """The accepted job (or the earlier job under the same idempotency key).

        With a `session_id` it is a turn of that session: its kept turns are sent before its
        own (read as it is accepted), and its turn is kept once it succeeds.
        """
        # Admitted first: the fingerprint, the event and the record carry the rendered
        # messages and the pinned version, and a bad request changes nothing.
        submission = admit(submission, self._ctx.catalog, self._ctx.templates)

        async def accept(job_id: str) -> Job:
            sent, session = submission, None
            if submission.session_id is not None:
                session = SessionTurn(id=submission.session_id, turn=tuple(own_turn(submission)))
                history, summary = await self._recall(tenant, submission.session_id)
                sent = with_history(
                    submission,
                    history,
                    max_turns=self._window.max_turns,
                    max_tokens=self._window.max_tokens,
                    summary=summary,
                )
            return await self._accept(sent, job_id, tenant, correlation_id, key_id, session)

        return await self._once(fingerprint(submission), tenant, idempotency_key, accept)

    async def submit_chain(
        self,
        submission: ChainJobSubmission,
        chain: ChainVersion,
        *,
        tenant: str,
        correlation_id: str | None,
        idempotency_key: str | None,
        key_id: str | None = None,
    ) -> Job:
        """The accepted chain job (its variables checked already), or the earlier job under
        the same idempotency key.

        With a `session_id` it is a turn of that session: its kept turns go before the
        chain's first llm step, and its input and output are kept once it succeeds.
        """
        ref = submission.chain.model_copy(update={"version": chain.version})
        pinned = submission.model_copy(update={"chain": ref})

        async def accept(job_id: str) -> Job:
            session = None
            if pinned.session_id is not None:
                said = Message(role=Role.USER, content=input_text(ref.variables) or "(no input)")
                history, summary = await self._recall(tenant, pinned.session_id)
                session = ChainSession(
                    SessionTurn(id=pinned.session_id, turn=(said,)), tuple(history), summary
                )
            return await self._accept_chain(
                pinned, chain, job_id, tenant, correlation_id, key_id, session
            )

        return await self._once(fingerprint(pinned), tenant, idempotency_key, accept)

    async def _recall(self, tenant: str, session_id: str) -> tuple[list[Message], str | None]:
        return await recall(self._ctx.sessions, tenant, session_id, self._window)

    async def _once(
        self,
        print_: str,
        tenant: str,
        idempotency_key: str | None,
        accept: Callable[[str], Awaitable[Job]],
    ) -> Job:
        """`accept` under a fresh job id, unless the idempotency key holds a job already."""
        ctx = self._ctx
        job_id = new_job_id()
        if idempotency_key is not None:
            held = await ctx.jobs.reserve_idempotency_key(
                tenant, idempotency_key, print_, job_id, self._idempotency_ttl_s
            )
            if held is not None:
                return await self._replay(held, print_)
        try:
            return await accept(job_id)
        except BaseException:
            if idempotency_key is not None:
                await ctx.jobs.drop_idempotency_key(tenant, idempotency_key)
            raise

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job; its completion event says so, once."""
        job = await finish(self._ctx, job_id, JobState.CANCELLED, error=CANCELLED)
        if job is not None:
            return job
        held = await self._ctx.jobs.get(job_id)
        if held is None:
            raise JobNotFound(f"no job {job_id!r}")
        raise Conflict(f"job {job_id!r} is finished or finishing ({held.state.value})")

    async def _replay(self, held: tuple[str, str], print_: str) -> Job:
        held_print, held_job = held
        if held_print != print_:
            raise Conflict("this Idempotency-Key was used with a different request body")
        job = await self._ctx.jobs.get(held_job)
        if job is None:
            raise Conflict("a request with this Idempotency-Key is still being accepted")
        return job

    async def _accept(
        self,
        submission: JobSubmission,
        job_id: str,
        tenant: str,
        correlation_id: str | None,
        key_id: str | None,
        session: SessionTurn | None,
    ) -> Job:
        # Every part was validated already: built without a second pass.
        event = RequestEvent.model_construct(
            job_id=job_id,
            tenant=tenant,
            correlation_id=correlation_id or submission.correlation_id or job_id,
            request=_request_of(submission),
            webhook=submission.webhook,
            metadata=submission.metadata,
        )
        job = new_job(event, now=time.time(), key_id=key_id)
        if session is not None:
            job = job.model_copy(update={"session": session})
        return await self._recorded(job, lambda: self._publisher.publish_request(event))

    async def _accept_chain(
        self,
        submission: ChainJobSubmission,
        chain: ChainVersion,
        job_id: str,
        tenant: str,
        correlation_id: str | None,
        key_id: str | None,
        session: ChainSession | None,
    ) -> Job:
        run = new_run(
            chain,
            dict(submission.chain.variables),
            cache=submission.cache,
            history=session.history if session else (),
            summary=session.summary if session else None,
        )
        first = next_step(chain, known(run))
        if first is None:
            raise ValueError(f"chain {chain.id!r}: its output is one of its inputs")
        now = time.time()
        job = Job(
            id=job_id,
            state=JobState.QUEUED,
            tenant=tenant,
            key_id=key_id,
            correlation_id=correlation_id or submission.correlation_id or job_id,
            created_at=now,
            updated_at=now,
            chain=run,
            session=session.turn if session else None,
            webhook=submission.webhook,
            metadata=submission.metadata,
        )
        # A chain job's first step goes straight to the workers (no request event: the bus
        # contract's requests are generate requests); its task finds the job recorded.
        task = chain_step_task(self._celery, job_id, first)
        return await self._recorded(job, lambda: self._publisher.publish_chain(task))

    async def _recorded(self, job: Job, publish: Callable[[], Awaitable[None]]) -> Job:
        """Record `job`, then `publish` what starts it; undone if the publish fails."""
        jobs = self._ctx.jobs
        await jobs.create(job)
        try:
            await publish()
        except BaseException:
            # Not accepted after all: nothing is left, and the id is spent, so that an event
            # the broker took without confirming it is dropped as a duplicate if it turns up.
            await jobs.delete(job.id)
            await jobs.claim(SPENT, job.id, self._ctx.claim_ttl_s)
            raise
        return job


def _request_of(submission: JobSubmission) -> GenerateRequest:
    """The generate request in a submission, without the job's own fields (no revalidation)."""
    fields = {name: getattr(submission, name) for name in GenerateRequest.model_fields}
    return GenerateRequest.model_construct(
        _fields_set=submission.model_fields_set & set(GenerateRequest.model_fields), **fields
    )
