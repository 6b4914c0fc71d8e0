"""Print promptbus completion events as they arrive, with plain Kombu.

    python examples/consume_completions.py --broker amqp://guest:guest@127.0.0.1:5672// \
        --count 1 --timeout 30
"""

import argparse
import json
import sys
import time

from kombu import Connection, Exchange, Queue, binding

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
parser.add_argument("--exchange", default="promptbus.completions")
parser.add_argument("--queue", default="example.completions")
parser.add_argument(
    "--binding",
    action="append",
    help="a routing key to bind, repeatable; default completion.succeeded and completion.failed "
    "(completion.delta: a streaming job's deltas; completion.*: finals and deltas)",
)
parser.add_argument("--job-id", help="print only this job's event")
parser.add_argument("--count", type=int, default=0, help="stop after N events (0: never)")
parser.add_argument("--timeout", type=float, default=0, help="give up after S seconds")
args = parser.parse_args()

completions = Exchange(args.exchange, type="topic", durable=True)
keys = args.binding or ["completion.succeeded", "completion.failed"]
bindings = [binding(completions, routing_key=key) for key in keys]
queue = Queue(args.queue, exchange=completions, bindings=bindings, durable=True)
seen = 0
deadline = time.monotonic() + args.timeout if args.timeout else None


def on_message(body: object, message) -> None:  # type: ignore[no-untyped-def]
    global seen
    # Kombu has already decoded the JSON body (content type application/json).
    event = body if isinstance(body, dict) else json.loads(body)  # type: ignore[arg-type]
    message.ack()
    if args.job_id and event.get("job_id") != args.job_id:
        return
    seen += 1
    print(json.dumps(event), flush=True)


with (
    Connection(args.broker, connect_timeout=5) as connection,
    connection.Consumer([queue], callbacks=[on_message], accept=["json"]),
):
    print(f"listening on {args.queue}", file=sys.stderr, flush=True)
    while not args.count or seen < args.count:
        if deadline is not None and time.monotonic() > deadline:
            sys.exit(f"timed out after {args.timeout:g}s with {seen} event(s)")
        try:
            connection.drain_events(timeout=1)
        except TimeoutError:
            continue
