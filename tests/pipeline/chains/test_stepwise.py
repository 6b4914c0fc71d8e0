"""A chain a step at a time (how a chain job runs): the next step from the values known."""

from pipeline.catalog import ModelCatalog
from pipeline.chains import ChainCatalog
from pipeline.chains.stepwise import first_llm_step, input_text, next_step
from pipeline.settings import Settings
from pipeline.templates import TemplateCatalog

SETTINGS = Settings()
CHAINS = ChainCatalog.from_directory(
    SETTINGS.chains_dir,
    ModelCatalog.from_file(SETTINGS.models_file),
    TemplateCatalog.from_directory(SETTINGS.templates_dir),
)


def order(chain_id: str, answers: dict[str, object], **inputs: object) -> list[str]:
    """The steps run, in order, each given its value from `answers` (else its own name)."""
    chain = CHAINS.get(chain_id).spec
    values: dict[str, object] = dict(inputs)
    ran = []
    while (step := next_step(chain, values)) is not None:
        assert step not in ran, f"{step} ran twice"
        ran.append(step)
        values[step] = answers.get(step, step)
    return ran


def test_a_branch_runs_its_classifier_then_only_the_case_it_picks() -> None:
    billing = order("classify_route", {"label": "Billing."}, message="m")
    other = order("classify_route", {"label": "weather"}, message="m")

    assert billing == ["label", "billing_answer", "answer", "reply"]
    assert other == ["label", "general_answer", "answer", "reply"]


def test_a_passing_verdict_skips_the_revision_and_a_failing_one_revises_once() -> None:
    passed = order("plan_solve_verify", {"check": {"verdict": "pass"}}, question="q")
    failed = order(
        "plan_solve_verify",
        {"check": {"verdict": "fail", "reason": "r"}, "recheck": {"verdict": "pass"}},
        question="q",
    )

    assert passed == ["plan", "solution", "check", "accepted", "result"]
    assert failed == [
        "plan",
        "solution",
        "check",
        "revision",
        "recheck",
        "rechecked",
        "revised",
        "result",
    ]


def test_a_map_runs_once_its_list_is_known_and_its_own_step_never_alone() -> None:
    ran = order("summarize_long", {"chunks": ["a", "b"], "partials": ["x", "y"]}, document="d")

    assert ran == ["chunks", "partials", "combined", "summary"]


def test_the_session_goes_to_the_first_llm_step_and_the_input_is_one_turn() -> None:
    assert first_llm_step(CHAINS.get("classify_route").spec) == "label"
    assert first_llm_step(CHAINS.get("summarize_long").spec) == "chunk_summary"
    assert input_text({"message": "hi"}) == "hi"
    assert input_text({"a": 1, "b": {"c": True}}) == 'a: 1\nb: {"c":true}'
