"""Where the machine's shared services answer, and the parts of them tests may use.

See /work/shared/SERVICES.md: tests keep to Redis databases 14 and 15 (under per-run key
prefixes) and to per-run names on RabbitMQ's default vhost.
"""

# promptbus's own data in tests (job store, cache, locks, limits): database 15 only.
REDIS_URL = "redis://127.0.0.1:6379/15"
# The Celery/Kombu broker of the process topologies, apart from promptbus's data.
REDIS_BUS_URL = "redis://127.0.0.1:6379/14"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"

REDIS_ADDRESS = ("127.0.0.1", 6379)
RABBITMQ_ADDRESS = ("127.0.0.1", 5672)
