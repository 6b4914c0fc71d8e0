"""Export the JSON Schemas that bus publishers and HTTP clients code against."""

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.batches import BatchFinished, BatchProgress
from schemas.budgets import BudgetThreshold
from schemas.chains import ChainStepEvent
from schemas.errors import ErrorBody
from schemas.events import CompletionDelta, CompletionEvent, RequestEvent
from schemas.generate import GenerateRequest, GenerateResponse
from schemas.jobs import ChainJobSubmission, Job, JobSubmission
from schemas.templates import TemplateList

JSON_DIR = Path(__file__).parent / "json"

EXPORTED: dict[str, type[BaseModel]] = {
    "generate_request": GenerateRequest,
    "generate_response": GenerateResponse,
    "error_body": ErrorBody,
    "request_event": RequestEvent,
    "completion_event": CompletionEvent,
    "completion_delta": CompletionDelta,
    "job_submission": JobSubmission,
    "chain_job_submission": ChainJobSubmission,
    "job": Job,
    "template_list": TemplateList,
    "budget_threshold": BudgetThreshold,
    "batch_progress": BatchProgress,
    "batch_finished": BatchFinished,
    "chain_step": ChainStepEvent,
}


def render_schemas() -> dict[str, str]:
    """Each exported model's JSON Schema as stable, pretty JSON text, by file name."""
    rendered = {}
    for name, model in EXPORTED.items():
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schema["$id"] = f"https://promptbus.dev/schemas/{name}.json"
        rendered[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return rendered


def write_schemas(directory: Path = JSON_DIR) -> list[Path]:
    """Write every schema into `directory`, returning the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in render_schemas().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
