"""The openai provider's failure categories for what the tests' real server never answers (vLLM's 404 for an
unknown model, 429/503, a timeout, a refused key): the openai SDK's own exceptions, as it raises them on
those HTTP replies, mapped like the Ollama client's (graph/model_errors.FailureCategory)."""

from __future__ import annotations

import httpx
import openai
import pytest

from config import load_settings
from graph.model.errors import FailureCategory
from graph.model.openai_model import build_openai_model

URL = "http://127.0.0.1:8000/v1"


def status_error(status: int, message: str) -> openai.APIStatusError:
    request = httpx.Request("POST", f"{URL}/chat/completions")
    response = httpx.Response(status, request=request, json={"error": {"message": message}})
    errors = {400: openai.BadRequestError, 401: openai.AuthenticationError, 404: openai.NotFoundError,
              429: openai.RateLimitError, 503: openai.InternalServerError}  # fmt: skip
    return errors[status](message, response=response, body={"message": message})


def refused() -> openai.APIConnectionError:
    """What the SDK raises when nothing listens: a connection error caused by a ConnectError."""
    error = openai.APIConnectionError(request=httpx.Request("POST", URL))
    error.__cause__ = httpx.ConnectError("All connection attempts failed")
    return error


@pytest.mark.parametrize(
    ("error", "category", "words"),
    [
        (
            status_error(404, "The model `llama3` does not exist."),
            FailureCategory.MODEL_MISSING,
            "not served",
        ),
        (
            status_error(
                400, "This model's maximum context length is 2048 tokens. However, you requested 2100 tokens"
            ),
            FailureCategory.TRUNCATED,
            "context window",
        ),
        (status_error(429, "rate limited"), FailureCategory.OVERLOADED, "overloaded"),
        (status_error(503, "busy"), FailureCategory.OVERLOADED, "overloaded"),
        (status_error(401, "bad key"), FailureCategory.DOWN, "llm.api_key"),
        (openai.APITimeoutError(httpx.Request("POST", URL)), FailureCategory.SLOW, "timeout"),
        (refused(), FailureCategory.DOWN, "not reachable"),
        (
            openai.APIConnectionError(request=httpx.Request("POST", URL)),  # a connection that dropped
            FailureCategory.DOWN,
            "closed the connection before answering",
        ),
    ],
)
def test_each_failure_has_its_category(error: Exception, category: FailureCategory, words: str) -> None:
    settings = load_settings(
        llm={"provider": "openai", "base_url": URL, "model": "m"}, logging={"file": None}
    )
    failure = build_openai_model(settings)._translate(error)
    assert failure.category is category and words in str(failure)
