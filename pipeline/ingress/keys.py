"""Typed keys for what the aiohttp application shares."""

from aiohttp import web

from pipeline.ingress.memo import ParsedBodies
from pipeline.runtime import Runtime
from pipeline.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
PARSED_BODIES = web.AppKey("parsed_bodies", ParsedBodies)
