"""Every exchange and queue promptbus uses, declared in one place."""

from dataclasses import dataclass
from functools import cached_property

from kombu.entity import Exchange, Queue, binding

REQUEST_ROUTING_KEY = "request"
DEAD_LETTER_ROUTING_KEY = "dead"
SUCCEEDED_KEY = "completion.succeeded"
FAILED_KEY = "completion.failed"
# A streaming job's text deltas: on the completions exchange too, but never a job's end.
DELTA_KEY = "completion.delta"
# What a consumer of finished jobs binds: `completion.*` would bring it the deltas as well.
FINAL_KEYS = (SUCCEEDED_KEY, FAILED_KEY)
# A budget past its soft threshold (schemas/budgets.py), on the completions exchange.
BUDGET_THRESHOLD_KEY = "budget.threshold"
REASON_HEADER = "x-promptbus-reason"


@dataclass(frozen=True)
class Topology:
    """The bus contract; `suffix` keeps test runs on a shared broker apart."""

    suffix: str = ""

    def name(self, base: str) -> str:
        """`base` with this deployment's suffix."""
        return f"{base}{self.suffix}"

    # Cached: one entity object each, so Kombu's declare cache recognises it on every publish.
    @cached_property
    def requests_exchange(self) -> Exchange:
        """Where request events are published (direct, durable)."""
        return Exchange(self.name("promptbus.requests"), type="direct", durable=True)

    @cached_property
    def requests_queue(self) -> Queue:
        """The queue the bridge consumes request events from."""
        return Queue(
            self.name("promptbus.requests"),
            exchange=self.requests_exchange,
            routing_key=REQUEST_ROUTING_KEY,
            durable=True,
        )

    @cached_property
    def completions_exchange(self) -> Exchange:
        """Where completion events are published (topic, durable)."""
        return Exchange(self.name("promptbus.completions"), type="topic", durable=True)

    def completions_queue(self, name: str, binding_keys: tuple[str, ...] = FINAL_KEYS) -> Queue:
        """A durable queue for one consumer: the final completion events, unless told others."""
        exchange = self.completions_exchange
        bindings = [binding(exchange, routing_key=key) for key in binding_keys]
        return Queue(name, exchange=exchange, bindings=bindings, durable=True)

    @cached_property
    def dead_letter_exchange(self) -> Exchange:
        """Where events that cannot be processed go (direct, durable)."""
        return Exchange(self.name("promptbus.requests.dlx"), type="direct", durable=True)

    @cached_property
    def dead_letter_queue(self) -> Queue:
        """Events that could not be processed, with the reason in a header."""
        return Queue(
            self.name("promptbus.requests.dlq"),
            exchange=self.dead_letter_exchange,
            routing_key=DEAD_LETTER_ROUTING_KEY,
            durable=True,
        )

    def stage_queue(self, family: str) -> Queue:
        """The Celery queue of one stage family."""
        name = self.name(f"promptbus.stage.{family}")
        return Queue(name, exchange=Exchange(name, type="direct", durable=True), routing_key=name)
