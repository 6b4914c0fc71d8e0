"""The admin API under /v1/admin/: tenants, their keys and budget rows (admin key only)."""

from pipeline.ingress.admin.routes import add_routes

__all__ = ["add_routes"]
