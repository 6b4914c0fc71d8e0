"""The checks a provider batch's input gets on top of a gateway batch's: one Gemini model,
at most as many items as one Gemini batch job takes, nothing the bridge cannot send."""

from pipeline.batches.validation import Checked
from pipeline.catalog import ModelCatalog
from pipeline.errors import PromptbusError
from pipeline.providers.batch_outcomes import BatchItem
from pipeline.providers.gemini_batch import MAX_ITEMS, check_item
from schemas import GenerateRequest


def check_provider(checked: Checked, catalog: ModelCatalog) -> None:
    """Note a fault, naming its line, for each item a Gemini batch job cannot take."""
    if len(checked.items) > MAX_ITEMS:
        message = f"{len(checked.items)} requests; a provider batch holds at most {MAX_ITEMS}"
        checked.fault("too_many_requests", message, None)
        return
    model: str | None = None
    for item in checked.items:
        number = item.line + 1
        request = GenerateRequest.model_validate(item.request)
        spec = catalog.resolve(request.model)
        if spec.provider != "gemini":
            message = (
                f"line {number}: a provider batch goes to Gemini's Batch API, and "
                f"{request.model!r} is a {spec.provider} model"
            )
            checked.fault("unsupported_model", message, number, "body.model")
            continue
        if model is None:
            model = spec.provider_model
        elif spec.provider_model != model:
            message = (
                f"line {number}: a provider batch is for one model; "
                f"{spec.provider_model} is not {model}"
            )
            checked.fault("mixed_models", message, number, "body.model")
            continue
        try:
            check_item(BatchItem(item.custom_id, request))
        except PromptbusError as exc:
            checked.fault("invalid_request", f"line {number}: {exc.message}", number, exc.field)
