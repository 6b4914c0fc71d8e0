"""What the tests share, one concept per module; import each name from its module.

In-process promptbus: `settings` (the settings a test gateway runs with), `gateway` (an
ingress on a loopback port and its replies), `emulator` (the Gemini emulator and real clients
on it), `job_env` (a gateway, its worker and an emulator on one test bus).
Buses and brokers: `services` (where the shared Redis and RabbitMQ answer), `bus` (a run's
slice of a broker), `bus_tap` (a queue of the test's own on an exchange), `task_traces`
(Celery's signals), `tcp_proxy` (a proxy to cut or freeze a broker connection).
OS processes: `processes` (spawn, wait, kill by group), `deployment` (the topology tests'
processes on a real broker and Redis).
Redis: `redis_servers` (a prefix on the test database, private servers to kill).
Webhooks: `webhook_receivers` (scripted receivers, a connection counter), `webhook_flows`
(the webhook tests' env and steps).
Small things: `clock` (a hand-moved clock), `polling` (waiting with a deadline), `unique`
(free ports, fresh ids), `envelopes` (valid envelopes), `job_store`, `lru`, `providers`,
`model_factories`, `emulator_schemas`, `resilience` (what those tests share).
"""

# Nothing is gathered here: importing one helper never imports every broker's client, and
# names that mean different things in different tests (two `FAST`s) stay apart.
__all__: list[str] = []
