"""Typed keys for what the aiohttp application shares."""

from aiohttp import web

from pipeline.bus.queue_depths import QueueDepths
from pipeline.ingress.send import SendSide
from pipeline.metrics import Metrics
from pipeline.services import Services
from pipeline.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
SEND = web.AppKey("send", SendSide)
METRICS = web.AppKey("metrics", Metrics)
QUEUE_DEPTHS = web.AppKey("queue_depths", QueueDepths)
