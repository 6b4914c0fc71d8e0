"""Publish one promptbus request event with plain Kombu: no promptbus code, no HTTP.

    python examples/publish_event.py --broker amqp://guest:guest@127.0.0.1:5672// \
        --prompt "hello from the bus"
"""

import argparse
import json
import uuid

from kombu import Connection, Exchange, Producer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
parser.add_argument("--exchange", default="promptbus.requests")
parser.add_argument("--job-id", default=f"upstream-{uuid.uuid4().hex[:12]}")
parser.add_argument("--model", default="flash")
parser.add_argument("--prompt", default="hello from the bus")
args = parser.parse_args()

event = {
    "schema": "promptbus.request/v1",
    "job_id": args.job_id,
    "correlation_id": f"corr-{args.job_id}",
    "request": {"model": args.model, "prompt": args.prompt},
    "metadata": {"source": "examples/publish_event.py"},
}
requests = Exchange(args.exchange, type="direct", durable=True)

with Connection(args.broker, connect_timeout=5) as connection:
    Producer(connection).publish(
        json.dumps(event).encode(),
        exchange=requests,
        routing_key="request",
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        correlation_id=event["correlation_id"],
        headers={"schema": event["schema"]},
        declare=[requests],
        retry=True,
        retry_policy={"max_retries": 3},
    )
print(args.job_id)
