"""Typed keys for what the aiohttp application shares."""

from aiohttp import web

from pipeline.ingress.send import SendSide
from pipeline.services import Services
from pipeline.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
SEND = web.AppKey("send", SendSide)
