"""A chain is an ordinary LangChain Runnable: a Python user can run it over any gateway."""

from collections.abc import AsyncIterator

from langchain_core.runnables import Runnable

from pipeline.catalog import ModelCatalog
from pipeline.chains import ChainCatalog, PromptbusChatModel, using_gateway
from pipeline.settings import Settings
from pipeline.templates import TemplateCatalog
from schemas import CacheInfo, Cost, GenerateRequest, GenerateResponse, Usage

SETTINGS = Settings()
CHAINS = ChainCatalog.from_directory(
    SETTINGS.chains_dir,
    ModelCatalog.from_file(SETTINGS.models_file),
    TemplateCatalog.from_directory(SETTINGS.templates_dir),
)


class Labeller:
    """A gateway that answers the classifier with a fixed label and echoes every other step."""

    streaming = False

    def __init__(self, label: str) -> None:
        self.label = label
        self.steps: list[str | None] = []

    async def stream(
        self, request: GenerateRequest, *, step: str | None
    ) -> AsyncIterator[str | GenerateResponse]:
        response = await self.generate(request, step=step)
        for word in response.text.split(" "):
            yield word + " "
        yield response

    async def generate(self, request: GenerateRequest, *, step: str | None) -> GenerateResponse:
        self.steps.append(step)
        last = request.messages[-1].content if request.messages else ""
        text = self.label if step == "label" else f"answered: {last}"
        return GenerateResponse(
            id="r",
            model=request.model,
            provider_model="test",
            provider="test",
            text=text,
            finish_reason="stop",
            usage=Usage(input_tokens=1, output_tokens=1, total_tokens=2),
            cost=Cost(input_usd=0, output_usd=0, total_usd=0),
            cache=CacheInfo(hit=False, key="k"),
            created=0.0,
        )


async def test_a_chain_runs_as_a_runnable_over_the_gateway_it_is_given() -> None:
    runnable = CHAINS.get("classify_route").runnable
    assert isinstance(runnable, Runnable)
    gateway = Labeller("technical")

    with using_gateway(gateway):
        state = await runnable.ainvoke({"message": "my disk is full"})

    assert gateway.steps == ["label", "technical_answer"]
    assert state["reply"] == {"label": "technical", "answer": "answered: my disk is full"}


async def test_the_chat_model_composes_like_any_chat_model() -> None:
    gateway = Labeller("unused")
    model = PromptbusChatModel(model="flash")
    with using_gateway(gateway):
        message = await model.ainvoke("hello")
    assert message.text == "answered: hello"
    assert message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] == 2
    assert gateway.steps == [None]


async def test_the_chat_model_streams_through_the_gateway() -> None:
    gateway = Labeller("unused")
    model = PromptbusChatModel(model="flash")
    with using_gateway(gateway):
        chunks = [chunk async for chunk in model.astream("hello there")]
    assert len(chunks) > 2
    assert "".join(chunk.text for chunk in chunks) == "answered: hello there "
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.usage_metadata is not None
    assert whole.usage_metadata["total_tokens"] == 2
