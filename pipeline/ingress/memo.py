"""Recently seen request bodies, parsed and identified, so a repeated body skips both."""

from collections import OrderedDict

from handlers import arrive, identify
from pipeline.catalog import ModelCatalog
from pipeline.ingress.body import parse_json_model
from pipeline.templates import TemplateCatalog
from schemas import GenerateRequest


class ParsedBodies:
    """A bounded LRU from (tenant, raw body) to its request and cache key.

    Parsing, expanding a template and identifying are pure functions of the bytes (the
    catalogues are fixed for the process's life), so a hot prompt pays for them once.
    Invalid bodies are never kept: they raise every time.
    """

    def __init__(
        self,
        catalog: ModelCatalog,
        templates: TemplateCatalog | None = None,
        *,
        max_entries: int = 1024,
        max_body_bytes: int = 4096,
    ) -> None:
        self._catalog = catalog
        self._templates = templates or TemplateCatalog()
        self._max_entries = max_entries
        self._max_body_bytes = max_body_bytes
        self._seen: OrderedDict[tuple[str, bytes], tuple[GenerateRequest, str]] = OrderedDict()

    def resolve(self, raw: bytes, tenant: str) -> tuple[GenerateRequest, str]:
        """The request in `raw` and its cache key; 400/422/404 errors as for any request."""
        memo_key = (tenant, raw)
        found = self._seen.get(memo_key)
        if found is not None:
            self._seen.move_to_end(memo_key)
            return found
        # A template request becomes its messages before its identity is computed.
        request = arrive(parse_json_model(GenerateRequest, raw), self._templates)
        resolved = (request, identify(self._catalog, request, tenant))
        if len(raw) <= self._max_body_bytes:
            self._seen[memo_key] = resolved
            if len(self._seen) > self._max_entries:
                self._seen.popitem(last=False)
        return resolved
