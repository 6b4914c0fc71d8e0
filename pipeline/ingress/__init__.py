"""The HTTP ingress."""

from pipeline.ingress.app import create_app

__all__ = ["create_app"]
