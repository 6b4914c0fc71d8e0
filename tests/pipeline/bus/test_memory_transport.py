"""The `memory://` transport promptbus runs on: consumers woken by changes, not by polling.

Every consumer here polls only every 30 s and waits at most 10 s: a test passes only if
the change itself (a put, an ack freeing prefetch room) wakes it.
"""

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection, Exchange, Queue
from kombu.message import Message

from pipeline.bus.connection import broker_url
from pipeline.bus.memory_transport import SCHEME
from pipeline.settings import Settings

POLL_S = 30.0
WAIT_S = 10.0


def connection(polling_interval_s: float = POLL_S) -> Connection:
    return Connection(
        broker_url(Settings(broker_url="memory://")),
        transport_options={"polling_interval": polling_interval_s},
    )


@pytest.fixture
def queue() -> Queue:
    name = f"promptbus.test.memory.{uuid.uuid4().hex[:8]}"
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def publish_later(queue: Queue, bodies: list[str], after_s: float = 0.2) -> threading.Thread:
    def publish() -> None:
        time.sleep(after_s)
        with connection() as publisher:
            producer = publisher.Producer()
            for body in bodies:
                producer.publish(
                    body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue]
                )

    thread = threading.Thread(target=publish)
    thread.start()
    return thread


@pytest.fixture
def consumer_connection() -> Iterator[Connection]:
    with connection() as conn:
        yield conn


def test_promptbus_memory_url_names_this_transport():
    assert broker_url(Settings(broker_url="memory://")).startswith(f"{SCHEME}://")


def test_a_put_from_another_thread_wakes_a_waiting_consumer(
    queue: Queue, consumer_connection: Connection
):
    received: list[str] = []
    with consumer_connection.Consumer(
        queue.bind(consumer_connection),
        callbacks=[lambda body, message: (received.append(body), message.ack())],
    ):
        publisher = publish_later(queue, ["hello"])
        began = time.monotonic()
        consumer_connection.drain_events(timeout=WAIT_S)
        waited = time.monotonic() - began
        publisher.join()

    assert received == ["hello"]
    assert waited < WAIT_S  # woken by the put: no polling interval (30 s) went by


def test_an_ack_that_frees_prefetch_room_wakes_the_consumer(
    queue: Queue, consumer_connection: Connection
):
    held: list[Message] = []
    received: list[str] = []

    def on_message(body: str, message: Message) -> None:
        received.append(body)
        held.append(message)

    with consumer_connection.Consumer(
        queue.bind(consumer_connection), callbacks=[on_message], prefetch_count=1
    ):
        publish_later(queue, ["first", "second"], after_s=0).join()
        consumer_connection.drain_events(timeout=WAIT_S)
        assert received == ["first"]

        # The first is unacknowledged, so the second may not be delivered yet.
        with pytest.raises(socket.timeout):
            consumer_connection.drain_events(timeout=0.3)
        acker = threading.Timer(0.2, held[0].ack)
        acker.start()
        began = time.monotonic()
        consumer_connection.drain_events(timeout=WAIT_S)
        waited = time.monotonic() - began
        acker.join()

    assert received == ["first", "second"]
    assert waited < WAIT_S  # woken by the ack, not by the end of a wait


def test_with_nothing_to_deliver_the_wait_ends_at_the_timeout(
    queue: Queue, consumer_connection: Connection
):
    with (
        consumer_connection.Consumer(queue.bind(consumer_connection), callbacks=[]),
        pytest.raises(socket.timeout),
    ):
        consumer_connection.drain_events(timeout=0.3)


def test_a_plain_kombu_memory_publisher_reaches_it_within_the_polling_interval(queue: Queue):
    received: list[str] = []
    with (
        connection(polling_interval_s=0.05) as conn,
        conn.Consumer(
            queue.bind(conn),
            callbacks=[lambda body, message: (received.append(body), message.ack())],
        ),
    ):
        with Connection("memory://localhost/") as plain:
            plain.Producer().publish(
                "from plain kombu",
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                declare=[queue],
            )
        conn.drain_events(timeout=WAIT_S)

    assert received == ["from plain kombu"]
