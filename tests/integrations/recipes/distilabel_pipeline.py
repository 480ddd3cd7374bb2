"""Recipe: a small distilabel pipeline on the rate-limited LLM (docs/integrations.md)."""

# mypy: disable-error-code="import-not-found, import-untyped"

from distilabel.models.llms import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts
from distilabel.steps.tasks import TextGeneration


def generation_pipeline(instructions: list[str], llm: OpenAILLM) -> Pipeline:
    # llm: a RateLimitedOpenAILLM. Each step's worker process loads its own copy, and so
    # its own limiter: give every step that shares a quota a share of it (rpm, tpm).
    with Pipeline(name="rate-limited-generation") as pipeline:
        load = LoadDataFromDicts(data=[{"instruction": text} for text in instructions])
        load >> TextGeneration(llm=llm, input_batch_size=len(instructions))
    return pipeline
