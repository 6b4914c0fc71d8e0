"""GET /v1/templates and GET /v1/templates/{id}: the prompt templates a request may name."""

from aiohttp import web

from pipeline.ingress.keys import SERVICES
from pipeline.templates import TemplateVersion
from schemas.templates import TemplateInfo, TemplateList


def add_routes(app: web.Application) -> None:
    """Register the template routes on `app`."""
    app.router.add_get("/v1/templates", list_templates)
    app.router.add_get("/v1/templates/{template_id}", get_template)


async def list_templates(request: web.Request) -> web.Response:
    """Every version of every template, by id, then version."""
    return _listing(request.app[SERVICES].ctx.templates.versions())


async def get_template(request: web.Request) -> web.Response:
    """One template's versions; 404 for an unknown id."""
    template_id = request.match_info["template_id"]
    return _listing(request.app[SERVICES].ctx.templates.versions(template_id))


def _listing(versions: list[TemplateVersion]) -> web.Response:
    body = TemplateList(
        data=tuple(
            TemplateInfo(
                id=v.id, version=v.version, description=v.description, variables=v.variables
            )
            for v in versions
        )
    )
    return web.Response(body=body.model_dump_json(), content_type="application/json")
